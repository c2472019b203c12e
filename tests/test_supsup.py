import copy

import torch
from helpers import train_steps

import cl_lab
from cl_lab.methods import StreamInfo, get_method
from cl_lab.models import build_backbone
from cl_lab.train.runner import seed_everything


def _make(mini, **cfg):
    seed_everything(0)
    cls = get_method("supsup")
    return cls(build_backbone("resnet8"), cls.Config(**cfg),
               StreamInfo(tuple(t.num_classes for t in mini), tuple(t.name for t in mini)))


def test_masks_have_exactly_the_requested_density(mini):
    m = _make(mini, density=0.3)
    train_steps(m, mini[0], 0, steps=3)
    for layer in m.masked:
        mask = layer.mask(0)
        assert set(mask.unique().tolist()) <= {0.0, 1.0}
        assert int(mask.sum()) == round(0.3 * mask.numel())


def test_fixed_weights_never_change_and_old_logits_are_bit_identical(mini):
    m = _make(mini)
    fixed = {k: v.clone() for k, v in m.state_dict().items() if ".layer." in k}
    assert fixed and all(len(v.abs().unique()) == 1 for k, v in fixed.items() if k.endswith("weight"))
    train_steps(m, mini[0], 0, steps=3)
    m.eval()
    x0 = mini[0].test.float_images()
    first = m.predict(x0, 0).clone()
    train_steps(m, mini[1], 1, steps=3)
    train_steps(m, mini[2], 2, steps=3)
    m.eval()
    assert torch.equal(m.predict(x0, 0), first)
    assert all(torch.equal(fixed[k], v) for k, v in m.state_dict().items() if k in fixed)
    assert not torch.equal(m.masked[0].mask(0), m.masked[0].mask(1))


def test_state_round_trip(mini):
    a = _make(mini)
    train_steps(a, mini[0], 0, steps=3)
    b = _make(mini)
    b.restore(copy.deepcopy(a.checkpoint_state()))
    a.eval()
    b.eval()
    x = mini[0].test.float_images()
    assert torch.equal(a.predict(x, 0), b.predict(x, 0))


def test_runner_zero_forgetting_and_mask_cost_in_bits(tmp_path):
    r = cl_lab.run("supsup", "synth-mini", out=str(tmp_path), epochs=1, progress=False)
    assert r.config["pretrained"] is None
    assert r.summary()["forgetting"] == 0.0
    convs = sum(m.weight.numel() for m in build_backbone("resnet8").modules() if isinstance(m, torch.nn.Conv2d))
    bits = convs + 64 * 4  # every conv weight plus the fixed 64 x 4 output layer (widest task: 4 classes)
    assert r.costs.task_params.tolist() == [-(-bits // 32)] * 3


def test_finished_tasks_store_bits_and_a_checkpoint_with_float_scores_still_resumes(tmp_path, monkeypatch):
    """A finished task keeps its masks as bits (what its cost reports), not its float32 scores, and every
    output is unchanged by it; a run directory written before (scores in the checkpoint) resumes, and
    ends as a run that stored bits from the start, bit for bit."""
    import numpy as np

    from cl_lab.methods.supsup import TaskMask
    from cl_lab.rundir import read_checkpoint
    from cl_lab.train import contract, runner

    with monkeypatch.context() as m:
        m.setattr(TaskMask, "seal", lambda self, density: None)  # how masks were stored before
        old = contract.record_run("supsup", tmp_path / "old", after=(1,))
    stopped = read_checkpoint(old.stopped[1] / old.full.run_dir.name / "checkpoint.pt")["state"]["module"]
    assert any(k.endswith(".scores") for k in stopped) and not any(k.endswith(".bits") for k in stopped)
    new = contract.record_run("supsup", tmp_path / "new", after=(1,))
    np.testing.assert_array_equal(old.full.R, new.full.R)
    ckpt = read_checkpoint(new.full.run_dir / "checkpoint.pt")
    final = ckpt["state"]["module"]
    assert not any(k.endswith(".scores") for k in final)
    stored = sum(v.numel() * v.element_size() for k, v in final.items() if k.endswith(".bits"))
    assert stored == 4 * sum(row["task_params"] for row in ckpt["costs"])  # the reported storage is what is kept
    resumed = runner.run("supsup", old.stream, out=str(old.stopped[1]), **old.kwargs)
    np.testing.assert_array_equal(resumed.R, new.full.R)
    again = read_checkpoint(resumed.run_dir / "checkpoint.pt")["state"]["module"]
    assert contract.first_difference(again, final) is None
