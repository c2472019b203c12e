"""Shared-backbone methods: per-task BN statistics, EWC's optional clipping, LwF's warm-up."""

import pytest
import torch

import cl_lab
from cl_lab.config import ConfigError


def test_per_task_bn_statistics_remove_statistics_drift(tmp_path):
    """With weights that cannot move (lr far below float resolution), only BN statistics change:
    shared statistics drift and change task 1's accuracy; per-task statistics restore it exactly."""
    common = dict(out=str(tmp_path), epochs=1, progress=False, lr=1e-30, momentum=0.0)
    shared = cl_lab.run("sgd", "synth-mini", run_name="shared", **common)
    per = cl_lab.run("sgd", "synth-mini", run_name="per", bn_stats="per-task", **common)
    assert per.R[2, 0] == per.R[0, 0] and per.R[2, 1] == per.R[1, 1]
    assert per.R[0, 0] == shared.R[0, 0]
    # statistics are stored per task and counted: 2 x 336 BN channels of ResNet-8, float32, per task
    assert list(per.costs.extra_bytes - shared.costs.extra_bytes) == [k * 4 * 2 * 336 for k in (1, 2, 3)]


def test_per_task_bn_statistics_round_trip_and_are_rejected_where_meaningless(tmp_path):
    from helpers import assert_restores_mid_stream

    from cl_lab.data import load_stream
    from cl_lab.methods import StreamInfo, get_method
    from cl_lab.models import build_backbone

    mini, cls = load_stream("synth-mini"), get_method("lwf")

    def make():
        torch.manual_seed(0)
        m = cls(build_backbone("resnet8"), cls.Config(warmup_epochs=0), StreamInfo((4, 3, 2), ("a", "b", "c")))
        m.set_bn_stats("per-task")
        return m

    assert_restores_mid_stream(make, mini)
    for name in ("clr", "sgd-ll", "rescl", "confit"):
        with pytest.raises(ConfigError, match="bn_stats"):
            cl_lab.run(name, "synth-mini", out=str(tmp_path), bn_stats="per-task", progress=False)


def test_ewc_does_not_clip_by_default_and_reports_clipping_when_asked(tmp_path):
    from cl_lab.methods import get_method

    assert get_method("ewc").Config().max_grad_norm is None
    plain = cl_lab.run("ewc", "synth-mini", out=str(tmp_path), run_name="plain", epochs=1, progress=False, n_tasks=2)
    assert "clipped_fraction" not in plain.costs
    clipped = cl_lab.run("ewc", "synth-mini", out=str(tmp_path), run_name="clip", epochs=1, progress=False, n_tasks=2,
                         max_grad_norm=1e-6)
    assert (clipped.costs.clipped_fraction == 1.0).all()


def test_lwf_warm_up_trains_only_the_new_head(mini):
    from cl_lab.methods import StreamInfo, get_method
    from cl_lab.models import build_backbone

    cls = get_method("lwf")
    m = cls(build_backbone("resnet8"), cls.Config(warmup_epochs=3), StreamInfo((4, 3), ("a", "b")))
    m.begin_task(0, mini[0])
    m.end_task(0, mini[0])
    before = {k: v.clone() for k, v in m.state_dict().items()}
    m.begin_task(1, mini[1])
    after = m.state_dict()
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert changed == set(), changed  # nothing shared or old changed ...
    assert "heads.heads.1.weight" in after  # ... while the new head was trained from its init:
    torch.manual_seed(0)
    fresh = torch.nn.Linear(64, 3)
    assert not torch.allclose(after["heads.heads.1.weight"], fresh.weight)
    assert get_method("lwf").Config().weight_decay == 5e-4
