"""``compile=True``: the backbone under torch.compile through the runner, and the eager fallback."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

import cl_lab
from cl_lab.config import ConfigError
from cl_lab.models import compiled

RUN = [sys.executable, "-m", "cl_lab", "run", "--method", "sgd", "--stream", "synth-mini", "--epochs", "1",
       "--n-tasks", "2", "--pretrained", "none", "--no-progress"]


def test_without_a_compiler_the_run_goes_on_eagerly_with_one_line(tmp_path):
    """No working C++ compiler for the CPU backend: one line naming the reason, the run trains eagerly and is
    recorded (and named) as the eager run it is."""
    env = {**os.environ, "CXX": str(tmp_path / "no-such-compiler"), "TORCHINDUCTOR_CACHE_DIR": str(tmp_path / "ind"),
           "OMP_NUM_THREADS": "1"}
    p = subprocess.run([*RUN, "--compile", "--out", str(tmp_path / "a")], capture_output=True, text=True, env=env,
                       timeout=600)
    assert p.returncode == 0, p.stderr[-2000:]
    lines = [ln for ln in p.stderr.splitlines() if "compile" in ln]
    assert len(lines) == 1 and lines[0].startswith("cl_lab run: compile=True but torch.compile does not work here")
    assert "no-such-compiler" in lines[0] and "running eagerly" in lines[0]
    (run_dir,) = (tmp_path / "a").iterdir()
    assert json.loads((run_dir / "config.json").read_text())["compile"] is False
    p = subprocess.run([*RUN, "--out", str(tmp_path / "b")], capture_output=True, text=True, env=env, timeout=600)
    assert p.returncode == 0, p.stderr[-2000:]
    (eager_dir,) = (tmp_path / "b").iterdir()
    assert eager_dir.name == run_dir.name  # the same configuration: same name, same hash
    assert np.array_equal(cl_lab.results.accuracy_matrix(eager_dir), cl_lab.results.accuracy_matrix(run_dir),
                          equal_nan=True)


def test_compile_is_a_validated_boolean():
    with pytest.raises(ConfigError, match="compile"):
        cl_lab.train.runner.prepare("sgd", "synth-mini", compile="yes")


def test_a_compiled_run_trains_the_compiled_backbone_and_keeps_its_graphs(tmp_path, fast):
    """Through the runner: the backbone's forward and backward run compiled (dynamo's counters move), the
    accuracy matrix agrees with eager within float effects, the FLOP count is the eager one, the run is
    its own configuration, and a second run (another seed, more tasks: heads of other widths and other
    last-batch sizes) compiles no new backbone graph."""
    from torch._dynamo.utils import counters

    if compiled.unavailable() is not None:
        pytest.skip(f"torch.compile is unavailable here: {compiled.unavailable()}")
    try:
        _compiled_run_checks(tmp_path, fast, counters)
    finally:
        torch._dynamo.reset()


def _compiled_run_checks(tmp_path, fast, counters):
    eager = cl_lab.run("sgd", "synth-mini", n_tasks=2, out=str(tmp_path), **fast)
    before = counters["stats"]["unique_graphs"]
    comp = cl_lab.run("sgd", "synth-mini", n_tasks=2, out=str(tmp_path), compile=True, **fast)
    graphs = counters["stats"]["unique_graphs"] - before
    assert graphs >= 2, "no compiled graph: training and evaluation ran eagerly"
    assert comp.config["compile"] is True and comp.run_dir != eager.run_dir
    assert np.nanmax(np.abs(comp.R - eager.R)) <= 0.1
    c, e = comp.costs, eager.costs
    assert np.allclose(c.train_macs_per_image, e.train_macs_per_image)
    assert np.allclose(c.infer_macs_per_image, e.infer_macs_per_image)
    labels = set(cl_lab.results.load(tmp_path).config)
    assert labels == {"sgd (compile=false)", "sgd (compile=true)"}, labels  # two configurations, never pooled as seeds
    before = counters["stats"]["unique_graphs"]
    again = cl_lab.run("sgd", "synth-mini", out=str(tmp_path), compile=True, seed=1, **fast)
    assert len(again.task_names) == 3 and np.isfinite(np.diag(again.R)).all()
    assert counters["stats"]["unique_graphs"] - before == 0, "the second run compiled the backbone again"
