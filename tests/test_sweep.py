"""Sweeps of plain runs and of notebooks, locally and on a local Ray instance."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from cl_lab.config import ConfigError
from cl_lab.experiments.sweep import summarise, sweep
from cl_lab.report import run_grid

ROOT = Path(__file__).resolve().parents[1]
TINY = {"epochs": 1, "n_tasks": 2, "pretrained": None}


def test_local_sweep_summarises_seeds_and_reports_a_failed_point(tmp_path):
    rows = sweep(["sgd", "sgd-ll"], "synth-mini", seeds=[0, 1], out=str(tmp_path), threads=1, **TINY)
    assert len(rows) == 4 and rows.ok.all() and set(rows.threads) == {1}
    for r in rows.itertuples():
        assert json.loads((Path(r.run_dir) / "config.json").read_text())["threads"] == 1
    table = summarise(rows)
    assert set(table.method) == {"sgd", "sgd-ll"} and (table.avg_accuracy_count == 2).all()
    sgd = rows[rows.method == "sgd"].avg_accuracy
    np.testing.assert_allclose(table.set_index("method").loc["sgd", "avg_accuracy_mean"], sgd.mean())
    # a point that fails at run time (a replay weight that makes the loss overflow) is a row with its error
    bad = sweep(["derpp"], "synth-mini", seeds=[0], out=str(tmp_path), threads=1, alpha=1e38, **TINY)
    assert not bad.ok.any() and "diverged" in bad.error.iloc[0]
    with pytest.raises(ConfigError, match="lr=-1"):
        sweep(["sgd"], "synth-mini", seeds=[0], out=str(tmp_path), lr=-1.0, **TINY)
    with pytest.raises(ConfigError, match="executor='slurm'"):
        sweep(["sgd"], "synth-mini", seeds=[0], executor="slurm", out=str(tmp_path), **TINY)


def test_cli_seeds_sweep(tmp_path):
    out = subprocess.run([sys.executable, "-m", "cl_lab", "run", "--method", "sgd", "--stream", "synth-mini",
                          "--seeds", "0", "1", "--epochs", "1", "--pretrained", "none", "--no-progress",
                          "--threads", "1", "--out", str(tmp_path), "--set", "n_tasks=2"],
                         capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert out.returncode == 0, out.stderr
    assert "seed 0:" in out.stdout and "seed 1:" in out.stdout and "mean +/- std over seeds" in out.stdout
    assert len(list(tmp_path.glob("*/config.json"))) == 2


@pytest.fixture(scope="module")
def local_ray():
    ray = pytest.importorskip("ray", reason="Ray is the optional extra cl_lab[scale]")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


def test_ray_sweep_equals_the_local_one_and_reruns_skip(tmp_path, local_ray):
    local = sweep(["sgd"], "synth-mini", seeds=[0, 1], out=str(tmp_path / "local"), threads=1, **TINY)
    on_ray = sweep(["sgd"], "synth-mini", seeds=[0, 1], executor="ray", cpus_per_point=1,
                   out=str(tmp_path / "ray"), **TINY)
    assert on_ray.ok.all() and set(on_ray.threads) == {1}
    np.testing.assert_array_equal(on_ray.avg_accuracy.to_numpy(), local.avg_accuracy.to_numpy())
    stamps = {d: (Path(d) / "checkpoint.pt").stat().st_mtime_ns for d in on_ray.run_dir}
    again = sweep(["sgd"], "synth-mini", seeds=[0, 1], executor="ray", cpus_per_point=1,
                  out=str(tmp_path / "ray"), **TINY)
    # finished points are not trained again: same run directories, checkpoints untouched
    assert again.run_dir.tolist() == on_ray.run_dir.tolist()
    assert {d: (Path(d) / "checkpoint.pt").stat().st_mtime_ns for d in again.run_dir} == stamps


def test_a_tiny_notebook_grid_on_ray(tmp_path, local_ray):
    grid = tmp_path / "grid.yaml"
    grid.write_text("notebook: 01_task_stream\n"
                    "grid:\n  n_tasks: [1, 5]\n"
                    "fixed:\n  method: sgd\n  stream: synth-mini\n  epochs: 1\n")
    records = run_grid(grid, out=tmp_path / "grid", progress=False, executor="ray", cpus_per_point=1)
    ok = {r["params"]["n_tasks"]: r["ok"] for r in records}
    assert ok == {1: True, 5: False}
    assert (tmp_path / "grid" / "summary.html").exists()
    again = run_grid(grid, out=tmp_path / "grid", progress=False, executor="ray", cpus_per_point=1)
    assert sum(bool(r.get("skipped")) for r in again) == 1
