"""Reliability, round two: no result under the wrong label, no worker left behind, no hang, one-line errors."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

import cl_lab
from cl_lab import results
from cl_lab.cli import main
from cl_lab.config import ConfigError
from cl_lab.rundir import RunDir, ThreadCountWarning

ROOT = Path(__file__).resolve().parents[1]
FAST = {"epochs": 1, "progress": False, "pretrained": None}
ENV = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}


class Interrupted(Exception):
    """Stands for a kill in the middle of a run."""


def interrupt_at(monkeypatch, task: int) -> None:
    """Make the runner stop when it starts training task ``task`` (0-based)."""
    import cl_lab.train.runner as runner

    real = runner.train_task

    def stop(method, t, task_id, *a, **k):
        if task_id == task:
            raise Interrupted(f"stopped at task {task}")
        return real(method, t, task_id, *a, **k)

    monkeypatch.setattr(runner, "train_task", stop)


def _small(seed: int) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten())


# ------------------------------------------------------------------ results under the wrong label

def test_a_user_backbone_is_identified_by_structure_and_weights(tmp_path):
    a = cl_lab.run("sgd", "synth-mini", backbone=_small(0), out=str(tmp_path), n_tasks=1, **FAST)
    again = cl_lab.run("sgd", "synth-mini", backbone=_small(0), out=str(tmp_path), n_tasks=1, **FAST)
    assert again.run_dir == a.run_dir  # the same module resumes its own run
    b = cl_lab.run("sgd", "synth-mini", backbone=_small(1), out=str(tmp_path), n_tasks=1, **FAST)
    assert b.run_dir != a.run_dir and b.config["backbone_sha256"] != a.config["backbone_sha256"]
    wider = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten())
    c = cl_lab.run("sgd", "synth-mini", backbone=wider, out=str(tmp_path), n_tasks=1, **FAST)  # no load_state_dict crash
    assert len({a.run_dir, b.run_dir, c.run_dir}) == 3
    # and a built-in backbone's run keeps its name (no digest: its start is fixed by the seed)
    assert cl_lab.run("sgd", "synth-mini", out=str(tmp_path), n_tasks=1, **FAST).config["backbone_sha256"] is None


def test_runs_from_different_weights_are_never_pooled_as_seeds(tmp_path):
    from cl_lab.experiments.sweep import summarise, sweep
    from cl_lab.models.backbones import build_backbone

    weights = tmp_path / "w.pt"
    torch.manual_seed(0)
    torch.save(build_backbone("resnet8").body.state_dict(), weights)
    kw = {**FAST, "pretrained": str(weights), "out": str(tmp_path / "runs"), "n_tasks": 1}
    cl_lab.run("sgd-ll", "synth-mini", seed=0, **kw)
    torch.manual_seed(1)
    torch.save(build_backbone("resnet8").body.state_dict(), weights)  # the file is replaced between two seeds
    cl_lab.run("sgd-ll", "synth-mini", seed=1, **kw)
    df = results.load(tmp_path / "runs")
    assert df.config.nunique() == 2 and all("weights_sha256=" in c for c in df.config.unique())
    rows = sweep(["sgd-ll"], "synth-mini", seeds=[0, 1], **kw)
    assert rows.ok.all() and len(summarise(rows)) == 1  # both seeds now from the same file: one configuration
    torch.manual_seed(2)
    torch.save(build_backbone("resnet8").body.state_dict(), weights)
    rows2 = sweep(["sgd-ll"], "synth-mini", seeds=[2], **kw)
    assert len(summarise(__import__("pandas").concat([rows, rows2]))) == 2


def test_a_stream_cache_copied_over_another_is_refused(tmp_path):
    from cl_lab.data.streams import cache_path, load_stream

    seed0, seed1 = load_stream("synth-mini", seed=0), load_stream("synth-mini", seed=1)
    shutil.copy(cache_path("synth-mini", 1), cache_path("synth-mini", 0))
    with pytest.warns(UserWarning, match="refused.*seed 1"):
        again = load_stream("synth-mini", seed=0)
    assert again.content_hash() == seed0.content_hash() != seed1.content_hash()
    assert load_stream("synth-mini", seed=0).content_hash() == seed0.content_hash()  # repaired cache


def test_memory_format_is_part_of_the_run_identity(tmp_path):
    auto = cl_lab.run("sgd", "synth-mini", out=str(tmp_path), n_tasks=1, **FAST)
    contig = cl_lab.run("sgd", "synth-mini", out=str(tmp_path), n_tasks=1, memory_format="contiguous", **FAST)
    assert contig.run_dir != auto.run_dir and contig.config["memory_format"] == "contiguous"
    df = results.load(tmp_path)
    assert sorted(df.config.unique()) == ["sgd (memory_format=auto)", "sgd (memory_format=contiguous)"]
    with pytest.raises(Exception, match="memory_format"):  # one directory never holds both
        cl_lab.run("sgd", "synth-mini", out=str(tmp_path), n_tasks=1, memory_format="contiguous",
                   run_name=auto.run_dir.name, **FAST)


def test_reopening_a_finished_run_never_relabels_its_threads(tmp_path, monkeypatch):
    n = torch.get_num_threads()
    done = cl_lab.run("sgd", "synth-mini", out=str(tmp_path), n_tasks=2, **FAST)
    cfg = json.loads((done.run_dir / "config.json").read_text())
    (done.run_dir / "config.json").write_text(json.dumps({**cfg, "threads": n + 1}))
    with warnings.catch_warnings():
        warnings.simplefilter("error", ThreadCountWarning)
        cl_lab.run("sgd", "synth-mini", out=str(tmp_path), n_tasks=2, **FAST)  # nothing trains: no warning
    assert json.loads((done.run_dir / "config.json").read_text())["threads"] == n + 1
    # a resume that trains does warn and records the mix
    interrupt_at(monkeypatch, 1)
    with pytest.raises(Interrupted):
        cl_lab.run("sgd", "synth-mini", out=str(tmp_path / "b"), **FAST)
    monkeypatch.undo()
    run_dir = next((tmp_path / "b").iterdir())
    cfg = json.loads((run_dir / "config.json").read_text())
    (run_dir / "config.json").write_text(json.dumps({**cfg, "threads": n + 1}))
    with pytest.warns(ThreadCountWarning, match="mixes both"):
        cl_lab.run("sgd", "synth-mini", out=str(tmp_path / "b"), **FAST)
    assert json.loads((run_dir / "config.json").read_text())["threads"] == f"{n + 1}+{n}"


@pytest.mark.parametrize("name", ["metrics.csv", "costs.csv"])
def test_every_torn_progress_file_is_detected_and_repaired(tmp_path, name):
    r = cl_lab.run("sgd", "synth-mini", out=str(tmp_path), **FAST)
    full = (r.run_dir / name).read_text()
    (r.run_dir / name).write_text("".join(full.splitlines(keepends=True)[:-1]))  # head -n -1
    with pytest.warns(results.BrokenRunWarning, match=f"{name} is torn"):
        assert results.load_metrics(tmp_path).empty
    out = subprocess.run([sys.executable, "-m", "cl_lab", "summary", str(tmp_path)], capture_output=True, text=True,
                         env=ENV)
    assert "complete" not in out.stdout and f"{name} is torn" in out.stderr
    cl_lab.run("sgd", "synth-mini", out=str(tmp_path), **FAST)  # the same command repairs it from the checkpoint
    assert (r.run_dir / name).read_text() == full
    assert (results.load_metrics(tmp_path).status == "complete").all()


# ------------------------------------------------------------------ workers and failures

def _children(pid: int) -> list:
    import psutil

    try:
        return psutil.Process(pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []


def _wait_for(cond, seconds: float) -> bool:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if cond():
            return True
        time.sleep(0.2)
    return cond()


SWEEP = [sys.executable, "-m", "cl_lab", "run", "--method", "sgd", "--stream", "synth-mini", "--pretrained", "none",
         "--seeds", "0", "1", "2", "--workers", "2", "--threads", "1", "--epochs", "25", "--no-progress"]


def _spawned_workers(pid: int) -> list:
    """Live spawn-started children of `pid`; children that exit (or linger as zombies) while we look are skipped."""
    import psutil

    workers = []
    for c in _children(pid):
        try:
            if c.status() != psutil.STATUS_ZOMBIE and "spawn" in " ".join(c.cmdline()):
                workers.append(c)
        except (psutil.NoSuchProcess, psutil.ZombieProcess, psutil.AccessDenied):
            continue
    return workers


def _workers_running(proc: subprocess.Popen) -> list:
    """The pool's worker processes, once both have started training."""
    assert _wait_for(lambda: len(_spawned_workers(proc.pid)) >= 2, 60)
    time.sleep(3)  # inside their first points
    workers = _spawned_workers(proc.pid)
    assert workers, "the pool's workers exited before the test could reach them"
    return workers


def test_workers_die_with_their_parent(tmp_path):
    import psutil

    proc = subprocess.Popen([*SWEEP, "--out", str(tmp_path)], env=ENV, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        workers = _workers_running(proc)
        proc.kill()  # kill -9: no chance to clean up
        proc.wait()
        assert _wait_for(lambda: not any(w.is_running() and w.status() != psutil.STATUS_ZOMBIE for w in workers), 10), \
            "workers outlived their parent"
    finally:
        for w in _children(proc.pid):
            w.kill()


def test_a_killed_worker_costs_no_point(tmp_path):
    proc = subprocess.Popen([*SWEEP, "--out", str(tmp_path)], env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    try:
        workers = _workers_running(proc)
        os.kill(workers[0].pid, signal.SIGKILL)
        out, err = proc.communicate(timeout=240)
    finally:
        proc.kill()
    assert proc.returncode == 0, err[-2000:]
    assert out.count("avg acc") == 3 and "FAILED" not in out  # the lost point ran again, the others finished


def _die_on_two(job: int) -> int:
    if job == 2:
        os._exit(9)  # a crash that kills the worker every time
    return job * 10


def test_a_point_that_kills_its_worker_twice_is_a_failed_row_and_the_others_finish():
    from cl_lab.parallel import run_points

    rows = run_points(_die_on_two, [0, 1, 2, 3, 4], workers=2, failed=lambda job, err: f"failed {job}: {err}")
    assert rows[:2] == [0, 10] and rows[3:] == [30, 40]
    assert rows[2].startswith("failed 2: WorkerDied") and "died twice" in rows[2]


# ------------------------------------------------------------------ hangs

def test_unreachable_ray_and_missing_gpus_fail_within_seconds(capsys):
    t0 = time.monotonic()
    assert main(["run", "--stream", "synth-mini", "--seeds", "0", "--executor", "ray", "--ray-address",
                 "127.0.0.1:1"]) == 2
    err = capsys.readouterr().err
    assert "no Ray cluster answers at '127.0.0.1:1'" in err and len(err.strip().splitlines()) == 1
    if not torch.cuda.is_available():
        assert main(["run", "--stream", "synth-mini", "--seeds", "0", "--executor", "ray", "--gpus-per-point",
                     "1"]) == 2
        assert "has 0 GPU(s)" in capsys.readouterr().err
    assert main(["run", "--stream", "synth-mini", "--seeds", "0", "--gpus-per-point", "1"]) == 2
    assert "needs executor='ray'" in capsys.readouterr().err
    assert time.monotonic() - t0 < 20


@pytest.mark.parametrize("value, match", [("/dev/zero", "not a regular file"), ("", "is empty"),
                                          ("DIR", "is a directory")])
def test_a_pretrained_path_that_is_no_file_is_refused_at_once(tmp_path, capsys, value, match):
    value = str(tmp_path) if value == "DIR" else value
    t0 = time.monotonic()
    assert main(["run", "--stream", "synth-mini", "--pretrained", value, "--out", str(tmp_path / "runs")]) == 2
    err = capsys.readouterr().err
    assert match in err and len(err.strip().splitlines()) == 1 and time.monotonic() - t0 < 10
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


# ------------------------------------------------------------------ leftovers

def test_temporary_files_of_killed_writes_are_removed_on_the_next_open(tmp_path):
    r = cl_lab.run("sgd", "synth-mini", out=str(tmp_path), n_tasks=1, **FAST)
    stale = [r.run_dir / ".checkpoint.pt.abc123.tmp", r.run_dir / ".accuracy.csv.x1y2.tmp"]
    for p in stale:
        p.write_bytes(b"half a file")
    again = cl_lab.run("sgd", "synth-mini", out=str(tmp_path), n_tasks=1, **FAST)
    np.testing.assert_array_equal(again.R, r.R)
    assert not any(p.exists() for p in stale)


def test_a_killed_report_leaves_no_half_run_notebook(tmp_path):
    import nbformat

    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("x = 1", metadata={"tags": ["parameters"]}),
                nbformat.v4.new_code_cell("import time\ntime.sleep(120)")]
    (tmp_path / "nbs").mkdir()
    nbformat.write(nb, tmp_path / "nbs" / "slow.ipynb")
    out = tmp_path / "out"
    out.mkdir()
    (out / "slow.html").write_text("the previous report")
    code = ("from pathlib import Path; from cl_lab.report import execute; "
            f"execute('slow', {{}}, Path({str(out / 'slow.ipynb')!r}), Path({str(out / 'slow.html')!r}), "
            f"cwd=Path({str(out)!r}), notebook_dir=Path({str(tmp_path / 'nbs')!r}))")
    proc = subprocess.Popen([sys.executable, "-c", code], env=ENV, start_new_session=True)
    try:
        assert _wait_for(lambda: any(out.glob(".*.running.ipynb")), 60), "execution never started"
        time.sleep(1)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    assert not (out / "slow.ipynb").exists() and (out / "slow.html").read_text() == "the previous report"
    from cl_lab.report import clean_running

    assert clean_running(out) and not any(out.glob(".*.running.ipynb"))


# ------------------------------------------------------------------ errors and bounds

@pytest.mark.parametrize("argv, match", [
    (["run", "--threads", "-1", "--seeds", "0"], "--threads: expected an integer from 1"),
    (["run", "--workers", "0", "--seeds", "0"], "--workers: expected an integer from 1"),
    (["run", "--epochs", "1000000000"], "epochs=1000000000 is out of range; allowed: >= 1 and <= 1000"),
    (["run", "--set", "stem_channels=100000000"], "unknown parameter 'stem_channels'"),
    (["mdl", "--set", "stem_channels=100000000"], "stem_channels=100000000 is out of range; allowed: >= 1 and <= 4096"),
    (["run", "--set", "lr=1e308"], "lr=1e+308 is out of range; numbers up to 1e+38"),
    (["run", "--set", "lr=100"], "lr=100.0 is out of range; allowed: > 0 and <= 10"),
    (["run", "--method", "ewc", "--set", "ewc_lambda=1e308"], "numbers up to 1e+38"),
    (["run", "--set", "buffer_size=10000000", "--method", "er"], "buffer_size=10000000 is out of range"),
])
def test_bad_values_are_one_line_errors_before_any_work(tmp_path, capsys, argv, match):
    try:
        code = main([*argv, "--stream", "synth-mini", "--out", str(tmp_path / "runs")])
    except SystemExit as e:  # argparse's own errors
        code = e.code
    err = capsys.readouterr().err
    assert code == 2 and match in err and "Traceback" not in err, err
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


def test_a_run_that_fails_before_its_first_checkpoint_leaves_no_directory(tmp_path, monkeypatch):
    interrupt_at(monkeypatch, 0)
    with pytest.raises(Interrupted):
        cl_lab.run("sgd", "synth-mini", out=str(tmp_path), **FAST)
    assert list(tmp_path.iterdir()) == []


def test_a_grid_with_an_absurd_value_is_refused(tmp_path):
    from cl_lab.report import load_grid

    grid = tmp_path / "grid.yaml"
    grid.write_text("notebook: 01_task_stream\ngrid:\n  epochs: [1.0e+30]\n")
    with pytest.raises(ConfigError, match="out of range"):
        load_grid(grid)


def test_no_home_directory_is_a_warning_naming_the_setting(monkeypatch):
    from cl_lab.data.streams import load_stream

    monkeypatch.delenv("CL_LAB_CACHE", raising=False)
    monkeypatch.setattr(Path, "home", classmethod(lambda cls: (_ for _ in ()).throw(RuntimeError("no home"))))
    with pytest.warns(UserWarning, match="no home directory.*CL_LAB_CACHE"):
        assert len(load_stream("synth-mini")) == 3


def test_an_invalid_shipped_manifest_is_named(tmp_path, monkeypatch, capsys):
    import cl_lab.models.weights as W

    bad = tmp_path / "manifest.json"
    bad.write_text("{not json")
    monkeypatch.setattr(W, "MANIFEST", bad)
    assert main(["run", "--stream", "synth-mini", "--method", "clr", "--out", str(tmp_path / "runs")]) == 2
    err = capsys.readouterr().err
    assert str(bad) in err and "invalid" in err and len(err.strip().splitlines()) == 1


def test_rundir_hash_defaults_keep_old_names_and_refuse_a_change(tmp_path):
    cfg = {"method": "x", "memory_format": "auto"}
    with RunDir(tmp_path / "a", cfg, ["method", "memory_format"], hash_defaults={"memory_format": "auto"}) as rd:
        new_hash = rd.hash
    with RunDir(tmp_path / "b", {"method": "x"}, ["method"]) as rd:
        assert rd.hash == new_hash  # the added setting at its default leaves the hash as before


def test_a_killed_ray_worker_is_retried_once_then_a_failed_row(tmp_path):
    pytest.importorskip("ray")
    from cl_lab.parallel import run_points

    def _die_once_then_run(job):  # defined here, so Ray ships it by value to its workers
        """A point whose first worker is killed (the marker file says whether it ran before)."""
        import os

        marker, value = job
        if value == "always":
            os._exit(9)
        if not os.path.exists(marker):
            open(marker, "w").close()
            os._exit(9)
        return value

    jobs = [(str(tmp_path / "a"), "ran after a retry"), (str(tmp_path / "b"), "always")]
    rows = run_points(_die_once_then_run, jobs, executor="ray", cpus_per_point=1,
                      failed=lambda job, err: f"failed: {err.splitlines()[0][:200]}")
    assert rows[0] == "ran after a retry"
    assert rows[1].startswith("failed:") and "Worker" in rows[1]


class _KillsOnLoad:
    """A job whose unpickling kills the worker before any point starts."""

    def __reduce__(self):
        return (os._exit, (3,))


def test_workers_that_die_before_any_point_are_failed_rows_not_a_retry_loop():
    from cl_lab.parallel import run_points

    t0 = time.monotonic()
    rows = run_points(_die_on_two, [_KillsOnLoad(), _KillsOnLoad()], workers=2,
                      failed=lambda job, err: f"failed: {err}")
    assert all(r.startswith("failed: WorkerDied") and "before starting any point" in r for r in rows)
    assert time.monotonic() - t0 < 60


def test_runs_from_before_the_new_identity_keys_share_a_label_with_new_ones(tmp_path):
    old = cl_lab.run("sgd", "synth-mini", out=str(tmp_path), n_tasks=1, **FAST)
    cl_lab.run("sgd", "synth-mini", out=str(tmp_path), n_tasks=1, seed=1, **FAST)
    cfg = json.loads((old.run_dir / "config.json").read_text())
    for key in ("backbone_sha256", "memory_format"):  # as written before these keys existed
        cfg.pop(key)
    (old.run_dir / "config.json").write_text(json.dumps(cfg))
    assert list(results.load(tmp_path).config.unique()) == ["sgd"]
