"""ConFiT (Jie et al. 2022): hierarchical fine-tuning, per-task BN, cross-convolution BN means."""

import pytest
import torch
from helpers import assert_restores_mid_stream, train_steps
from torch import nn

import cl_lab
from cl_lab.methods import StreamInfo, get_method
from cl_lab.methods.base import TrainPlan
from cl_lab.methods.confit import TrackedConv
from cl_lab.models import build_backbone, load_weights
from cl_lab.train.runner import RunConfig, seed_everything, train_task


def _make(mini, **cfg):
    seed_everything(0)
    bb = build_backbone("resnet8")
    load_weights(bb, "shipped")
    cls = get_method("confit")
    return cls(bb, cls.Config(**cfg), StreamInfo(tuple(t.num_classes for t in mini), tuple(t.name for t in mini)))


def _convs(m):
    return {k: v.detach().clone() for k, v in m.backbone.named_parameters() if k.endswith("conv.weight")
            or (k.endswith("weight") and v.dim() == 4)}


def _bn_affine(m):
    return [p.detach().clone() for bn in m.bns for p in bn.parameters()]


def test_hierarchical_fine_tuning_through_the_runner_loop(mini):
    """4 epochs: epoch 1 trains the head only, epoch 2 adds BN, epochs 3-4 train every weight."""
    m = _make(mini)
    snaps = []
    original_end_epoch = m.end_epoch

    def record(task_id, epoch, epochs):
        snaps.append((_convs(m), _bn_affine(m), m.heads.heads["0"].weight.detach().clone()))
        original_end_epoch(task_id, epoch, epochs)

    m.end_epoch = record
    start = (_convs(m), _bn_affine(m))
    m.set_plan(TrainPlan(4, 3))
    m.begin_task(0, mini[0])
    head0 = m.heads.heads["0"].weight.detach().clone()
    train_task(m, mini[0], 0, RunConfig(epochs=4, progress=False), torch.device("cpu"), torch.Generator().manual_seed(0))
    same = lambda a, b: all(torch.equal(x, y) for x, y in zip(a.values() if isinstance(a, dict) else a,
                                                             b.values() if isinstance(b, dict) else b))
    conv1, bn1, h1 = snaps[0]
    assert not torch.equal(h1, head0) and same(conv1, start[0]) and same(bn1, start[1])
    conv2, bn2, _ = snaps[1]
    assert same(conv2, start[0]) and not same(bn2, start[1])
    conv4, _, _ = snaps[3]
    assert not same(conv4, start[0])


def test_earlier_tasks_use_their_own_bn_and_stored_means_without_cross_conv(mini):
    """With the shared weights frozen (lr 0 is not allowed; head-only schedule), task 1's logits are
    bit-identical after later tasks: its BN affine, statistics and head are restored exactly."""
    m = _make(mini, head_fraction=1.0, bn_fraction=1.0, cross_conv_bn=False)
    x0 = mini[0].test.float_images()
    train_steps(m, mini[0], 0)
    m.eval()
    first = m.predict(x0, 0).clone()
    train_steps(m, mini[1], 1)
    train_steps(m, mini[2], 2)
    m.eval()
    assert torch.equal(m.predict(x0, 0), first)


def test_cross_conv_bn_mean_is_the_mean_through_the_current_conv():
    """For a 1x1 conv the mean of conv(x) over positions is conv(mean of x): exact."""
    conv = nn.Conv2d(3, 5, 1, bias=True)
    tc = TrackedConv(conv, momentum=1.0).train()
    x = torch.rand(8, 3, 6, 6)
    tc(x)
    with torch.no_grad():
        conv.weight.mul_(-2.0).add_(0.3)
        conv.bias.add_(1.0)
        torch.testing.assert_close(tc.output_mean(tc.input_mean), conv(x).mean((0, 2, 3)), rtol=1e-5, atol=1e-5)
    strided = TrackedConv(nn.Conv2d(3, 4, 3, 2, 1), momentum=1.0).train()
    strided(x)
    assert strided.input_mean.shape == (3, 2, 2)  # one mean per pixel phase of a stride-2 conv


def test_cross_conv_bn_changes_old_tasks_means_once_the_convs_move(mini):
    m = _make(mini)
    train_steps(m, mini[0], 0)
    m.eval()
    stored = [getattr(m.store, f"t0_bn{i}_running_mean").clone() for i in range(len(m.bns))]
    m.set_plan(TrainPlan(1, 3))
    m.cfg.head_fraction = m.cfg.bn_fraction = 0.0  # every weight trains from the first step
    before = _convs(m)
    train_steps(m, mini[1], 1)
    assert any(not torch.equal(before[k], v) for k, v in _convs(m).items())
    corrected = m.corrected_means(0)
    index = {id(bn): i for i, bn in enumerate(m.bns)}
    after_conv = {index[id(bn)] for _, bn in m.trackers}
    assert after_conv and all((corrected[i] - stored[i]).abs().max() > 1e-3 for i in after_conv)
    assert all(torch.equal(corrected[i], stored[i]) for i in range(len(m.bns)) if i not in after_conv)


def test_state_round_trip_mid_stream(mini):
    assert_restores_mid_stream(lambda: _make(mini), mini)


def test_runner_costs_count_bn_per_task(tmp_path):
    r = cl_lab.run("confit", "synth-mini", out=str(tmp_path), epochs=1, progress=False)
    bb = build_backbone("resnet8")
    bn_affine = sum(p.numel() for mod in bb.modules() if isinstance(mod, nn.BatchNorm2d) for p in mod.parameters())
    assert list(r.costs.task_params) == [bn_affine + 64 * k + k for k in (4, 3, 2)]
    assert (r.costs.extra_bytes.diff().dropna() > 0).all()


@pytest.mark.parametrize("bad", [{"head_fraction": 0.6, "bn_fraction": 0.5}, {"tracker_momentum": 0}])
def test_bad_settings_are_rejected(bad):
    from cl_lab.config import ConfigError, build

    with pytest.raises(ConfigError):
        build(get_method("confit").Config, bad, where="confit")


def test_step_probes_recompute_the_old_tasks_bn_means_as_the_convs_move(tmp_path, mini):
    """``eval_every``'s last probe in a task sees the convs the end-of-task evaluation sees: with every test
    image probed, its accuracy on an old task is that task's entry of the accuracy matrix (means cached from
    the task's first probe would be those of convs many steps old)."""
    r = cl_lab.run("confit", mini, n_tasks=2, epochs=2, eval_every=3, eval_images=10_000, out=str(tmp_path),
                   progress=False)
    steps = cl_lab.results.load_steps(tmp_path)
    old = steps[(steps.task == 1) & (steps.eval_task == 0)].sort_values("step")
    assert len(old) >= 3
    assert old.accuracy.iloc[-1] == pytest.approx(r.R[1, 0], abs=1e-9)
