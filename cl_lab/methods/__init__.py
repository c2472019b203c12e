"""CL methods behind one interface, found through a lazy registry (no heavy imports here)."""

from __future__ import annotations

import difflib
import importlib

from .base import Cost, Method, OptimConfig, StreamInfo

_REGISTRY: dict[str, str] = {
    "sgd": "cl_lab.methods.sgd:SGD",
    "sgd-ll": "cl_lab.methods.sgd_ll:SGDLL",
    "ewc": "cl_lab.methods.ewc:EWC",
    "online-ewc": "cl_lab.methods.online_ewc:OnlineEWC",
    "si": "cl_lab.methods.si:SI",
    "lwf": "cl_lab.methods.lwf:LwF",
    "er": "cl_lab.methods.er:ER",
    "derpp": "cl_lab.methods.derpp:DERPP",
    "psp": "cl_lab.methods.psp:PSP",
    "supsup": "cl_lab.methods.supsup:SupSup",
    "ccll": "cl_lab.methods.ccll:CCLL",
    "efts": "cl_lab.methods.efts:EFTs",
    "confit": "cl_lab.methods.confit:ConFiT",
    "rcm": "cl_lab.methods.rcm:RCM",
    "clr": "cl_lab.methods.clr:CLR",
    "rescl": "cl_lab.methods.rescl:ResCL",
}


def method_names() -> list[str]:
    return list(_REGISTRY)


def get_method(name: str) -> type[Method]:
    """The Method class registered under ``name`` (imported on first use)."""
    if not isinstance(name, str):
        raise TypeError(f"method must be a name (str); got {type(name).__name__}")
    key = name.lower()
    if key not in _REGISTRY:
        close = difflib.get_close_matches(key, list(_REGISTRY), n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise ValueError(f"unknown method {name!r}; allowed: {method_names()}.{hint}")
    module, cls = _REGISTRY[key].split(":")
    return getattr(importlib.import_module(module), cls)


def register(name: str, target: str) -> None:
    """Register a method as ``'package.module:Class'`` (imported lazily)."""
    _REGISTRY[name.lower()] = target


__all__ = ["Cost", "Method", "OptimConfig", "StreamInfo", "get_method", "method_names", "register"]
