"""Tuning: a seeded Optuna study of runs on validation data, resumable, with a best-configuration file."""

import json
import os
import subprocess
import sys

import pytest

pytest.importorskip("optuna")

import cl_lab  # noqa: E402
import cl_lab.tune as tune_mod  # noqa: E402
from cl_lab.config import ConfigError  # noqa: E402
from cl_lab.tune import apply_config_file, check_space, load_config_file, load_study  # noqa: E402

FAST = {"n_tasks": 2, "epochs": 1, "pretrained": None, "batch_size": 64, "progress": False}


def _tiny(out, trials=3, **kw):
    return cl_lab.tune("sgd", "synth-mini", trials, out=out, startup_trials=1, report=False, threads=1, **FAST, **kw)


def _completed(result):
    """(params, value) of the completed trials in the study's order (a re-run takes its trial's place)."""
    from optuna.trial import TrialState

    trials = load_study(result.study_path).get_trials(states=(TrialState.COMPLETE,))
    return [(t.params, t.value) for t in sorted(trials, key=lambda t: t.user_attrs["slot"])]


def test_interrupted_and_resumed_study_finds_the_same_best_trial(tmp_path, monkeypatch):
    from optuna.trial import TrialState

    whole = _tiny(tmp_path / "a")
    assert whole.completed == 3 and whole.report is None

    real, calls = tune_mod._run_trial, []

    def interrupted_in_second(setup, params):  # Ctrl-C during trial 1; the resume re-runs it, then trial 2
        calls.append(params)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(setup, params)

    monkeypatch.setattr(tune_mod, "_run_trial", interrupted_in_second)
    with pytest.raises(KeyboardInterrupt):
        _tiny(tmp_path / "b")
    monkeypatch.setattr(tune_mod, "_run_trial", real)
    resumed = _tiny(tmp_path / "b")

    assert resumed.study_name == whole.study_name  # same settings, same study name, another folder
    assert (resumed.best_params, resumed.best_value) == (whole.best_params, whole.best_value)
    assert _completed(resumed) == _completed(whole)
    trials = load_study(resumed.study_path).get_trials()
    assert [t.state for t in trials] == [TrialState.COMPLETE, TrialState.FAIL] + [TrialState.COMPLETE] * 2
    assert trials[2].user_attrs["retry_of"] == 1 and trials[2].params == trials[1].params == calls[1]

    # a trial left RUNNING by a killed process is marked failed on the next start and run again
    import optuna

    study = load_study(resumed.study_path)
    stale = study.ask({"lr": optuna.distributions.FloatDistribution(1e-4, 1e-1, log=True)})
    more = _tiny(tmp_path / "b", trials=4)
    trials = load_study(more.study_path).get_trials()
    assert trials[stale.number].state == TrialState.FAIL
    assert trials[-1].state == TrialState.COMPLETE and trials[-1].user_attrs["retry_of"] == stale.number
    assert trials[-1].params == trials[stale.number].params and more.finished == 4


def _one_line_error(tmp_path, **kw):
    with pytest.raises(ConfigError) as e:
        cl_lab.tune(**{"method": "sgd", "stream": "synth-mini", "trials": 2, "out": tmp_path / "t", **kw})
    assert "\n" not in str(e.value)
    assert not (tmp_path / "t").exists()  # nothing written
    return str(e.value)


def test_bad_input_is_a_one_line_error_before_anything_runs(tmp_path):
    msg = _one_line_error(tmp_path, space={"lr": ("log", 1e-4, 1e-1), "nope": ("float", 0, 1)})
    assert "unknown parameter 'nope'" in msg and "'momentum'" in msg
    assert "empty" in _one_line_error(tmp_path, space={})
    assert "empty" in _one_line_error(tmp_path, method="ewc", lr=0.01, ewc_lambda=10.0)
    assert "trials=0" in _one_line_error(tmp_path, trials=0)
    assert "trials=10001" in _one_line_error(tmp_path, trials=10001)
    assert "validation data only" in _one_line_error(tmp_path, eval_split="test")
    assert "above 0" in _one_line_error(tmp_path, space={"lr": ("log", 0, 0.1)})
    assert "out of range" in _one_line_error(tmp_path, space={"lr": ("log", 1e-3, 100.0)})
    assert "not a search range" in _one_line_error(tmp_path, space={"lr": ("uniform", 0.1, 0.2)})
    assert "both searched" in _one_line_error(tmp_path, space={"lr": ("log", 1e-3, 0.1)}, lr=0.01)
    assert "leaves no task" in _one_line_error(tmp_path, protocol="first-k", k=3)
    assert "protocol" in _one_line_error(tmp_path, protocol="last-k")
    assert "unknown parameter 'epoch'" in _one_line_error(tmp_path, epoch=2)
    from cl_lab.cli import main

    assert main(["tune", "--method", "sgd", "--stream", "synth-mini", "--trials", "0", "--out", str(tmp_path / "t")]) == 2
    assert not (tmp_path / "t").exists()


def test_every_method_declares_a_valid_space_with_one_learning_rate_range_per_optimiser():
    import dataclasses

    from cl_lab.methods import get_method, method_names
    from cl_lab.methods.base import LR_RANGE

    for name in method_names():
        cls = get_method(name)
        if not cls.__module__.startswith("cl_lab.methods."):
            continue  # a throwaway method registered by another test
        space = check_space(cls, cls.search_space)
        optimizer = {f.name: f.default for f in dataclasses.fields(cls.Config)}["optimizer"]
        assert space["lr"] == LR_RANGE[optimizer], name
    assert {"ewc_lambda", "lr"} <= set(get_method("ewc").search_space)
    assert {"lr", "lr_step_fraction", "lr_gamma"} <= set(get_method("clr").search_space)
    assert {"lr", "replay_batch_size"} <= set(get_method("er").search_space)
    # a fixed parameter leaves the declared space; first-k tunes on k tasks and reports on the rest
    setup = tune_mod._plan("ewc", "synth-mini", 2, out="unused", study_name=None, sampler_seed=0, startup_trials=1,
                           space=None, protocol="first-k", k=2, run_kwargs={"ewc_lambda": 10.0})
    assert list(setup.space) == ["lr"] and setup.fixed["n_tasks"] == 2 and setup.report_tasks == ["blood-cells"]
    # the learning-rate range follows an optimiser fixed by the user
    setup = tune_mod._plan("sgd", "synth-mini", 2, out="unused", study_name=None, sampler_seed=0, startup_trials=1,
                           space=None, protocol="all", k=None, run_kwargs={"optimizer": "adam"})
    assert setup.space["lr"] == LR_RANGE["adam"] != LR_RANGE["sgd"]


def test_cli_tune_end_to_end_then_run_with_the_config(tmp_path):
    out = tmp_path / "tune"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-m", "cl_lab", "tune", "--method", "sgd", "--stream", "synth-mini",
                           "--trials", "2", "--startup-trials", "1", "--n-tasks", "2", "--epochs", "1", "--pretrained",
                           "none", "--batch-size", "64", "--space", "lr=log:1e-3:1e-1", "--threads", "1", "--out",
                           str(out)],
                          capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "trial    0:" in proc.stdout and "trial    1:" in proc.stdout
    (study_dir,) = out.iterdir()
    assert (study_dir / "study.db").is_file()
    best = json.loads((study_dir / "best_config.json").read_text())
    assert best["method"] == "sgd" and best["trials"] == 2 and set(best["params"]) == {"lr"}
    assert 1e-3 <= best["params"]["lr"] <= 1e-1
    page = (study_dir / "report.html").read_text()
    assert 'id="fig-history"' in page and 'src="plotly.min.js"' in page and "cdn." not in page
    assert (study_dir / "plotly.min.js").stat().st_size > 1_000_000

    import torch

    from cl_lab.cli import main

    runs = tmp_path / "runs"
    cfg = str(study_dir / "best_config.json")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        assert main(["run", "--method", "sgd", "--stream", "synth-mini", "--config", cfg, "--n-tasks", "2", "--epochs",
                     "1", "--pretrained", "none", "--batch-size", "64", "--out", str(runs), "--no-progress"]) == 0
    finally:
        torch.set_num_threads(threads)
    (run_dir,) = runs.iterdir()
    assert json.loads((run_dir / "config.json").read_text())["method_config"]["lr"] == best["params"]["lr"]
    r = cl_lab.run("sgd", "synth-mini", config=cfg, out=str(runs), **FAST)  # the same run: found complete
    assert r.run_dir == run_dir and r.config["method_config"]["lr"] == best["params"]["lr"]

    assert apply_config_file(cfg, "sgd", "synth-mini", {"lr": 0.5})[1]["lr"] == 0.5  # explicit arguments win
    with pytest.raises(ConfigError, match="holds a configuration of 'sgd', not 'ewc'"):
        load_config_file(cfg, "ewc")
    first_k = tmp_path / "first_k.json"
    first_k.write_text(json.dumps({**best, "protocol": "first-k", "k": 2, "report_tasks": ["blood-cells"]}))
    stream, kwargs = apply_config_file(first_k, "sgd", "synth-mini", {})
    assert [t.name for t in stream] == ["blood-cells"] and kwargs == best["params"]
