"""Typed, validated hyperparameters: dataclass fields carrying help text and allowed ranges."""

from __future__ import annotations

import dataclasses
import difflib
import typing
from typing import Any, Literal, Mapping

MAX_FLOAT = 1e38
"""Largest magnitude of a float parameter: every value must fit a float32 tensor."""


class ConfigError(ValueError):
    """A parameter is unknown, of the wrong type, or outside what is allowed."""


def param(default: Any, help: str, *, ge: float | None = None, gt: float | None = None,
          le: float | None = None, lt: float | None = None, **extra: Any) -> Any:
    """A config field with its paper default, a one-line meaning and its allowed range.

    A mutable default (list, dict) is copied for every instance; ``extra`` is kept in the
    field's metadata (e.g. ``role=`` for notebook parameters)."""
    meta = {"help": help, "ge": ge, "gt": gt, "le": le, "lt": lt, **extra}
    if isinstance(default, (list, dict)):
        return dataclasses.field(default_factory=lambda: __import__("copy").deepcopy(default), metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


def _allowed(meta: Mapping[str, Any]) -> str:
    parts = []
    for key, sym in (("gt", ">"), ("ge", ">="), ("lt", "<"), ("le", "<=")):
        if meta.get(key) is not None:
            parts.append(f"{sym} {meta[key]}")
    return " and ".join(parts)


def describe(cls: type) -> list[dict[str, Any]]:
    """Rows of (name, type, default, allowed, help) for a config dataclass."""
    hints = typing.get_type_hints(cls)
    rows = []
    for f in dataclasses.fields(cls):
        rows.append({
            "name": f.name,
            "type": _type_name(hints[f.name]),
            "default": f.default_factory() if f.default is dataclasses.MISSING else f.default,
            "allowed": _allowed(f.metadata) or _choices_text(hints[f.name]),
            "help": f.metadata.get("help", ""),
        })
    return rows


def _type_name(tp: Any) -> str:
    if typing.get_origin(tp) in (list, tuple):
        args = typing.get_args(tp)
        return f"list of {_type_name(args[0])}" if args else "list"
    if typing.get_origin(tp) is Literal:
        return "one of " + ", ".join(repr(a) for a in typing.get_args(tp))
    args = [a for a in typing.get_args(tp) if a is not type(None)]
    if typing.get_origin(tp) in (typing.Union, getattr(__import__("types"), "UnionType", None)) and args:
        return " | ".join(_type_name(a) for a in args) + (" | None" if type(None) in typing.get_args(tp) else "")
    return getattr(tp, "__name__", str(tp))


def _choices_text(tp: Any) -> str:
    if typing.get_origin(tp) is Literal:
        return ", ".join(repr(a) for a in typing.get_args(tp))
    return ""


def _check_type(name: str, value: Any, tp: Any, where: str) -> Any:
    origin = typing.get_origin(tp)
    if origin is Literal:
        choices = typing.get_args(tp)
        if value not in choices:
            raise ConfigError(f"{where}: {name}={value!r} is not allowed; choose one of {list(choices)}")
        return value
    if origin in (typing.Union, getattr(__import__("types"), "UnionType", None)):
        options = typing.get_args(tp)
        if value is None and type(None) in options:
            return None
        for opt in options:
            if opt is type(None):
                continue
            try:
                return _check_type(name, value, opt, where)
            except ConfigError:
                continue
        raise ConfigError(f"{where}: {name}={value!r} has the wrong type; expected {_type_name(tp)}")
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: {name} must be a list; got {value!r} ({type(value).__name__})")
        (item,) = typing.get_args(tp)[:1] or (Any,)
        return [_check_type(f"{name}[{i}]", v, item, where) for i, v in enumerate(value)]
    if origin is dict or tp is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: {name} must be a mapping; got {value!r} ({type(value).__name__})")
        return value
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: {name} must be true or false; got {value!r} ({type(value).__name__})")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            if isinstance(value, float) and value.is_integer():
                return int(value)
            raise ConfigError(f"{where}: {name} must be an integer; got {value!r} ({type(value).__name__})")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{where}: {name} must be a number; got {value!r} ({type(value).__name__})")
        if value != value or value in (float("inf"), float("-inf")):
            raise ConfigError(f"{where}: {name} must be finite; got {value!r}")
        if abs(value) > MAX_FLOAT:
            raise ConfigError(f"{where}: {name}={value!r} is out of range; numbers up to {MAX_FLOAT:g} in magnitude "
                              "are allowed (tensors hold 32-bit floats)")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{where}: {name} must be a string; got {value!r} ({type(value).__name__})")
        return value
    return value


def build(cls: type, values: Mapping[str, Any], where: str) -> Any:
    """Instantiate config ``cls`` from ``values``, naming every bad key, type or range in one error.

    The class's ``validate()`` (cross-parameter checks) runs too, on the values that passed,
    so its complaint joins the others."""
    fields = {f.name: f for f in dataclasses.fields(cls)}
    hints = typing.get_type_hints(cls)
    problems: list[str] = []
    for key in values:
        if key not in fields:
            close = difflib.get_close_matches(key, list(fields), n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            problems.append(f"{where}: unknown parameter {key!r}; allowed: {sorted(fields)}.{hint}")
    clean = {}
    for key, value in values.items():
        if key not in fields:
            continue
        try:
            value = _check_type(key, value, hints[key], where)
        except ConfigError as e:
            problems.append(str(e))
            continue
        m = fields[key].metadata
        if isinstance(value, (int, float)) and not isinstance(value, bool) and not _in_range(float(value), m):
            problems.append(f"{where}: {key}={value!r} is out of range; allowed: {_allowed(m)}")
            continue
        clean[key] = value
    cfg = cls(**clean)
    check = getattr(cfg, "validate", None)
    if callable(check):
        try:
            check()
        except ConfigError as e:
            if not problems:
                raise
            problems.append(str(e))
    if len(problems) == 1:
        raise ConfigError(problems[0])
    if problems:
        strip = f"{where}: "
        raise ConfigError(f"{where}: {len(problems)} problems:\n  - " + "\n  - ".join(
            p[len(strip):] if p.startswith(strip) else p for p in problems))
    return cfg


def _in_range(v: float, m: Mapping[str, Any]) -> bool:
    if m.get("ge") is not None and not v >= m["ge"]:
        return False
    if m.get("gt") is not None and not v > m["gt"]:
        return False
    if m.get("le") is not None and not v <= m["le"]:
        return False
    if m.get("lt") is not None and not v < m["lt"]:
        return False
    return True


def coerce_cli(cls: type, key: str, text: str) -> Any:
    """Parse a ``key=value`` string from the command line into the field's type."""
    hints = typing.get_type_hints(cls)
    if key not in hints:
        return text
    tp = hints[key]
    args = typing.get_args(tp)
    if text.lower() in ("none", "null") and type(None) in args:
        return None
    candidates = [a for a in (args if args and typing.get_origin(tp) is not Literal else (tp,)) if a is not type(None)]
    for c in candidates:
        try:
            if c is bool:
                if text.lower() in ("true", "1", "yes"):
                    return True
                if text.lower() in ("false", "0", "no"):
                    return False
                continue
            if c is int:
                return int(text)
            if c is float:
                return float(text)
        except ValueError:
            continue
    return text
