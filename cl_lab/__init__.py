"""cl_lab: continual and multi-domain learning for image classification, built to be read and taught."""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"


def run(method: str = "sgd", stream: Any = "synth-10", *, config: Any = None, **kwargs: Any):
    """Train ``method`` on ``stream``; see :func:`cl_lab.train.runner.run`. ``config`` is a
    best-configuration file written by ``cl_lab.tune``: its parameters, under explicit keyword arguments."""
    from .train.runner import run as _run

    if config is not None:
        from .tune import apply_config_file

        stream, kwargs = apply_config_file(config, method, stream, kwargs)
    return _run(method, stream, **kwargs)


SUBMODULES = ("data", "models", "methods", "train", "experiments", "mdl", "metrics", "results", "rundir", "viz", "lab",
              "tune")


def __getattr__(name: str):
    """Lazy access: ``cl_lab.results``, ``cl_lab.Task``, ... import on first use."""
    import importlib

    if name in ("Task", "TaskStream", "load_stream"):
        return getattr(importlib.import_module(".data", __name__), name)
    if name in SUBMODULES:
        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module 'cl_lab' has no attribute {name!r}")


__all__ = ["__version__", "run", "tune"]
