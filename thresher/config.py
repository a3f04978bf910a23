"""Frozen-dataclass configs validated up front.

:func:`from_dict` turns a mapping (a recipe stage, a parsed spec, CLI options) into a frozen
dataclass, rejecting unknown keys, checking types and calling the dataclass's ``check()``;
every problem is collected and raised together in one :class:`ConfigError` whose parts name
their key path (``stages[3].dedup.threshold: must be in (0, 1]``).
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import math
import re
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal, TypeVar, Union, get_args, get_origin

from thresher.errors import ConfigError

T = TypeVar("T")

#: the longest value a message quotes (a 34 MB alias expansion must not become the error)
QUOTE_LIMIT = 60
#: sane upper bounds of options with the same meaning in every stage: name -> (max, why)
UPPER_BOUNDS: dict[str, tuple[int, str]] = {
    "max_tokens": (1 << 20, "longer than any model's context window"),
    "min_tokens": (1 << 20, "longer than any model's context window"),
    "max_length": (1 << 20, "longer than any model's context window"),
    "num_perm": (8192, "more MinHash permutations than help; each costs 4 bytes and a hash per row"),
    "min_chars": ((1 << 31) - 1, "no row is that long; lengths are 32-bit counts"),
    "max_chars": ((1 << 31) - 1, "no row is that long; lengths are 32-bit counts"),
}
#: every integer option must fit in 64 bits (polars, numpy and torch use them as int64)
INT_MAX = (1 << 63) - 1


def short_repr(value: Any, limit: int = QUOTE_LIMIT) -> str:
    """``repr(value)`` cut to ``limit`` characters (``...`` and the full length after it)."""
    try:
        text = reprlib_repr(value)
    except Exception:  # noqa: BLE001 - a value whose repr fails is still named
        text = f"<{type(value).__name__}>"
    return text if len(text) <= limit else f"{text[: limit - 3]}... ({len(text)} characters)"


def reprlib_repr(value: Any) -> str:
    """``repr`` that never walks more than a few hundred elements of a nested value."""
    import reprlib

    r = reprlib.Repr()
    r.maxstring, r.maxother, r.maxlevel = 100, 100, 2
    r.maxlist = r.maxtuple = r.maxdict = r.maxset = 5
    return r.repr(value)


def _int_bound(key: str, value: int, problems: list[str]) -> None:
    leaf = key.rsplit(".", 1)[-1]
    bound = UPPER_BOUNDS.get(leaf)
    if bound is not None and value > bound[0]:
        problems.append(f"{key}: at most {bound[0]} ({bound[1]}), got {value}")
    elif abs(value) > INT_MAX:
        problems.append(f"{key}: too large (integers must fit in 64 bits), got {short_repr(value)}")


def did_you_mean(word: Any, choices: Any) -> str | None:
    """The closest of ``choices`` to ``word`` (difflib's ratio >= 0.6), or None."""
    close = difflib.get_close_matches(str(word), [str(c) for c in choices], n=1)
    return close[0] if close else None


def unknown_key(key: Any, allowed: Any, where: str = "") -> str:
    """The one "unknown key" problem: ``where.key: unknown key (did you mean 'x'?)``."""
    prefix = f"{where}." if where else ""
    close = did_you_mean(key, allowed)
    hint = f" (did you mean '{close}'?)" if close is not None else ""
    return f"{prefix}{key}: unknown key{hint}"


def _type_name(tp: Any) -> str:
    origin = get_origin(tp)
    if origin is Literal:
        return " | ".join(repr(a) for a in get_args(tp))
    if origin in (Union, types.UnionType):
        return " | ".join(_type_name(a) for a in get_args(tp))
    if origin in (list, tuple):
        args = [a for a in get_args(tp) if a is not Ellipsis]
        return f"list of {_type_name(args[0])}" if args else "list"
    if origin is dict:
        return "mapping"
    if tp is type(None):
        return "null"
    return getattr(tp, "__name__", str(tp))


def _coerce(value: Any, tp: Any, key: str, problems: list[str]) -> Any:
    """Check ``value`` against ``tp`` and return it converted (tuple for lists, Path for paths)."""
    origin = get_origin(tp)
    if tp is Any:
        return value
    if origin in (Union, types.UnionType):
        args = get_args(tp)
        if value is None and type(None) in args:
            return None
        if isinstance(value, float) and not math.isfinite(value):
            problems.append(f"{key}: must be a finite number, got {value}")
            return value
        for a in args:
            if a is type(None):
                continue
            sub: list[str] = []
            out = _coerce(value, a, key, sub)
            if not sub:
                return out
        choice = all(get_origin(a) is Literal for a in args if a is not type(None))
        problems.append(f"{key}: {'must be one of' if choice else 'expected'} {_type_name(tp)}, got {short_repr(value)}")
        return value
    if origin is Literal:
        if value not in get_args(tp):
            problems.append(f"{key}: must be one of {_type_name(tp)}, got {short_repr(value)}")
        return value
    if origin in (list, tuple):
        if isinstance(value, str) or not isinstance(value, (list, tuple)):
            problems.append(f"{key}: expected {_type_name(tp)}, got {short_repr(value)}")
            return value
        args = [a for a in get_args(tp) if a is not Ellipsis]
        item_tp = args[0] if args else Any
        return tuple(_coerce(v, item_tp, f"{key}[{i}]", problems) for i, v in enumerate(value))
    if origin is dict or tp is dict:
        if not isinstance(value, Mapping):
            problems.append(f"{key}: expected a mapping, got {short_repr(value)}")
        return value
    if dataclasses.is_dataclass(tp):
        if isinstance(value, tp):
            return value
        if not isinstance(value, Mapping):
            problems.append(f"{key}: expected a mapping, got {short_repr(value)}")
            return value
        return _build(tp, value, key, problems)
    if tp is bool:
        if not isinstance(value, bool):
            problems.append(f"{key}: expected true or false, got {short_repr(value)}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            problems.append(f"{key}: expected an integer, got {short_repr(value)}")
        else:
            _int_bound(key, value, problems)
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            problems.append(f"{key}: expected a number, got {short_repr(value)}")
            return value
        if isinstance(value, int) and abs(value) > INT_MAX:
            problems.append(f"{key}: too large, got {short_repr(value)}")
            return value
        if not math.isfinite(value):
            problems.append(f"{key}: must be a finite number, got {value}")
            return value
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            problems.append(f"{key}: expected a string, got {short_repr(value)}")
        return value
    if tp is Path:
        if not isinstance(value, (str, Path)):
            problems.append(f"{key}: expected a path, got {short_repr(value)}")
            return value
        return Path(value)
    return value


def _build(cls: type[T], data: Mapping[str, Any], where: str, problems: list[str],
           *, partial: bool = False) -> T:
    """Build ``cls`` from ``data``, adding every problem to ``problems``; None when unusable.

    ``partial``: an ill-typed key takes its default instead of making the whole object unusable,
    and ``check()`` runs on the rest (its problems about that key are left out: it has one).
    """
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    prefix = f"{where}." if where else ""
    kwargs: dict[str, Any] = {}
    typing_problems: list[str] = []
    bad: set[str] = set()
    for key, value in data.items():
        if key not in fields:
            problems.append(unknown_key(key, list(fields), where))
            continue
        found: list[str] = []
        kwargs[key] = _coerce(value, hints[key], f"{prefix}{key}", found)
        if found:
            bad.add(key)
            typing_problems.extend(found)
    problems.extend(typing_problems)
    required = {
        name for name, f in fields.items()
        if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING  # type: ignore[misc]
    }
    missing = [name for name in fields if name in required and name not in kwargs]
    problems.extend(f"{prefix}{name}: required key missing" for name in missing)
    if missing or (bad and (not partial or bad & required)):
        return None  # type: ignore[return-value]  # check() only sees well-typed values
    for key in bad:
        del kwargs[key]
    try:
        obj = cls(**kwargs)
    except (TypeError, ValueError) as e:
        problems.append(f"{where or cls.__name__}: {e}")
        return None  # type: ignore[return-value]
    check = getattr(obj, "check", None)
    if callable(check):
        problems.extend(f"{prefix}{p}" for p in check() if re.split(r"[.:\[]", p, maxsplit=1)[0] not in bad)
    return obj


def from_dict(cls: type[T], data: Mapping[str, Any] | None, where: str = "") -> T:
    """Build the frozen dataclass ``cls`` from ``data``; raise one ConfigError listing every
    problem (unknown keys with suggestions, wrong types, failed ``check()``)."""
    obj, problems = from_dict_partial(cls, data, where, partial=False)
    if problems:
        raise ConfigError(problems)
    return obj  # type: ignore[return-value]


def from_dict_partial(cls: type[T], data: Mapping[str, Any] | None, where: str = "",
                      *, partial: bool = True) -> tuple[T | None, list[str]]:
    """Like :func:`from_dict` but return ``(object, problems)`` instead of raising.

    An ill-typed key takes its default (so the other keys are still checked, ``check()``
    included, and callers can go on validating what depends on them); the object is None
    only when ``data`` is not a mapping or a required key is missing or ill-typed.
    """
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        return None, [f"{where or cls.__name__}: expected a mapping, got {short_repr(data)}"]
    problems: list[str] = []
    obj = _build(cls, data, where, problems, partial=partial)
    return obj, problems


@functools.cache
def _choice_fields(cls: type) -> tuple[tuple[str, Any], ...]:
    """``(name, annotation)`` of the fields of ``cls`` whose values are a ``Literal`` (or None)."""
    hints = typing.get_type_hints(cls)
    out = []
    for f in dataclasses.fields(cls):
        tp = hints.get(f.name)
        args = get_args(tp) if get_origin(tp) in (Union, types.UnionType) else (tp,)
        if any(get_origin(a) is Literal for a in args) and all(
                get_origin(a) is Literal or a is type(None) for a in args):
            out.append((f.name, tp))
    return tuple(out)


def choice_problems(obj: Any) -> list[str]:
    """``key: must be one of 'a' | 'b', got 'c'`` for every ``Literal`` field of the dataclass
    ``obj`` holding another value: what :func:`from_dict` says, for a config built directly
    (call it from ``check()``; the Literal is the one place the choices are written)."""
    problems: list[str] = []
    for name, tp in _choice_fields(type(obj)):
        _coerce(getattr(obj, name), tp, name, problems)
    return problems


def validate(cls: type[T], data: Mapping[str, Any] | None, where: str = "") -> list[str]:
    """Like :func:`from_dict` but return the list of problems instead of raising."""
    try:
        from_dict(cls, data, where)
    except ConfigError as e:
        return e.problems
    return []


def to_dict(obj: Any) -> Any:
    """A JSON/YAML-friendly plain form of a config (for manifests and resolved recipes)."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_dict(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, Mapping):
        return {str(k): to_dict(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_dict(v) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    return obj
