"""Plotly figures built only from results DataFrames (``cl_lab.results.load*``); they never train.

Each function takes tidy tables, returns a ``plotly.graph_objects.Figure`` and works in
static reports as well as in widgets.
"""

from __future__ import annotations

from typing import Sequence

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
    fig = go.Figure(go.Heatmap(z=R, x=names[: R.shape[1]], y=names[: R.shape[0]], zmin=0, zmax=1,
                               colorscale="Viridis", text=text, texttemplate="%{text}",
                               hovertemplate="after %{y}<br>on %{x}: %{z:.3f}<extra></extra>"))
    fig.update_layout(title=title, xaxis_title="evaluated task", yaxis_title="after training",
                      yaxis_autorange="reversed")
    return fig


def task_accuracy_over_time(acc, task: int = 0, methods: Sequence[str] | None = None, stream: str | None = None):
    """Accuracy on one task after each later task, a line per method; seeds give a mean and a +/- 1 std band."""
    go = _go()
    df = acc[acc.task == task]
    if stream is not None:
        df = df[df.stream == stream]
    if methods is not None:
        df = df[df.method.isin(list(methods))]
    fig = go.Figure()
    for method, g in df.groupby("method", sort=True):
        stats = g.groupby("after_task").accuracy.agg(["mean", "std", "count"]).reset_index()
        x = stats.after_task.to_numpy() + 1
        mean = stats["mean"].to_numpy()
        if (stats["count"] > 1).any():
            std = stats["std"].fillna(0).to_numpy()
            fig.add_trace(go.Scatter(x=np.concatenate([x, x[::-1]]), y=np.concatenate([mean + std, (mean - std)[::-1]]),
                                     fill="toself", opacity=0.2, line={"width": 0}, showlegend=False,
                                     hoverinfo="skip", name=f"{method} band"))
        fig.add_trace(go.Scatter(x=x, y=mean, mode="lines+markers", name=method))
    name = df.task_name.iloc[0] if len(df) else f"task {task + 1}"
    fig.update_layout(title=f"accuracy on {name} as later tasks are learnt", xaxis_title="tasks trained",
                      yaxis_title="test accuracy", yaxis_range=[0, 1])
    return fig


def cost_vs_accuracy(costs, metrics, reference_pct: float | None = 0.6):
    """Stored parameters per task (% of backbone, log scale) vs final average accuracy, one point per run."""
    go = _go()
    per_run = costs.groupby(["run", "method"]).task_params_pct.mean().reset_index()
    final = metrics.sort_values("after_task").groupby("run").tail(1)[["run", "avg_accuracy"]]
    df = per_run.merge(final, on="run")
    fig = go.Figure()
    for method, g in df.groupby("method", sort=True):
        fig.add_trace(go.Scatter(x=g.task_params_pct, y=g.avg_accuracy, mode="markers", name=method,
                                 marker={"size": 12}, text=g.run,
                                 hovertemplate="%{text}<br>%{x:.3g}% per task<br>avg acc %{y:.3f}<extra></extra>"))
    if reference_pct is not None:
        fig.add_vline(x=reference_pct, line_dash="dash", annotation_text=f"{reference_pct}% (CLR paper)")
    fig.update_layout(title="parameters stored per task vs average accuracy", xaxis_type="log",
                      xaxis_title="stored parameters per task (% of backbone)", yaxis_title="final average accuracy")
    return fig
