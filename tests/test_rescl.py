import copy

import numpy as np
import pytest
import torch
from torch import nn

import cl_lab
from cl_lab.methods import StreamInfo, get_method
from cl_lab.methods.rescl import ChannelAffine, Combined, combine_networks, fold_network
from cl_lab.models import build_backbone, load_weights
from cl_lab.train.runner import seed_everything


def _randomize_bn(bn, g):
    with torch.no_grad():
        bn.weight.uniform_(0.5, 1.5, generator=g)
        bn.bias.uniform_(-0.5, 0.5, generator=g)
        bn.running_mean.uniform_(-0.5, 0.5, generator=g)
        bn.running_var.uniform_(0.5, 2.0, generator=g)
    return bn.eval()


def _random_alphas(comb, g):
    with torch.no_grad():
        for m in comb.modules():
            if isinstance(m, Combined):
                m.alpha_s.uniform_(-1, 1, generator=g)
                m.alpha_t.uniform_(-1, 1, generator=g)


def _unit(kind, g):
    conv = nn.Conv2d(4, 6, 3, padding=1, bias=(kind == "conv"))
    with torch.no_grad():
        conv.weight.normal_(generator=g)
        if conv.bias is not None:
            conv.bias.normal_(generator=g)
    if kind == "conv":
        return conv
    if kind == "bn":
        return _randomize_bn(nn.BatchNorm2d(4), g)
    return nn.Sequential(conv, _randomize_bn(nn.BatchNorm2d(6), g))


@pytest.mark.parametrize("kind", ["conv+bn", "bn", "conv"])
def test_folding_one_combination_point_is_exact(kind):
    g = torch.Generator().manual_seed(0)
    comb = Combined(_unit(kind, g), _unit(kind, g)).double()
    with torch.no_grad():
        comb.alpha_s.uniform_(-1, 1, generator=g)
        comb.alpha_t.uniform_(-1, 1, generator=g)
    comb.eval()
    x = torch.randn(3, 4, 8, 8, generator=g, dtype=torch.float64)
    folded = comb.fold()
    torch.testing.assert_close(folded(x), comb(x), atol=1e-10, rtol=0)
    assert type(folded) is (ChannelAffine if kind == "bn" else nn.Conv2d)
    comb32, x32 = comb.float(), x.float()
    torch.testing.assert_close(comb32.fold()(x32), comb32(x32), atol=1e-5, rtol=1e-5)


def _pair():
    torch.manual_seed(0)
    bb = build_backbone("resnet8")
    load_weights(bb, "shipped")
    src, tgt = copy.deepcopy(bb.body), copy.deepcopy(bb.body)
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in tgt.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=g))
        for m in tgt.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.add_(0.1)
                m.running_var.mul_(1.2)
    return bb, src, tgt


def test_folding_a_whole_residual_network_is_exact_and_keeps_the_architecture():
    bb, src, tgt = _pair()
    comb = combine_networks(src, tgt)
    g = torch.Generator().manual_seed(2)
    _random_alphas(comb, g)
    comb = comb.double().eval()
    folded = fold_network(copy.deepcopy(comb)).eval()
    x = torch.randn(4, 3, 32, 32, generator=g, dtype=torch.float64)
    torch.testing.assert_close(folded(x), comb(x), atol=1e-5, rtol=0)
    convs_src = [m for m in src.modules() if isinstance(m, nn.Conv2d)]
    convs_fold = [m for m in folded.modules() if isinstance(m, nn.Conv2d)]
    assert [(c.weight.shape, c.stride, c.padding) for c in convs_src] == \
           [(c.weight.shape, c.stride, c.padding) for c in convs_fold]
    assert not any(isinstance(m, (nn.BatchNorm2d, Combined)) for m in folded.modules())
    n_folded = sum(p.numel() for p in folded.parameters())
    assert n_folded == sum(c.weight.numel() + c.out_channels for c in convs_src)


def test_alpha_zero_is_the_source_and_init_is_the_average():
    bb, src, tgt = _pair()
    src.eval()
    tgt.eval()
    comb = combine_networks(src, tgt).eval()
    x = torch.rand(2, 3, 32, 32)
    unit = next(m for m in comb.modules() if isinstance(m, Combined))
    xin = torch.randn(2, 3, 32, 32)
    torch.testing.assert_close(unit(xin), 0.5 * unit.source(xin) + 0.5 * unit.target(xin))
    with torch.no_grad():
        for m in comb.modules():
            if isinstance(m, Combined):
                m.alpha_s.zero_()
                m.alpha_t.zero_()
        torch.testing.assert_close(comb(x), src(x), atol=1e-6, rtol=1e-6)


def _pair_stream(mini):
    from cl_lab.data import TaskStream

    return TaskStream("mini-pair", [mini[0], mini[1]])


def test_l1_budget_runs_the_alphas_from_their_start_to_zero(tmp_path, mini):
    """Through the runner: lambda 0 keeps the alphas near their start, 0.5 about halves them, 4 zeroes them."""
    pair = _pair_stream(mini)
    logs, rs = [], []
    for lam in (0.0, 0.5, 4.0):
        r = cl_lab.run("rescl", pair, out=str(tmp_path), run_name=f"l{lam}", epochs=2, progress=False,
                       rescl_lambda=lam, finetune_epochs=2)
        logs.append(r.costs.iloc[1])
        rs.append(r)
    a = [row.mean_abs_alpha_s + row.mean_abs_alpha_t for row in logs]
    assert a[0] > 0.8  # both alphas start at magnitude 0.5; no decay keeps them near there
    assert a[1] < a[0] - 0.2 and a[2] < a[1] - 0.2
    assert logs[2].alpha_t_zero_fraction == 1.0 and a[2] == 0.0
    # alphas at zero: the combined network is the source, so the first task is exactly preserved
    assert rs[2].R[1, 0] == rs[2].R[0, 0]


def test_default_sweep_traces_at_least_three_distinct_points(tmp_path):
    """shapes -> textures of synth-10 (500 training images each, all 400 test images): the default
    sweep moves the source accuracy over a range far wider than a few test images."""
    from cl_lab.data import Task, TaskStream, load_stream
    from cl_lab.experiments.tradeoff import DEFAULT_SWEEPS, tradeoff

    ts = load_stream("synth-10")
    pair = TaskStream("shapes-textures", [Task.from_tensors(t.name, t.train.x[:500], t.train.y[:500], t.test.x,
                                                            t.test.y, class_names=t.class_names) for t in ts.tasks[:2]])
    curve, table = tradeoff(pair, 0, 1, out=str(tmp_path), name="d", epochs=2, progress=False,
                            sweeps={"rescl": DEFAULT_SWEEPS["rescl"]}, method_kwargs={"rescl": {"finetune_epochs": 2,
                                                                           "finetune_lr": 0.01}})
    # (a fine-tuning learning rate that moves the target: the tuned default, about 1e-3, barely does in 2 epochs)
    points = {(round(r.source_acc, 6), round(r.target_acc, 6)) for r in curve.itertuples()}
    assert len(points) >= 3, curve
    assert curve.source_acc.max() - curve.source_acc.min() >= 0.03, curve  # >= 12 of 400 test images
    assert {"mean_abs_alpha_s", "mean_abs_alpha_t"} <= set(curve.columns)
    assert curve.mean_abs_alpha_t.iloc[0] > 0.4 and curve.mean_abs_alpha_t.iloc[-1] == 0.0


def _train_two_tasks_through_the_runner_loop(name, mini, **cfg):
    """Task 0 and task 1 through the runner's own ``train_task``; returns the learner mid-task-1
    (after training, before ``end_task``) and an eval-mode snapshot taken when task 0 ended."""
    from cl_lab.methods.base import TrainPlan
    from cl_lab.train.runner import RunConfig, train_task

    cls = get_method(name)
    seed_everything(0)
    bb = build_backbone("resnet8")
    load_weights(bb, "shipped")
    m = cls(bb, cls.Config(**cfg), StreamInfo((4, 3), ("a", "b")))
    rc, cpu = RunConfig(epochs=1, progress=False), torch.device("cpu")
    m.set_plan(TrainPlan(1, 3))
    m.begin_task(0, mini[0])
    train_task(m, mini[0], 0, rc, cpu, torch.Generator().manual_seed(0))
    m.end_task(0, mini[0])
    snapshot = copy.deepcopy(m).eval()
    m.begin_task(1, mini[1])
    log = train_task(m, mini[1], 1, rc, cpu, torch.Generator().manual_seed(0))
    return m, snapshot, log


@pytest.mark.parametrize("name", ["lwf", "rescl"])
def test_teachers_stay_in_eval_mode_and_unchanged_through_the_runner_loop(name, mini):
    m, before, _ = _train_two_tasks_through_the_runner_loop(name, mini)
    teachers = [m.teacher] if name == "lwf" else [m.source, m.target_teacher]
    assert m.training  # the runner switched the learner to training mode ...
    for t in teachers:  # ... and its teachers stayed in eval mode
        assert not any(mod.training for mod in t.modules())
    x = mini[0].test.float_images()
    src = m.teacher if name == "lwf" else m.source
    with torch.no_grad():
        got = src["heads"](src["backbone"](x), 0)
    torch.testing.assert_close(got, before.predict(x, 0), rtol=0, atol=1e-6)


class ConvReluBN(nn.Module):
    """A user CNN in conv -> ReLU -> BN order (no BN reads a conv's output directly)."""

    def __init__(self):
        super().__init__()
        self.c1, self.r1, self.b1 = nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.BatchNorm2d(8)
        self.c2, self.r2, self.b2 = nn.Conv2d(8, 16, 3, 2, 1), nn.ReLU(), nn.BatchNorm2d(16)
        self.pool = nn.AdaptiveAvgPool2d(1)

    def forward(self, x):
        return self.pool(self.b2(self.r2(self.c2(self.b1(self.r1(self.c1(x)))))))


@pytest.mark.parametrize("backbone", ["preact-resnet8", "user"])
def test_rescl_runs_three_tasks_on_networks_with_bn_not_after_a_conv(backbone, tmp_path, mini):
    bb = ConvReluBN() if backbone == "user" else backbone
    r = cl_lab.run("rescl", mini, backbone=bb, out=str(tmp_path), epochs=1, finetune_epochs=1, progress=False,
                   pretrained=None)
    assert np.isfinite(r.R[np.tril_indices(3)]).all()
    assert (r.R[np.tril_indices(3)] > 0).all()


def test_folding_a_preactivation_network_is_exact():
    torch.manual_seed(0)
    src, tgt = build_backbone("preact-resnet8").body, build_backbone("preact-resnet8").body
    g = torch.Generator().manual_seed(3)
    for net in (src, tgt):
        for m in net.modules():
            if isinstance(m, nn.BatchNorm2d):
                _randomize_bn(m, g)
    comb = combine_networks(src.eval(), tgt.eval())
    _random_alphas(comb, g)
    comb = comb.double().eval()
    folded = fold_network(copy.deepcopy(comb)).eval()
    assert not any(isinstance(m, (nn.BatchNorm2d, Combined)) for m in folded.modules())
    assert any(isinstance(m, ChannelAffine) for m in folded.modules())
    x = torch.randn(2, 3, 32, 32, generator=g, dtype=torch.float64)
    torch.testing.assert_close(folded(x), comb(x), atol=1e-6, rtol=0)


def test_tradeoff_sweep_writes_curve_and_metrics(tmp_path, mini):
    import pandas as pd

    from cl_lab.experiments.tradeoff import tradeoff

    curve, table = tradeoff(mini, 0, 1, out=str(tmp_path), name="t", epochs=1, progress=False,
                            sweeps={"rescl": ("rescl_lambda", (0.0, 100.0)), "sgd": ("lr", (0.01,))},
                            method_kwargs={"rescl": {"finetune_epochs": 1}})
    saved = pd.read_csv(tmp_path / "t" / "tradeoff.csv")
    assert len(saved) == 3 and set(saved.method) == {"rescl", "sgd"}
    assert set(pd.read_csv(tmp_path / "t" / "tradeoff_metrics.csv").method) == {"rescl", "sgd"}
    levels = table.filter(like="source_at_target")
    top = levels.columns[-1]  # the highest level: the best target accuracy any sweep reaches
    assert float(top.rsplit("_", 1)[1]) <= curve.target_acc.max() + 1e-6  # column names hold 6 digits
    for method, row in zip(table.method, levels.itertuples(index=False)):
        reach = curve[curve.method == method].target_acc.max()
        for col, v in zip(levels.columns, row):  # NaN exactly where the level is above this method's front
            assert (v != v) == (float(col.rsplit("_", 1)[1]) > reach + 1e-6), (method, col, v, reach)
    from cl_lab.experiments.tradeoff import NOT_REACHABLE, shown
    assert (shown(table)[levels.columns] == NOT_REACHABLE).sum().sum() == levels.isna().sum().sum()
    strong = curve[(curve.method == "rescl") & (curve.value == 100.0)].iloc[0]
    assert strong.source_acc == strong.source_alone  # alphas decayed to 0: the source network itself
