"""The report set: every numbered notebook executed in order on the offline default, with an index page."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Sequence

from .._io import atomic_write_text
from ..config import ConfigError
from ..lab.params import NOTEBOOKS
from .execution import Outcome, check_params, clean_running, execute, fill_roles, notebook_path
from .html import outcome_rows, page, write_plotly_js

# The report set: every notebook in order, with the settings its parameter class declares in
# ``REPORT`` (sized so the whole set runs in well under 15 minutes on 2 CPU cores).
REPORT_SET: dict[str, dict[str, Any]] = {name: dict(cls.REPORT) for name, cls in sorted(NOTEBOOKS.items())}
TIMINGS = "timings.json"
"""Seconds each report took last time in this folder: the estimate of what is left on the next run."""
FIRST_ESTIMATE = 90.0
"""Seconds assumed for a report never run in this folder before and not in ``FIRST_ESTIMATES``."""
FIRST_ESTIMATES = {"00_quickstart": 43.0, "01_task_stream": 5.0, "02_clr": 90.0, "03_rescl": 56.0, "04_mpnas": 96.0,
                   "05_baselines": 131.0, "06_dashboard": 9.0, "07_scenarios": 108.0}
"""Seconds each report took in the README's measured `make run` (2 CPU cores): the first run's estimates."""


def _last_timings(out: Path) -> dict[str, float]:
    import json

    try:
        last = json.loads((out / TIMINGS).read_text())
    except (OSError, ValueError):
        return {}
    return {k: float(v) for k, v in last.items() if isinstance(v, (int, float))} if isinstance(last, dict) else {}


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
    import json

    outcomes = []
    last = _last_timings(out)
    estimate = {n: last.get(n, FIRST_ESTIMATES.get(n, FIRST_ESTIMATE)) for n, _ in plan}
    for i, (name, params) in enumerate(plan):
        fill_roles(name, params, out)  # a from:<notebook> parameter reads what that notebook just recorded
        if progress:
            left = sum(estimate[n] for n, _ in plan[i:])
            print(f"[{i + 1}/{len(plan)}] {name}: executing (about {estimate[name]:.0f} s; about {left / 60:.1f} min "
                  "left in the set)", flush=True)
        o = execute(name, params, out / f"{name}.ipynb", out / f"{name}.html", cwd=out, notebook_dir=notebook_dir,
                    progress_bar=progress)
        outcomes.append(o)
        # after each report, so a set stopped half-way still estimates the next run from what finished
        atomic_write_text(out / TIMINGS, json.dumps({**last, **{x.name: round(x.seconds, 1) for x in outcomes}},
                                                    indent=2))
        if progress:
            print(f"[{i + 1}/{len(plan)}] {name}: {'ok' if o.ok else 'FAILED ' + str(o.error)} ({o.seconds:.0f} s)",
                  flush=True)
    total = sum(o.seconds for o in outcomes)
    body = (f"<p>{sum(o.ok for o in outcomes)} of {len(outcomes)} reports executed, {total:.0f} s in all. "
            "Each link is a notebook executed by papermill and rendered to HTML.</p>" + outcome_rows(outcomes))
    atomic_write_text(out / "index.html", page("cl_lab reports", body))
    return outcomes
