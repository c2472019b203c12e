"""Running methods from a notebook and recording which run directories it produced."""

from __future__ import annotations

from typing import Any, Mapping

RUN_MIME = "application/x-cl-lab-run+json"


def resolve_methods(methods: Any) -> tuple[list[str], dict[str, str]]:
    """The methods that import (``'all'``: every registered one) and, for the others, why not."""
    from ..methods import get_method, method_names

    names = method_names() if methods == "all" else [methods] if isinstance(methods, str) else list(methods)
    ok, missing = [], {}
    for name in names:
        try:
            get_method(name)
            ok.append(name)
        except (ImportError, AttributeError) as e:
            missing[name] = f"{type(e).__name__}: {e}"
    return ok, missing


def report_missing(missing: Mapping[str, str]) -> None:
    for name, why in missing.items():
        print(f"method {name!r} is not available here and is skipped ({why})")


def run_methods(methods: Any, stream: Any, **run_kwargs: Any) -> dict[str, Any]:
    """Run each method that is available; say which are missing and which diverged instead of failing.

    Run directories are named from the configuration (``cl_lab.rundir.default_name``), so
    notebooks sharing one ``out`` with other settings never collide."""
    from ..train import TrainingDiverged, run

    available, missing = resolve_methods(methods)
    report_missing(missing)
    results = {}
    for name in available:
        try:
            results[name] = run(name, stream, **run_kwargs)
        except TrainingDiverged as e:
            print(f"method {name!r} diverged and is left out: {e}")
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
