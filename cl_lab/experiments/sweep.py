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

The torch thread count of every point is set explicitly (default: ``cpus_per_point`` with
Ray, ``cpu_count // workers`` locally) and recorded in its ``config.json``: results differ
between thread counts.
"""

from __future__ import annotations

import itertools
import os
import time
from typing import Any, Sequence

EXECUTORS = ("local", "ray")


def _point(method: str, stream: str, seed: int, threads: int, kwargs: dict[str, Any]) -> dict[str, Any]:
    """One run; never raises (a failure is a row with its error)."""
    import torch

    torch.set_num_threads(threads)
    from ..train.runner import run

    t0 = time.perf_counter()
    row: dict[str, Any] = {"method": method, "stream": stream, "seed": seed, "threads": threads}
    try:
        r = run(method, stream, seed=seed, **kwargs)
        s = r.summary()
        row.update(ok=True, avg_accuracy=s["avg_accuracy"], forgetting=s["forgetting"], bwt=s["bwt"],
                   run_dir=str(r.run_dir), error="")
    except Exception as e:  # a failed point is reported, the others go on
        row.update(ok=False, avg_accuracy=float("nan"), forgetting=float("nan"), bwt=float("nan"), run_dir="",
                   error=f"{type(e).__name__}: {e}")
    row["seconds"] = time.perf_counter() - t0
    return row


def _check(methods: Sequence[str], seeds: Sequence[int], executor: str, workers: int, kwargs: dict[str, Any]) -> None:
    from ..config import ConfigError, build
    from ..methods import get_method
    from ..train.runner import RunConfig, split_kwargs

    if executor not in EXECUTORS:
        raise ConfigError(f"sweep: executor={executor!r} is not allowed; choose one of {list(EXECUTORS)}")
    if not methods or not seeds:
        raise ConfigError("sweep: give at least one method and one seed")
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ConfigError(f"sweep: workers must be an integer >= 1; got {workers!r}")
    if "seed" in kwargs or "run_name" in kwargs:
        raise ConfigError("sweep: give seeds=[...] and let each point name its run directory (no seed/run_name)")
    for m in methods:  # every point is validated before any runs
        cls = get_method(m)
        run_kw, method_kw = split_kwargs(cls, kwargs)
        for s in seeds:
            build(RunConfig, {**run_kw, "seed": s}, "run")
        build(cls.Config, method_kw, cls.name)


def sweep(methods: Sequence[str], stream: str, seeds: Sequence[int] = (0, 1, 2), *, executor: str = "local",
          workers: int = 1, threads: int | None = None, ray_address: str | None = None, cpus_per_point: int = 1,
          gpus_per_point: float = 0, **kwargs: Any):
    """Run every (method, seed) point; return a DataFrame with one row per run (see the module docstring)."""
    import pandas as pd

    methods, seeds = list(methods), list(seeds)
    kwargs.setdefault("progress", False)
    _check(methods, seeds, executor, workers, kwargs)
    t = threads or (cpus_per_point if executor == "ray" else _default_threads(workers))
    jobs = [(m, stream, s, t, kwargs) for m, s in itertools.product(methods, seeds)]
    if executor == "ray":
        rows = ray_map(_job, jobs, ray_address, cpus_per_point, gpus_per_point)
    elif workers == 1:
        rows = [_job(j) for j in jobs]
    else:
        import concurrent.futures as cf
        import multiprocessing

        with cf.ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
            rows = list(pool.map(_job, jobs))
    return pd.DataFrame(rows)


def _job(job: tuple) -> dict[str, Any]:
    return _point(*job)


def _default_threads(workers: int) -> int:
    return max(1, (os.cpu_count() or 1) // workers)


def ray_map(fn, jobs: Sequence[Any], address: str | None, cpus: int, gpus: float) -> list[Any]:
    """``[fn(job) for job in jobs]``, each call a Ray task with ``cpus`` CPUs and ``gpus`` GPUs.

    Connects to the cluster at ``address`` or starts a local Ray instance (shut down after)."""
    try:
        import ray
    except ImportError as e:
        from ..config import ConfigError

        raise ConfigError("executor='ray' needs Ray: pip install 'cl_lab[scale]'") from e
    started = not ray.is_initialized()
    if started:
        ray.init(address=address, include_dashboard=False, log_to_driver=False,
                 **({} if address else {"num_cpus": max(cpus, os.cpu_count() or 1)}))
    try:
        task = ray.remote(num_cpus=cpus, num_gpus=gpus, max_retries=0)(fn)
        return ray.get([task.remote(job) for job in jobs])
    finally:
        if started:
            ray.shutdown()


def summarise(rows) -> Any:
    """Mean, std and count of the final metrics per method over the runs that finished."""
    ok = rows[rows.ok]
    if ok.empty:
        return ok
    g = ok.groupby(["method", "stream"])[["avg_accuracy", "forgetting", "bwt"]]
    out = g.agg(["mean", "std", "count"])
    out.columns = [f"{a}_{b}" for a, b in out.columns]
    return out.reset_index()
