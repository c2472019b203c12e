"""``compile=True``: the backbone's forward (and so its backward) under ``torch.compile``.

What is compiled is the backbone alone (``Backbone.forward``), the part every method shares and
where the time goes; heads, losses, penalties and optimiser steps stay eager, so heads of
different widths never force the backbone to recompile, and a method that keeps a copy of its
backbone (LwF's teacher, ResCL's target) compiles the copy for its own weights. One compiled
function serves every run of the process: its graphs (training and evaluation mode, gradient
and inference mode) are kept across tasks and runs. Batch sizes are dynamic after the first
batch of another size (PyTorch's automatic dynamic shapes: a task's short last batch or the
evaluation batch costs one more compile, not one per size).

Compiled results are not bit-identical to eager ones (fused kernels sum in another order), so
``compile`` is part of a run's identity. Where compilation is unavailable (no C++ compiler for
the CPU backend, an unsupported platform or Python), ``unavailable()`` gives the reason and the
runner goes on eagerly with a one-line warning; the run is then recorded as ``compile=False``,
which is what it was.
"""

from __future__ import annotations

import functools
import logging
from contextlib import AbstractContextManager

import torch

RECOMPILE_LIMIT = 64
"""Graphs one compiled function may hold: the 8 of PyTorch's default are too few where a method's
backbone changes per task (CLR's, CCLL's and EFTs' per-task adapters are one graph per task and mode)."""


@functools.cache
def unavailable() -> str | None:
    """None when ``torch.compile`` works in this process; else why not, in one line (checked once
    per process by compiling and running a one-operation function, about a second)."""
    # a CUDA build of torch on a machine without CUDA warns on every first compile that it found no CUDA
    # runtime; compiling for the CPU does not need one
    logging.getLogger("torch.utils.cpp_extension").setLevel(logging.ERROR)
    try:
        fn = torch.compile(lambda x: x * 2.0 + 1.0, dynamic=False)
        out = fn(torch.ones(4))
        if not torch.equal(out, torch.full((4,), 3.0)):
            return "a compiled test function returned a wrong result"
    except Exception as e:  # noqa: BLE001 - any failure means: do not compile here
        text = str(e).strip().splitlines()
        return f"{type(e).__name__}: {text[0] if text else ''}"[:300]
    return None


def enable() -> None:
    """Settings every compiled run of the process shares (idempotent)."""
    import torch._dynamo.config as dynamo_config

    dynamo_config.recompile_limit = max(dynamo_config.recompile_limit, RECOMPILE_LIMIT)
    dynamo_config.accumulated_recompile_limit = max(dynamo_config.accumulated_recompile_limit, 4 * RECOMPILE_LIMIT)


@functools.cache
def compiled_forward():
    """The one compiled ``Backbone`` forward of this process (graphs are cached by dynamo per guard set)."""
    from ..models.backbones import Backbone

    enable()
    return torch.compile(Backbone.eager_forward, dynamic=None)


def eager() -> AbstractContextManager:
    """Within the block every compiled function runs eagerly (FLOP counting on a copy, for instance)."""
    return torch.compiler.set_stance("force_eager")
