"""Analysis from the command line: sorted summaries with mean +/- std over seeds, CSV export, costs, defaults in --help."""

import pandas as pd
import pytest

import cl_lab
from cl_lab.cli import main

FAST = {"epochs": 1, "progress": False, "pretrained": None, "n_tasks": 2}


def test_summary_is_sorted_averages_seeds_and_writes_csv(tmp_path, capsys):
    runs = tmp_path / "runs"
    for method in ("sgd", "er"):  # written out of order on purpose
        for seed in (1, 0):
            cl_lab.run(method, "synth-mini", seed=seed, out=str(runs), **FAST)
    assert main(["summary", str(runs), "--csv", str(tmp_path / "table.csv")]) == 0
    out = capsys.readouterr().out
    per_run = pd.read_csv(tmp_path / "table.csv")
    assert list(per_run.config) == ["er", "er", "sgd", "sgd"] and list(per_run.seed) == [0, 1, 0, 1]
    assert {"stored_per_task_pct", "extra_bytes", "tasks"} <= set(per_run.columns)
    assert (per_run[per_run.config == "er"].extra_bytes > 0).all()  # the replay buffer is counted
    means = pd.read_csv(tmp_path / "table-mean.csv")
    er = per_run[per_run.config == "er"].avg_accuracy
    row = means.set_index("config").loc["er"]
    assert row.avg_accuracy_count == 2 and row.avg_accuracy_mean == pytest.approx(er.mean())
    assert row.avg_accuracy_std == pytest.approx(er.std())
    assert "mean +/- std over seeds" in out and f"{er.mean():.3f} +/- {er.std():.3f}" in out


def test_a_sweep_prints_costs_and_names_a_task_subset(tmp_path, capsys):
    assert main(["run", "--method", "er", "--stream", "synth-mini", "--seeds", "0", "1", "--epochs", "1",
                 "--n-tasks", "2", "--pretrained", "none", "--no-progress", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "er on synth-mini[:2] seed 0" in out and "stored/task" in out and "MB" in out
    assert "mean +/- std over seeds" in out


def test_help_shows_every_default(capsys):
    with pytest.raises(SystemExit):
        main(["run", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    for expected in ("training epochs per task (default: 4)", "--seed SEED default: 0", "(default: synth-10)",
                     "mini-batch size (default: 32)"):
        assert expected in text, expected
