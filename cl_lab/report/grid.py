"""Parameter grids: one notebook over the cross product of parameter values, run on the shared
executor (``cl_lab.parallel``), finished points skipped, a summary page with mean and spread over seeds."""

from __future__ import annotations

import html
import itertools
import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

from .._io import atomic_write_text
from ..config import ConfigError, build, param
from ..lab.runs import recorded_runs
from ..parallel import MAX_WORKERS
from .execution import Outcome, check_params, clean_running, execute, fill_roles, notebook_path
from .html import outcome_rows, page, write_plotly_js

MAX_GRID_POINTS = 10_000


@dataclass
class GridSpec:
    """A grid file's schema, checked by ``config.build`` like every other set of parameters."""

    notebook: str = param("01_task_stream", "the notebook executed at every point")
    grid: dict = param({}, "parameter name -> non-empty list of values; the points are their cross product")
    fixed: dict = param({}, "parameters every point shares")
    workers: int = param(1, "points executed at once", ge=1, le=MAX_WORKERS)
    seed_key: str = param("seed", "the parameter the summary averages over")

    def validate(self) -> None:
        if not self.grid:
            raise ConfigError("grid file: 'grid' must map parameter names to non-empty lists, e.g. {method: [sgd, clr]}")
        for k, v in self.grid.items():
            if not isinstance(v, list) or not v:
                raise ConfigError(f"grid file: grid.{k} must be a non-empty list; got {v!r}")
        size = 1
        for v in self.grid.values():
            size *= len(v)
        if size > MAX_GRID_POINTS:
            raise ConfigError(f"grid file: {' x '.join(str(len(v)) for v in self.grid.values())} = {size:,} points "
                              f"is more than the {MAX_GRID_POINTS:,} allowed; split the grid")
        for k, v in self.grid.items():
            names = [point_value_name(x) for x in v]
            clash = sorted({n for n in names if names.count(n) > 1})
            if clash:
                raise ConfigError(f"grid file: grid.{k} holds values that would share a point name {clash} (e.g. 1 "
                                  "and '1', or a repeated value); give each value once, with one type")


def load_grid(path: str | Path) -> dict[str, Any]:
    """Read and validate a grid file (YAML or JSON) before anything runs: its schema (``GridSpec``)
    and every value of every parameter against the notebook's parameters."""
    import yaml

    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"grid file {str(p)!r} does not exist")
    try:
        raw = yaml.safe_load(p.read_text())
    except yaml.YAMLError as e:
        raise ConfigError(f"grid file {str(p)!r} is not valid YAML/JSON: {e}") from e
    if not isinstance(raw, dict):
        raise ConfigError(f"grid file {str(p)!r} must hold a mapping with keys {sorted(GridSpec.__dataclass_fields__)}")
    spec = asdict(build(GridSpec, raw, "grid file"))
    for k, v in spec["grid"].items():  # every value is checked, so a bad one fails before any point runs
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
    from ..parallel import check_executor, point_threads, run_points

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
    threads = point_threads(executor, workers, cpus_per_point)
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
    body += "<h2>Runs</h2>" + outcome_rows(outcomes)
    return page("cl_lab grid summary", body)


def _seed_stats(records: Sequence[dict[str, Any]], seed_key: str, out: Path):
    """Final metrics of the runs each finished point recorded, grouped over everything but the seed."""
    import pandas as pd

    from ..results import load_metrics

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
