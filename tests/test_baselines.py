import copy

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from helpers import assert_restores_mid_stream, train_steps
from torch import nn

import cl_lab
from cl_lab.methods import StreamInfo, get_method
from cl_lab.methods._buffer import ReservoirBuffer, reservoir_slots
from cl_lab.models import as_backbone, build_backbone
from cl_lab.train.runner import seed_everything

SIX = ["ewc", "online-ewc", "si", "lwf", "er", "derpp"]


def _tiny(method, classes=(3, 2), **cfg):
    torch.manual_seed(0)
    bb = as_backbone(nn.Sequential(nn.Flatten(), nn.Linear(12, 4)), image_shape=(3, 2, 2))
    cls = get_method(method)
    return cls(bb, cls.Config(**cfg), StreamInfo(tuple(classes), tuple(f"t{i}" for i in range(len(classes)))))


class _T:
    """A minimal stand-in for Task with what begin_task/end_task read."""

    def __init__(self, x, y, k):
        from cl_lab.data import Split

        self.num_classes = k
        self.train = Split(x, y)


def test_ewc_penalty_matches_hand_computation_and_is_zero_at_anchor():
    m = _tiny("ewc", ewc_lambda=3.0)
    params = dict(m.backbone.named_parameters())
    assert m.penalty() == 0.0
    f1 = {k: torch.rand_like(p) for k, p in params.items()}
    f2 = {k: torch.rand_like(p) for k, p in params.items()}
    a1 = {k: p.detach().clone() for k, p in params.items()}
    a2 = {k: p.detach() + 0.5 for k, p in params.items()}
    m.consolidate(f1, a1)
    assert float(m.penalty().detach()) == 0.0
    m.consolidate(f2, a2)
    hand = 3.0 / 2 * sum(float((f2[k] * 0.25).sum()) for k in params)
    assert float(m.penalty().detach()) == pytest.approx(hand, rel=1e-6)


def test_empirical_fisher_matches_softmax_regression_closed_form():
    from cl_lab.methods.ewc import fisher_diagonal

    m = _tiny("ewc")
    m.add_task(0, 4)
    with torch.no_grad():
        m.heads.heads["0"].weight.copy_(torch.eye(4))
        m.heads.heads["0"].bias.zero_()
    x = torch.rand(5, 3, 2, 2)
    y = torch.tensor([0, 1, 2, 3, 0])
    fisher = fisher_diagonal(m, _T(x, y, 4), 0, 5, "empirical")
    lin = m.backbone.body[1]
    flat = x.flatten(1)
    p = F.softmax(lin(flat), 1).detach()
    err = F.one_hot(y, 4).float() - p  # d log p_y / d logits
    expected_w = ((err[:, :, None] * flat[:, None, :]) ** 2).mean(0)
    torch.testing.assert_close(fisher["body.1.weight"], expected_w)
    torch.testing.assert_close(fisher["body.1.bias"], (err ** 2).mean(0))


def test_online_ewc_decay_follows_recurrence():
    m = _tiny("online-ewc", gamma=0.5)
    keys = [k for k, _ in m.backbone.named_parameters()]
    fs = [{k: torch.full_like(dict(m.backbone.named_parameters())[k], float(i + 1)) for k in keys} for i in range(3)]
    for i, f in enumerate(fs):
        m.consolidate(f, {k: torch.full_like(v, float(i)) for k, v in f.items()})
    assert len(m.fishers) == 1 and len(m.anchors) == 1
    expected = 0.25 * 1 + 0.5 * 2 + 3  # gamma^2 F1 + gamma F2 + F3
    assert all(torch.allclose(v, torch.full_like(v, expected)) for v in m.fishers[0].values())
    assert all(torch.equal(v, torch.full_like(v, 2.0)) for v in m.anchors[0].values())


def test_si_importance_is_summed_g_delta_on_two_steps():
    m = _tiny("si", optimizer="sgd", lr=0.1, momentum=0.0, c=0.1, xi=0.01)
    x = torch.rand(6, 3, 2, 2)
    y = torch.tensor([0, 1, 2, 0, 1, 2])
    m.begin_task(0, _T(x, y, 3))
    start = {k: p.detach().clone() for k, p in m.backbone.named_parameters()}
    grads = []
    for s in range(2):
        xb, yb = x[s * 3:(s + 1) * 3], y[s * 3:(s + 1) * 3]
        probe = copy.deepcopy(m)
        loss = F.cross_entropy(probe(xb, 0), yb)
        grads.append(dict(zip([k for k, _ in probe.backbone.named_parameters()],
                              torch.autograd.grad(loss, list(probe.backbone.parameters())))))
        m.observe(xb, yb, 0)
    m.end_task(0, _T(x, y, 3))
    for k, p in m.backbone.named_parameters():
        omega = 0.1 * (grads[0][k] ** 2 + grads[1][k] ** 2)  # sum of -g * delta with delta = -lr * g
        delta = p.detach() - start[k]
        torch.testing.assert_close(delta, -0.1 * (grads[0][k] + grads[1][k]))
        torch.testing.assert_close(m.importance[k], omega / (delta ** 2 + 0.01))
        assert (m.importance[k] >= 0).all()


def test_lwf_distillation_is_zero_when_model_unchanged(mini):
    m = _tiny_resnet("lwf", mini)
    train_steps(m, mini[0], 0, steps=3)
    m.begin_task(1, mini[1])
    m.eval()
    x = mini[1].train.float_images()[:16]
    assert float(m.distillation_loss(x, m.backbone(x), 1).detach()) == 0.0
    m.train()
    m.observe(x, mini[1].train.labels()[:16], 1)
    m.eval()
    assert float(m.distillation_loss(x, m.backbone(x), 1).detach()) > 0.0


def test_reservoir_gives_every_example_equal_inclusion_probability():
    torch.manual_seed(0)
    n_items, size, trials = 60, 12, 3000
    counts = np.zeros(n_items)
    for _ in range(trials):
        slots = list(range(-1, -size - 1, -1))
        seen = 0
        for start in range(0, n_items, 7):
            batch = min(7, n_items - start)
            for i, slot in reservoir_slots(seen, batch, size):
                slots[slot] = start + i
            seen += batch
        counts[slots] += 1
    freq = counts / trials
    p = size / n_items
    sigma = np.sqrt(p * (1 - p) / trials)
    assert np.abs(freq - p).max() < 5 * sigma
    chi2 = ((counts - trials * p) ** 2 / (trials * p)).sum()
    assert chi2 < n_items + 5 * np.sqrt(2 * n_items)  # df = n - 1; far beyond the 99.9th percentile would fail


def test_derpp_keeps_insertion_time_logits(mini):
    m = _tiny_resnet("derpp", mini, buffer_size=1000)
    train_steps(m, mini[0], 0, steps=2)
    stored = m.buffer.logits[:16].clone()
    x_first = m.buffer.x[:16].clone()
    train_steps(m, mini[1], 1, steps=4)
    assert torch.equal(m.buffer.logits[:16], stored)
    m.eval()
    now = m.predict(x_first, 0)
    assert not torch.allclose(now, stored[:, :now.shape[1]])


def test_buffer_rejects_size_mismatch():
    b = ReservoirBuffer(5)
    with pytest.raises(ValueError, match="buffer size in checkpoint"):
        b.load(ReservoirBuffer(6).state())


def _tiny_resnet(method, stream, **cfg):
    seed_everything(0)
    cls = get_method(method)
    bb = build_backbone("resnet8")
    return cls(bb, cls.Config(**cfg), StreamInfo(tuple(t.num_classes for t in stream), tuple(t.name for t in stream)))


@pytest.mark.parametrize("method", SIX)
def test_state_round_trips_mid_stream_and_training_continues_identically(method, mini):
    kw = {"fisher_samples": 16} if "ewc" in method else {}
    assert_restores_mid_stream(lambda: _tiny_resnet(method, mini, **kw), mini)


def test_a_method_registered_by_decorator_runs_through_the_runner(tmp_path):
    """The README's five-minute path: one class, one decorator, and the runner finds it."""
    from dataclasses import dataclass

    from cl_lab.config import param
    from cl_lab.methods import Method, OptimConfig, get_method, method_names, register

    @dataclass
    class AnchorConfig(OptimConfig):
        strength: float = param(1e6, "pull towards the weights at the end of the last task", ge=0)

    @register
    class Anchor(Method):
        name = "test-anchor"
        Config = AnchorConfig
        state_attributes = ("anchor",)

        def end_task(self, task_id, task):
            self.anchor = [p.detach().clone() for p in self.backbone.parameters()]
            super().end_task(task_id, task)

        def penalty(self):
            if not hasattr(self, "anchor"):
                return 0.0
            return self.cfg.strength * sum(((p - a) ** 2).sum() for p, a in zip(self.backbone.parameters(), self.anchor))

    assert "test-anchor" in method_names() and get_method("test-anchor") is Anchor
    from cl_lab.rundir import read_checkpoint

    def backbone(n_tasks, strength):
        r = cl_lab.run("test-anchor", "synth-mini", out=str(tmp_path), epochs=4, progress=False, pretrained=None,
                       n_tasks=n_tasks, strength=strength)
        module = read_checkpoint(r.run_dir / "checkpoint.pt")["state"]["module"]
        return torch.cat([v.flatten() for k, v in module.items() if k.startswith("backbone.") and v.is_floating_point()
                          and "running" not in k])

    after_1 = backbone(1, 20.0)  # task 1 trains identically whatever the strength (no anchor yet)
    drift_free = float((backbone(2, 0.0) - after_1).norm())
    drift_stiff = float((backbone(2, 20.0) - after_1).norm())
    assert drift_stiff < 0.5 * drift_free

    # and it resumes: a run stopped after task 1 and run again ends as the uninterrupted run, anchor included
    from cl_lab.train import contract

    contract.check_resume("test-anchor", tmp_path / "resume", after=(1,), strength=20.0)


def test_the_method_registry_is_the_common_registry_and_a_taken_name_is_refused():
    """Methods register in the same ``Registry`` as backbones and streams: a second class under a
    built-in's name is an error naming who holds it, and a misspelt name suggests the close one."""
    from cl_lab.methods import Method, register
    from cl_lab.methods.registry import METHODS, get_method
    from cl_lab.registry import Registry

    assert isinstance(METHODS, Registry) and METHODS["sgd"] is get_method("SGD")

    class SGD(Method):  # a notebook's class of the same name is still another class
        name = "sgd"

    with pytest.raises(ValueError, match=r"method name 'sgd' is taken by cl_lab\.methods\.sgd\.SGD"):
        register(SGD)
    assert get_method("sgd").__module__ == "cl_lab.methods.sgd"
    with pytest.raises(ValueError, match="unknown method 'EWCC'.*Did you mean 'ewc'"):
        get_method("EWCC")
