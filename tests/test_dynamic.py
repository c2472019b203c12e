"""CCLL, EFTs and RCM: isolation, identity initialisation, frozen base, cost, checkpoints."""


import pytest
import torch
from helpers import assert_restores_mid_stream, train_steps

import cl_lab
from cl_lab.config import ConfigError, build
from cl_lab.methods import StreamInfo, get_method
from cl_lab.methods.rcm import ReparamConv
from cl_lab.models import build_backbone, load_weights
from cl_lab.train.runner import seed_everything

METHODS = ["ccll", "efts", "efts-identity", "rcm"]


def _make(name, stream, **cfg):
    seed_everything(0)
    bb = build_backbone("resnet8")
    load_weights(bb, "shipped")
    cls = get_method(name)
    info = StreamInfo(tuple(t.num_classes for t in stream), tuple(t.name for t in stream))
    return cls(bb, cls.Config(**cfg), info)


def _features(m, x, task):
    m.eval()
    m.set_task(task)
    with torch.no_grad():
        return m.backbone(x)


@pytest.mark.parametrize("name", METHODS)
def test_earlier_logits_bit_identical_after_later_tasks(name, mini):
    m = _make(name, mini)
    x0, x1 = mini[0].test.float_images(), mini[1].test.float_images()
    train_steps(m, mini[0], 0)
    m.eval()
    first = m.predict(x0, 0).clone()
    train_steps(m, mini[1], 1)
    m.eval()
    second = m.predict(x1, 1).clone()
    train_steps(m, mini[2], 2)
    m.eval()
    assert torch.equal(m.predict(x0, 0), first)
    assert torch.equal(m.predict(x1, 1), second)
    # the later tasks did learn something of their own
    assert not torch.equal(_features(m, x0, 0), _features(m, x0, 2))


@pytest.mark.parametrize("name", ["ccll", "efts", "efts-identity"])
def test_first_task_trains_the_backbone_which_is_then_frozen(name, mini):
    m = _make(name, mini)
    before = {k: v.clone() for k, v in m.backbone.state_dict().items() if ".tasks." not in k}
    train_steps(m, mini[0], 0)
    after = {k: v.clone() for k, v in m.backbone.state_dict().items() if ".tasks." not in k}
    assert any(not torch.equal(before[k], after[k]) for k in before), "task 1 must train the base network"
    assert bool(m.base_trained)
    train_steps(m, mini[1], 1)
    train_steps(m, mini[2], 2)
    shared = {k: v for k, v in m.backbone.state_dict().items() if ".tasks." not in k}
    assert all(torch.equal(after[k], shared[k]) for k in after), "the base (weights and BN statistics) is frozen"
    assert not any(p.requires_grad for p in m._base_params)


@pytest.mark.parametrize("name", ["ccll", "efts-identity"])
def test_new_task_modules_start_as_the_identity(name, mini):
    m = _make(name, mini)
    x = mini[1].test.float_images()
    train_steps(m, mini[0], 0)
    m.begin_task(1, mini[1])
    torch.testing.assert_close(_features(m, x, 1), _features(m, x, 0), rtol=0, atol=1e-6)


def test_efts_authors_reading_trains_transforms_in_the_task_0_network(mini):
    """As in the authors' code: task 0's network already holds default-initialised transforms,
    trained with the backbone; task 1's start from task 0's trained ones."""
    m = _make("efts", mini)
    m.add_task(0, mini[0].num_classes)
    fresh = [{k: v.clone() for k, v in a.task_module(0).state_dict().items()} for a in m.adapters]
    assert torch.count_nonzero(m.adapters[0].task_module(0).point.weight) > 0  # PyTorch's init, not the identity
    m = _make("efts", mini)  # the same seed: the same task-0 transforms before training
    train_steps(m, mini[0], 0)
    assert m.cfg.weight_decay == 5e-3
    changed = [any(not torch.equal(v, f[k]) for k, v in a.task_module(0).state_dict().items())
               for a, f in zip(m.adapters, fresh)]
    assert all(changed), "task 0 trains every transform"
    trained0 = [{k: v.clone() for k, v in a.task_module(0).state_dict().items()} for a in m.adapters]
    m.begin_task(1, mini[1])
    for a, before in zip(m.adapters, trained0):
        for k, v in a.task_module(1).state_dict().items():
            assert torch.equal(v, before[k]), k
    row0, row1 = m.cost_breakdown(0), m.cost_breakdown(1)
    assert row0["adapter"] == row1["adapter"] > 0  # task 0 stores its transforms like any task


def test_efts_warm_start_each_task_from_the_previous_one(mini):
    m = _make("efts", mini)
    train_steps(m, mini[0], 0)
    train_steps(m, mini[1], 1)
    m.begin_task(2, mini[2])
    for s in m.switches:
        for (k, a), b in zip(s.task_module(2).state_dict().items(), s.task_module(1).state_dict().values()):
            assert torch.equal(a, b), k
    # task 2 did not start at the identity: task 1's trained point-wise weights came with it
    assert any(torch.count_nonzero(s.task_module(2).point.weight) > 0 for s in m.adapters)
    cold = _make("efts-identity", mini, warm_start=False)
    train_steps(cold, mini[0], 0)
    train_steps(cold, mini[1], 1)
    cold.begin_task(2, mini[2])
    assert all(torch.count_nonzero(s.task_module(2).point.weight) == 0 for s in cold.adapters)


@pytest.mark.parametrize("bank", ["svd", "weights"])
def test_rcm_reparameterisation_reproduces_the_pretrained_convs(bank, mini):
    bb = build_backbone("resnet8")
    load_weights(bb, "shipped")
    bb.eval()
    x = mini[0].test.float_images()
    with torch.no_grad():
        ref = bb(x)
    m = _make("rcm", mini, bank=bank)
    m.add_task(0, 4)
    torch.testing.assert_close(_features(m, x, 0), ref, rtol=1e-4, atol=1e-4)
    layer = next(a for a in m.adapters if isinstance(a, ReparamConv))
    if bank == "svd":  # the filter bank is orthonormal
        flat = layer.bank.weight.reshape(layer.bank.out_channels, -1)
        torch.testing.assert_close(flat @ flat.T, torch.eye(flat.shape[0]), rtol=0, atol=1e-5)
    assert not layer.bank.weight.requires_grad


def test_costs_follow_the_module_definitions(mini):
    convs = [c for c in build_backbone("resnet8").modules() if isinstance(c, torch.nn.Conv2d)]
    bns = [b for b in build_backbone("resnet8").modules() if isinstance(b, torch.nn.BatchNorm2d)]
    bn_affine = sum(2 * b.num_features for b in bns)
    head = 64 * 4 + 4
    expected = {
        "ccll": sum(9 * c.out_channels + 1 + 2 * c.out_channels for c in convs),
        # authors' defaults: after every conv, 8 channels per 3x3 group, 16 per 1x1 group, biases
        "efts": sum(9 * c.out_channels * min(8, c.out_channels) + c.out_channels * min(16, c.out_channels)
                    + 2 * c.out_channels for c in convs),
        "rcm": sum(c.out_channels * min(c.out_channels, c.weight[0].numel()) for c in convs),
    }
    for name, adapters in expected.items():
        m = _make(name, mini)
        m.add_task(0, 4)
        m.add_task(1, 4)
        row = m.cost_breakdown(1)
        assert row["adapter"] == adapters, name
        assert row["total"] == adapters + bn_affine + head, name
        base_only = m.cost_breakdown(0)["total"]
        assert base_only == (head if m.base_task and not m.base_adapters else row["total"]), name


@pytest.mark.parametrize("name", METHODS)
def test_state_round_trip_mid_stream(name, mini):
    a, b = assert_restores_mid_stream(lambda: _make(name, mini), mini, probe_id=2)
    assert not any(p.requires_grad for p in b.parameters())  # every task, the restored ones included, is frozen


@pytest.mark.parametrize("name", METHODS)
def test_runner_zero_forgetting(name, tmp_path):
    r = cl_lab.run(name, "synth-mini", out=str(tmp_path), epochs=1, progress=False)
    assert r.summary()["forgetting"] == 0.0
    assert len(r.costs) == 3


@pytest.mark.parametrize("name,values", [("ccll", {"spatial_kernel": 2}), ("efts", {"kernel": 4}),
                                         ("rcm", {"bank": "qr"}), ("efts", {"gamma": -1}),
                                         ("confit", {"head_fraction": 0.6, "bn_fraction": 0.5})])
def test_bad_hyperparameters_are_rejected(name, values):
    with pytest.raises(ConfigError) as e:
        build(get_method(name).Config, values, where=name)
    assert list(values)[0] in str(e.value)
