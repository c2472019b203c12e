import numpy as np
import pandas as pd
import pytest

from cl_lab import viz

NAN = np.nan


def _acc():
    rows = []
    for seed, drop in ((0, 0.1), (1, 0.3)):
        for i in range(3):
            for j in range(i + 1):
                rows.append({"run": f"sgd{seed}", "method": "sgd", "stream": "s", "seed": seed, "after_task": i,
                             "task": j, "task_name": f"t{j}", "accuracy": 0.9 - drop * (i - j)})
                rows.append({"run": f"clr{seed}", "method": "clr", "stream": "s", "seed": seed, "after_task": i,
                             "task": j, "task_name": f"t{j}", "accuracy": 0.8})
    return pd.DataFrame(rows)


def test_accuracy_heatmap_shows_the_matrix():
    R = np.array([[0.9, NAN], [0.5, 0.8]])
    fig = viz.accuracy_heatmap(R, ["a", "b"])
    np.testing.assert_array_equal(np.asarray(fig.data[0].z, dtype=float), R)
    assert list(fig.data[0].x) == ["a", "b"] and fig.data[0].text[0][1] == ""


def test_first_task_curve_means_over_seeds_with_band():
    fig = viz.task_accuracy_over_time(_acc(), task=0)
    lines = {t.name: t for t in fig.data if t.mode == "lines+markers"}
    assert set(lines) == {"clr", "sgd"}
    np.testing.assert_allclose(lines["sgd"].y, [0.9, 0.7, 0.5])  # mean of drops 0.1 and 0.3
    np.testing.assert_allclose(lines["clr"].y, [0.8, 0.8, 0.8])
    assert list(lines["sgd"].x) == [1, 2, 3]
    band = next(t for t in fig.data if t.name == "sgd band")
    std = np.std([[0.9, 0.8, 0.7], [0.9, 0.6, 0.3]], axis=0, ddof=1)  # per after_task, over the two seeds
    np.testing.assert_allclose(band.y[:3], np.array([0.9, 0.7, 0.5]) + std)
    np.testing.assert_allclose(band.y[3:], (np.array([0.9, 0.7, 0.5]) - std)[::-1])


def test_selectable_task_and_method_filter():
    fig = viz.task_accuracy_over_time(_acc(), task=1, methods=["sgd"])
    lines = [t for t in fig.data if t.mode == "lines+markers"]
    assert [t.name for t in lines] == ["sgd"]
    np.testing.assert_allclose(lines[0].y, [0.9, 0.7])
    assert "t1" in fig.layout.title.text


def test_cost_vs_accuracy_points_and_reference_line():
    costs = pd.DataFrame({"run": ["a", "a", "b", "b"], "method": ["clr", "clr", "sgd", "sgd"],
                          "task_params_pct": [0.4, 0.6, 1.0, 1.0]})
    metrics = pd.DataFrame({"run": ["a", "a", "b", "b"], "after_task": [0, 1, 0, 1],
                            "avg_accuracy": [0.9, 0.7, 0.8, 0.4]})
    fig = viz.cost_vs_accuracy(costs, metrics, measure="params")
    pts = {t.name: (list(t.x), list(t.y)) for t in fig.data}
    assert pts == {"clr": ([0.5], [0.7]), "sgd": ([1.0], [0.4])}
    assert fig.layout.xaxis.type == "log" and fig.layout.shapes[0].x0 == 0.6
    assert "parameters only" in fig.layout.xaxis.title.text
    with pytest.raises(ValueError, match="stored_pct"):  # everything stored needs the byte counts
        viz.cost_vs_accuracy(costs, metrics)


def test_cost_counts_everything_stored_by_default():
    """A replay buffer (extra bytes) moves a run to the right of one that stores the same parameters;
    the parameters-only measure puts them together."""
    base = {"backbone_params": [1000, 1000], "task_params": [10, 10], "task": [0, 1]}
    er = pd.DataFrame({"run": "er0", "method": "er", "extra_bytes": [2000, 2000], **base})
    sgd = pd.DataFrame({"run": "sgd0", "method": "sgd", "extra_bytes": [0, 0], **base})
    costs = pd.concat([er, sgd], ignore_index=True).assign(task_params_pct=1.0)
    metrics = pd.DataFrame({"run": ["er0", "sgd0"], "after_task": [1, 1], "avg_accuracy": [0.6, 0.4]})
    stored = {t.name: t.x[0] for t in viz.cost_vs_accuracy(costs, metrics).data}
    # er: (40 + 2000) then (40 + 0) bytes over 4000 backbone bytes -> 51% and 1%, mean 26%
    assert stored["er"] == pytest.approx(26.0) and stored["sgd"] == pytest.approx(1.0)
    params = {t.name: t.x[0] for t in viz.cost_vs_accuracy(costs, metrics, measure="params").data}
    assert params == {"er": 1.0, "sgd": 1.0}
    hover = next(t for t in viz.cost_vs_accuracy(costs, metrics).data if t.name == "er")
    assert "other state" in hover.hovertemplate and hover.customdata[0][1] == pytest.approx(1.0)  # 1 KB/task
    # two runs on one spot name each other (a marker would hide the other); far apart, nothing is added
    same = viz.cost_vs_accuracy(costs, metrics.assign(avg_accuracy=0.5), measure="params")
    assert {t.name: t.customdata[0][2] for t in same.data} == {"er": "<br>also here: sgd", "sgd": "<br>also here: er"}
    assert all(t.customdata[0][2] == "" for t in viz.cost_vs_accuracy(costs, metrics).data)
    with pytest.raises(ValueError, match="measure="):
        viz.cost_vs_accuracy(costs, metrics, measure="flops")


def test_every_method_of_the_suite_gets_its_own_colour_and_configurations_their_own_dash():
    from cl_lab.methods import method_names

    rows = []
    for m in method_names():
        for label in (m, f"{m} (lr=0.1)"):
            for i in range(2):
                rows.append({"run": f"{label}-0", "method": m, "config": label, "stream": "s", "seed": 0,
                             "after_task": i, "task": 0, "task_name": "t0", "accuracy": 0.5})
    fig = viz.task_accuracy_over_time(pd.DataFrame(rows), task=0)
    lines = {t.name: t.line for t in fig.data if t.mode == "lines+markers"}
    assert len(method_names()) >= 14 and len(lines) == 2 * len(method_names())
    colours = {lines[m].color for m in method_names()}
    assert len(colours) == len(method_names()), "no two methods share a colour"
    for m in method_names():  # the variant of a method: same colour, another dash
        assert lines[f"{m} (lr=0.1)"].color == lines[m].color and lines[f"{m} (lr=0.1)"].dash != lines[m].dash
    # shapes on top of colours: methods next to each other in the sorted order (where the palette's
    # neighbours and look-alikes land) differ in marker too, and no two labels share colour and marker
    markers = {t.name: (t.marker.color, t.marker.symbol) for t in fig.data if t.mode == "lines+markers"}
    assert len(set(markers.values())) == len(markers)
    names = sorted(method_names())
    assert all(markers[a][1] != markers[b][1] for a, b in zip(names, names[1:]))
    costs = pd.DataFrame([{"run": r["run"], "method": r["method"], "config": r["config"], "task_params_pct": 1.0}
                          for r in rows])
    metrics = pd.DataFrame([{"run": r["run"], "after_task": 0, "avg_accuracy": 0.5} for r in rows])
    scatter = {t.name: (t.marker.color, t.marker.symbol)
               for t in viz.cost_vs_accuracy(costs, metrics, measure="params").data}
    assert scatter == markers, "the trade-off plot draws each configuration as the curves do"


def _chromium() -> bool:
    import shutil

    return any(shutil.which(b) for b in ("chromium", "chromium-browser", "google-chrome"))


def test_figures_export_to_png_and_svg(tmp_path):
    import pytest

    if not _chromium():
        pytest.skip("static image export needs Chrome or Chromium (apt-get install chromium)")
    pytest.importorskip("kaleido")
    fig = viz.accuracy_heatmap(np.array([[0.9, NAN], [0.5, 0.8]]), ["a", "b"])
    png = viz.export(fig, tmp_path / "fig.png")
    svg = viz.export(fig, tmp_path / "fig.svg")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and b"<svg" in svg.read_bytes()[:500]
    with pytest.raises(ValueError, match="no image suffix"):
        viz.export(fig, tmp_path / "fig.txt")


def test_cost_axis_ticks_are_whole_numbers_at_1_2_5_steps():
    costs = pd.DataFrame({"run": ["a", "b"], "method": ["sgd", "clr"], "config": ["sgd", "clr"],
                          "task_params_pct": [0.3, 4.5]})
    metrics = pd.DataFrame({"run": ["a", "b"], "after_task": [1, 1], "avg_accuracy": [0.4, 0.6]})
    fig = viz.cost_vs_accuracy(costs, metrics, measure="params")
    assert {"0.5", "1", "2", "5"} <= set(fig.layout.xaxis.ticktext)
    assert all(float(t) == v for t, v in zip(fig.layout.xaxis.ticktext, fig.layout.xaxis.tickvals))


def test_accuracy_over_time_marks_chance():
    acc = _acc().assign(classes=4)
    fig = viz.task_accuracy_over_time(acc, task=0)
    assert [s.y0 for s in fig.layout.shapes] == [0.25]
    assert [s.y0 for s in viz.task_accuracy_over_time(_acc(), task=0, chance=0.1).layout.shapes] == [0.1]
    assert not viz.task_accuracy_over_time(_acc(), task=0).layout.shapes  # unknown class count: no line


def test_mdl_comparison_draws_the_chance_line_it_is_given():
    import pandas as pd

    from cl_lab.viz import mdl_comparison

    summary = pd.DataFrame({"setup": ["mpnas", "independent"], "unique_params": [1e4, 3e4],
                            "mean_accuracy": [0.5, 0.55], "mean_macs": [1e6, 2e6]})
    assert not mdl_comparison(summary).layout.shapes
    (line,) = mdl_comparison(summary, chance=0.2).layout.shapes
    assert line.y0 == 0.2 and line.line.dash == "dot"
