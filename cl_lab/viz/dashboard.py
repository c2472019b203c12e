"""ipywidgets dashboards over results directories; they read results, never train.

Each builder returns a ``Dashboard``: ``controls`` (name -> widget), ``figures`` (plotly
``FigureWidget`` objects updated in place when a control changes) and ``widget`` (the
layout to display; a ``Dashboard`` also displays itself as the last expression of a cell).
Every figure comes from the pure functions in ``cl_lab.viz.figures``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import pandas as pd

from . import figures


def _widgets():
    try:
        import ipywidgets as w
        import plotly.graph_objects as go
    except ImportError as e:  # pragma: no cover - part of the 'lab' extra
        raise ImportError("dashboards need ipywidgets and plotly: pip install 'cl_lab[lab]'") from e
    return w, go


Choice = tuple[str, dict[str, Any]]
MAX_STATIC_CHOICES = 40


class Dashboard:
    """Controls, figures and a ``render`` drawing the figures from the controls' values.

    ``choices`` lists (label, {control: value}) settings a static report offers in place of the
    widgets (``static_figures``): widgets need a live kernel, a plotly dropdown does not.
    """

    def __init__(self, controls: dict[str, Any], figures_: list, render: Callable[[], list],
                 choices: Callable[[], list[Choice]] | None = None):
        w, _ = _widgets()
        self.controls = controls
        self.figures = figures_
        self._render = render
        self._choices = choices
        self._quiet = False
        self.message = w.HTML()
        for c in controls.values():
            c.observe(lambda _change: self.update(), names="value")
        # the controls wrap onto a second row instead of running off a narrow window
        self.widget = w.VBox([w.HBox(list(controls.values()), layout=w.Layout(flex_flow="row wrap")), self.message,
                              *figures_])
        self.update()

    def update(self) -> None:
        """Redraw every figure from the current control values."""
        if self._quiet:  # static_figures is stepping through the choices: it renders them itself
            return
        try:
            new = self._render()
            self.message.value = ""
        except (ValueError, KeyError) as e:
            self.message.value = f"<b>nothing to show:</b> {e}"
            return
        for target, fig in zip(self.figures, new):
            with target.batch_update():
                target.data = ()
                target.add_traces(list(fig.data))
                target.layout = fig.layout

    def choices(self) -> list[Choice]:
        if self._choices is not None:
            return self._choices()[:MAX_STATIC_CHOICES]
        name, first = next(iter(self.controls.items()))
        return [(str(label), {name: value}) for label, value in _labelled(first.options)][:MAX_STATIC_CHOICES]

    def static_figures(self) -> list:
        """One plotly figure per figure slot holding every choice's traces, with a dropdown
        (``updatemenus``) that shows one choice at a time: the dashboard without a kernel.
        The controls are left as they were."""
        _, go = _widgets()
        saved = {k: c.value for k, c in self.controls.items()}
        rendered: list[tuple[str, list]] = []
        self._quiet = True
        try:
            for label, values in self.choices():
                for k, v in values.items():
                    self.controls[k].value = v
                try:
                    rendered.append((label, self._render()))
                except (ValueError, KeyError):
                    continue
        finally:
            for k, v in saved.items():
                self.controls[k].value = v
            self._quiet = False
        self.update()
        if not rendered:
            raise ValueError("no choice of this dashboard has anything to show")
        return [_with_dropdown(go, [(label, figs[slot]) for label, figs in rendered])
                for slot in range(len(rendered[0][1]))]

    def _ipython_display_(self) -> None:  # pragma: no cover - exercised in notebooks
        from IPython.display import display

        display(self.widget)


def _labelled(options) -> list[tuple[Any, Any]]:
    return [o if isinstance(o, tuple) else (o, o) for o in options]


LAYOUT_KEYS = ("title", "shapes", "annotations", "xaxis", "yaxis")


def _with_dropdown(go, figs: list[tuple[str, Any]]):
    """Every figure's traces in one figure, the first choice visible, and a dropdown switching
    traces and the layout parts that differ between choices (title, axes, shapes, annotations)."""
    combined = go.Figure(layout=figs[0][1].layout)
    spans, start = [], 0
    for k, (_, fig) in enumerate(figs):
        for trace in fig.data:
            trace = go.Figure(data=[trace]).data[0]
            trace.visible = k == 0
            combined.add_trace(trace)
        spans.append((start, start + len(fig.data)))
        start += len(fig.data)
    buttons = []
    for k, (label, fig) in enumerate(figs):
        visible = [spans[k][0] <= i < spans[k][1] for i in range(start)]
        layout = fig.layout.to_plotly_json()
        relayout = {key: layout.get(key, {} if key in ("title", "xaxis", "yaxis") else []) for key in LAYOUT_KEYS}
        buttons.append({"label": label, "method": "update", "args": [{"visible": visible}, relayout]})
    if len(figs) > 1:
        combined.update_layout(updatemenus=[{"buttons": buttons, "direction": "down", "x": 0, "xanchor": "left",
                                             "y": 1.18, "yanchor": "top", "showactive": True}],
                               margin={"t": 110})
    return combined


def _select(options, value=None, description="", multiple=False):
    w, _ = _widgets()
    options = list(options)
    if multiple:
        return w.SelectMultiple(options=options, value=tuple(value if value is not None else options),
                                description=description, rows=min(6, max(2, len(options))))
    if value is None and options:
        value = options[0][1] if isinstance(options[0], tuple) else options[0]
    return w.Dropdown(options=options, value=value, description=description)


def streams_main_first(df: pd.DataFrame) -> list[str]:
    """The streams of ``df``, the main comparison first: the stream with the most methods (a side sweep such
    as the trade-off's pair, the scratch comparison or a scenario sweep compares a few), then the longest,
    then the one with the most runs, then by name. What a dashboard and its static page open on."""
    runs = df.groupby("stream").run.nunique()
    methods = df.groupby("stream").method.nunique() if "method" in df else runs * 0
    col = next((c for c in ("task", "after_task", "eval_task") if c in df), None)
    tasks = df.groupby("stream")[col].nunique() if col else runs * 0
    return sorted(runs.index, key=lambda st: (-methods[st], -tasks[st], -runs[st], st))


def _filter(df: pd.DataFrame, stream, configs, seeds) -> pd.DataFrame:
    """Runs of ``stream`` whose configuration (method plus the settings that differ) and seed are selected."""
    return df[(df.stream == stream) & df.config.isin(list(configs)) & df.seed.isin(list(seeds))]


def task_accuracy_dashboard(root: str | Path) -> Dashboard:
    """Accuracy on a selectable task over the stream, one line per method, seeds as bands; runs made
    with ``eval_every`` add the task's accuracy at every evaluated step (the stability gap)."""
    from ..results import load, load_steps

    _, go = _widgets()
    acc = load(root)
    steps = load_steps(root)
    if acc.empty:
        raise FileNotFoundError(f"no runs with results under {str(root)!r}")
    streams = streams_main_first(acc)
    start = streams[0]
    first = acc[acc.stream == start]
    stream = _select(streams, value=start, description="stream")
    task = _select(_task_options(first), description="task")
    methods = _select(sorted(first.config.unique()), description="methods", multiple=True)
    seeds = _select(sorted(int(v) for v in first.seed.unique()), description="seeds", multiple=True)

    def on_stream(change):
        rows = acc[acc.stream == change["new"]]
        task.options = _task_options(rows)
        # the method and seed lists offer what this stream has, all selected
        configs, seed_values = sorted(rows.config.unique()), sorted(int(v) for v in rows.seed.unique())
        methods.options, methods.value = configs, tuple(configs)
        seeds.options, seeds.value = seed_values, tuple(seed_values)
    stream.observe(on_stream, names="value")

    def render():
        df = _filter(acc, stream.value, methods.value, seeds.value)
        return [figures.task_accuracy_over_time(df, task=task.value or 0, steps=steps if len(steps) else None)]

    def choices():
        return [(f"{st} · task {label}", {"stream": st, "task": t}) for st in streams
                for label, t in _task_options(acc[acc.stream == st])]

    return Dashboard({"stream": stream, "task": task, "methods": methods, "seeds": seeds}, [go.FigureWidget()], render,
                     choices)


def _task_options(df: pd.DataFrame) -> list[tuple[str, int]]:
    pairs = df[["task", "task_name"]].drop_duplicates().sort_values("task")
    return [(f"{t + 1}: {n}", int(t)) for t, n in zip(pairs.task, pairs.task_name)]


def cost_dashboard(root: str | Path, reference_pct: float = 0.6) -> Dashboard:
    """Storage per task vs final average accuracy (log scale, CLR's 0.6% line): everything stored
    (parameters, buffers, Fisher, statistics, ...) or, by the ``cost`` selector, parameters only."""
    from ..results import load_costs, load_metrics

    _, go = _widgets()
    costs, metrics = load_costs(root), load_metrics(root)
    if costs.empty or metrics.empty:
        raise FileNotFoundError(f"no runs with costs and metrics under {str(root)!r}")
    streams = streams_main_first(metrics)
    first = metrics[metrics.stream == streams[0]]
    stream = _select(streams, value=streams[0], description="stream")
    methods = _select(sorted(first.config.unique()), description="methods", multiple=True)
    seeds = _select(sorted(int(v) for v in first.seed.unique()), description="seeds", multiple=True)
    measure = _select([(label, key) for key, label in figures.COST_MEASURES.items()], value="stored",
                      description="cost")

    def on_stream(change):  # the method and seed lists offer what this stream has, all selected
        rows = metrics[metrics.stream == change["new"]]
        configs, seed_values = sorted(rows.config.unique()), sorted(int(v) for v in rows.seed.unique())
        methods.options, methods.value = configs, tuple(configs)
        seeds.options, seeds.value = seed_values, tuple(seed_values)
    stream.observe(on_stream, names="value")

    def render():
        c = _filter(costs, stream.value, methods.value, seeds.value)
        m = _filter(metrics, stream.value, methods.value, seeds.value)
        if c.empty:
            raise ValueError("no run matches the filters")
        return [figures.cost_vs_accuracy(c, m, reference_pct, measure=measure.value)]

    return Dashboard({"stream": stream, "methods": methods, "seeds": seeds, "cost": measure}, [go.FigureWidget()],
                     render)


def matrix_dashboard(root: str | Path) -> Dashboard:
    """The accuracy matrix of one run, chosen by stream, method and seed."""
    from ..results import accuracy_matrix, load_metrics, run_dirs, task_names

    _, go = _widgets()
    runs = {d.name: d for d in run_dirs(root)}
    metrics = load_metrics(root)
    if metrics.empty:
        raise FileNotFoundError(f"no runs with results under {str(root)!r}")
    order = {st: k for k, st in enumerate(streams_main_first(metrics))}
    index = metrics[["run", "stream", "config", "seed"]].drop_duplicates()
    index = index.assign(_o=index.stream.map(order)).sort_values(["_o", "config", "seed"]).drop(columns="_o")
    first = index.iloc[0]  # open on a run that exists; later selectors offer only what the earlier ones allow

    def configs(st):
        return sorted(index[index.stream == st].config.unique())

    def seeds_of(st, cf):
        return sorted(int(v) for v in index[(index.stream == st) & (index.config == cf)].seed.unique())

    stream = _select(list(order), value=first.stream, description="stream")
    method = _select(configs(first.stream), value=first.config, description="method")
    seed = _select(seeds_of(first.stream, first.config), value=int(first.seed), description="seed")

    def on_stream(change):
        method.options = configs(change["new"])

    def on_method(change):
        if change["new"] is not None:
            seed.options = seeds_of(stream.value, change["new"])

    stream.observe(on_stream, names="value")
    method.observe(on_method, names="value")

    def render():
        hit = index[(index.stream == stream.value) & (index.config == method.value) & (index.seed == seed.value)]
        if hit.empty:
            raise ValueError(f"no run of {method.value} on {stream.value} with seed {seed.value}")
        run_dir = runs[hit.run.iloc[0]]
        return [figures.accuracy_heatmap(accuracy_matrix(run_dir), task_names(run_dir),
                                         title=f"{method.value} on {stream.value}")]

    def choices():
        return [(f"{r.config} · {r.stream} · seed {int(r.seed)}",
                 {"stream": r.stream, "method": r.config, "seed": int(r.seed)}) for r in index.itertuples()]

    return Dashboard({"stream": stream, "method": method, "seed": seed}, [go.FigureWidget()], render, choices)


def path_dashboard(run_dir: str | Path) -> Dashboard:
    """MPNAS path similarity heatmap (domain selector), the chosen-paths diagram and the
    controllers' entropy over the search (setup selector); a setup whose search did not
    converge says so in its titles."""
    from ..results import load_mdl

    _, go = _widgets()
    r = load_mdl(run_dir)
    blocks = r["blocks"]
    setups = [s for s in r["summary"].setup if s in set(blocks.setup)]
    setup = _select(setups, value="mpnas" if "mpnas" in setups else None, description="setup")
    domain = _select([("(none)", None), *[(d, d) for d in r["config"]["domain_names"]]], description="domain")

    threshold = float(r["config"].get("convergence_threshold", 0.3))
    history = r["history"]

    def render():
        sim = figures.path_similarity(blocks, setup.value)
        failed = [w for w in r["not_converged"] if w.split("/", 1)[0] == setup.value]
        note = f" - NOT CONVERGED: {', '.join(w.split('/', 1)[1] for w in failed)}" if failed else ""
        out = [figures.jaccard_heatmap(sim, domain.value, title=f"path similarity ({setup.value}){note}"),
               figures.chosen_paths(blocks, setup.value)]
        if len(history) and setup.value in set(history.setup):
            out.append(figures.search_entropy(history, setup.value, threshold))
        else:
            out.append(go.Figure(layout={"title": f"no search history for {setup.value}"}))
        if note:
            out[1].update_layout(title=f"chosen paths ({setup.value}){note}")
        return out

    return Dashboard({"setup": setup, "domain": domain}, [go.FigureWidget() for _ in range(3)], render)
