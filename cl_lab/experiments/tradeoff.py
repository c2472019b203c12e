"""The ResCL paper's fair comparison: sweep each method's knob over two tasks, trace the
source-accuracy / target-accuracy trade-off, and read off its two summary metrics.

Each sweep point is an ordinary run directory (tasks ``source`` then ``target`` of a
stream) under ``<out>/<name>/points/``; the curve is written to ``<out>/<name>/tradeoff.csv``
and the metrics to ``<out>/<name>/tradeoff_metrics.csv`` (see ``cl_lab.metrics``:
``max_average_accuracy`` and ``source_at_target``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

from .. import metrics as M
from .._io import atomic_write_text
from ..data.streams import load_stream
from ..data.task import TaskStream
from ..train.runner import run

DEFAULT_SWEEPS: dict[str, tuple[str, tuple[float, ...]]] = {
    "rescl": ("rescl_lambda", (0.0, 0.25, 0.5, 0.75, 1.0, 2.0)),
    "lwf": ("alpha", (0.0, 0.3, 1.0, 3.0, 10.0)),
    "sgd": ("lr", (0.001, 0.003, 0.01, 0.03)),
    "feature-extraction": ("lr", (0.003, 0.01, 0.03, 0.1)),
}
"""Each method's knob and values. Feature extraction after the source task (``freeze_after=1``: the
source task fine-tunes the whole network, as ResCL's does; the target task trains a head on the
frozen result, ``DEFAULT_METHOD_KWARGS``) is the obvious baseline of ResCL: at a large
``rescl_lambda`` the alphas reach 0 and ResCL *is* the source network with a new head."""
DEFAULT_METHOD_KWARGS: dict[str, dict[str, Any]] = {"feature-extraction": {"freeze_after": 1}}
NOT_REACHABLE = "not reachable"
"""How a read-off level above a method's front is shown (the metrics table holds NaN there)."""


def tradeoff(stream: str | TaskStream = "synth-10", source: int = 0, target: int = 1, *, out: str = "runs",
             name: str | None = None, sweeps: dict[str, tuple[str, Sequence[float]]] | None = None,
             desired_targets: Sequence[float] | None = None,
             method_kwargs: dict[str, dict[str, Any]] | None = None, **run_kwargs: Any):
    """Run every sweep point and return (curve DataFrame, metrics DataFrame).

    ``desired_targets``: the target accuracies at which the source accuracy is read; by
    default 50%, 75% and 100% of the highest target accuracy *any* method's sweep reaches
    (rounded to 0.01, never above it). A level above a method's front is NaN in the metrics
    table (``NOT_REACHABLE`` where shown): the region a method cannot reach stays visible.
    ``run_kwargs`` go to every run (runner settings such as ``epochs``);
    ``method_kwargs[method]`` to that method's runs only (on top of ``DEFAULT_METHOD_KWARGS``). ResCL's rows also carry the mean
    absolute alphas at the end of the combination phase (``alpha_history``), so the curve
    can be read next to how far the decay moved them.
    """
    import pandas as pd

    ts = load_stream(stream) if isinstance(stream, str) else stream
    for i in (source, target):
        if not 0 <= i < len(ts):
            raise ValueError(f"task index {i} out of range for stream {ts.name!r} with {len(ts)} tasks")
    if source == target:
        raise ValueError("source and target must be different tasks")
    pair = TaskStream(f"{ts.name}-{ts[source].name}-{ts[target].name}", [ts[source], ts[target]])
    root = Path(out) / (name or f"tradeoff_{pair.name}")
    rows = []
    for method, (knob, values) in (sweeps or DEFAULT_SWEEPS).items():
        for v in values:
            extra = {**DEFAULT_METHOD_KWARGS.get(method, {}), **(method_kwargs or {}).get(method, {})}
            r = run(method, pair, out=str(root / "points"), run_name=f"{method}_{knob}{v:g}", **{knob: v},
                    **run_kwargs, **extra)
            row = {"method": method, "knob": knob, "value": v, "source_acc": float(r.R[1, 0]),
                   "target_acc": float(r.R[1, 1]), "source_alone": float(r.R[0, 0])}
            last = r.costs.iloc[-1]
            for k in ("mean_abs_alpha_s", "mean_abs_alpha_t"):
                row[k] = float(last[k]) if k in last else float("nan")
            rows.append(row)
    curve = pd.DataFrame(rows)
    curve["average"] = (curve.source_acc + curve.target_acc) / 2
    if desired_targets is None:
        best = float(curve.target_acc.max())
        desired_targets = sorted({min(round(f * best, 2), best) for f in (0.5, 0.75, 1.0)})
    summary = []
    for method, g in curve.groupby("method", sort=False):
        row = {"method": method, "max_average_accuracy": M.max_average_accuracy(g.source_acc, g.target_acc)}
        for d in desired_targets:
            row[f"source_at_target_{d:g}"] = M.source_at_target(g.source_acc, g.target_acc, d)
        summary.append(row)
    table = pd.DataFrame(summary)
    atomic_write_text(root / "tradeoff.csv", curve.to_csv(index=False))
    atomic_write_text(root / "tradeoff_metrics.csv", table.to_csv(index=False))
    return curve, table


def shown(table):
    """The metrics table for reading: levels a method's front does not reach say so."""
    cols = [c for c in table.columns if c.startswith("source_at_target_")]
    out = table.copy().astype({c: object for c in cols})
    out[cols] = out[cols].where(table[cols].notna(), NOT_REACHABLE)
    return out
