"""One registry style for everything a user picks by name: methods, backbones, streams, MDL setups.

Each entry registers where it is defined, with a decorator (as timm's model registry)::

    @BACKBONES.register("resnet8", aliases=("resnet8-w16",))
    def resnet8() -> Backbone: ...

A ``Registry`` is a read-only mapping from name to the registered object (``name in R``,
``R[name]``, ``sorted(R)``), with a one-line error that lists what is allowed and suggests
the closest name, and optional per-entry ``info`` (a stream's kind and task names, ...).
Aliases resolve to their entry but are not listed, so old names keep working.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from typing import Any, Callable, Iterator, TypeVar

T = TypeVar("T")


class UnknownName(ValueError, KeyError):
    """A name no entry of the registry has (a ValueError for callers, a KeyError for ``Mapping.get``)."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class Registry(Mapping):
    """Named entries of one kind (``what``: "backbone", "stream", ...), registered by decorator."""

    def __init__(self, what: str):
        self.what = what
        self._entries: dict[str, Any] = {}
        self._info: dict[str, dict[str, Any]] = {}
        self._aliases: dict[str, str] = {}

    def register(self, name: str, *, aliases: tuple[str, ...] = (), **info: Any) -> Callable[[T], T]:
        """Decorator: register the decorated object under ``name`` (and ``aliases``) with ``info``."""
        def deco(obj: T) -> T:
            self.add(name, obj, aliases=aliases, **info)
            return obj
        return deco

    def add(self, name: str, obj: Any, *, aliases: tuple[str, ...] = (), **info: Any) -> None:
        if not isinstance(name, str) or not name:
            raise ValueError(f"a {self.what} needs a non-empty name")
        taken = self._entries.get(name)

        def who(o: Any) -> tuple:  # the same definition re-registered (a reloaded module) replaces itself
            return getattr(o, "__module__", None), getattr(o, "__qualname__", id(o))

        if taken is not None and who(taken) != who(obj):
            who = f"{getattr(taken, '__module__', '?')}.{getattr(taken, '__qualname__', type(taken).__name__)}"
            raise ValueError(f"{self.what} name {name!r} is taken by {who}")
        self._entries[name] = obj
        self._info[name] = dict(info)
        for a in aliases:
            self._aliases[a] = name

    def remove(self, name: str) -> None:
        """Forget ``name`` (a throwaway entry of a test or a notebook); no error if absent."""
        self._entries.pop(name, None)
        self._info.pop(name, None)
        self._aliases = {a: n for a, n in self._aliases.items() if n != name}

    def canonical(self, name: str) -> str:
        """``name`` itself, or the entry an alias stands for; ``UnknownName`` listing the names otherwise."""
        if isinstance(name, str) and name in self._entries:
            return name
        if isinstance(name, str) and name in self._aliases:
            return self._aliases[name]
        close = difflib.get_close_matches(str(name), list(self._entries), n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise UnknownName(f"unknown {self.what} {name!r}; allowed: {sorted(self._entries)}.{hint}")

    def info(self, name: str) -> dict[str, Any]:
        return self._info[self.canonical(name)]

    def __getitem__(self, name: str) -> Any:
        return self._entries[self.canonical(name)]

    def __contains__(self, name: object) -> bool:
        return name in self._entries or name in self._aliases

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def __repr__(self) -> str:
        return f"Registry({self.what!r}: {', '.join(self._entries)})"
