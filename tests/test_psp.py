import pytest
import torch

from cl_lab.methods import StreamInfo, get_method
from cl_lab.methods.psp import make_context
from cl_lab.models import build_backbone
from cl_lab.train.runner import seed_everything


def test_contexts_are_fixed_and_of_the_requested_kind():
    a = make_context("binary", (1, 16, 3, 3), 0, 1, 2)
    assert torch.equal(a, make_context("binary", (1, 16, 3, 3), 0, 1, 2))
    assert set(a.unique().tolist()) == {-1.0, 1.0}
    assert not torch.equal(a, make_context("binary", (1, 16, 3, 3), 0, 2, 2))
    q = make_context("rotation", (8, 8), 0, 0, 0)
    torch.testing.assert_close(q @ q.T, torch.eye(8), atol=1e-5, rtol=0)
    c = make_context("complex", (1, 4, 3, 3), 0, 0, 0)
    assert c.abs().max() <= 1


def _drift(method, mini, **cfg):
    seed_everything(0)
    cls = get_method(method)
    bb = build_backbone("resnet8")
    m = cls(bb, cls.Config(**cfg), StreamInfo(tuple(t.num_classes for t in mini), tuple(t.name for t in mini)))
    x0 = mini[0].test.float_images()
    for t in (0, 1, 2):
        m.begin_task(t, mini[t])
        m.train()
        x, y = mini[t].train.float_images(), mini[t].train.labels()
        for _ in range(3):
            for b in range(0, len(y) - 1, 32):
                m.observe(x[b:b + 32], y[b:b + 32], t)
        m.end_task(t, mini[t])
        if t == 0:
            m.eval()
            ref = m.predict(x0, 0).clone()
    m.eval()
    return float((m.predict(x0, 0) - ref).abs().mean() / ref.abs().mean())


@pytest.mark.parametrize("context", ["binary", "complex"])
def test_psp_first_task_drifts_less_than_sgd(mini, context):
    psp, sgd = _drift("psp", mini, context=context), _drift("sgd", mini)
    assert 0 < psp < sgd
