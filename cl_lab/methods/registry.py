"""The method registry: a method registers where it is defined, with ``@register``.

    @register
    class MyMethod(Method):
        name = "mine"

``cl_lab.methods`` imports every module of this package once, so every built-in method is
registered when the package is imported; a method defined elsewhere registers when its
module is imported.
"""

from __future__ import annotations

import difflib
from typing import TYPE_CHECKING, TypeVar

if TYPE_CHECKING:
    from .base import Method

M = TypeVar("M", bound="type[Method]")
_REGISTRY: dict[str, type] = {}


def register(cls: M) -> M:
    """Class decorator: make ``cls`` available as ``get_method(cls.name)``."""
    key = getattr(cls, "name", "").lower()
    if not key or key == "base":
        raise ValueError(f"{cls.__name__} needs a class attribute 'name' (the name users pass to run())")
    if key in _REGISTRY and _REGISTRY[key] is not cls and _REGISTRY[key].__qualname__ != cls.__qualname__:
        raise ValueError(f"method name {key!r} is taken by {_REGISTRY[key].__module__}.{_REGISTRY[key].__qualname__}")
    _REGISTRY[key] = cls
    return cls


def unregister(name: str) -> None:
    """Remove ``name`` from the registry (a throwaway method defined in a test or a notebook); no error if absent."""
    _REGISTRY.pop(name.lower(), None)


def method_names(scenario: str | None = None) -> list[str]:
    """Every registered method name, sorted; with ``scenario``, only the methods that run in it."""
    return sorted(n for n, cls in _REGISTRY.items() if scenario is None or scenario in cls.scenarios)


def get_method(name: str) -> type[Method]:
    """The Method class registered under ``name``."""
    if not isinstance(name, str):
        raise TypeError(f"method must be a name (str); got {type(name).__name__}")
    key = name.lower()
    if key not in _REGISTRY:
        close = difflib.get_close_matches(key, list(_REGISTRY), n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise ValueError(f"unknown method {name!r}; allowed: {method_names()}.{hint}")
    return _REGISTRY[key]
