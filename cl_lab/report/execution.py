"""Executing one notebook with papermill: parameters checked and filled, kernel start-up retried,
the notebook written under a hidden name until it ends, a failure reported as a result."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from ..config import ConfigError
from ..lab.display import STATIC_ENV
from ..lab.params import NOTEBOOKS, check, roles
from ..lab.runs import recorded_runs
from .html import to_html

NOTEBOOK_DIR = Path(__file__).resolve().parents[2] / "notebooks"


@dataclass
class Outcome:
    name: str
    params: dict[str, Any]
    ok: bool
    seconds: float
    html: str
    error: dict[str, Any] = field(default_factory=dict)


def notebook_path(name: str, notebook_dir: Path | None = None) -> Path:
    path = (notebook_dir or NOTEBOOK_DIR) / f"{name}.ipynb"
    if not path.exists():
        known = sorted(p.stem for p in (notebook_dir or NOTEBOOK_DIR).glob("*.ipynb"))
        raise FileNotFoundError(f"notebook {name!r} not found in {str(notebook_dir or NOTEBOOK_DIR)!r}; known: {known}")
    return path


def check_params(notebook: str, params: Mapping[str, Any]) -> None:
    """Reject unknown names, wrong types and impossible values before anything runs (papermill would
    only warn about names a notebook does not declare)."""
    if notebook not in NOTEBOOKS:
        raise ConfigError(f"unknown notebook {notebook!r}; allowed: {sorted(NOTEBOOKS)}")
    check(notebook, params)


def fill_roles(notebook: str, params: dict[str, Any], out: Path, read_sources: bool = True) -> dict[str, Any]:
    """Fill the parameters whose role ties them to the batch's directory: run directories go to
    ``out/runs``, a ``from:<notebook>`` parameter takes the last run that notebook recorded
    (read just before execution, so it is the run of this batch, never an older one)."""
    for name, role in roles(notebook).items():
        if role in ("runs_out", "runs_in"):
            params.setdefault(name, str(out / "runs"))
        elif role.startswith("from:") and not read_sources:
            params.setdefault(name, None)
        elif role.startswith("from:") and params.get(name) is None:
            source = out / f"{role[5:]}.ipynb"
            recorded = recorded_runs(source) if source.exists() else []
            params[name] = recorded[-1] if recorded else None
    return params


KERNEL_START_ATTEMPTS = 3
_START_FAILURES = ("address already in use", "kernel died before replying to kernel_info",
                   "kernel didn't respond", "timed out waiting for kernel")


def kernel_start_failed(exc: BaseException) -> bool:
    """True when the kernel never started (port clash, start-up timeout): worth one more try;
    an error raised by a notebook cell is not."""
    if getattr(exc, "ename", None):  # papermill's PapermillExecutionError: a cell raised
        return False
    text = f"{type(exc).__name__}: {exc}".lower()
    return any(m in text for m in _START_FAILURES)


def _failure(exc: BaseException, out_nb: Path) -> dict[str, Any]:
    """Which cell failed and with what, from papermill's error (or the output notebook)."""
    info: dict[str, Any] = {"error": f"{type(exc).__name__}: {exc}".strip()[:2000]}
    cell = getattr(exc, "exec_count", None) or getattr(exc, "cell_index", None)
    if getattr(exc, "ename", None):
        info["error"] = f"{exc.ename}: {exc.evalue}"[:2000]
    if cell is not None:
        info["cell"] = cell
    if out_nb.exists():
        import nbformat

        nb = nbformat.read(out_nb, as_version=4)
        for i, c in enumerate(nb.cells):
            if any(o.get("output_type") == "error" for o in c.get("outputs", [])):
                info["cell"] = i
                info["source"] = c.source[:400]
                break
    return info


RUNNING_SUFFIX = ".running.ipynb"


def running_path(out_nb: Path) -> Path:
    """Where a notebook is written while it executes."""
    return out_nb.with_name(f".{out_nb.stem}{RUNNING_SUFFIX}")


def clean_running(out: Path) -> list[Path]:
    """Remove half-run notebooks that a killed execution left in ``out``."""
    stale = sorted(out.glob(f".*{RUNNING_SUFFIX}"))
    for p in stale:
        p.unlink(missing_ok=True)
    return stale


class RunLines:
    """While a notebook executes, print a line for each run its kernel finishes (the runner appends them
    to the file named by ``CL_LAB_RUN_LOG``): long notebooks show progress instead of minutes of silence."""

    def __init__(self, path: Path, name: str, interval: float = 1.0):
        import threading

        from .._io import RUN_LOG_ENV

        self.path, self.name, self.interval = path, name, interval
        self.path.unlink(missing_ok=True)
        self.previous = os.environ.get(RUN_LOG_ENV)
        os.environ[RUN_LOG_ENV] = str(path)
        self.done, self.count, self.t0 = threading.Event(), 0, time.perf_counter()
        self.thread = threading.Thread(target=self._watch, daemon=True)
        self.thread.start()

    def _flush(self) -> None:
        try:
            lines = self.path.read_text().splitlines()
        except OSError:
            return
        for line in lines[self.count:]:
            print(f"    {self.name}: run {self.count + 1} done at {time.perf_counter() - self.t0:.0f} s: "
                  f"{line}", flush=True)
            self.count += 1

    def _watch(self) -> None:
        while not self.done.wait(self.interval):
            self._flush()

    def stop(self) -> None:
        from .._io import RUN_LOG_ENV

        self.done.set()
        self.thread.join()
        self._flush()
        self.path.unlink(missing_ok=True)
        if self.previous is None:
            os.environ.pop(RUN_LOG_ENV, None)
        else:
            os.environ[RUN_LOG_ENV] = self.previous


def execute(name: str, params: Mapping[str, Any], out_nb: Path, html_file: Path, *, cwd: Path,
            notebook_dir: Path | None = None, threads: int | None = None, progress_bar: bool = False) -> Outcome:
    """Execute one notebook with papermill (kernel ``python3``) and render it; never raises for notebook errors."""
    import papermill as pm

    env_before = {k: os.environ.get(k) for k in (STATIC_ENV, "OMP_NUM_THREADS")}
    os.environ[STATIC_ENV] = "1"
    if threads:
        os.environ["OMP_NUM_THREADS"] = str(threads)
    t0 = time.perf_counter()
    error: dict[str, Any] = {}
    # papermill writes the notebook cell by cell: into a hidden file, renamed when execution ends, so a
    # killed execution never leaves a half-run notebook under the report's name (cleaned on the next run)
    running = running_path(out_nb)
    watcher = None
    try:
        if progress_bar:  # a line per finished run: with the report set's progress, not for grid workers
            watcher = RunLines(out_nb.resolve().with_name(f".{out_nb.stem}.runs.log"), name)
        for attempt in range(1, KERNEL_START_ATTEMPTS + 1):
            try:
                pm.execute_notebook(str(notebook_path(name, notebook_dir)), str(running), parameters=dict(params),
                                    kernel_name="python3", cwd=str(cwd), progress_bar=progress_bar, log_output=False)
                break
            except Exception as e:  # a notebook's failure is a result to report, not a crash of the batch
                if attempt < KERNEL_START_ATTEMPTS and kernel_start_failed(e):
                    time.sleep(0.5 * attempt)  # e.g. two workers picked the same port: start a fresh kernel
                    continue
                error = _failure(e, running)
                break
        if running.exists():
            os.replace(running, out_nb)
    finally:
        if watcher is not None:
            watcher.stop()
        for k, v in env_before.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    seconds = time.perf_counter() - t0
    if out_nb.exists():
        try:
            to_html(out_nb, html_file)
        except Exception as e:  # rendering problems are reported with the run
            error = error or {"error": f"HTML export failed: {type(e).__name__}: {e}"}
    return Outcome(name, dict(params), not error, seconds, html_file.name if html_file.exists() else "", error)
