"""Batch reports: execute the notebooks with papermill and render each to HTML, offline.

``run_report_set(out)`` executes the numbered notebooks in order on the embedded offline
default, writes ``<out>/<notebook>.ipynb`` and ``<out>/<notebook>.html`` and an
``index.html`` linking them. ``run_grid(grid_file, out)`` executes one notebook over a
parameter grid (e.g. methods x seeds x streams) in a local process pool, writes one HTML
per grid point and ``summary.html`` with the mean and spread across seeds. A failed
notebook is reported (its parameters, the failing cell and the error) and does not stop
the others; rerunning skips the points that finished.

Figures render offline: notebooks run with ``CL_LAB_STATIC=1``, so ``cl_lab.lab.show``
emits static plotly HTML that loads ``plotly.min.js``, written once next to the reports.
"""

from __future__ import annotations

import html
import itertools
import json
import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

from ._io import atomic_write_text
from .config import ConfigError
from .lab.display import PLOTLY_JS, STATIC_ENV
from .lab.params import NOTEBOOKS, check, roles
from .lab.runs import recorded_runs

NOTEBOOK_DIR = Path(__file__).resolve().parents[1] / "notebooks"

# The report set: every notebook in order, with the settings its parameter class declares in
# ``REPORT`` (sized so the whole set runs in well under 15 minutes on 2 CPU cores).
REPORT_SET: dict[str, dict[str, Any]] = {name: dict(cls.REPORT) for name, cls in sorted(NOTEBOOKS.items())}
MAX_GRID_POINTS = 10_000


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


def write_plotly_js(out: Path) -> Path:
    """plotly.js, once, next to the HTML reports (what the static figures load)."""
    from plotly.offline import get_plotlyjs

    path = out / PLOTLY_JS
    if not path.exists():
        atomic_write_text(path, get_plotlyjs())
    return path


def to_html(notebook_file: Path, html_file: Path) -> None:
    import nbformat
    from nbconvert import HTMLExporter

    nb = nbformat.read(notebook_file, as_version=4)
    # static reports show figures, not widgets: the saved widget state (each plotly FigureWidget
    # carries its own 5 MB of JavaScript) and the widget manager it would fetch are left out
    nb.metadata.pop("widgets", None)
    body, _ = HTMLExporter(template_name="lab").from_notebook_node(nb)
    # the template loads require.js from a CDN; with it present plotly.js registers as an AMD
    # module instead of ``window.Plotly`` and the static figures would not draw when online
    body = re.sub(r'<script[^>]*require(\.min)?\.js[^>]*>\s*</script>', "", body)
    body = offline(body)
    atomic_write_text(html_file, body)


def offline(body: str) -> str:
    """Drop what the page would fetch from the network: scripts with a remote ``src`` (MathJax,
    the widget managers) and remote ES-module imports (mermaid). No report uses them: figures
    are static plotly, loaded from ``plotly.min.js`` next to the page."""
    body = re.sub(r'<script[^>]*\ssrc="https?://[^"]*"[^>]*>\s*</script>', "", body)
    return re.sub(r'<script type="module">(?:(?!</script>).)*?https?://(?:(?!</script>).)*</script>', "", body,
                  flags=re.S)


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


def execute(name: str, params: Mapping[str, Any], out_nb: Path, html_file: Path, *, cwd: Path,
            notebook_dir: Path | None = None, threads: int | None = None) -> Outcome:
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
    try:
        for attempt in range(1, KERNEL_START_ATTEMPTS + 1):
            try:
                pm.execute_notebook(str(notebook_path(name, notebook_dir)), str(running), parameters=dict(params),
                                    kernel_name="python3", cwd=str(cwd), progress_bar=False, log_output=False)
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


def _page(title: str, body: str) -> str:
    style = ("body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em}"
             "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:4px 8px;text-align:left}"
             ".fail{color:#b00020}.ok{color:#1b5e20}pre{white-space:pre-wrap;background:#f6f6f6;padding:6px}")
    return (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            f"<style>{style}</style></head><body><h1>{html.escape(title)}</h1>{body}</body></html>")


def _outcome_rows(outcomes: Sequence[Outcome]) -> str:
    rows = []
    for o in outcomes:
        status = "<span class='ok'>ok</span>" if o.ok else "<span class='fail'>failed</span>"
        link = f"<a href='{html.escape(o.html)}'>{html.escape(o.name)}</a>" if o.html else html.escape(o.name)
        err = ""
        if not o.ok:
            err = (f"cell {o.error.get('cell', '?')}: <pre>{html.escape(str(o.error.get('error', '')))}</pre>")
        params = html.escape(json.dumps(o.params))
        rows.append(f"<tr><td>{link}</td><td>{status}</td><td>{o.seconds:.0f} s</td><td><code>{params}</code></td>"
                    f"<td>{err}</td></tr>")
    return ("<table><tr><th>report</th><th>status</th><th>time</th><th>parameters</th><th>error</th></tr>"
            + "".join(rows) + "</table>")


def run_report_set(out: str | Path = "reports", only: Sequence[str] | None = None,
                   overrides: Mapping[str, Mapping[str, Any]] | None = None, notebook_dir: Path | None = None,
                   progress: bool = True) -> list[Outcome]:
    """Execute the report set in order; write each notebook's HTML and ``index.html``."""
    out = Path(out).expanduser().resolve()
    names = list(only) if only else list(REPORT_SET)
    plan = []
    for name in names:
        if name not in REPORT_SET:
            raise ConfigError(f"unknown report {name!r}; allowed: {list(REPORT_SET)}")
        params = fill_roles(name, {**REPORT_SET[name], **dict((overrides or {}).get(name, {}))}, out, False)
        check_params(name, params)
        notebook_path(name, notebook_dir)
        plan.append((name, params))
    out.mkdir(parents=True, exist_ok=True)
    clean_running(out)
    write_plotly_js(out)
    outcomes = []
    for name, params in plan:
        fill_roles(name, params, out)  # a from:<notebook> parameter reads what that notebook just recorded
        if progress:
            print(f"{name}: executing", flush=True)
        o = execute(name, params, out / f"{name}.ipynb", out / f"{name}.html", cwd=out, notebook_dir=notebook_dir)
        outcomes.append(o)
        if progress:
            print(f"{name}: {'ok' if o.ok else 'FAILED ' + str(o.error)} ({o.seconds:.0f} s)", flush=True)
    total = sum(o.seconds for o in outcomes)
    body = (f"<p>{sum(o.ok for o in outcomes)} of {len(outcomes)} reports executed, {total:.0f} s in all. "
            "Each link is a notebook executed by papermill and rendered to HTML.</p>" + _outcome_rows(outcomes))
    atomic_write_text(out / "index.html", _page("cl_lab reports", body))
    return outcomes


# ----------------------------------------------------------------------------- grids

GRID_KEYS = {"notebook", "grid", "fixed", "workers", "seed_key"}


def load_grid(path: str | Path) -> dict[str, Any]:
    """Read and validate a grid file (YAML or JSON) before anything runs."""
    import yaml

    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"grid file {str(p)!r} does not exist")
    try:
        spec = yaml.safe_load(p.read_text())
    except yaml.YAMLError as e:
        raise ConfigError(f"grid file {str(p)!r} is not valid YAML/JSON: {e}") from e
    if not isinstance(spec, dict):
        raise ConfigError(f"grid file {str(p)!r} must hold a mapping with keys {sorted(GRID_KEYS)}")
    unknown = sorted(set(spec) - GRID_KEYS)
    if unknown:
        raise ConfigError(f"grid file: unknown key(s) {unknown}; allowed: {sorted(GRID_KEYS)}")
    spec.setdefault("notebook", "01_task_stream")
    spec.setdefault("fixed", {})
    spec.setdefault("workers", 1)
    spec.setdefault("seed_key", "seed")
    grid = spec.get("grid")
    if not isinstance(grid, dict) or not grid:
        raise ConfigError("grid file: 'grid' must map parameter names to non-empty lists, e.g. {method: [sgd, clr]}")
    for k, v in grid.items():
        if not isinstance(v, list) or not v:
            raise ConfigError(f"grid file: grid.{k} must be a non-empty list; got {v!r}")
    size = 1
    for v in grid.values():
        size *= len(v)
    if size > MAX_GRID_POINTS:
        raise ConfigError(f"grid file: {' x '.join(str(len(v)) for v in grid.values())} = {size:,} points is more "
                          f"than the {MAX_GRID_POINTS:,} allowed; split the grid")
    for k, v in grid.items():
        names = [point_value_name(x) for x in v]
        clash = sorted({n for n in names if names.count(n) > 1})
        if clash:
            raise ConfigError(f"grid file: grid.{k} holds values that would share a point name {clash} (e.g. 1 and "
                              "'1', or a repeated value); give each value once, with one type")
    if not isinstance(spec["fixed"], dict):
        raise ConfigError("grid file: 'fixed' must map parameter names to values")
    if isinstance(spec["workers"], bool) or not isinstance(spec["workers"], int) or spec["workers"] < 1:
        raise ConfigError(f"grid file: workers must be an integer >= 1; got {spec['workers']!r}")
    for k, v in grid.items():  # every value is checked, so a bad one fails before any point runs
        for value in v:
            check_params(spec["notebook"], {**spec["fixed"], k: value})
    return spec


def grid_points(spec: Mapping[str, Any]) -> list[dict[str, Any]]:
    keys = list(spec["grid"])
    return [{**spec["fixed"], **dict(zip(keys, combo))} for combo in itertools.product(*(spec["grid"][k] for k in keys))]


def point_value_name(v: Any) -> str:
    """How a grid value appears in a point's file name."""
    return "".join(ch if ch.isalnum() or ch in "-." else "_" for ch in str(v))


def point_name(point: Mapping[str, Any], keys: Sequence[str]) -> str:
    return "_".join(f"{k}-{point_value_name(point[k])}" for k in keys)


def _grid_job(args: tuple) -> dict[str, Any]:
    name, notebook, params, out, threads, notebook_dir = args
    o = execute(notebook, params, out / f"{name}.ipynb", out / f"{name}.html", cwd=out, threads=threads,
                notebook_dir=Path(notebook_dir) if notebook_dir else None)
    record = {"name": name, "notebook": notebook, "params": params, "ok": o.ok, "seconds": o.seconds,
              "html": o.html, "error": o.error}
    atomic_write_text(out / f"{name}.json", json.dumps(record, indent=2, default=str))
    return record


def _failed_grid_point(job: tuple, error: str) -> dict[str, Any]:
    name, notebook, params, out, _threads, _dir = job
    return {"name": name, "notebook": notebook, "params": params, "ok": False, "seconds": 0.0, "html": "",
            "error": {"error": error}}


def run_grid(grid_file: str | Path, out: str | Path = "reports/grid", workers: int | None = None,
             notebook_dir: Path | None = None, progress: bool = True, executor: str = "local",
             ray_address: str | None = None, cpus_per_point: int = 1, gpus_per_point: float = 0) -> list[dict[str, Any]]:
    """Execute a notebook over a parameter grid in parallel; skip finished points; write ``summary.html``.

    ``executor="local"``: a process pool of ``workers``; ``"ray"``: each point is a Ray task with
    ``cpus_per_point`` CPUs (its thread count) and ``gpus_per_point`` GPUs, on a local Ray instance
    or the cluster at ``ray_address`` (see ``cl_lab.experiments.sweep``)."""
    from .parallel import check_executor, run_points

    spec = load_grid(grid_file)
    workers = workers or spec["workers"]
    check_executor(executor, workers, "grid", ray_address=ray_address, cpus_per_point=cpus_per_point,
                   gpus_per_point=gpus_per_point)
    notebook = spec["notebook"]
    notebook_path(notebook, notebook_dir)
    out = Path(out).expanduser().resolve()
    out.mkdir(parents=True, exist_ok=True)
    clean_running(out)
    write_plotly_js(out)
    keys = list(spec["grid"])
    records, jobs = [], []
    threads = cpus_per_point if executor == "ray" else max(1, (os.cpu_count() or 1) // workers)
    for point in grid_points(spec):
        params = fill_roles(notebook, dict(point), out)
        name = point_name(point, keys)
        done = out / f"{name}.json"
        if done.exists():
            try:
                rec = json.loads(done.read_text())
                if rec.get("ok") and rec.get("params") == json.loads(json.dumps(params, default=str)):
                    records.append({**rec, "skipped": True})
                    continue
            except json.JSONDecodeError:
                pass
        jobs.append((name, notebook, params, out, threads, str(notebook_dir) if notebook_dir else None))
    if progress:
        where = f"Ray ({cpus_per_point} CPU(s) per point)" if executor == "ray" else f"{workers} worker(s)"
        print(f"grid: {len(jobs)} to run, {len(records)} already finished, {where}", flush=True)
    def collect(rec: dict[str, Any]) -> None:
        records.append(rec)
        if progress:
            print(f"  {rec['name']}: {'ok' if rec['ok'] else 'FAILED in cell ' + str(rec['error'].get('cell', '?'))}"
                  f" ({rec['seconds']:.0f} s)", flush=True)

    run_points(_grid_job, jobs, failed=_failed_grid_point, executor=executor, workers=workers,
               ray_address=ray_address, cpus_per_point=cpus_per_point, gpus_per_point=gpus_per_point,
               on_result=collect)
    records.sort(key=lambda r: r["name"])
    atomic_write_text(out / "summary.html", _grid_summary(spec, records, out))
    return records


def _grid_summary(spec: Mapping[str, Any], records: Sequence[dict[str, Any]], out: Path) -> str:
    outcomes = [Outcome(r["name"], r["params"], r["ok"], r["seconds"], r.get("html", ""), r.get("error", {}))
                for r in records]
    body = f"<p>notebook <code>{html.escape(spec['notebook'])}</code>, {len(records)} grid points, " \
           f"{sum(r['ok'] for r in records)} ok.</p>"
    stats = _seed_stats(records, spec.get("seed_key", "seed"), out)
    if stats is not None and not stats.empty:
        body += "<h2>Across seeds (mean and standard deviation)</h2>" + stats.to_html(float_format=lambda v: f"{v:.3f}")
    else:
        body += "<p>No finished point recorded a run directory (the notebook calls <code>record_run</code>).</p>"
    body += "<h2>Runs</h2>" + _outcome_rows(outcomes)
    return _page("cl_lab grid summary", body)


def _seed_stats(records: Sequence[dict[str, Any]], seed_key: str, out: Path):
    """Final metrics of the runs each finished point recorded, grouped over everything but the seed."""
    import pandas as pd

    from .results import load_metrics

    rows = []
    for r in records:
        nb = out / f"{r['name']}.ipynb"
        if not r["ok"] or not nb.exists():
            continue
        for run_dir in recorded_runs(nb):
            m = load_metrics(run_dir)
            if m.empty:
                continue
            last = m.sort_values("after_task").iloc[-1]
            p = r["params"]
            rows.append({**{k: json.dumps(v) if isinstance(v, (list, dict)) else v for k, v in p.items()
                            if k not in (seed_key, "out_dir")},
                         "avg_accuracy": last.avg_accuracy, "forgetting": last.forgetting, "bwt": last.bwt})
    if not rows:
        return None
    df = pd.DataFrame(rows)
    group = [c for c in df.columns if c not in ("avg_accuracy", "forgetting", "bwt")]
    return df.groupby(group, dropna=False)[["avg_accuracy", "forgetting", "bwt"]].agg(["mean", "std", "count"])
