"""Running methods from a notebook and recording which run directories it produced."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

from ..results import find_mdl_run  # noqa: F401  (notebook 06 finds the MDL run through the lab helpers)

RUN_MIME = "application/x-cl-lab-run+json"


def resolve_methods(methods: Any, scenario: str = "task") -> tuple[list[str], dict[str, str]]:
    """The methods that import (``'all'``: every registered one that runs in ``scenario``) and, for the
    others, why not."""
    from ..methods import get_method, method_names

    names = method_names(scenario) if methods == "all" else [methods] if isinstance(methods, str) else list(methods)
    ok, missing = [], {}
    for name in names:
        try:
            get_method(name)
            ok.append(name)
        except (ImportError, AttributeError) as e:
            missing[name] = f"{type(e).__name__}: {e}"
    return ok, missing


def comparison_methods(methods: Any, exclude: Any = (), scenario: str = "task") -> list[str]:
    """A notebook's ``methods`` parameter as names: ``'all'`` is every method that runs in ``scenario``
    but those in ``exclude`` (05 runs its ``scratch_methods`` apart); a list stays as given."""
    from ..methods import method_names

    if methods != "all":
        return [methods] if isinstance(methods, str) else list(methods)
    return [m for m in method_names(scenario) if m not in set(exclude)]


def report_missing(missing: Mapping[str, str]) -> None:
    for name, why in missing.items():
        print(f"method {name!r} is not available here and is skipped ({why})")


def run_methods(methods: Any, stream: Any, **run_kwargs: Any) -> dict[str, Any]:
    """Run each method that is available; say which are missing and which diverged instead of failing.

    Run directories are named from the configuration (``cl_lab.rundir.default_name``), so
    notebooks sharing one ``out`` with other settings never collide. Every run is validated before
    the first trains; a line per finished run says its result, its time and about how long the
    rest will take."""
    import time

    from ..train import TrainingDiverged
    from ..train.runner import execute, prepare

    available, missing = resolve_methods(methods, run_kwargs.get("scenario", "task"))
    report_missing(missing)
    plans = {name: prepare(name, stream, **run_kwargs) for name in available}
    results, t0 = {}, time.perf_counter()
    for i, (name, plan) in enumerate(plans.items(), 1):
        t = time.perf_counter()
        try:
            results[name] = r = execute(plan)
        except TrainingDiverged as e:
            print(f"method {name!r} diverged and is left out: {e}")
            continue
        left = (time.perf_counter() - t0) / i * (len(plans) - i)
        print(f"[{i}/{len(plans)}] {name}: avg acc {r.summary()['avg_accuracy']:.3f} ({time.perf_counter() - t:.0f} s"
              + (f"; about {left / 60:.1f} min left)" if i < len(plans) else ")"), flush=True)
    return results


def record_run(result: Any) -> None:
    """Put a run directory (a path, or a result with ``run_dir``) into the executed notebook,
    as an output batch tools read back."""
    from IPython.display import display

    run_dir = getattr(result, "run_dir", result)
    display({RUN_MIME: {"run_dir": str(run_dir)}, "text/plain": f"run directory: {run_dir}"}, raw=True)


def recorded_runs(notebook_file: Any) -> list[str]:
    """The run directories a notebook recorded with ``record_run``."""
    import nbformat

    nb = nbformat.read(str(notebook_file), as_version=4)
    return [o["data"][RUN_MIME]["run_dir"] for c in nb.cells if c.cell_type == "code"
            for o in c.get("outputs", []) if RUN_MIME in o.get("data", {})]


def project_root(start: Any = None) -> Path:
    """The checkout the notebooks belong to: the nearest directory at or above ``start`` (default:
    the kernel's working directory) that holds ``pyproject.toml`` and ``notebooks/``; ``start``
    itself when there is none (notebooks copied elsewhere). JupyterLab starts a kernel in the
    notebook's own folder, papermill where it is told: relative result paths are anchored here,
    so every notebook reads and writes the same ``runs/`` wherever its kernel starts."""
    here = Path(start if start is not None else Path.cwd()).resolve()
    for d in (here, *here.parents):
        if (d / "pyproject.toml").is_file() and (d / "notebooks").is_dir():
            return d
    return here


def resolve_dir(path: Any, start: Any = None) -> str:
    """``path`` as an absolute path; a relative one is taken from ``project_root(start)``."""
    p = Path(path).expanduser()
    return str(p if p.is_absolute() else project_root(start) / p)


def _has_runs(root: Path) -> bool:
    return root.is_dir() and any(root.rglob("accuracy.csv"))


def find_results(results_dir: Any, start: Any = None) -> str:
    """The results root a dashboard should read: ``results_dir`` (anchored at the project root) when
    it holds runs, else the runs ``make run`` writes (``reports/runs``); a clear error when neither does."""
    wanted = Path(resolve_dir(results_dir, start))
    if _has_runs(wanted):
        return str(wanted)
    batch = project_root(start) / "reports" / "runs"
    if batch != wanted and _has_runs(batch):
        print(f"no runs under {wanted}; showing the runs `make run` wrote under {batch}")
        return str(batch)
    raise FileNotFoundError(f"no runs under {wanted} (nor under {batch}): run notebooks 00-05 first, or `make run`, "
                            "or set results_dir to a directory that holds run directories")


