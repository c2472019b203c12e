"""Helpers for the parameterised notebooks: parameter checking, figure display, optional methods.

A notebook's first code cell (tagged ``parameters``) assigns typed defaults; papermill
injects overrides after it and only *warns* about names the notebook does not declare.
The next cell calls ``check_parameters(globals(), "<notebook>")``, which rejects unknown
names, wrong types and impossible values with one message naming each problem and what
is allowed, before any work starts.
"""

from __future__ import annotations

import os
import types
from dataclasses import dataclass
from typing import Any, Callable, Mapping

STATIC_ENV = "CL_LAB_STATIC"
PLOTLY_JS = "plotly.min.js"
_IPYTHON_NAMES = {"In", "Out", "get_ipython", "exit", "quit", "open"}


class NotebookParameterError(ValueError):
    """One or more notebook parameters are unknown, of the wrong type or not allowed."""


@dataclass(frozen=True)
class Spec:
    """A parameter's type(s), a check on its value (returns an error text or None) and its help."""

    types: tuple[type, ...]
    help: str
    check: Callable[[Any], str | None] | None = None


def _streams(value: Any) -> str | None:
    from .data.streams import stream_names

    return None if value in stream_names() else f"unknown stream {value!r}; allowed: {stream_names()}"


def _method(value: Any) -> str | None:
    from .methods import method_names

    return None if value in method_names() else f"unknown method {value!r}; allowed: {method_names()}"


def _methods(value: Any) -> str | None:
    if isinstance(value, str):
        return None if value == "all" else "must be a list of method names or 'all'"
    if not value:
        return "must name at least one method"
    bad = [m for m in value if not isinstance(m, str) or _method(m)]
    from .methods import method_names

    return f"unknown methods {bad}; allowed: {method_names()}" if bad else None


def _at_least(n: float) -> Callable[[Any], str | None]:
    return lambda v: None if v >= n else f"must be >= {n}; got {v}"


def _positive_list(v: Any) -> str | None:
    if not v or any(isinstance(x, bool) or not isinstance(x, (int, float)) or x < 0 for x in v):
        return "must be a non-empty list of numbers >= 0"
    return None


def _bn_methods(v: Any) -> str | None:
    from .methods import get_method

    bad = [m for m in v if not isinstance(m, str)]
    if bad:
        return f"must be a list of method names; got {bad}"
    for m in v:
        try:
            cls = get_method(m)
        except ValueError as e:
            return str(e)
        if not cls.shared_backbone:
            return f"{m!r} keeps per-task BN or a frozen backbone already; per-task statistics apply to methods " \
                   "that train a shared backbone (sgd, ewc, online-ewc, si, lwf, er, derpp)"
    return None


def _method_hyperparameters(p: Mapping[str, Any]) -> str | None:
    from .config import ConfigError, build
    from .methods import get_method

    cls = get_method(p["method"])
    try:
        build(cls.Config, p["hyperparameters"], where=f"hyperparameters of {p['method']}")
    except ConfigError as e:
        return str(e)
    return None


_INT, _STR, _LIST, _DICT = (int,), (str,), (list, tuple), (dict,)
_COMMON = {
    "seed": Spec(_INT, "random seed", _at_least(0)),
    "epochs": Spec(_INT, "epochs per task", _at_least(1)),
    "out_dir": Spec(_STR, "directory the run directories are written to"),
}
SPECS: dict[str, dict[str, Spec]] = {
    "00_quickstart": {
        "stream": Spec(_STR, "task stream", _streams),
        "methods": Spec(_LIST, "methods to compare", _methods),
        **_COMMON,
    },
    "01_task_stream": {
        "method": Spec(_STR, "method name", _method),
        "stream": Spec(_STR, "task stream", _streams),
        "n_tasks": Spec((int, type(None)), "first n tasks only (None: all)", lambda v: None if v is None or v >= 1
                        else f"must be >= 1 or None; got {v}"),
        "backbone": Spec(_STR, "backbone architecture"),
        "hyperparameters": Spec(_DICT, "method hyperparameters (cl-lab methods NAME)"),
        **_COMMON,
    },
    "02_clr": {
        "stream": Spec(_STR, "task stream", _streams),
        "n_tasks": Spec((int, type(None)), "first n tasks only (None: all)"),
        "compare": Spec(_LIST, "methods to compare CLR with", _methods),
        "ablation": Spec((bool,), "also run the backbone ablation (random / first-task backbone)"),
        **_COMMON,
    },
    "03_rescl": {
        "stream": Spec(_STR, "task stream", _streams),
        "source": Spec(_INT, "source task index", _at_least(0)),
        "target": Spec(_INT, "target task index", _at_least(0)),
        "rescl_lambdas": Spec(_LIST, "ResCL L1 strengths swept", _positive_list),
        "lwf_alphas": Spec(_LIST, "LwF distillation weights swept", _positive_list),
        "sgd_lrs": Spec(_LIST, "fine-tuning learning rates swept", _positive_list),
        **_COMMON,
    },
    "04_mpnas": {
        "stream": Spec(_STR, "stream whose tasks are the domains", _streams),
        "domains": Spec(_STR, "number of first tasks, or comma-separated names"),
        "setups": Spec(_STR, "comma-separated setups"),
        "search_steps": Spec(_INT, "search steps", _at_least(1)),
        "train_epochs": Spec(_INT, "phase-2 epochs", _at_least(1)),
        "max_train": Spec(_INT, "training images per domain", _at_least(8)),
        "seed": _COMMON["seed"],
        "out_dir": _COMMON["out_dir"],
    },
    "05_baselines": {
        "stream": Spec(_STR, "task stream", _streams),
        "methods": Spec(_LIST + _STR, "methods to run, or 'all'", _methods),
        "n_tasks": Spec((int, type(None)), "first n tasks only (None: all)"),
        "bn_stats_methods": Spec(_LIST, "shared-backbone methods rerun with per-task BN statistics", _bn_methods),
        **_COMMON,
    },
    "06_dashboard": {
        "results_dir": Spec(_STR, "directory holding run directories"),
        "mdl_dir": Spec((str, type(None)), "an MDL run directory (None: skip the path dashboard)"),
    },
}


# checks across parameters, run once every parameter is individually fine
CROSS: dict[str, Callable[[Mapping[str, Any]], str | None]] = {"01_task_stream": _method_hyperparameters}


def _type_text(types_: tuple[type, ...]) -> str:
    return " or ".join("None" if t is type(None) else t.__name__ for t in types_)


def check_parameters(namespace: Mapping[str, Any], notebook: str) -> dict[str, Any]:
    """Validate a notebook's parameters (its ``globals()``); return them as a dict or raise one clear error."""
    if notebook not in SPECS:
        raise NotebookParameterError(f"no parameter spec for notebook {notebook!r}; known: {sorted(SPECS)}")
    spec = SPECS[notebook]
    problems = []
    user = {k: v for k, v in namespace.items()
            if not k.startswith("_") and k not in _IPYTHON_NAMES and not isinstance(v, types.ModuleType)
            and not callable(v)}
    unknown = sorted(set(user) - set(spec))
    if unknown:
        problems.append(f"unknown parameter(s) {unknown}; allowed: {sorted(spec)}")
    for name, s in spec.items():
        if name not in namespace:
            problems.append(f"{name}: missing (declare it in the parameters cell)")
            continue
        value = namespace[name]
        if isinstance(value, bool) and bool not in s.types or not isinstance(value, s.types):
            problems.append(f"{name}={value!r}: expected {_type_text(s.types)}, got {type(value).__name__}")
            continue
        if s.check is not None and value is not None:
            err = s.check(value)
            if err:
                problems.append(f"{name}: {err}")
    if not problems and notebook in CROSS:
        err = CROSS[notebook](namespace)
        if err:
            problems.append(err)
    if problems:
        raise NotebookParameterError(f"{notebook}: bad parameters:\n  - " + "\n  - ".join(problems))
    return {name: namespace[name] for name in spec}


def describe(notebook: str) -> list[dict[str, str]]:
    """Name, type and meaning of a notebook's parameters (what ``--params`` grids may set)."""
    return [{"name": n, "type": _type_text(s.types), "help": s.help} for n, s in SPECS[notebook].items()]


def resolve_methods(methods: Any) -> tuple[list[str], dict[str, str]]:
    """The methods that import (``'all'``: every registered one) and, for the others, why not."""
    from .methods import get_method, method_names

    names = method_names() if methods == "all" else list(methods)
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


_shown = {"js": False}


def static() -> bool:
    """True in batch reports (``CL_LAB_STATIC=1``): figures are written as static HTML."""
    return os.environ.get(STATIC_ENV, "") not in ("", "0")


def show(fig: Any) -> None:
    """Display a plotly figure: interactive in JupyterLab; in batch reports, HTML that renders offline
    (the first figure of a notebook loads ``plotly.min.js`` from next to the report)."""
    if not static():
        fig.show()
        return
    from IPython.display import HTML, display

    include: Any = False if _shown["js"] else PLOTLY_JS
    _shown["js"] = True
    display(HTML(fig.to_html(full_html=False, include_plotlyjs=include, config={"responsive": True})))


def show_dashboard(dashboard: Any) -> None:
    """Display a dashboard's widgets; in batch reports also its current figures as static HTML."""
    from IPython.display import display

    display(dashboard.widget)
    if static():
        import plotly.graph_objects as go

        for f in dashboard.figures:
            show(go.Figure(f))


def run_methods(methods: Any, stream: Any, **run_kwargs: Any) -> dict[str, Any]:
    """Run each method that is available; say which are missing and which diverged instead of failing."""
    from . import run
    from .train.runner import TrainingDiverged

    available, missing = resolve_methods(methods)
    report_missing(missing)
    results = {}
    for name in available:
        kw = dict(run_kwargs)
        extra = {"bn_stats": kw["bn_stats"]} if kw.get("bn_stats", "shared") != "shared" else {}
        kw.setdefault("run_name", run_name(name, str(stream), kw.get("seed", 0), kw.get("epochs", 4), kw.get("n_tasks"),
                                           **extra))
        try:
            results[name] = run(name, stream, **kw)
        except TrainingDiverged as e:
            print(f"method {name!r} diverged and is left out: {e}")
    return results


RUN_MIME = "application/x-cl-lab-run+json"


def run_name(method: str, stream: str, seed: int, epochs: int, n_tasks: int | None = None,
             backbone: str = "resnet8", **hyperparameters: Any) -> str:
    """A run-directory name that differs whenever these settings differ, so notebooks sharing one
    ``out_dir`` with other epochs or hyperparameters never collide with each other's runs."""
    parts = [stream, method, backbone, f"seed{seed}", f"e{epochs}"]
    if n_tasks is not None:
        parts.append(f"n{n_tasks}")
    parts += [f"{k}{v}" for k, v in sorted(hyperparameters.items())]
    return "_".join(str(p) for p in parts)


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
