import copy

import pytest
import torch
from helpers import train_steps

import cl_lab
from cl_lab.config import ConfigError
from cl_lab.methods import StreamInfo
from cl_lab.methods.clr import CLR, CLRConfig, CLRConv, clr_parameter_table
from cl_lab.models import build_backbone, load_weights
from cl_lab.models.weights import default_checkpoint


def _clr(stream, **cfg):
    bb = build_backbone("resnet8")
    load_weights(bb, "shipped")
    info = StreamInfo(tuple(t.num_classes for t in stream), tuple(t.name for t in stream))
    return CLR(bb, CLRConfig(**cfg), info)


def test_identity_init_gives_backbone_features_exactly(mini):
    bb = build_backbone("resnet8")
    load_weights(bb, "shipped")
    bb.eval()
    x = mini[0].test.float_images()
    with torch.no_grad():
        ref = bb(x)
    m = CLR(copy.deepcopy(bb), CLRConfig(), StreamInfo((4,), ("a",)))
    m.add_task(0, 4)
    m.set_task(0)
    m.eval()
    with torch.no_grad():
        assert torch.equal(m.backbone(x), ref)


def test_only_task_parameters_learn_and_backbone_is_bit_identical(mini):
    m = _clr(mini)
    shared = {k: v.clone() for k, v in m.backbone.state_dict().items() if ".tasks." not in k}
    for t, task in enumerate(mini):
        m.begin_task(t, task)
        m.train()
        m.observe(task.train.float_images()[:16], task.train.labels()[:16], t)
        with_grad = {id(p) for p in m.parameters() if p.grad is not None}
        assert with_grad == {id(p) for p in m.task_parameters(t)}
        m.end_task(t, task)
    after = {k: v for k, v in m.backbone.state_dict().items() if ".tasks." not in k}
    assert shared.keys() == after.keys() and all(torch.equal(shared[k], after[k]) for k in shared)


def test_first_task_logits_bit_identical_after_later_tasks(mini):
    m = _clr(mini)
    x0 = mini[0].test.float_images()
    train_steps(m, mini[0], 0, steps=6)
    m.eval()
    first = m.predict(x0, 0).clone()
    train_steps(m, mini[1], 1, steps=6)
    train_steps(m, mini[2], 2, steps=6)
    m.eval()
    assert torch.equal(m.predict(x0, 0), first)
    assert not torch.equal(m.backbone.body.conv1.tasks["0"].weight, m.backbone.body.conv1.tasks["1"].weight)


def test_state_round_trips_through_checkpoint(mini):
    m = _clr(mini)
    train_steps(m, mini[0], 0, steps=6)
    train_steps(m, mini[1], 1, steps=6)
    state = copy.deepcopy(m.checkpoint_state())
    fresh = _clr(mini)
    fresh.restore(state)
    m.eval()
    fresh.eval()
    for t in (0, 1):
        x = mini[t].test.float_images()
        assert torch.equal(m.predict(x, t), fresh.predict(x, t))
    assert not any(p.requires_grad for p in fresh.task_parameters(0))


def test_runner_clr_has_zero_forgetting_and_flat_first_task(tmp_path):
    r = cl_lab.run("clr", "synth-mini", out=str(tmp_path), epochs=2, progress=False)
    assert r.config["pretrained"] == default_checkpoint("resnet8-w16")  # 'auto' resolves to the checkpoint's name
    first = r.R[:, 0]
    assert (first == first[0]).all()
    assert r.summary()["forgetting"] == 0.0
    costs = r.costs
    assert costs.trainable_params.tolist() == costs.task_params.tolist()
    assert (costs.extra_bytes.diff().dropna() > 0).all()


def test_exact_parameter_counts_torchvision():
    r50 = clr_parameter_table(build_backbone("resnet50"), num_classes=10)
    r18 = clr_parameter_table(build_backbone("resnet18"), num_classes=10)
    assert r50["clr"] == 9 * (64 + 3 * 64 + 4 * 128 + 6 * 256 + 3 * 512) == 34_560
    assert r18["clr"] == 9 * (64 + 4 * 64 + 4 * 128 + 4 * 256 + 4 * 512) == 35_136
    assert r50["bn"] == 53_120 and r18["bn"] == 9_600
    assert r50["head"] == 2048 * 10 + 10
    assert r50["backbone_params"] == 23_508_032
    assert r50["total_pct"] < 0.6 < r50["total_pct"] + r50["bn_stats_pct"]


def test_full_variant_adds_1x1_convs():
    clr = CLR(build_backbone("resnet8"), CLRConfig(), StreamInfo((2,), ("a",)))
    full = CLR(build_backbone("resnet8"), CLRConfig(variant="full"), StreamInfo((2,), ("a",)))
    assert len(clr.clr_layers) == 7 and len(full.clr_layers) == 9
    assert all(isinstance(c, CLRConv) and c.conv.kernel_size == (1, 1) for c in full.clr_layers
               if c not in clr.clr_layers and c.conv.kernel_size == (1, 1))


def test_backbone_source_is_a_runner_setting(tmp_path):
    from cl_lab.rundir import read_checkpoint

    key = "backbone.body.conv1.conv.weight"

    def backbone_after(pretrained, **kw):
        r = cl_lab.run("clr", "synth-mini", out=str(tmp_path), n_tasks=2, epochs=1, progress=False,
                       pretrained=pretrained, **kw)
        assert r.config["pretrained"] == (pretrained if pretrained != "auto" else default_checkpoint("resnet8-w16"))
        return read_checkpoint(r.run_dir / "checkpoint.pt")["state"]["module"][key]

    shipped, rand = backbone_after("auto"), backbone_after(None)
    first = backbone_after("first-task", first_task_epochs=1)
    assert not torch.equal(shipped, rand)
    # trained on task 1 from the same random initialisation, then frozen by CLR
    assert not torch.equal(first, rand) and first.shape == rand.shape
    with pytest.raises(ConfigError, match="unknown parameter 'backbone_init'"):
        cl_lab.run("clr", "synth-mini", out=str(tmp_path), backbone_init="random", progress=False)
