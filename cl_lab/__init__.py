"""cl_lab: continual and multi-domain learning for image classification, built to be read and taught."""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"


def run(method: str = "sgd", stream: Any = "synth-10", **config: Any):
    """Train ``method`` on ``stream``; see :func:`cl_lab.train.runner.run`."""
    from .train.runner import run as _run

    return _run(method, stream, **config)


def __getattr__(name: str):
    if name in ("Task", "TaskStream", "load_stream"):
        from . import data

        return getattr(data, name)
    raise AttributeError(name)


__all__ = ["__version__", "run"]
