"""cl_lab: continual and multi-domain learning for image classification, built to be read and taught."""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"


def run(method: str = "sgd", stream: Any = "synth-10", **config: Any):
    """Train ``method`` on ``stream``; see :func:`cl_lab.train.runner.run`."""
    from .train.runner import run as _run

    return _run(method, stream, **config)


SUBMODULES = ("data", "models", "methods", "train", "experiments", "mdl", "metrics", "results", "rundir", "viz", "lab")


def __getattr__(name: str):
    """Lazy access: ``cl_lab.results``, ``cl_lab.Task``, ... import on first use."""
    import importlib

    if name in ("Task", "TaskStream", "load_stream"):
        return getattr(importlib.import_module(".data", __name__), name)
    if name in SUBMODULES:
        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module 'cl_lab' has no attribute {name!r}")


__all__ = ["__version__", "run"]
