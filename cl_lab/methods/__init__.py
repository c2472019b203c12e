"""CL methods behind one interface (``base.Method``); each registers itself with ``@register``."""

from __future__ import annotations

import importlib
import pkgutil

from .base import Cost, Method, OptimConfig, StreamInfo
from .registry import get_method, method_names, register

# importing a method's module registers it: every public module of this package, once
for _m in pkgutil.iter_modules(__path__):
    if not _m.name.startswith("_") and _m.name not in ("base", "registry"):
        importlib.import_module(f"{__name__}.{_m.name}")

__all__ = ["Cost", "Method", "OptimConfig", "StreamInfo", "get_method", "method_names", "register"]
