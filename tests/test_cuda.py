"""The runner on a CUDA device: every method, bfloat16 autocast, both memory layouts and resume.

Skipped where CUDA is absent; ``benchmarks/gpu_check.py`` runs them on a GPU machine
(``pytest -m cuda tests/test_cuda.py``). Each run is one epoch per task on synth-mini.
"""

import json
import os

import numpy as np
import pytest
import torch

import cl_lab
from cl_lab.methods import method_names
from cl_lab.train import runner

pytestmark = [pytest.mark.cuda, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")]

FAST = {"epochs": 1, "progress": False, "device": "cuda"}


def check_complete(r, n_tasks: int = 3) -> None:
    """A finished run: the lower triangle of R is accuracies in [0, 1], the rest NaN, on CUDA."""
    assert r.R.shape == (n_tasks, n_tasks)
    done = r.R[np.tril_indices(n_tasks)]
    assert np.isfinite(done).all() and (done >= 0).all() and (done <= 1).all(), r.R
    assert np.isnan(r.R[np.triu_indices(n_tasks, k=1)]).all()
    summary = json.loads((r.run_dir / "summary.json").read_text())
    assert summary["status"] == "complete" and summary["completed_tasks"] == n_tasks
    assert json.loads((r.run_dir / "config.json").read_text())["device"].startswith("cuda")
    costs = r.costs
    assert len(costs) == n_tasks and np.isfinite(costs.final_loss).all() and (costs.images_per_second > 0).all()


def run_on_cuda(method: str, out, **kw):
    """``cl_lab.run`` on synth-mini; also checks that the run allocated memory on the device."""
    torch.cuda.reset_peak_memory_stats()
    r = cl_lab.run(method, "synth-mini", out=str(out), **{**FAST, **kw})
    assert torch.cuda.max_memory_allocated() > 0
    return r


@pytest.mark.parametrize("method", method_names())
def test_every_method_trains_on_cuda(tmp_path, method):
    check_complete(run_on_cuda(method, tmp_path))


@pytest.mark.parametrize("method", ["sgd", "clr"])
def test_bf16_autocast(tmp_path, method):
    r = run_on_cuda(method, tmp_path, amp=True)
    check_complete(r)
    assert r.config["amp"] is True


@pytest.mark.parametrize("method", ["sgd", "clr"])
@pytest.mark.parametrize("memory_format", ["channels_last", "contiguous"])
def test_both_memory_layouts(tmp_path, method, memory_format):
    r = run_on_cuda(method, tmp_path, memory_format=memory_format)
    check_complete(r)
    assert r.config["memory_format"] == memory_format


@pytest.fixture
def deterministic(monkeypatch):
    """Deterministic cuDNN and CUDA kernels, so two runs from one seed give the same accuracy matrix."""
    monkeypatch.setenv("CUBLAS_WORKSPACE_CONFIG", os.environ.get("CUBLAS_WORKSPACE_CONFIG", ":4096:8"))
    old = (torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark,
           torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled())
    torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = True, False
    torch.use_deterministic_algorithms(True, warn_only=True)
    yield
    torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = old[0], old[1]
    torch.use_deterministic_algorithms(old[2], warn_only=old[3])


class Interrupted(RuntimeError):
    pass


@pytest.mark.parametrize("method", ["sgd", "er"])
def test_resume_on_cuda_equals_uninterrupted(tmp_path, monkeypatch, deterministic, method):
    ref = run_on_cuda(method, tmp_path / "ref", run_name="r")
    real_train_task, trained = runner.train_task, []

    def stop_at_second_task(learner, task, task_id, *args, **kw):
        trained.append(task_id)
        if task_id == 1:
            raise Interrupted("stopped after the first task")
        return real_train_task(learner, task, task_id, *args, **kw)

    monkeypatch.setattr(runner, "train_task", stop_at_second_task)
    with pytest.raises(Interrupted):
        run_on_cuda(method, tmp_path / "cut", run_name="r")
    summary = json.loads((tmp_path / "cut" / "r" / "summary.json").read_text())
    assert summary["completed_tasks"] == 1 and summary["status"] == "running"

    def count(learner, task, task_id, *args, **kw):
        trained.append(task_id)
        return real_train_task(learner, task, task_id, *args, **kw)

    monkeypatch.setattr(runner, "train_task", count)
    resumed = run_on_cuda(method, tmp_path / "cut", run_name="r")
    assert trained == [0, 1, 1, 2], "the resumed run should start at the second task"
    check_complete(resumed)
    np.testing.assert_array_equal(resumed.R, ref.R)
    assert resumed.costs.task_params.tolist() == ref.costs.task_params.tolist()
