import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

import cl_lab
from cl_lab import results
from cl_lab.config import ConfigError
from cl_lab.data import Task, TaskStream
from cl_lab.methods import get_method
from cl_lab.models.weights import WeightsError, default_checkpoint
from cl_lab.rundir import RunDirError, read_checkpoint

ROOT = Path(__file__).resolve().parents[1]


def test_same_seed_same_accuracy_matrix(tmp_path, fast):
    a = cl_lab.run("sgd", "synth-mini", out=str(tmp_path / "a"), **fast)
    b = cl_lab.run("sgd", "synth-mini", out=str(tmp_path / "b"), **fast)
    c = cl_lab.run("sgd", "synth-mini", out=str(tmp_path / "c"), seed=1, **fast)
    np.testing.assert_array_equal(a.R, b.R)
    assert not np.array_equal(np.nan_to_num(a.R), np.nan_to_num(c.R))
    assert np.isnan(a.R[0, 1]) and not np.isnan(a.R[2, :3]).any()


def test_run_directory_contents(tmp_path, fast):
    r = cl_lab.run("sgd", "synth-mini", out=str(tmp_path), **fast)
    for f in results.FILES + ("checkpoint.pt",):
        assert (r.run_dir / f).exists(), f
    cfg = json.loads((r.run_dir / "config.json").read_text())
    assert cfg["method"] == "sgd" and cfg["epochs"] == 1 and cfg["stream"]["name"] == "synth-mini"
    assert cfg["method_config"]["lr"] == get_method("sgd").Config().lr
    np.testing.assert_allclose(results.accuracy_matrix(r.run_dir), r.R)
    costs = r.costs
    assert (costs.train_macs_per_image > 2 * costs.infer_macs_per_image).all()
    assert costs.task_params.tolist() == [64 * k + k for k in (4, 3, 2)]
    summary = json.loads((r.run_dir / "summary.json").read_text())
    assert summary["status"] == "complete" and summary["completed_tasks"] == 3


def test_results_load_across_runs(tmp_path, fast):
    cl_lab.run("sgd", "synth-mini", out=str(tmp_path), **fast)
    cl_lab.run("sgd-ll", "synth-mini", out=str(tmp_path), **fast)
    df = results.load(tmp_path)
    assert isinstance(df, pd.DataFrame)
    assert set(df.method) == {"sgd", "sgd-ll"} and len(df) == 2 * 6
    assert set(results.load_costs(tmp_path).method) == {"sgd", "sgd-ll"}


def test_sgd_ll_freezes_backbone_and_shares_widest_layer(tmp_path, mini):
    from cl_lab.methods import StreamInfo, get_method
    from cl_lab.models import build_backbone

    cls = get_method("sgd-ll")
    bb = build_backbone("resnet8")
    m = cls(bb, cls.Config(), StreamInfo((4, 3, 2), ("a", "b", "c")))
    before = {k: v.clone() for k, v in bb.state_dict().items()}
    m.begin_task(0, mini[0])
    m.train()
    for _ in range(3):
        m.observe(mini[0].train.float_images()[:16], mini[0].train.labels()[:16], 0)
    assert all(torch.equal(before[k], v) for k, v in bb.state_dict().items())
    assert m.shared.out_features == 4 and m(torch.rand(2, 3, 32, 32), 0).shape == (2, 4)


def test_resume_after_kill_9_equals_uninterrupted(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    args = [sys.executable, "-m", "cl_lab", "run", "--method", "sgd", "--stream", "synth-mini", "--epochs", "8",
            "--pretrained", "none", "--no-progress", "--run-name", "r"]
    ref = subprocess.run(args + ["--out", str(tmp_path / "ref")], env=env, capture_output=True, text=True)
    assert ref.returncode == 0, ref.stderr
    out = tmp_path / "killed"
    proc = subprocess.Popen(args + ["--out", str(out)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    ckpt = out / "r" / "checkpoint.pt"
    deadline = time.time() + 120
    while not ckpt.exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.02)
    time.sleep(0.3)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done = read_checkpoint(ckpt)["completed"] + 1
    assert 1 <= done < 3, "the process should have been killed mid-stream"
    again = subprocess.run(args + ["--out", str(out)], env=env, capture_output=True, text=True)
    assert again.returncode == 0, again.stderr
    np.testing.assert_array_equal(results.accuracy_matrix(out / "r"), results.accuracy_matrix(tmp_path / "ref" / "r"))
    assert not list((out / "r").glob(".*.tmp"))


def test_bring_your_own_data_and_backbone(tmp_path):
    g = torch.Generator().manual_seed(0)
    tasks = []
    for k in range(2):
        x = torch.rand(60, 3, 12, 12, generator=g)
        y = (x[:, k].mean((1, 2)) > 0.5).long()
        tasks.append(Task.from_tensors(f"mine{k}", x[:40], y[:40], x[40:], y[40:]))
    stream = TaskStream("mine", tasks)
    net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.AdaptiveAvgPool2d(1))
    given = {k: v.clone() for k, v in net.state_dict().items()}
    for method in ("sgd", "sgd-ll"):
        r = cl_lab.run(method, stream, backbone=net, out=str(tmp_path), epochs=1, progress=False, pretrained=None)
        assert r.R.shape == (2, 2) and not np.isnan(r.R[1]).any()
    assert all(torch.equal(given[k], v) for k, v in net.state_dict().items())  # the user's module is untouched


@pytest.mark.parametrize("kwargs, error, match", [
    (dict(method="sgdd"), ValueError, "unknown method 'sgdd'.*Did you mean 'sgd'"),
    (dict(stream="synth-11"), ValueError, "unknown stream 'synth-11'"),
    (dict(backbone="resnet9"), ConfigError, "unknown backbone 'resnet9'"),
    (dict(lr=-0.1), ConfigError, "lr=-0.1 is out of range; allowed: > 0"),
    (dict(epochs=0), ConfigError, "epochs=0 is out of range; allowed: >= 1"),
    (dict(epochs="3"), ConfigError, "epochs must be an integer; got '3'"),
    (dict(learning_rate=0.1), ConfigError, "unknown parameter 'learning_rate'"),
    (dict(optimizer="rmsprop"), ConfigError, "optimizer='rmsprop' is not allowed; choose one of"),
    (dict(momentum=1.5), ConfigError, "momentum=1.5 is out of range"),
    (dict(batch_size=1), ConfigError, "batch_size=1 is out of range"),
    (dict(device="tpu"), ConfigError, "device='tpu' is not allowed"),
    (dict(memory_format="nhwc"), ConfigError, "memory_format='nhwc' is not allowed"),
    (dict(n_tasks=9), ConfigError, "n_tasks=9 but stream 'synth-mini' has only 3 tasks"),
    (dict(pretrained="/no/such/file.pt"), ConfigError, "pretrained='/no/such/file.pt'"),
    (dict(stream=42), ConfigError, "stream must be a stream name or a TaskStream"),
    (dict(seed=-1), ConfigError, "seed=-1 is out of range"),
    (dict(head="both", method="sgd-ll"), ConfigError, "head='both' is not allowed"),
])
def test_bad_input_fails_before_work(tmp_path, kwargs, error, match):
    kwargs = {"method": "sgd", "stream": "synth-mini", "out": str(tmp_path / "runs"), "progress": False, **kwargs}
    method, stream = kwargs.pop("method"), kwargs.pop("stream")
    with pytest.raises(error, match=match):
        cl_lab.run(method, stream, **kwargs)
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


def test_empty_stream_rejected():
    with pytest.raises(ValueError, match="empty"):
        TaskStream("nothing", [])


def test_unwritable_out_dir(tmp_path, fast):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(RunDirError, match="not a writable directory"):
        cl_lab.run("sgd", "synth-mini", out=str(blocker / "sub"), **fast)


def test_existing_run_is_never_destroyed(tmp_path, fast):
    r = cl_lab.run("sgd", "synth-mini", out=str(tmp_path), **fast)
    snapshot = {p.name: p.read_bytes() for p in r.run_dir.iterdir()}
    with pytest.raises(RunDirError, match="different method_config"):
        cl_lab.run("sgd", "synth-mini", out=str(tmp_path), run_name=r.run_dir.name, lr=0.5, **fast)
    with pytest.raises(RunDirError, match="resume=False"):
        cl_lab.run("sgd", "synth-mini", out=str(tmp_path), resume=False, **fast)
    assert {p.name: p.read_bytes() for p in r.run_dir.iterdir()} == snapshot
    again = cl_lab.run("sgd", "synth-mini", out=str(tmp_path), **fast)  # complete: nothing retrained
    np.testing.assert_array_equal(again.R, r.R)
    assert {p.name: p.read_bytes() for p in r.run_dir.iterdir()} == snapshot


def test_corrupt_and_mismatched_checkpoints(tmp_path, fast):
    r = cl_lab.run("sgd", "synth-mini", out=str(tmp_path), n_tasks=2, **fast)
    again = {**fast, "run_name": r.run_dir.name, "n_tasks": 2}
    ckpt = r.run_dir / "checkpoint.pt"
    good = ckpt.read_bytes()
    ckpt.write_bytes(good[: len(good) // 2])
    with pytest.raises(RunDirError, match="checksum does not match.*nothing was changed"):
        cl_lab.run("sgd", "synth-mini", out=str(tmp_path), **again)
    assert ckpt.read_bytes() == good[: len(good) // 2]
    # flipped bytes inside the payload: the checksum catches them
    flipped = bytearray(good)
    mid = len(flipped) // 2
    flipped[mid: mid + 8] = bytes(b ^ 0xFF for b in flipped[mid: mid + 8])
    ckpt.write_bytes(bytes(flipped))
    with pytest.raises(RunDirError, match="checksum does not match"):
        cl_lab.run("sgd", "synth-mini", out=str(tmp_path), **again)
    # a valid checkpoint written by another configuration (lr=0.5) put into this directory
    other = cl_lab.run("sgd", "synth-mini", out=str(tmp_path), lr=0.5, **{**fast, "n_tasks": 2})
    ckpt.write_bytes((other.run_dir / "checkpoint.pt").read_bytes())
    with pytest.raises(RunDirError, match="written by another configuration"):
        cl_lab.run("sgd", "synth-mini", out=str(tmp_path), **again)


def test_wrong_shipped_checkpoint_for_arch(tmp_path, fast):
    with pytest.raises(ConfigError, match="pretrained='shipped': no shipped checkpoint for backbone 'resnet14-w16'"):
        cl_lab.run("sgd", "synth-mini", out=str(tmp_path / "runs"), backbone="resnet14",
                   **{**fast, "pretrained": "shipped"})
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())
    with pytest.raises(WeightsError, match="no shipped checkpoint for backbone"):
        cl_lab.models.load_weights(cl_lab.models.build_backbone("resnet14"), "shipped")


def test_memory_format_is_a_layout_not_a_result(tmp_path):
    """Channels-last (the default) and contiguous runs train the same model: the per-task losses agree
    to float precision; the layout and thread count are recorded; a rerun of either is bit-identical."""
    kw = dict(n_tasks=2, epochs=1, seed=0, progress=False)
    auto = cl_lab.run("sgd", "synth-mini", out=str(tmp_path / "a"), **kw)
    again = cl_lab.run("sgd", "synth-mini", out=str(tmp_path / "b"), **kw)
    plain = cl_lab.run("sgd", "synth-mini", out=str(tmp_path / "c"), memory_format="contiguous", **kw)
    np.testing.assert_array_equal(auto.R, again.R)
    assert auto.config["memory_format"] == "auto" and plain.config["memory_format"] == "contiguous"
    assert auto.config["threads"] == torch.get_num_threads()
    np.testing.assert_allclose(auto.costs.final_loss, plain.costs.final_loss, rtol=1e-3)
    assert np.abs(auto.R - plain.R)[~np.isnan(auto.R)].max() <= 0.1


def test_cli_run_and_error_exit(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    ok = subprocess.run([sys.executable, "-m", "cl_lab", "run", "--method", "sgd-ll", "--stream", "synth-mini",
                         "--epochs", "1", "--out", str(tmp_path), "--no-progress", "--set", "lr=0.05"],
                        env=env, capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr
    assert "sgd-ll on synth-mini: avg acc" in ok.stdout
    cfg = json.loads(next(tmp_path.glob("*/config.json")).read_text())
    assert cfg["method_config"]["lr"] == 0.05 and cfg["pretrained"] == default_checkpoint("resnet8-w16")
    bad = subprocess.run([sys.executable, "-m", "cl_lab", "run", "--method", "sgd", "sgd-ll", "--stream", "synth-mini",
                          "--out", str(tmp_path / "x"), "--set", "head=both"], env=env, capture_output=True, text=True)
    assert bad.returncode == 2 and "head" in bad.stderr and not (tmp_path / "x").exists()


def test_divergence_is_reported_not_silently_recorded(tmp_path):
    from cl_lab.train.runner import TrainingDiverged

    # (learning rates are bounded; a huge replay weight still overflows the loss within the first task)
    with pytest.raises(TrainingDiverged, match="derpp diverged on task 1 .*Lower the learning rate"):
        cl_lab.run("derpp", "synth-mini", out=str(tmp_path), epochs=1, alpha=1e38, progress=False, pretrained=None)
    with pytest.raises(TrainingDiverged, match="ewc diverged on task 2 .*keeps every task completed"):
        cl_lab.run("ewc", "synth-mini", out=str(tmp_path), epochs=1, ewc_lambda=1e38, progress=False, pretrained=None)
    assert len(list(tmp_path.iterdir())) == 1  # the run that saved task 1 keeps it; the other left nothing


@pytest.mark.parametrize("method, kw", [
    ("lwf", {}),                                                   # the new head's warm-up on frozen features
    ("rescl", {"finetune_epochs": 1}),                             # the fine-tuned target network
    ("sgd", {"pretrained": "first-task", "first_task_epochs": 1}),  # the runner's first-task pretraining
])
def test_side_loops_train_in_the_runs_memory_layout(method, kw, mini, tmp_path, monkeypatch):
    """Every forward of a backbone during a run, the side loops' included, sees images in the run's
    layout: before, LwF's warm-up, ResCL's target and first-task pretraining ran contiguous."""
    from cl_lab.models.backbones import Backbone

    layouts, eager = [], Backbone.eager_forward

    def spy(self, x):
        layouts.append(x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous())
        return eager(self, x)

    monkeypatch.setattr(Backbone, "eager_forward", spy)
    cl_lab.run(method, mini, out=str(tmp_path), n_tasks=2, epochs=1, progress=False, memory_format="channels_last",
               **({"pretrained": None} | kw))
    assert len(layouts) >= 10 and all(layouts), f"{layouts.count(False)} of {len(layouts)} forwards not channels-last"


def test_the_side_loop_follows_the_plans_autocast():
    """``fit_supervised`` computes its loss under the plan's autocast (the runner's ``amp``), like a step."""
    from cl_lab.methods.base import TrainPlan, fit_supervised

    head, seen = nn.Linear(4, 3), []

    def logits(x):
        seen.append(torch.is_autocast_enabled("cpu"))
        return head(x)

    x, y = torch.randn(12, 4), torch.arange(12) % 3
    for amp in (False, True):
        seen.clear()
        fit_supervised(head.parameters(), logits, x, y, epochs=1, lr=0.1, batch_size=4, plan=TrainPlan(1, 3, amp=amp))
        assert seen == [amp] * 3
