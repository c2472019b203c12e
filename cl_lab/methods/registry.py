"""The method registry: a method registers where it is defined, with ``@register``.

    @register
    class MyMethod(Method):
        name = "mine"

``cl_lab.methods`` imports every module of this package once, so every built-in method is
registered when the package is imported; a method defined elsewhere registers when its
module is imported.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, TypeVar

from ..registry import Registry, UnknownName

if TYPE_CHECKING:
    from .base import Method

M = TypeVar("M", bound="type[Method]")
METHODS = Registry("method")
"""Every registered method class by its (lower-case) name; ``@register`` adds to it."""


def register(cls: M) -> M:
    """Class decorator: make ``cls`` available as ``get_method(cls.name)``."""
    key = getattr(cls, "name", "").lower()
    if not key or key == "base":
        raise ValueError(f"{cls.__name__} needs a class attribute 'name' (the name users pass to run())")
    METHODS.add(key, cls)  # a class re-registered under its own name (a reloaded module) replaces itself
    return cls


def unregister(name: str) -> None:
    """Remove ``name`` from the registry (a throwaway method defined in a test or a notebook); no error if absent."""
    METHODS.remove(name.lower())


def method_names(scenario: str | None = None) -> list[str]:
    """Every registered method name, sorted; with ``scenario``, only the methods that run in it."""
    return sorted(n for n, cls in METHODS.items() if scenario is None or scenario in cls.scenarios)


def get_method(name: str) -> type[Method]:
    """The Method class registered under ``name``."""
    if not isinstance(name, str):
        raise TypeError(f"method must be a name (str); got {type(name).__name__}")
    try:
        return METHODS[name.lower()]
    except UnknownName as e:  # the message names what the user typed, not its lower case
        raise UnknownName(str(e).replace(repr(name.lower()), repr(name), 1)) from None
