"""Experiment trackers: what a run, a sweep, a tuning study and an MDL run send to TensorBoard, MLflow and
W&B is read back with each tracker's own reader and compared with the run directory; export and backfill;
the trackers' own UIs in a browser."""

import glob
import shutil
import struct

import numpy as np
import pytest

pytest.importorskip("mlflow")
pytest.importorskip("tensorboard")
pytest.importorskip("wandb")
pytest.importorskip("tbparse")

import cl_lab  # noqa: E402
from cl_lab import results, tracking  # noqa: E402
from cl_lab.cli import main  # noqa: E402
from cl_lab.config import ConfigError  # noqa: E402

FAST = {"epochs": 1, "pretrained": None, "batch_size": 64, "progress": False}


@pytest.fixture(autouse=True)
def _offline_wandb(monkeypatch, tmp_path):
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.netrc login, no W&B settings of the machine


def _mlflow(out):
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=tracking.default_mlflow_uri(out))


def _mlflow_runs(out, experiment="cl_lab"):
    c = _mlflow(out)
    exp = c.get_experiment_by_name(experiment)
    assert exp is not None, f"no MLflow experiment {experiment!r} in {out}"
    return c, c.search_runs([exp.experiment_id])


def _tb_scalars(logdir):
    from tbparse import SummaryReader

    return SummaryReader(str(logdir)).scalars


def _wandb_records(run_dir):
    """The records of a W&B offline run file (a LevelDB-style log of protobuf records: 7-byte header,
    32 KiB blocks, each record chunk with a 7-byte CRC/length/type header)."""
    from wandb.proto import wandb_internal_pb2 as pb

    (path,) = glob.glob(str(run_dir / "*.wandb"))
    data = open(path, "rb").read()
    assert data[:4] == b":W&B"
    pos, block, buf, records = 7, 32768, b"", []
    while pos + 7 <= len(data):
        left = block - pos % block
        if left < 7:
            pos += left
            continue
        _, length, kind = struct.unpack("<IHB", data[pos:pos + 7])
        if kind == 0:
            pos += left
            continue
        chunk, pos = data[pos + 7:pos + 7 + length], pos + 7 + length
        if kind == 1:
            records.append(chunk)
        elif kind == 2:
            buf = chunk
        elif kind == 3:
            buf += chunk
        else:
            records.append(buf + chunk)
            buf = b""
    out = []
    for raw in records:
        r = pb.Record()
        r.ParseFromString(raw)
        out.append(r)
    return out


def _wandb_history(run_dir):
    import json

    rows = []
    for r in _wandb_records(run_dir):
        if r.WhichOneof("record_type") == "history":
            rows.append({(i.key or "/".join(i.nested_key)): json.loads(i.value_json) for i in r.history.item})
    return rows


def _wandb_summary(run_dir):
    import json

    out = {}
    for r in _wandb_records(run_dir):
        if r.WhichOneof("record_type") == "summary":
            out.update({(i.key or "/".join(i.nested_key)): json.loads(i.value_json) for i in r.summary.update})
    return out


def _wandb_run_dirs(out):
    return sorted(p for p in (out / "wandb").glob("offline-run-*") if p.is_dir())


@pytest.fixture(scope="module")
def logged(tmp_path_factory):
    """DER++ (named loss terms) on synth-mini, logged to all three trackers every step."""
    import os

    mp = pytest.MonkeyPatch()
    home = tmp_path_factory.mktemp("home")
    for k, v in {"WANDB_MODE": "offline", "WANDB_SILENT": "true", "HOME": str(home)}.items():
        mp.setenv(k, v)
    mp.delenv("WANDB_API_KEY", raising=False)
    out = tmp_path_factory.mktemp("tracked")
    try:
        r = cl_lab.run("derpp", "synth-mini", out=str(out), loggers=["tensorboard", "mlflow", "wandb"], log_every=1,
                       **FAST)
    finally:
        mp.undo()
    assert os.environ.get("HOME") != str(home)
    return out, r


def test_tensorboard_holds_the_accuracy_matrix_the_loss_terms_and_the_hparams(logged):
    out, r = logged
    df = _tb_scalars(out / "tensorboard" / r.run_dir.name)
    names = r.task_names
    for j, name in enumerate(names):
        got = df[df.tag == f"accuracy/{j + 1:02d}_{name}"].sort_values("step")
        assert got.step.tolist() == list(range(j + 1, len(names) + 1))
        np.testing.assert_allclose(got.value.to_numpy(), r.R[j:, j], atol=1e-6)
    # DER++'s two replay terms, from the second task on (the buffer is empty before), and the total
    tags = set(df.tag)
    assert {"train/loss", "train/task_loss", "train/logit_replay", "train/label_replay", "train/lr"} <= tags
    from cl_lab.train.runner import batch_starts

    total = sum(FAST["epochs"] * len(batch_starts(len(t.train), FAST["batch_size"])) for t in
                cl_lab.load_stream("synth-mini"))
    assert df[df.tag == "train/loss"].step.tolist() == list(range(1, total + 1))  # every step, global numbering
    lr = df[df.tag == "train/lr"].value
    assert np.allclose(lr, r.config["method_config"]["lr"], rtol=1e-6)
    final = df[df.tag == "final/avg_accuracy"].value.tolist()
    assert final == pytest.approx([r.summary()["avg_accuracy"]], abs=1e-6)


def test_mlflow_holds_the_run_as_the_run_directory_says(logged):
    out, r = logged
    c, runs = _mlflow_runs(out)
    (run,) = [x for x in runs if x.info.run_name == r.run_dir.name]
    assert run.info.status == "FINISHED"
    assert run.data.params["method"] == "derpp" and run.data.params["run_dir"] == str(r.run_dir)
    assert float(run.data.params["method_config.alpha"]) == r.config["method_config"]["alpha"]
    assert run.data.tags["cl_lab.run_dir"] == str(r.run_dir)
    first = c.get_metric_history(run.info.run_id, f"accuracy/01_{r.task_names[0]}")
    assert [m.step for m in sorted(first, key=lambda m: m.step)] == list(range(1, len(r.R) + 1))
    np.testing.assert_allclose([m.value for m in sorted(first, key=lambda m: m.step)], r.R[:, 0], atol=1e-6)
    metrics = r.metrics
    avg = sorted(c.get_metric_history(run.info.run_id, "metrics/avg_accuracy"), key=lambda m: m.step)
    np.testing.assert_allclose([m.value for m in avg], metrics.avg_accuracy.to_numpy(), atol=1e-6)
    costs = r.costs
    params = c.get_metric_history(run.info.run_id, "cost/task_params")
    assert sorted(m.value for m in params) == sorted(costs.task_params.astype(float).tolist())
    assert c.get_metric_history(run.info.run_id, "train/logit_replay")
    arts = {a.path for a in c.list_artifacts(run.info.run_id, "figures")}
    assert arts == {"figures/accuracy_matrix.png", "figures/first_task_accuracy.png"}


def test_wandb_offline_files_hold_the_run(logged):
    out, r = logged
    (wdir,) = _wandb_run_dirs(out)
    hist = _wandb_history(wdir)
    first = [h for h in hist if f"accuracy/01_{r.task_names[0]}" in h]
    assert [h["tasks_learnt"] for h in first] == list(range(1, len(r.R) + 1))
    np.testing.assert_allclose([h[f"accuracy/01_{r.task_names[0]}"] for h in first], r.R[:, 0], atol=1e-6)
    assert any("train/logit_replay" in h for h in hist)
    summary = _wandb_summary(wdir)
    assert summary["final/avg_accuracy"] == pytest.approx(r.summary()["avg_accuracy"], abs=1e-6)
    config = [x for x in _wandb_records(wdir) if x.WhichOneof("record_type") == "run"][0].run
    assert config.display_name == r.run_dir.name
    assert '"derpp"' in {i.key: i.value_json for i in config.config.update}["method"]


def test_logging_does_not_change_what_a_run_learns(logged, tmp_path):
    _, r = logged
    plain = cl_lab.run("derpp", "synth-mini", out=str(tmp_path), **FAST)
    assert plain.run_dir.name == r.run_dir.name  # trackers are not part of a run's identity
    np.testing.assert_array_equal(plain.R, r.R)


def test_a_missing_or_failing_tracker_is_one_line_and_the_run_goes_on(tmp_path, monkeypatch, capsys):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "wandb" else real(name, *a))
    bad_dir = tmp_path / "not-a-dir"
    bad_dir.write_text("a file where a folder should be")
    r = cl_lab.run("sgd", "synth-mini", out=str(tmp_path / "out"), loggers=["wandb", "mlflow"],
                   tracking_uri=f"sqlite:///{bad_dir}/store.db", n_tasks=2, **FAST)
    err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("cl_lab tracking:")]
    assert len(err) == 2, err
    assert "wandb is not installed" in err[0] and "pip install" in err[0]
    assert err[1].startswith("cl_lab tracking: mlflow stopped logging") and "run directory is the record" in err[1]
    assert (r.run_dir / "summary.json").exists() and results.accuracy_matrix(r.run_dir).shape == (2, 2)


def test_bad_tracker_settings_are_refused_before_any_work(tmp_path, capsys):
    with pytest.raises(ConfigError, match=r"loggers\[0\]='neptune' is not allowed; choose one of"):
        cl_lab.run("sgd", "synth-mini", out=str(tmp_path), loggers=["neptune"], **FAST)
    with pytest.raises(ConfigError, match="log_every"):
        cl_lab.run("sgd", "synth-mini", out=str(tmp_path), loggers=["mlflow"], log_every=0, **FAST)
    assert not any(tmp_path.iterdir())
    with pytest.raises(SystemExit):
        main(["run", "--stream", "synth-mini", "--log", "neptune", "--out", str(tmp_path)])
    assert "invalid choice: 'neptune'" in capsys.readouterr().err
    with pytest.raises(ConfigError, match="unknown logger 'comet'"):
        tracking.backfill(tmp_path, ["comet"])


def test_a_sweep_and_a_resumed_run_appear_once_per_run(tmp_path):
    out = tmp_path / "sweep"
    assert main(["run", "--method", "sgd", "--stream", "synth-mini", "--seeds", "0", "1", "--epochs", "1",
                 "--pretrained", "none", "--n-tasks", "2", "--log", "mlflow", "tensorboard", "--out", str(out),
                 "--no-progress"]) == 0
    _, runs = _mlflow_runs(out)
    assert sorted(x.data.params["seed"] for x in runs) == ["0", "1"]
    assert all(x.info.status == "FINISHED" for x in runs)
    from tbparse import SummaryReader

    hp = SummaryReader(str(out / "tensorboard"), extra_columns={"dir_name"}).hparams
    assert sorted(hp[hp.tag == "seed"].value.astype(int).tolist()) == [0, 1]  # the HParams tab: one row per run
    # rerunning the finished sweep trains nothing and logs nothing new
    assert main(["run", "--method", "sgd", "--stream", "synth-mini", "--seeds", "0", "1", "--epochs", "1",
                 "--pretrained", "none", "--n-tasks", "2", "--log", "mlflow", "--out", str(out), "--no-progress"]) == 0
    assert len(_mlflow_runs(out)[1]) == 2


def test_a_tuning_study_logs_every_trial_under_its_own_experiment(tmp_path):
    r = cl_lab.tune("sgd", "synth-mini", 2, out=tmp_path, startup_trials=1, report=False, threads=1, n_tasks=2,
                    loggers=["mlflow"], **FAST)
    _, runs = _mlflow_runs(r.study_path.parent / "runs", experiment=r.study_name)
    assert len(runs) == 2 and {x.data.params["eval_split"] for x in runs} == {"val"}
    lrs = sorted(float(x.data.params["method_config.lr"]) for x in runs)
    from optuna.trial import TrialState

    from cl_lab.tune import load_study

    trials = load_study(r.study_path).get_trials(states=(TrialState.COMPLETE,))
    assert lrs == pytest.approx(sorted(t.params["lr"] for t in trials))
    values = sorted(x.data.metrics["metrics/avg_accuracy"] for x in runs)  # the last task's: the trial's value
    assert values == pytest.approx(sorted(t.value for t in trials), abs=1e-6)


def test_an_mdl_run_is_sent_with_its_setups_and_search_history(tmp_path):
    from cl_lab.mdl import run_mdl

    TINY = dict(stream="synth-mini", domains="2", widths="8,16", layers_per_stage=2, kernels="3,5", expansions="2",
                stem_channels=8, search_steps=4, max_train=40, val_images=16, batch_size=16, train_epochs=1,
                setups="mpnas,independent")
    d = run_mdl(out=tmp_path, progress=False, loggers=["mlflow"], **TINY)
    r = results.load_mdl(d)
    c, runs = _mlflow_runs(tmp_path)
    (run,) = runs
    for row in r["results"].itertuples():
        assert run.data.metrics[f"mdl/{row.setup}/accuracy/{row.domain}"] == pytest.approx(row.accuracy)
    domain = r["results"].domain.iloc[0]
    h = r["history"]
    want = h[(h.setup == "mpnas") & (h.domain == domain)].sort_values("step")
    rewards = sorted(c.get_metric_history(run.info.run_id, f"search/mpnas/{domain}/reward"), key=lambda m: m.step)
    assert len(want) >= 2 and [m.step for m in rewards] == want.step.tolist()
    np.testing.assert_allclose([m.value for m in rewards], want.reward, atol=1e-6)


def test_export_writes_the_results_table_and_backfill_sends_old_runs(tmp_path, capsys):
    import pandas as pd

    out = tmp_path / "runs"
    r = cl_lab.run("sgd", "synth-mini", out=str(out), n_tasks=2, **FAST)
    want = results.load(out)
    assert main(["export", str(out), "--to", "parquet"]) == 0
    pd.testing.assert_frame_equal(pd.read_parquet(out / "results.parquet"), want, check_dtype=False)
    assert main(["export", str(out), "--to", "csv", "--file", str(tmp_path / "t.csv")]) == 0
    back = pd.read_csv(tmp_path / "t.csv")
    np.testing.assert_allclose(back.accuracy, want.accuracy)
    assert main(["export", str(tmp_path / "empty-not-there"), "--to", "csv"]) == 2
    assert "does not exist" in capsys.readouterr().err
    # backfill: a run made without trackers, sent afterwards (and only once)
    assert main(["log", str(out), "--to", "mlflow", "tensorboard"]) == 0
    assert main(["log", str(out), "--to", "mlflow", "tensorboard"]) == 1
    assert "already in mlflow, tensorboard; skipped there" in capsys.readouterr().err
    assert not (r.run_dir / "tracking.json").exists()  # a backfill only reads the run directory
    c, runs = _mlflow_runs(out)
    (run,) = runs
    assert run.data.params["method"] == "sgd" and run.info.run_name == r.run_dir.name
    hist = sorted(c.get_metric_history(run.info.run_id, f"accuracy/01_{r.task_names[0]}"), key=lambda m: m.step)
    np.testing.assert_allclose([m.value for m in hist], r.R[:, 0], atol=1e-6)
    df = _tb_scalars(out / "tensorboard" / r.run_dir.name)
    np.testing.assert_allclose(df[df.tag == f"accuracy/02_{r.task_names[1]}"].value, [r.R[1, 1]], atol=1e-6)


def _chromium():
    return shutil.which("chromium") or shutil.which("chromium-browser")


def test_the_mlflow_and_tensorboard_uis_show_the_accuracy_curve(logged):
    pytest.importorskip("playwright")
    exe = _chromium()
    if not exe:
        pytest.skip("no Chromium browser installed (Debian: apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    out, r = logged
    c, runs = _mlflow_runs(out)
    run = runs[0]
    tag = f"accuracy/01_{r.task_names[0]}"
    with tracking.TrackerUI("mlflow", out) as ml, tracking.TrackerUI("tensorboard", out) as tb, \
            sync_playwright() as p:
        browser = p.chromium.launch(executable_path=exe, args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            page.goto(f"{ml.url}#/experiments/{run.info.experiment_id}/runs/{run.info.run_id}/model-metrics")
            page.get_by_text(f"01_{r.task_names[0]}", exact=True).first.wait_for(timeout=60_000)
            page.locator(".js-plotly-plot").first.wait_for(timeout=60_000)  # the charts are drawn, not only named
            page.goto(f"{tb.url}?darkMode=false#timeseries&tagFilter=accuracy")
            card = page.locator("card-view, .card", has_text=f"/01_{r.task_names[0]}").first
            card.wait_for(timeout=60_000)
            card.locator("canvas, svg path").first.wait_for(timeout=60_000)  # a drawn line chart in the tag's card
            assert tag.split("/")[0] in page.inner_text("body")
        finally:
            browser.close()
    import urllib.request

    for ui in (ml, tb):  # both servers stopped
        with pytest.raises(OSError):
            urllib.request.urlopen(ui.url, timeout=2)


def test_a_resumed_run_continues_its_tracker_run_and_a_failed_start_leaves_nothing(tmp_path, monkeypatch):
    import cl_lab.train.runner as runner

    real, calls = runner.train_task, []

    def stopped_at_task_2(method, task, task_id, *a, **k):
        calls.append(task_id)
        if task_id == 1 and calls.count(1) == 1:
            raise KeyboardInterrupt  # a kill between tasks 1 and 2
        return real(method, task, task_id, *a, **k)

    monkeypatch.setattr(runner, "train_task", stopped_at_task_2)
    out = tmp_path / "runs"
    with pytest.raises(KeyboardInterrupt):
        cl_lab.run("sgd", "synth-mini", out=str(out), loggers=["mlflow"], **FAST)
    _, runs = _mlflow_runs(out)
    assert [x.info.status for x in runs] == ["FAILED"]
    r = cl_lab.run("sgd", "synth-mini", out=str(out), loggers=["mlflow"], **FAST)  # resumes after task 1
    c, runs = _mlflow_runs(out)
    assert len(runs) == 1 and runs[0].info.status == "FINISHED"
    hist = sorted(c.get_metric_history(runs[0].info.run_id, f"accuracy/01_{r.task_names[0]}"), key=lambda m: m.step)
    assert [m.step for m in hist] == [1, 2, 3]
    np.testing.assert_allclose([m.value for m in hist], r.R[:, 0], atol=1e-6)
    # a run that fails before its first checkpoint leaves no directory behind, trackers or not
    calls.clear()
    monkeypatch.setattr(runner, "train_task", lambda *a, **k: (_ for _ in ()).throw(RuntimeError("boom")))
    with pytest.raises(RuntimeError):
        cl_lab.run("sgd-ll", "synth-mini", out=str(tmp_path / "failed"), loggers=["mlflow", "tensorboard"], **FAST)
    assert not list((tmp_path / "failed").glob("synth-mini_*"))


def test_wandb_stays_offline_unless_the_user_configured_it(monkeypatch, tmp_path):
    monkeypatch.delenv("WANDB_MODE", raising=False)
    assert tracking.wandb_mode() == "offline"
    (tmp_path / ".netrc").write_text("machine api.wandb.ai\n  login user\n  password x\n")
    assert tracking.wandb_mode() == "online"
    (tmp_path / ".netrc").unlink()
    monkeypatch.setenv("WANDB_API_KEY", "x" * 40)
    assert tracking.wandb_mode() == "online"
    monkeypatch.setenv("WANDB_MODE", "disabled")
    assert tracking.wandb_mode() == "disabled"


def test_credentials_in_a_tracking_uri_are_not_recorded():
    from cl_lab.train.runner import redact_uri

    assert redact_uri("https://user:token@mlflow.example.org/x") == "https://***@mlflow.example.org/x"
    assert redact_uri("sqlite:////tmp/a.db") == "sqlite:////tmp/a.db" and redact_uri(None) is None
    t = tracking.RunTrackers([], ".")
    t.start("r", {"tracking_uri": "https://u:p@h", "seed": 0}, __import__("pathlib").Path("."), resume=False)
    assert "tracking_uri" not in t.params and t.params["seed"] == 0
