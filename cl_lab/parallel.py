"""One parallel executor for every batch of independent points: sweeps, report grids, MDL setups.

``run_points(fn, jobs, ...)`` returns ``[fn(job) for job in jobs]`` in order, computed

- in this process, one after another (``executor="local"``, ``workers=1``);
- in a pool of ``workers`` spawned processes (``executor="local"``);
- as Ray tasks with ``cpus_per_point`` CPUs and ``gpus_per_point`` GPUs, on a local Ray
  instance or the cluster at ``ray_address`` (``executor="ray"``, the extra ``cl_lab[scale]``).

Failures are rows, never the end of the batch: a point that raises becomes
``failed(job, message)``; a point whose worker process dies (killed, out of memory,
crashed) is run once more, alone in a fresh worker (a dead worker stops its pool's other
workers too, whose points are rerun the same way), and becomes a failed row if it dies
again, while the other points go on. On Ray, a worker's death is retried once by Ray itself
(``max_retries=1``, system failures only; an exception in the point is not retried).

Workers never outlive the process that started them: each local worker watches its
parent's pid and exits within a second of the parent's death (``kill -9`` included), so
no orphan keeps running points unsupervised. Bad executor settings (an unreachable Ray
address, GPUs asked for where there are none) are one-line errors before any point runs.
"""

from __future__ import annotations

import os
import threading
import time
from typing import Any, Callable, Sequence

from .config import ConfigError

EXECUTORS = ("local", "ray")
MAX_WORKERS = 256
WORKER_RETRIES = 1
"""How many times a point whose worker process died is run again before it becomes a failed row (locally:
alone in a fresh worker; on Ray: by Ray's ``max_retries``)."""
PARENT_POLL_SECONDS = 0.5
RAY_CONNECT_TIMEOUT = 5.0


class PointsFailed(RuntimeError):
    """Points of a batch that must all succeed (an MDL run's setups) failed; the others were kept."""


def check_executor(executor: str, workers: Any, where: str, *, ray_address: str | None = None,
                   cpus_per_point: Any = 1, gpus_per_point: Any = 0, threads: Any = None) -> None:
    """One-line errors for executor settings, before any point runs."""
    if executor not in EXECUTORS:
        raise ConfigError(f"{where}: executor={executor!r} is not allowed; choose one of {list(EXECUTORS)}")
    _count(workers, "workers", where, MAX_WORKERS)
    _count(cpus_per_point, "cpus_per_point", where, MAX_WORKERS)
    if threads is not None:
        _count(threads, "threads", where, MAX_WORKERS)
    if isinstance(gpus_per_point, bool) or not isinstance(gpus_per_point, (int, float)) or not 0 <= gpus_per_point <= 64:
        raise ConfigError(f"{where}: gpus_per_point={gpus_per_point!r} is not allowed; use a number between 0 and 64")
    if executor == "local" and gpus_per_point:
        raise ConfigError(f"{where}: gpus_per_point={gpus_per_point} needs executor='ray' (local workers use the "
                          "device each run asks for)")
    if executor == "ray":
        if ray_address not in (None, "auto"):
            _check_reachable(ray_address, where)
        if gpus_per_point and ray_address is None:
            _check_local_gpus(gpus_per_point, where)


def point_threads(executor: str, workers: int, cpus_per_point: int = 1, threads: int | None = None) -> int:
    """Torch threads of each point: ``threads`` if given, else a Ray point's CPUs, else this machine's
    cores divided among the local workers (recorded by every run: results differ between counts)."""
    if threads:
        return threads
    return cpus_per_point if executor == "ray" else max(1, (os.cpu_count() or 1) // workers)


def _count(value: Any, name: str, where: str, top: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= top:
        raise ConfigError(f"{where}: {name}={value!r} is not allowed; use an integer from 1 to {top}")


def _check_reachable(address: str, where: str) -> None:
    """A Ray address ``host:port`` answers a TCP connection within a few seconds (Ray itself
    would retry for minutes)."""
    import socket

    text = address.split("://", 1)[-1]
    host, _, port = text.rpartition(":")
    if not host or not port.isdigit():
        raise ConfigError(f"{where}: ray_address={address!r} is not allowed; use 'auto' or HOST:PORT")
    try:
        with socket.create_connection((host, int(port)), timeout=RAY_CONNECT_TIMEOUT):
            pass
    except OSError as e:
        raise ConfigError(f"{where}: no Ray cluster answers at {address!r} ({e.strerror or e}); start one "
                          "(ray start --head) or leave ray_address unset for a local instance") from None


def _check_local_gpus(gpus: float, where: str) -> None:
    import torch

    have = torch.cuda.device_count()
    if have < gpus:
        raise ConfigError(f"{where}: gpus_per_point={gpus} but this machine has {have} GPU(s); a point would wait "
                          "for a GPU forever. Use gpus_per_point=0 or a Ray cluster with GPUs (ray_address)")


# ----------------------------------------------------------------------------- local workers

def _watch_parent(parent: int) -> None:
    """Exit this worker as soon as ``parent`` is gone (its children are re-parented)."""
    while True:
        time.sleep(PARENT_POLL_SECONDS)
        if os.getppid() != parent:
            os._exit(1)


def _worker_init(parent: int, started: str) -> None:
    global _STARTED
    _STARTED = started
    threading.Thread(target=_watch_parent, args=(parent,), daemon=True, name="cl_lab-parent-watch").start()


_STARTED: str | None = None
"""A folder where each worker marks the points it started (a file per point: no lock a dying worker
could leave held, as a shared queue's would be)."""


def _call(fn: Callable[[Any], Any], index: int, job: Any) -> Any:
    if _STARTED is not None:
        open(os.path.join(_STARTED, str(index)), "w").close()
    return fn(job)


def _message(e: BaseException) -> str:
    return f"{type(e).__name__}: {e}".strip()


def run_points(fn: Callable[[Any], Any], jobs: Sequence[Any], *, failed: Callable[[Any, str], Any],
               executor: str = "local", workers: int = 1, ray_address: str | None = None, cpus_per_point: int = 1,
               gpus_per_point: float = 0, on_result: Callable[[Any], None] | None = None) -> list[Any]:
    """``[fn(job) for job in jobs]`` on the chosen executor; see the module docstring.

    ``fn`` must be importable by name (it runs in spawned processes); ``on_result`` is called
    with each result as it arrives (progress lines)."""
    jobs = list(jobs)
    done = on_result or (lambda _r: None)
    if executor == "ray":
        return _ray(fn, jobs, failed, done, ray_address, cpus_per_point, gpus_per_point)
    if workers == 1 or len(jobs) <= 1:
        out = []
        for job in jobs:
            try:
                r = fn(job)
            except Exception as e:  # a failed point is a row, the others go on
                r = failed(job, _message(e))
            done(r)
            out.append(r)
        return out
    return _pool(fn, jobs, failed, done, workers)


def _pool(fn, jobs: list[Any], failed, done, workers: int) -> list[Any]:
    import concurrent.futures as cf
    import multiprocessing
    import tempfile
    from concurrent.futures.process import BrokenProcessPool

    # spawn, not fork: the parent may hold threads and ZeroMQ sockets (earlier kernels) a fork must not copy
    ctx = multiprocessing.get_context("spawn")
    results: dict[int, Any] = {}

    def batch(indices: list[int], n_workers: int) -> tuple[list[int], set[int]]:
        """Run ``indices``; return the ones lost to a broken pool and the ones that had started."""
        lost: list[int] = []
        with tempfile.TemporaryDirectory(prefix="cl_lab-points-") as started:
            with cf.ProcessPoolExecutor(n_workers, mp_context=ctx, initializer=_worker_init,
                                        initargs=(os.getpid(), started)) as pool:
                futures = {pool.submit(_call, fn, i, jobs[i]): i for i in indices}
                for fut in cf.as_completed(futures):
                    i = futures[fut]
                    try:
                        results[i] = fut.result()
                    except BrokenProcessPool:
                        lost.append(i)
                        continue
                    except Exception as e:
                        results[i] = failed(jobs[i], _message(e))
                    done(results[i])
            return lost, {int(name) for name in os.listdir(started)}

    # a dead worker breaks the whole pool (its neighbours are stopped too): the points that were running
    # are run again, each alone in a worker of its own, so a point is failed only for a death of its own
    pending, suspects = list(range(len(jobs))), []
    while pending or suspects:
        if pending:
            lost, ran = batch(pending, min(workers, len(pending)))
            if lost and not ran:  # the workers died before starting any point (a job they cannot load): no retry
                for i in lost:
                    results[i] = failed(jobs[i], "WorkerDied: the worker processes died before starting any point "
                                                 "(a job that cannot be loaded in a spawned process, e.g. a class "
                                                 "defined in __main__ or a notebook?)")
                    done(results[i])
                lost = []
            pending = [i for i in lost if i not in ran]
            suspects += [i for i in lost if i in ran]
            continue
        i = suspects.pop(0)
        lost, _ran = batch([i], 1)
        if lost:
            results[i] = failed(jobs[i], "WorkerDied: the worker process running this point died twice (killed, "
                                         "out of memory or crashed), the second time alone")
            done(results[i])
    return [results[i] for i in range(len(jobs))]


# ----------------------------------------------------------------------------- Ray

def _ray(fn, jobs: list[Any], failed, done, address: str | None, cpus: int, gpus: float) -> list[Any]:
    try:
        import ray
    except ImportError as e:
        raise ConfigError("executor='ray' needs Ray: pip install 'cl_lab[scale]'") from e
    started = not ray.is_initialized()
    if started:
        ray.init(address=address, include_dashboard=False, log_to_driver=False,
                 **({} if address else {"num_cpus": max(cpus, os.cpu_count() or 1)}))
    try:
        if gpus and ray.cluster_resources().get("GPU", 0) < gpus:
            raise ConfigError(f"gpus_per_point={gpus} but the Ray cluster has {ray.cluster_resources().get('GPU', 0)} "
                              "GPU(s); a point would wait forever")
        # max_retries: a point whose worker dies is run once more; exceptions raised by fn are not retried
        task = ray.remote(num_cpus=cpus, num_gpus=gpus, max_retries=WORKER_RETRIES, retry_exceptions=False)(fn)
        refs = [task.remote(job) for job in jobs]
        out = []
        for job, ref in zip(jobs, refs):
            try:
                r = ray.get(ref)
            except Exception as e:  # WorkerCrashedError after the retry, or fn's own exception
                r = failed(job, _message(e))
            done(r)
            out.append(r)
        return out
    finally:
        if started:
            ray.shutdown()
