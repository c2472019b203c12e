"""Plotly figures built only from results DataFrames (``cl_lab.results.load*``); they never train.

Each function takes tidy tables, returns a ``plotly.graph_objects.Figure`` and works in
static reports as well as in widgets.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np


def _go():
    try:
        import plotly.graph_objects as go
    except ImportError as e:  # pragma: no cover - plotly ships with the 'lab' extra
        raise ImportError("figures need plotly: pip install 'cl_lab[lab]'") from e
    return go


def accuracy_heatmap(R: np.ndarray, task_names: Sequence[str], title: str = "accuracy matrix"):
    """R[i, j] as a heatmap: rows = after training task i, columns = evaluated task j."""
    go = _go()
    R = np.asarray(R, dtype=float)
    names = list(task_names)
    text = [[("" if np.isnan(v) else f"{v:.2f}") for v in row] for row in R]
    # cells not yet evaluated are gaps (None): NaN is not valid JSON, which a widget's messages must be
    z = [[None if np.isnan(v) else float(v) for v in row] for row in R]
    fig = go.Figure(go.Heatmap(z=z, x=names[: R.shape[1]], y=names[: R.shape[0]], zmin=0, zmax=1,
                               colorscale="Viridis", text=text, texttemplate="%{text}",
                               hovertemplate="after %{y}<br>on %{x}: %{z:.3f}<extra></extra>"))
    fig.update_layout(title=title, xaxis_title="evaluated task", yaxis_title="after training",
                      yaxis_autorange="reversed")
    return fig


# 24 distinct colours (plotly's Dark24): every method of the suite gets its own; plotly's default
# cycle has 10, so 14 methods would share colours
PALETTE = ("#2E91E5", "#E15F99", "#1CA71C", "#FB0D0D", "#DA16FF", "#222A2A", "#B68100", "#750D86", "#EB663B",
           "#511CFB", "#00A08B", "#FB00D1", "#FC0080", "#B2828D", "#6C7C32", "#778AAE", "#862A16", "#A777F1",
           "#620042", "#1616A7", "#DA60CA", "#6C4516", "#0D2A63", "#AF0038")
DASHES = ("solid", "dash", "dot", "dashdot", "longdash", "longdashdot")


SYMBOLS = ("circle", "diamond", "square", "triangle-up", "star", "hexagon", "cross", "triangle-down")


def line_styles(labels: Sequence[str]) -> dict[str, dict]:
    """A colour per method (the label's first word) and, for several configurations of one method, a
    dash per configuration; a marker symbol per label on top, so that two methods whose colours are
    close still differ in shape: ``{label: {"color", "dash", "symbol"}}``, stable for a given set of labels."""
    labels = sorted(set(labels))
    methods = sorted({str(lb).split(" ", 1)[0] for lb in labels})
    seen: dict[str, int] = {}
    out = {}
    for lb in labels:
        m = str(lb).split(" ", 1)[0]
        k = seen.get(m, 0)
        seen[m] = k + 1
        i = methods.index(m)
        out[lb] = {"color": PALETTE[i % len(PALETTE)], "dash": DASHES[k % len(DASHES)],
                   "symbol": SYMBOLS[(i + k) % len(SYMBOLS)]}
    return out


def _rgba(hex_colour: str, alpha: float) -> str:
    r, g, b = (int(hex_colour[i:i + 2], 16) for i in (1, 3, 5))
    return f"rgba({r},{g},{b},{alpha})"


def _line_key(df) -> str:
    """Lines are configurations (``results.load``'s ``config``: method plus differing settings), so
    runs that differ in more than their seed are never pooled; plain tables fall back to ``method``."""
    return "config" if "config" in df.columns else "method"


def task_accuracy_over_time(acc, task: int = 0, methods: Sequence[str] | None = None, stream: str | None = None,
                            chance: float | None = None, steps=None):
    """Accuracy on one task after each later task, a line per configuration; the seeds of a configuration
    give a mean and a +/- 1 std band. A dotted line marks chance: ``chance``, or 1 / the task's class
    count when the rows carry ``classes`` (``results.load`` adds it).

    ``steps`` (``results.load_steps``: runs made with ``eval_every``) adds the same task's accuracy at
    step resolution as a thin line per configuration (mean over seeds), step s of task i drawn at
    i + s / (task i's steps), so it ends on each task's marker: the dip when a new task starts and
    the partial recovery after it (the stability gap, De Lange et al., ICLR 2023)."""
    go = _go()
    df = acc[acc.task == task]
    if stream is not None:
        df = df[df.stream == stream]
    if methods is not None:
        df = df[df.method.isin(list(methods))]
    fine = _step_rows(steps, task, stream, methods, df)
    fig = go.Figure()
    key = _line_key(df)
    styles = line_styles(df[key].unique()) if len(df) else {}
    for method, g in df.groupby(key, sort=True):
        style = styles[method]
        stats = g.groupby("after_task").accuracy.agg(["mean", "std", "count"]).reset_index()
        x = stats.after_task.to_numpy() + 1
        mean = stats["mean"].to_numpy()
        if (stats["count"] > 1).any():
            std = stats["std"].fillna(0).to_numpy()
            fig.add_trace(go.Scatter(x=np.concatenate([x, x[::-1]]), y=np.concatenate([mean + std, (mean - std)[::-1]]),
                                     fill="toself", fillcolor=_rgba(style["color"], 0.15), line={"width": 0},
                                     showlegend=False, hoverinfo="skip", name=f"{method} band"))
        fig.add_trace(go.Scatter(x=x, y=mean, mode="lines+markers", name=method,
                                 line={"color": style["color"], "dash": style["dash"]},
                                 marker={"color": style["color"], "symbol": style["symbol"], "size": 8}))
        f = fine[fine[key] == method] if fine is not None and key in fine else None
        if f is not None and len(f):
            per_step = f.groupby(["task", "step", "x"]).accuracy.mean().reset_index().sort_values(["task", "step"])
            fig.add_trace(go.Scatter(x=per_step.x, y=per_step.accuracy, mode="lines", name=f"{method}, every step",
                                     line={"color": style["color"], "width": 1}, opacity=0.7, legendgroup=method,
                                     hovertemplate="task %{customdata[0]}, step %{customdata[1]}: %{y:.3f}",
                                     customdata=np.stack([per_step.task + 1, per_step.step], 1)))
    name = df.task_name.iloc[0] if len(df) else f"task {task + 1}"
    class_il = len(df) and "scenario" in df and (df.scenario == "class").all()
    if chance is None and class_il and "classes" in acc:  # chance falls as classes are added: 1 / classes seen
        per_task = acc[acc.stream.isin(df.stream.unique())].groupby("task").classes.first().sort_index()
        seen = per_task.cumsum().to_numpy(dtype=float)
        x0 = 0 if fine is not None and len(fine) else 1  # while task k trains (k-1 < x <= k): 1 / its classes seen
        y = 1.0 / np.concatenate([seen[:1], seen])[x0:]
        fig.add_trace(go.Scatter(x=np.arange(x0, len(seen) + 1), y=y, mode="lines", name="chance (classes seen)",
                                 line={"color": "grey", "dash": "dot", "shape": "vh"}))
    elif chance is None and len(df) and "classes" in df and df.classes.nunique() == 1:
        chance = 1.0 / float(df.classes.iloc[0])
    if chance is not None:
        fig.add_hline(y=chance, line_dash="dot", line_color="grey", annotation_text=f"chance {chance:.2f}",
                      annotation_position="bottom right")
    fig.update_xaxes(dtick=1)  # whole tasks only
    fig.update_layout(title=f"accuracy on {name} as later tasks are learnt", xaxis_title="tasks trained",
                      yaxis_title="test accuracy", yaxis_range=[0, 1])
    return fig


def _step_rows(steps, task: int, stream: str | None, methods: Sequence[str] | None, acc):
    """The step-resolution rows of ``task`` with their x position (trained task + step / its steps), or None."""
    if steps is None or not len(steps):
        return None
    f = steps[steps.eval_task == task]
    if stream is not None:
        f = f[f.stream == stream]
    if methods is not None:
        f = f[f.method.isin(list(methods))]
    if len(acc) and "run" in acc and "run" in f:
        f = f[f.run.isin(acc.run.unique())]  # the runs the figure draws (its seeds, its filters)
    f = f.copy()
    if len(acc) and "run" in acc and "config" in acc:  # the figure's labels: a run's configuration among those drawn
        f["config"] = f.run.map(acc.groupby("run").config.first())
    f["x"] = f.task + f.step / f.groupby(["run", "task"]).step.transform("max").clip(lower=1)
    return f


def log_ticks(lo: float, hi: float) -> list[float]:
    """Tick values at 1, 2 and 5 times the powers of ten that cover ``[lo, hi]``."""
    out = []
    for e in range(int(np.floor(np.log10(lo))), int(np.ceil(np.log10(hi))) + 1):
        out += [m * 10.0 ** e for m in (1, 2, 5)]
    keep = [t for t in out if lo / 2.5 <= t <= hi * 2.5]
    return [float(f"{t:.6g}") for t in keep]


COST_MEASURES = {"stored": "everything stored", "params": "parameters only"}


def final_chance(costs) -> float | None:
    """Chance level of the final average accuracy of the runs in ``costs`` (which carry each task's
    ``classes``): the mean of 1 / classes over the tasks (task and domain scenarios), 1 / all classes in
    the class scenario; None when the runs' streams or scenarios have different chance levels."""
    if "classes" not in costs or costs.empty:
        return None
    levels = set()
    for _, g in costs.groupby("run"):
        per_task = g.sort_values("task").drop_duplicates("task").classes.astype(float)
        scenario = g.scenario.iloc[0] if "scenario" in g else "task"
        levels.add(round(1.0 / per_task.sum() if scenario == "class" else float((1.0 / per_task).mean()), 6))
    return levels.pop() if len(levels) == 1 else None


def cost_vs_accuracy(costs, metrics, reference_pct: float | None = 0.6, measure: str = "stored"):
    """Storage per task (% of the backbone, log scale) vs final average accuracy, one point per run.

    ``measure="stored"``: everything a method stores beyond the backbone (parameters, replay
    buffers, Fisher and anchors, BN statistics, masks, kept data: ``results.with_storage``),
    averaged over tasks; the hover splits it into parameters and other state. ``"params"``:
    parameters only (``task_params_pct``), labelled as such."""
    from ..results import with_storage

    if measure not in COST_MEASURES:
        raise ValueError(f"measure={measure!r} is not allowed; use one of {list(COST_MEASURES)}")
    go = _go()
    key = _line_key(costs)
    costs = with_storage(costs) if "stored_pct" not in costs and "extra_bytes" in costs else costs
    col = "stored_pct" if measure == "stored" else "task_params_pct"
    if col not in costs:
        raise ValueError(f"cost records lack {col!r} (need task_params, extra_bytes, backbone_params)")
    agg = {"x": (col, "mean")}
    if {"params_bytes", "state_bytes"} <= set(costs.columns):
        agg |= {"params_kb": ("params_bytes", "mean"), "state_kb": ("state_bytes", "mean")}
    per_run = costs.groupby(["run", key]).agg(**agg).reset_index()
    final = metrics.sort_values("after_task").groupby("run").tail(1)[["run", "avg_accuracy"]]
    df = per_run.merge(final, on="run")
    # markers that would hide each other (within about a marker's width) name each other in their hover
    cell = list(zip(np.round(np.log10(df.x.clip(lower=1e-9)) * 20), np.round(df.avg_accuracy * 50)))
    df["also"] = [", ".join(sorted({str(o) for o, c2 in zip(df[key], cell) if c2 == c and o != k})) for k, c in
                  zip(df[key], cell)]
    fig = go.Figure()
    styles = line_styles(df[key].unique()) if len(df) else {}
    what = "stored" if measure == "stored" else "parameters"
    for method, g in df.groupby(key, sort=True):
        also = ["" if not a else f"<br>also here: {a}" for a in g.also]
        if "params_kb" in g:  # rows of (number, number, text): a list keeps the numbers numbers
            custom = [list(r) for r in zip((g.params_kb / 1e3).tolist(), (g.state_kb / 1e3).tolist(), also)]
            extra = ("<br>per task: parameters %{customdata[0]:.1f} KB + other state %{customdata[1]:.1f} KB"
                     "<br>avg acc %{y:.3f}%{customdata[2]}")
        else:
            custom, extra = [[a] for a in also], "<br>avg acc %{y:.3f}%{customdata[0]}"
        fig.add_trace(go.Scatter(x=g.x, y=g.avg_accuracy, mode="markers", name=method,
                                 marker={"size": 12, "color": styles[method]["color"],
                                         "symbol": styles[method]["symbol"]}, text=g.run, customdata=custom,
                                 hovertemplate="%{text}<br>%{x:.3g}% " + what + " per task" + extra
                                               + "<extra></extra>"))
    if reference_pct is not None:
        # on a log axis plotly places a vline's own annotation at the raw value, far from the line:
        # the label is an annotation of its own, at log10 of the value
        fig.add_vline(x=reference_pct, line_dash="dash")
        fig.add_annotation(x=float(np.log10(reference_pct)), y=1, yref="paper", text=f"{reference_pct}% (CLR paper)",
                           showarrow=False, xanchor="left", yanchor="bottom")
    chance = final_chance(costs)
    if chance is not None:
        fig.add_hline(y=chance, line_dash="dot", line_color="grey", annotation_text=f"chance {chance:.2f}",
                      annotation_position="bottom right")
    if measure == "stored":
        title, axis = "everything stored per task vs average accuracy", "stored per task (% of the backbone's bytes)"
    else:
        title, axis = "parameters stored per task (parameters only) vs average accuracy", \
            "stored parameters per task (parameters only, % of backbone)"
    # tall enough for every legend entry: a legend that scrolls hides methods
    fig.update_layout(title=title, xaxis_type="log", xaxis_title=axis, yaxis_title="final average accuracy",
                      height=max(450, 160 + 30 * len(fig.data)))
    # ticks at 1-2-5 steps labelled as whole numbers (plotly's default labels minor ticks "4 5 ... 9 1 2")
    xs = [*df.x.tolist(), *([reference_pct] if reference_pct is not None else [])]
    ticks = log_ticks(min(xs), max(xs)) if xs and min(xs) > 0 else []
    if ticks:
        fig.update_xaxes(tickvals=ticks, ticktext=[f"{t:g}" for t in ticks])
    return fig


def jaccard_heatmap(matrix, domain: str | None = None, title: str = "path similarity (Jaccard)"):
    """Domain x domain Jaccard similarity of chosen paths; ``domain`` outlines that domain's row and column."""
    go = _go()
    names = [str(n) for n in matrix.index]
    z = np.asarray(matrix.values, dtype=float)
    fig = go.Figure(go.Heatmap(z=z, x=names, y=names, zmin=0, zmax=1, colorscale="Blues",
                               text=[[f"{v:.2f}" for v in row] for row in z], texttemplate="%{text}",
                               hovertemplate="%{y} / %{x}: %{z:.2f}<extra></extra>"))
    if domain is not None:
        if domain not in names:
            raise ValueError(f"unknown domain {domain!r}; allowed: {names}")
        i = names.index(domain)
        for kw in ({"x0": -0.5, "x1": len(names) - 0.5, "y0": i - 0.5, "y1": i + 0.5},
                   {"x0": i - 0.5, "x1": i + 0.5, "y0": -0.5, "y1": len(names) - 0.5}):
            fig.add_shape(type="rect", line={"color": "crimson", "width": 3}, **kw)
    fig.update_layout(title=title if domain is None else f"{title}: {domain}", yaxis_autorange="reversed")
    return fig


def chosen_paths(blocks, setup: str = "mpnas", domains: Sequence[str] | None = None):
    """The chosen paths as a layer x block grid: a marker per domain using each block (zero = skipped layer)."""
    go = _go()
    df = blocks[blocks.setup == setup]
    if df.empty:
        raise ValueError(f"no paths for setup {setup!r}; allowed: {sorted(blocks.setup.unique())}")
    if domains is not None:
        df = df[df.domain.isin(list(domains))]
    all_domains = sorted(blocks[blocks.setup == setup].domain.unique())
    layers = list(dict.fromkeys(blocks.sort_values("layer_index").layer))
    block_names = sorted(blocks.block.unique(), key=lambda b: (b == "zero", b))
    fig = go.Figure()
    n = max(1, len(all_domains))
    for dom, g in df.groupby("domain", sort=True):
        offset = (all_domains.index(dom) - (n - 1) / 2) * 0.6 / n
        g = g.sort_values("layer_index")
        fig.add_trace(go.Scatter(x=[layers.index(v) + offset for v in g.layer], y=g.block, mode="lines+markers",
                                 name=dom, marker={"size": 11}, line={"width": 1.5},
                                 hovertemplate=dom + "<br>%{y}<extra></extra>"))
    fig.update_layout(title=f"chosen paths ({setup})", xaxis={"tickvals": list(range(len(layers))), "ticktext": layers,
                      "title": "layer"}, yaxis={"categoryorder": "array", "categoryarray": block_names, "title": "block"})
    return fig


def search_entropy(history, setup: str = "mpnas", threshold: float = 0.3):
    """Controller entropy over search steps, a line per domain (per controller), as a fraction of
    its starting (uniform) entropy; the dashed line is the convergence threshold. A search
    whose line ends above it has not converged: its path is close to a random draw."""
    go = _go()
    df = history[history.setup == setup] if len(history) else history
    if df.empty:
        allowed = sorted(history.setup.unique()) if len(history) else []
        raise ValueError(f"no search history for setup {setup!r}; allowed: {allowed}")
    fig = go.Figure()
    for dom, g in df.groupby("domain", sort=False):
        start = float(g.entropy_start.iloc[0])
        fig.add_trace(go.Scatter(x=g.step, y=g.entropy / start, mode="lines", name=str(dom),
                                 hovertemplate=f"{dom}<br>step %{{x}}<br>entropy %{{y:.0%}} of start<extra></extra>"))
    fig.add_hline(y=threshold, line={"dash": "dash", "color": "grey"},
                  annotation_text=f"converged below {threshold:.0%}", annotation_position="top right")
    fig.update_layout(title=f"controller entropy during the search ({setup})", xaxis_title="search step",
                      yaxis={"title": "entropy / starting entropy", "tickformat": ".0%", "range": [0, 1.05]})
    return fig


def mdl_comparison(summary, chance: float | None = None):
    """Mean accuracy vs unique parameters per MDL setup (marker size: mean MACs per domain path);
    ``chance``: the domains' mean chance level, drawn as a dotted line."""
    go = _go()
    df = summary.copy()
    size = 12 + 28 * df.mean_macs / max(1.0, float(df.mean_macs.max()))
    fig = go.Figure(go.Scatter(x=df.unique_params, y=df.mean_accuracy, mode="markers+text", text=df.setup,
                               textposition="top center", marker={"size": size},
                               customdata=df.mean_macs,
                               hovertemplate="%{text}<br>%{x:,} parameters<br>mean acc %{y:.3f}"
                                             "<br>%{customdata:,.0f} MACs<extra></extra>"))
    if chance is not None:
        fig.add_hline(y=chance, line_dash="dot", line_color="grey", annotation_text=f"chance {chance:.2f}",
                      annotation_position="bottom right")
    fig.update_layout(title="multi-domain setups: size vs mean accuracy", xaxis_type="log",
                      xaxis_title="unique parameters", yaxis_title="mean test accuracy")
    return fig


def path_similarity(blocks, setup: str = "mpnas"):
    """Jaccard matrix (domain x domain) of the non-zero blocks each domain's path uses, from ``blocks.csv``."""
    from ..metrics import jaccard_matrix

    df = blocks[(blocks.setup == setup) & (blocks.block != "zero")]
    if df.empty:
        raise ValueError(f"no paths for setup {setup!r}; allowed: {sorted(blocks.setup.unique())}")
    sets = {d: set(zip(g.layer_index, g.block)) for d, g in df.groupby("domain", sort=False)}
    names = list(dict.fromkeys(blocks[blocks.setup == setup].domain))
    return jaccard_matrix({d: sets.get(d, set()) for d in names})


IMAGE_FORMATS = ("png", "svg", "pdf", "jpeg", "webp")


def export(fig: Any, path: str | Path, *, scale: float = 2.0) -> Path:
    """Write ``fig`` as a static image for slides and papers (format from the suffix: png, svg, pdf, ...).

    Plotly's exporter, kaleido (in the ``lab`` extra), drives a headless Chrome or Chromium: the
    system's (``apt-get install chromium``) or one installed with ``plotly_get_chrome``. Anything
    missing is a one-line error saying what to install."""
    path = Path(path)
    fmt = path.suffix.lstrip(".").lower()
    if fmt not in IMAGE_FORMATS:
        raise ValueError(f"export: {str(path)!r} has no image suffix; use one of {list(IMAGE_FORMATS)}")
    try:
        import kaleido  # noqa: F401
    except ImportError:
        raise RuntimeError("export: static images need kaleido: pip install 'cl_lab[lab]' (or pip install kaleido)") \
            from None
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fig.write_image(str(path), format=fmt, scale=scale)
    except Exception as e:
        if "chrome" in str(e).lower() or "browser" in str(e).lower():
            raise RuntimeError("export: kaleido found no Chrome or Chromium; install one (apt-get install chromium, "
                               "or run plotly_get_chrome once)") from None
        raise
    return path
