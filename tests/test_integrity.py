"""Run integrity and hostile input: no code runs from files, no torn or mislabelled results, clear errors."""

import json
import os
import pickle
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

import cl_lab
from cl_lab import results
from cl_lab.config import ConfigError
from cl_lab.data import Task, TaskStream
from cl_lab.methods import get_method
from cl_lab.rundir import RunDir, RunDirError, ThreadCountWarning

ROOT = Path(__file__).resolve().parents[1]
FAST = {"epochs": 1, "progress": False, "pretrained": None}


class _Exploit:
    """Unpickling this would run code: it must never be unpickled."""

    def __reduce__(self):
        return (os.system, ("touch PWNED",))


def _plant(path: Path, marker: Path) -> None:
    class Exploit:
        def __reduce__(self):
            return (Path.touch, (marker,))
    path.write_bytes(pickle.dumps({"state": Exploit()}))


def test_a_code_executing_checkpoint_is_refused_unread(tmp_path):
    r = cl_lab.run("sgd", "synth-mini", out=str(tmp_path), n_tasks=2, **FAST)
    marker = tmp_path / "PWNED"
    ckpt = r.run_dir / "checkpoint.pt"
    # a plain pickle, and the same pickle saved the torch way
    _plant(ckpt, marker)
    with pytest.raises(RunDirError, match="refused"):
        cl_lab.run("sgd", "synth-mini", out=str(tmp_path), run_name=r.run_dir.name, n_tasks=2, **FAST)
    assert not marker.exists()


def test_a_code_executing_stream_cache_is_refused_and_regenerated(tmp_path):
    from cl_lab.data.streams import cache_path, load_stream

    good = load_stream("synth-mini", seed=3)
    path = cache_path("synth-mini", 3)
    marker = tmp_path / "PWNED"
    _plant(path, marker)
    with pytest.warns(UserWarning, match="refused"):
        again = load_stream("synth-mini", seed=3)
    assert not marker.exists() and again.content_hash() == good.content_hash()


def test_progress_files_are_repaired_from_the_checkpoint_on_resume(tmp_path):
    r = cl_lab.run("sgd", "synth-mini", out=str(tmp_path), **FAST)
    full = (r.run_dir / "accuracy.csv").read_text()
    # a kill between the last checkpoint and the progress files: one row short, summary still running
    lines = full.splitlines()
    (r.run_dir / "accuracy.csv").write_text("\n".join(lines[:-1]) + "\n")
    summary = json.loads((r.run_dir / "summary.json").read_text())
    (r.run_dir / "summary.json").write_text(json.dumps({**summary, "status": "running", "completed_tasks": 2}))
    again = cl_lab.run("sgd", "synth-mini", out=str(tmp_path), **FAST)
    np.testing.assert_array_equal(again.R, r.R)
    assert (r.run_dir / "accuracy.csv").read_text() == full
    assert json.loads((r.run_dir / "summary.json").read_text())["status"] == "complete"


def test_a_run_directory_in_use_is_refused(tmp_path):
    r = cl_lab.run("sgd", "synth-mini", out=str(tmp_path), n_tasks=1, **FAST)
    cfg = json.loads((r.run_dir / "config.json").read_text())
    with RunDir(r.run_dir, cfg, compared=["method"]):
        code = (f"import cl_lab; cl_lab.run('sgd', 'synth-mini', out={str(tmp_path)!r}, run_name={r.run_dir.name!r}, "
                "n_tasks=1, epochs=1, progress=False, pretrained=None, lr=0.5)")
        other = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT,
                               env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert other.returncode != 0 and "in use by another process" in other.stderr
    assert json.loads((r.run_dir / "config.json").read_text())["method_config"]["lr"] == get_method("sgd").Config().lr


def test_thread_count_is_recorded_and_runs_of_mixed_counts_warn(tmp_path):
    torch_threads = torch.get_num_threads()
    r = cl_lab.run("sgd", "synth-mini", out=str(tmp_path), n_tasks=2, **FAST)
    cl_lab.run("sgd", "synth-mini", out=str(tmp_path), n_tasks=2, seed=1, **FAST)
    cfg = json.loads((r.run_dir / "config.json").read_text())
    assert cfg["threads"] == torch_threads
    cfg["threads"] = torch_threads + 1
    (r.run_dir / "config.json").write_text(json.dumps(cfg))
    with pytest.warns(ThreadCountWarning, match="different thread counts"):
        results.load(tmp_path)
    # (a resume that trains on another count warns and records the mix: tests/test_reliability.py)


def test_broken_runs_are_named_and_skipped_and_the_others_load(tmp_path):
    a = cl_lab.run("sgd", "synth-mini", out=str(tmp_path), **FAST)
    b = cl_lab.run("sgd-ll", "synth-mini", out=str(tmp_path), **FAST)
    c = cl_lab.run("sgd", "synth-mini", out=str(tmp_path), seed=1, **FAST)
    (a.run_dir / "config.json").write_text("{not json")
    acc = (b.run_dir / "accuracy.csv").read_text().splitlines()
    (b.run_dir / "accuracy.csv").write_text("\n".join(acc[:-2]) + "\n")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        df = results.load(tmp_path)
    text = " ".join(str(w.message) for w in caught)
    assert "config.json is corrupt" in text and a.run_dir.name in text
    assert "accuracy.csv is torn" in text and b.run_dir.name in text
    assert set(df.run) == {c.run_dir.name}
    out = subprocess.run([sys.executable, "-m", "cl_lab", "summary", str(tmp_path)], capture_output=True, text=True,
                         env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert out.returncode == 0 and "sgd" in out.stdout and "skipping run" in out.stderr


@pytest.mark.parametrize("name", [".", "..", "a/b", "/abs", "x" * 300])
def test_run_names_cannot_leave_out(tmp_path, name):
    from cl_lab.mdl import run_mdl

    with pytest.raises(ConfigError, match="run_name"):
        cl_lab.run("sgd", "synth-mini", out=str(tmp_path / "out"), run_name=name, **FAST)
    with pytest.raises(ConfigError, match="run_name"):
        run_mdl(out=tmp_path / "out", run_name=name, stream="synth-mini", domains="2")
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def _task(name, x, n=8):
    y = torch.arange(len(x)) % 2
    return Task.from_tensors(name, x, y, torch.rand(n, 3, 8, 8), torch.arange(n) % 2)


@pytest.mark.parametrize("make,match", [
    (lambda: _task("nan-task", torch.rand(8, 3, 8, 8).index_put_((torch.tensor([0]),), torch.tensor(float("nan")))),
     "nan-task.*NaN or infinite"),
    (lambda: _task("inf-task", torch.rand(8, 3, 8, 8).index_put_((torch.tensor([1]),), torch.tensor(float("inf")))),
     "inf-task.*NaN or infinite"),
    (lambda: _task("one-image", torch.rand(1, 3, 8, 8)), "one-image.*at least 2"),
    (lambda: Task.from_tensors("empty-test", torch.rand(8, 3, 8, 8), torch.arange(8) % 2,
                               torch.rand(0, 3, 8, 8), torch.zeros(0, dtype=torch.long)), "empty-test"),
])
def test_bad_data_is_refused_at_task_creation(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_a_channel_count_the_backbone_cannot_take_is_named(tmp_path):
    x = torch.rand(16, 2, 8, 8)
    t = Task.from_tensors("two-channel", x[:12], torch.arange(12) % 2, x[12:], torch.arange(4) % 2)
    with pytest.raises(ConfigError, match="two-channel.*2 channel"):
        cl_lab.run("sgd", TaskStream("odd", [t]), out=str(tmp_path), **FAST)


def test_seed_range_is_stated(tmp_path):
    with pytest.raises(ConfigError, match="seed=.*out of range; allowed: >= 0 and <= 9223372036854775807"):
        cl_lab.run("sgd", "synth-mini", out=str(tmp_path), seed=10**23, **FAST)
    out = subprocess.run([sys.executable, "-m", "cl_lab", "run", "--seed", "1e23", "--out", str(tmp_path)],
                         capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert out.returncode == 2 and "seed must be an integer between 0 and" in out.stderr


def test_filesystem_failures_are_one_line_and_keep_what_was_written(tmp_path, monkeypatch):
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    out = subprocess.run([sys.executable, "-m", "cl_lab", "run", "--stream", "synth-mini", "--epochs", "1",
                          "--out", str(blocker / "runs"), "--no-progress"], capture_output=True, text=True,
                         env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert out.returncode == 2 and "Traceback" not in out.stderr and len(out.stderr.strip().splitlines()) == 1
    assert str(blocker) in out.stderr and "writable" in out.stderr
    # the disk fills up after the first task: a one-line error naming the file; task 1 is kept and resumes
    import cl_lab._io as io_mod
    import cl_lab.rundir as rd_mod

    real, calls = io_mod.atomic_write, {"n": 0}

    def flaky(path, write):
        calls["n"] += 1
        if Path(path).name == "checkpoint.pt" and calls["n"] > 6:
            raise OSError(28, "No space left on device", str(path))
        return real(path, write)

    monkeypatch.setattr(io_mod, "atomic_write", flaky)
    with pytest.raises(RunDirError, match="No space left on device.*free some disk space"):
        cl_lab.run("sgd", "synth-mini", out=str(tmp_path / "runs"), run_name="full", **FAST)
    monkeypatch.setattr(io_mod, "atomic_write", real)
    assert rd_mod.read_checkpoint(tmp_path / "runs" / "full" / "checkpoint.pt")["completed"] >= 0
    done = cl_lab.run("sgd", "synth-mini", out=str(tmp_path / "runs"), run_name="full", **FAST)
    ref = cl_lab.run("sgd", "synth-mini", out=str(tmp_path / "ref"), run_name="full", **FAST)
    np.testing.assert_array_equal(done.R, ref.R)


def test_an_unusable_cache_only_warns(tmp_path, monkeypatch):
    blocker = tmp_path / "cache-file"
    blocker.write_text("a file where the cache directory should be")
    monkeypatch.setenv("CL_LAB_CACHE", str(blocker))
    with pytest.warns(UserWarning, match="cache"):
        r = cl_lab.run("sgd", "synth-mini", out=str(tmp_path / "runs"), n_tasks=1, **FAST)
    assert r.R.shape == (1, 1)


def test_kernel_start_failures_are_retried_cell_errors_are_not():
    from cl_lab.report import kernel_start_failed

    assert kernel_start_failed(RuntimeError("ZMQError: Address already in use (addr='tcp://127.0.0.1:5555')"))
    assert kernel_start_failed(RuntimeError("Kernel died before replying to kernel_info"))
    cell_error = RuntimeError("Address already in use")
    cell_error.ename = "OSError"
    assert not kernel_start_failed(cell_error)
    assert not kernel_start_failed(ValueError("unknown method 'nope'"))
