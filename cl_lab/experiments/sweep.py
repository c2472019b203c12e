"""Sweeps of plain runs: methods x seeds (x any runner or method setting), summarised as mean +/- std.

``sweep(["sgd", "clr"], "synth-10", seeds=[0, 1, 2], epochs=4)`` runs the cross product
and returns one row per run. Every point is an ordinary ``cl_lab.run`` into its usual run
directory, so a rerun skips the points that finished (the runner resumes a complete run
without training) and a failed point is a row with its error, not the end of the sweep.

Executors:

- ``"local"``: the points one after another in this process, or ``workers`` at a time in
  a process pool (spawned processes, each with ``threads`` torch threads);
- ``"ray"``: each point is a Ray task with ``cpus_per_point`` CPUs and ``gpus_per_point``
  GPUs, on a local Ray instance by default or on an existing cluster (``ray_address``,
  e.g. ``"auto"`` on a cluster node). Ray is the optional extra ``cl_lab[scale]``.

A point whose worker process dies (``kill -9``, out of memory) is run once more, then
becomes a failed row; workers exit with the process that started them (``cl_lab.parallel``).

The torch thread count of every point is set explicitly (default: ``cpus_per_point`` with
Ray, ``cpu_count // workers`` locally) and recorded in its ``config.json``: results differ
between thread counts.
"""

from __future__ import annotations

import itertools
import time
from typing import Any, Sequence

from ..parallel import EXECUTORS  # noqa: F401  (re-exported: the executors a sweep accepts)


def _point(plan: Any, threads: int) -> dict[str, Any]:
    """One prepared run; never raises (a failure is a row with its error)."""
    import torch

    torch.set_num_threads(threads)
    from ..train.runner import execute

    t0 = time.perf_counter()
    cfg = plan.config
    row: dict[str, Any] = {"method": plan.name, "stream": _stream_name(plan), "seed": cfg.seed,
                           "threads": threads}
    try:
        r = execute(plan)
        s = r.summary()
        costs = r.costs
        row.update(ok=True, avg_accuracy=s["avg_accuracy"], forgetting=s["forgetting"], bwt=s["bwt"],
                   stored_per_task_pct=float(costs.stored_pct.mean()),
                   extra_mb=float(costs.extra_bytes.iloc[-1]) / 1e6, run_dir=str(r.run_dir), error="",
                   variant=variant(r.config))
    except Exception as e:  # a failed point is reported, the others go on
        row.update(ok=False, avg_accuracy=float("nan"), forgetting=float("nan"), bwt=float("nan"),
                   stored_per_task_pct=float("nan"), extra_mb=float("nan"), run_dir="",
                   error=f"{type(e).__name__}: {e}", variant="")
    row["seconds"] = time.perf_counter() - t0
    return row


def _stream_name(plan: Any) -> str:
    """The stream's name, with ``[:n]`` when the run trains only its first n tasks."""
    name = plan.stream if isinstance(plan.stream, str) else getattr(plan.stream, "name", str(plan.stream))
    return name if plan.config.n_tasks is None else f"{name}[:{plan.config.n_tasks}]"


def plan_points(methods: Sequence[str], stream: Any, seeds: Sequence[int], kwargs: dict[str, Any]) -> list[Any]:
    """Every (method, seed) point prepared, so a bad value fails before any point runs."""
    from ..config import ConfigError
    from ..train.runner import prepare

    if not methods or not seeds:
        raise ConfigError("sweep: give at least one method and one seed")
    if "seed" in kwargs or "run_name" in kwargs:
        raise ConfigError("sweep: give seeds=[...] and let each point name its run directory (no seed/run_name)")
    return [prepare(m, stream, seed=s, **kwargs) for m, s in itertools.product(methods, seeds)]


def sweep(methods: Sequence[str], stream: str, seeds: Sequence[int] = (0, 1, 2), *, executor: str = "local",
          workers: int = 1, threads: int | None = None, ray_address: str | None = None, cpus_per_point: int = 1,
          gpus_per_point: float = 0, **kwargs: Any):
    """Run every (method, seed) point; return a DataFrame with one row per run (see the module docstring)."""
    import pandas as pd

    from ..parallel import check_executor, point_threads, run_points

    kwargs.setdefault("progress", False)
    check_executor(executor, workers, "sweep", ray_address=ray_address, cpus_per_point=cpus_per_point,
                   gpus_per_point=gpus_per_point, threads=threads)
    plans = plan_points(list(methods), stream, list(seeds), kwargs)
    t = point_threads(executor, workers, cpus_per_point, threads)
    rows = run_points(_job, [(p, t) for p in plans], failed=_failed_row, executor=executor, workers=workers,
                      ray_address=ray_address, cpus_per_point=cpus_per_point, gpus_per_point=gpus_per_point)
    return pd.DataFrame(rows)


def _job(job: tuple) -> dict[str, Any]:
    return _point(*job)


def _failed_row(job: tuple, error: str) -> dict[str, Any]:
    plan, threads = job
    return {"method": plan.name, "stream": _stream_name(plan), "seed": plan.config.seed, "threads": threads,
            "ok": False, "avg_accuracy": float("nan"), "forgetting": float("nan"), "bwt": float("nan"),
            "stored_per_task_pct": float("nan"), "extra_mb": float("nan"), "run_dir": "", "error": error,
            "variant": "", "seconds": float("nan")}


def variant(config: dict[str, Any]) -> str:
    """What separates two configurations of one method beyond its settings: the stream's content and
    the weights it started from (``stream hash/weights hash``, 8 hex digits each); seeds of one
    configuration share it, so a weights file replaced between seeds splits the sweep's summary."""
    stream = config.get("stream") or {}
    digest = stream.get("hash", "") if isinstance(stream, dict) else ""
    return f"{str(digest)[:8]}/{str(config.get('weights_sha256') or '-')[:8]}"


def summarise(rows) -> Any:
    """Mean, std and count of the final metrics per configuration over the runs that finished
    (runs from different stream contents or weights are never pooled: column ``variant``)."""
    ok = rows[rows.ok]
    if ok.empty:
        return ok
    g = ok.groupby(["method", "stream", "variant"])[["avg_accuracy", "forgetting", "bwt", "stored_per_task_pct",
                                                      "extra_mb"]]
    out = g.agg(["mean", "std", "count"])
    out.columns = [f"{a}_{b}" for a, b in out.columns]
    return out.reset_index()
