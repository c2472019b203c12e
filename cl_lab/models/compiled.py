"""``compile=True``: the backbone's forward (and so its backward) under ``torch.compile``.

What is compiled is the backbone alone (``Backbone.forward``), the part every method shares and
where the time goes; heads, losses, penalties and optimiser steps stay eager, so heads of
different widths never force the backbone to recompile, and a method that keeps a copy of its
backbone (LwF's teacher, ResCL's target) compiles the copy for its own weights. One compiled
function serves every run of the process: its graphs (training and evaluation mode, gradient
and inference mode) are kept across tasks and runs. The batch dimension is always symbolic
(``maybe_mark_dynamic``), so a task's short last batch or the evaluation batch compiles no graph
of its own, and the kernels a run gets do not depend on which batch sizes the process happened
to see first (a resumed run runs the kernels the uninterrupted one ran). Past ``RECOMPILE_LIMIT``
graphs (many methods and backbones in one process) dynamo runs the rest eagerly. The kernels
keep the thread count they were compiled at; a process that changes ``torch.set_num_threads``
between compiled runs should start a new process (as sweeps and tuning workers do).

Compiled results are not bit-identical to eager ones (fused kernels sum in another order), so
``compile`` is part of a run's identity. Where compilation is unavailable (no C++ compiler for
the CPU backend, an unsupported platform or Python), ``unavailable()`` gives the reason and the
runner goes on eagerly with a one-line warning; the run is then recorded as ``compile=False``,
which is what it was.
"""

from __future__ import annotations

import functools
import logging
from contextlib import AbstractContextManager, nullcontext

import torch

RECOMPILE_LIMIT = 64
"""Graphs one compiled function may hold: the 8 of PyTorch's default are too few where a method's
backbone changes per task (CLR's, CCLL's and EFTs' per-task adapters are one graph per task and mode)."""


@functools.cache
def unavailable(device: str = "cpu") -> str | None:
    """None when ``torch.compile`` works in this process for ``device`` ('cpu' or 'cuda'); else why not, in
    one line (checked once per process and device by compiling and running a one-operation function
    there, about a second)."""
    # a CUDA build of torch on a machine without CUDA warns on every first compile that it found no CUDA
    # runtime; compiling for the CPU does not need one
    logging.getLogger("torch.utils.cpp_extension").setLevel(logging.ERROR)
    if not hasattr(torch.compiler, "set_stance"):
        return f"torch {torch.__version__} is older than 2.6, the first with what compile=True uses"
    try:
        fn = torch.compile(lambda x: x * 2.0 + 1.0, dynamic=False)
        out = fn(torch.ones(4, device=device)).cpu()
        if not torch.equal(out, torch.full((4,), 3.0)):
            return "a compiled test function returned a wrong result"
    except Exception as e:  # noqa: BLE001 - any failure means: do not compile here
        text = str(e).strip().splitlines()
        return f"{type(e).__name__}: {text[0] if text else ''}"[:300]
    return None


def enable() -> None:
    """Settings every compiled run of the process shares (idempotent)."""
    import torch._dynamo.config as dynamo_config

    for key, value in (("recompile_limit", RECOMPILE_LIMIT), ("accumulated_recompile_limit", 4 * RECOMPILE_LIMIT)):
        if hasattr(dynamo_config, key):  # torch 2.7's names
            setattr(dynamo_config, key, max(getattr(dynamo_config, key), value))


@functools.cache
def compiled_forward():
    """The one compiled ``Backbone`` forward of this process (graphs are cached by dynamo per guard set)."""
    from .backbones import Backbone

    enable()
    return torch.compile(Backbone.eager_forward, dynamic=None)


def forward(backbone, x):
    """``backbone``'s forward through the compiled function, its batch dimension symbolic."""
    if x.dim() and x.shape[0] > 1:
        torch._dynamo.maybe_mark_dynamic(x, 0)
    return compiled_forward()(backbone, x)


def eager() -> AbstractContextManager:
    """Within the block every compiled function runs eagerly (FLOP counting on a copy, for instance); a
    no-op on a torch without compiler stances (nothing compiles there: ``unavailable``)."""
    if not hasattr(torch.compiler, "set_stance"):
        return nullcontext()
    return torch.compiler.set_stance("force_eager")
