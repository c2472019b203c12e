import copy

import pytest
import torch
from torch import nn

from cl_lab.methods import StreamInfo, get_method
from cl_lab.methods.rescl import Combined, combine_networks, fold_network
from cl_lab.models import build_backbone, load_weights
from cl_lab.train.runner import evaluate, seed_everything


def _randomize_bn(bn, g):
    with torch.no_grad():
        bn.weight.uniform_(0.5, 1.5, generator=g)
        bn.bias.uniform_(-0.5, 0.5, generator=g)
        bn.running_mean.uniform_(-0.5, 0.5, generator=g)
        bn.running_var.uniform_(0.5, 2.0, generator=g)
    return bn.eval()


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
    assert type(folded) is (nn.BatchNorm2d if kind == "bn" else nn.Conv2d)
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
    with torch.no_grad():
        for m in comb.modules():
            if isinstance(m, Combined):
                m.alpha_s.uniform_(-1, 1, generator=g)
                m.alpha_t.uniform_(-1, 1, generator=g)
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


def test_l1_decay_pulls_alphas_to_zero_and_source_accuracy_up(mini):
    cls = get_method("rescl")
    stats, src_acc = [], []
    for lam in (0.0, 0.3, 3.0):
        seed_everything(0)
        m = cls(build_backbone("resnet8"), cls.Config(rescl_lambda=lam, finetune_epochs=3, lr=0.05),
                StreamInfo((4, 3), ("a", "b")))
        load_weights(m.backbone, "shipped")
        for t in (0, 1):
            seed_everything(10 + t)
            m.begin_task(t, mini[t])
            m.train()
            x, y = mini[t].train.float_images(), mini[t].train.labels()
            for _epoch in range(3):
                for b in range(0, len(y) - 1, 32):
                    m.observe(x[b:b + 32], y[b:b + 32], t)
            m.end_task(t, mini[t])
        stats.append(m.alpha_history[-1]["mean_abs_alpha_s"] + m.alpha_history[-1]["mean_abs_alpha_t"])
        src_acc.append(evaluate(m, mini[0], 0, torch.device("cpu")))
    assert stats[0] > stats[1] > stats[2] == 0.0
    one = 1 / len(mini[0].test)  # tolerate a single test image flipping between neighbouring lambdas
    assert src_acc[0] <= src_acc[1] + one and src_acc[1] <= src_acc[2] + one
    assert src_acc[0] < src_acc[2]


def test_tradeoff_sweep_writes_curve_and_metrics(tmp_path, mini):
    import pandas as pd

    from cl_lab.train.tradeoff import tradeoff

    curve, table = tradeoff(mini, 0, 1, out=str(tmp_path), name="t", epochs=1, progress=False,
                            sweeps={"rescl": ("rescl_lambda", (0.0, 100.0)), "sgd": ("lr", (0.01,))})
    saved = pd.read_csv(tmp_path / "t" / "tradeoff.csv")
    assert len(saved) == 3 and set(saved.method) == {"rescl", "sgd"}
    assert set(pd.read_csv(tmp_path / "t" / "tradeoff_metrics.csv").method) == {"rescl", "sgd"}
    strong = curve[(curve.method == "rescl") & (curve.value == 100.0)].iloc[0]
    assert strong.source_acc == strong.source_alone  # alphas decayed to 0: the source network itself
