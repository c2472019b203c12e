"""Dashboard callbacks in pure Python: set a widget value, assert the figure data."""

import json

import numpy as np
import pytest

import cl_lab
from cl_lab.mdl import run_mdl
from cl_lab.models.weights import default_checkpoint
from cl_lab.viz import chosen_paths, jaccard_heatmap, path_similarity
from cl_lab.viz.dashboard import cost_dashboard, matrix_dashboard, path_dashboard, task_accuracy_dashboard


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    for method in ("sgd", "clr"):
        for seed in (0, 1):
            cl_lab.run(method, "synth-mini", epochs=1, seed=seed, out=str(root), progress=False)
    return root


@pytest.fixture(scope="module")
def mdl_run(tmp_path_factory):
    return run_mdl(out=tmp_path_factory.mktemp("mdl"), progress=False, stream="synth-mini", domains="3",
                   setups="mpnas,multi-head-nas", widths="8,16", kernels="3,5", expansions="2", stem_channels=8,
                   search_steps=4, max_train=40, train_epochs=1, val_images=16, batch_size=16)


def _lines(fig):
    return [t.name for t in fig.data if t.mode == "lines+markers"]


def test_task_accuracy_dashboard_follows_task_method_and_seed_filters(runs):
    d = task_accuracy_dashboard(runs)
    fig = d.figures[0]
    assert sorted(_lines(fig)) == ["clr", "sgd"]
    assert "shapes" in fig.layout.title.text
    assert any(t.fill == "toself" for t in fig.data), "two seeds give a band"
    d.controls["task"].value = 1
    assert "counting" in fig.layout.title.text
    assert all(len(t.x) == 2 for t in fig.data if t.mode == "lines+markers"), "task 2 is seen after tasks 2 and 3"
    d.controls["methods"].value = ("clr",)
    assert _lines(fig) == ["clr"]
    d.controls["seeds"].value = (0,)
    assert not any(t.fill == "toself" for t in fig.data), "one seed, no band"
    # CLR never forgets: its line is flat
    assert np.ptp(np.asarray(fig.data[0].y)) == 0
    assert [sh.y0 for sh in fig.layout.shapes] == [pytest.approx(1 / 3)]  # chance on counting (3 classes)


def test_task_accuracy_dashboard_opens_on_the_main_stream_and_lists_its_methods(runs, tmp_path, mini):
    """A side run on another stream (a two-task subset, as a trade-off sweep writes) sorts first by name
    but is not where the dashboard opens; choosing it offers only its methods and seeds."""
    import shutil

    shutil.copytree(runs, tmp_path / "runs")
    cl_lab.run("lwf", mini.subset(2), epochs=1, seed=3, out=str(tmp_path / "runs"), progress=False)
    d = task_accuracy_dashboard(tmp_path / "runs")
    assert d.controls["stream"].value == "synth-mini"
    assert sorted(d.controls["methods"].options) == ["clr", "sgd"] and list(d.controls["seeds"].options) == [0, 1]
    other = next(o for o in d.controls["stream"].options if o != "synth-mini")
    d.controls["stream"].value = other
    assert list(d.controls["methods"].options) == ["lwf"] and list(d.controls["seeds"].options) == [3]
    assert _lines(d.figures[0]) == ["lwf"]
    # the static report page opens on the main stream too: its first visible traces are the main runs
    static = task_accuracy_dashboard(tmp_path / "runs").static_figures()[0]
    shown = {t.name for t in static.data if t.visible and t.mode == "lines+markers"}
    assert shown == {"clr", "sgd"}
    assert static.layout.updatemenus[0].buttons[0].label.startswith("synth-mini ·")
    # so do the cost and matrix dashboards, offering only the chosen stream's methods
    c = cost_dashboard(tmp_path / "runs")
    assert c.controls["stream"].value == "synth-mini" and sorted(c.controls["methods"].options) == ["clr", "sgd"]
    c.controls["stream"].value = other
    assert list(c.controls["methods"].options) == ["lwf"] and [t.name for t in c.figures[0].data] == ["lwf"]
    first = c.static_figures()[0]
    assert {t.name for t in first.data if t.visible} == {"clr", "sgd"}
    assert matrix_dashboard(tmp_path / "runs").controls["stream"].value == "synth-mini"


def test_sgd_from_random_weights_is_labelled_so_even_alone_on_its_stream(runs, tmp_path, mini):
    import shutil

    from cl_lab.results import load

    shutil.copytree(runs, tmp_path / "runs")
    cl_lab.run("sgd", mini.subset(2), epochs=1, pretrained=None, out=str(tmp_path / "runs"), progress=False)
    labels = load(tmp_path / "runs").groupby("stream").config.unique()
    assert sorted(labels["synth-mini"]) == ["clr", "sgd"]
    (side,) = [s for s in labels.index if s != "synth-mini"]
    assert list(labels[side]) == ["sgd (random weights)"]


def test_cost_dashboard_filters_methods(runs):
    d = cost_dashboard(runs)
    fig = d.figures[0]
    assert sorted(t.name for t in fig.data) == ["clr", "sgd"]
    assert fig.layout.xaxis.type == "log"
    assert "everything stored" in fig.layout.title.text
    # chance of the final average accuracy: the mean of 1 / classes over synth-mini's tasks
    classes = [t.num_classes for t in cl_lab.load_stream("synth-mini")]
    (chance,) = [s for s in fig.layout.shapes if s.line.dash == "dot"]
    assert chance.y0 == pytest.approx(np.mean([1 / c for c in classes]))
    stored = {t.name: list(t.x) for t in fig.data}
    d.controls["cost"].value = "params"
    assert "parameters only" in fig.layout.xaxis.title.text
    params = {t.name: list(t.x) for t in fig.data}
    # CLR stores per-task BN statistics beyond its parameters: counting everything moves it right
    assert all(s > p for s, p in zip(stored["clr"], params["clr"]))
    d.controls["methods"].value = ("sgd",)
    assert [t.name for t in fig.data] == ["sgd"] and len(fig.data[0].x) == 2
    d.controls["methods"].value = ()
    assert "nothing to show" in d.message.value


def test_matrix_dashboard_opens_on_a_run_that_exists_and_offers_only_existing_seeds(tmp_path):
    for method, seed in (("sgd", 0), ("clr", 1)):  # the first method (clr) has no seed 0
        cl_lab.run(method, "synth-mini", epochs=1, seed=seed, n_tasks=2, out=str(tmp_path), progress=False)
    d = matrix_dashboard(tmp_path)
    assert d.message.value == "" and len(d.figures[0].data) == 1
    # a widget's state travels as JSON: no NaN (the matrix's unevaluated cells are gaps)
    json.dumps(d.figures[0].to_plotly_json(), allow_nan=False)
    assert d.controls["method"].value == "clr" and list(d.controls["seed"].options) == [1]
    d.controls["method"].value = "sgd"
    assert list(d.controls["seed"].options) == [0] and d.message.value == ""
    assert "sgd" in d.figures[0].layout.title.text


def test_matrix_dashboard_shows_the_selected_run(runs):
    d = matrix_dashboard(runs)
    fig = d.figures[0]
    d.controls["method"].value = "clr"
    clr = np.array(fig.data[0].z, dtype=float)
    d.controls["method"].value = "sgd"
    sgd = np.array(fig.data[0].z, dtype=float)
    assert clr.shape == sgd.shape == (3, 3)
    R = cl_lab.results.accuracy_matrix(next(runs.glob("synth-mini_sgd_resnet8_seed0-*")))
    np.testing.assert_allclose(sgd, R)
    assert "sgd" in fig.layout.title.text


def test_path_dashboard_heatmap_and_paths_follow_selectors(mdl_run):
    d = path_dashboard(mdl_run)
    heat, paths, entropy = d.figures
    assert heat.data[0].type == "heatmap" and np.allclose(np.diag(np.array(heat.data[0].z)), 1.0)
    assert len(heat.layout.shapes) == 0
    d.controls["domain"].value = "counting"
    assert len(heat.layout.shapes) == 2 and "counting" in heat.layout.title.text
    # one controller per domain: an entropy line each, as a fraction of its start
    assert sorted(t.name for t in entropy.data) == ["blood-cells", "counting", "shapes"]
    assert all(0 < max(t.y) <= 1.0 + 1e-6 for t in entropy.data)
    # four search steps cannot converge, and the titles say so rather than present noise as a result
    assert "NOT CONVERGED" in heat.layout.title.text and "NOT CONVERGED" in paths.layout.title.text
    d.controls["setup"].value = "multi-head-nas"
    z = np.array(heat.data[0].z)
    assert np.allclose(z, 1.0), "one shared path: every pair is identical"
    assert "multi-head-nas" in paths.layout.title.text and len(paths.data) == 3
    assert [t.name for t in entropy.data] == ["all"] and "multi-head-nas" in entropy.layout.title.text


def test_mdl_figures_are_pure_functions_of_the_saved_tables(mdl_run):
    r = cl_lab.results.load_mdl(mdl_run)
    sim = path_similarity(r["blocks"], "mpnas")
    np.testing.assert_allclose(sim.values, r["jaccard"].values)
    with pytest.raises(ValueError, match="allowed"):
        jaccard_heatmap(sim, domain="cars")
    with pytest.raises(ValueError, match="allowed"):
        chosen_paths(r["blocks"], "nas")


def test_configurations_are_lines_of_their_own_not_pooled_seeds(tmp_path):
    """Two CLR backbones and an SGD lr sweep on one stream: every configuration is a line; only seeds pool."""
    for seed in (0, 1):
        for pretrained in ("auto", None):
            cl_lab.run("clr", "synth-mini", epochs=1, seed=seed, out=str(tmp_path), progress=False, n_tasks=2,
                       pretrained=pretrained)
    for lr in (0.01, 0.1):
        cl_lab.run("sgd", "synth-mini", epochs=1, seed=0, out=str(tmp_path), progress=False, n_tasks=2,
                   pretrained=None, lr=lr)
    acc = cl_lab.results.load(tmp_path)
    labels = sorted(acc.config.unique())
    shipped_label = f"clr (pretrained={default_checkpoint('resnet8-w16')})"
    assert labels == sorted(["clr (pretrained=null)", shipped_label, "sgd (lr=0.01)", "sgd (lr=0.1)"])
    d = task_accuracy_dashboard(tmp_path)
    fig = d.figures[0]
    assert sorted(_lines(fig)) == labels
    bands = [t.name for t in fig.data if t.fill == "toself"]
    assert sorted(bands) == sorted(["clr (pretrained=null) band", f"{shipped_label} band"])  # two seeds each
    # each CLR line is the mean over its own seeds only
    shipped = acc[(acc.config == shipped_label) & (acc.task == 0)].groupby("after_task").accuracy.mean()
    line = next(t for t in fig.data if t.name == shipped_label and t.mode == "lines+markers")
    np.testing.assert_allclose(line.y, shipped.to_numpy())
