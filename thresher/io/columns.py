"""Columns besides ``messages``: keep every value as it was, or refuse the row.

A table column holds one type. Rather than let the table builder turn ``1`` and ``"a"`` into
strings, a dict ``category`` into ``"{1}"``, or union the keys of differently shaped objects
(filling nulls), each row's extra columns are checked against the first row that set them:

- ``category`` and ``source`` are strings (a number is read as its text); a bool, list or
  object is a bad row;
- an extra column keeps one JSON type in every row: a string, a number (integers and floats
  mix), a bool, a list whose elements share one type, or an object with the same keys
  (recursively); null fits anything. A row that differs is a bad row naming the column and
  the line that set its type;
- values nested deeper than :data:`MAX_DEPTH` levels are a bad row (a hostile 1,000-deep
  value would otherwise take gigabytes to build).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

#: the deepest nesting (lists and objects) an extra column may hold
MAX_DEPTH = 32
INT64 = (-(2 ** 63), 2 ** 63 - 1)


class ColumnError(ValueError):
    """A value that does not fit its column (the message is the reason)."""


def check_scalar_column(record: Mapping[str, Any], key: str) -> Any:
    """The value of ``category``/``source`` as text (None when absent); raises ColumnError."""
    value = record.get(key)
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    kind = {bool: "a bool", list: "a list", dict: "an object"}.get(type(value), type(value).__name__)
    raise ColumnError(f"'{key}' must be a string, got {kind}")


def signature(value: Any, depth: int = 0) -> Any:
    """The JSON type of ``value`` (None for null); raises ColumnError for mixed lists and
    values nested deeper than :data:`MAX_DEPTH`."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        if not INT64[0] <= value <= INT64[1]:
            raise ColumnError("integer does not fit in 64 bits")
        return "number"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if depth >= MAX_DEPTH:
        raise ColumnError(f"nested deeper than {MAX_DEPTH} levels")
    if isinstance(value, (list, tuple)):
        elem: Any = None
        for v in value:
            elem = merge(elem, signature(v, depth + 1))
        return ("list", elem)
    if isinstance(value, Mapping):
        return ("object", tuple((str(k), signature(v, depth + 1)) for k, v in sorted(value.items(), key=lambda kv: str(kv[0]))))
    return type(value).__name__


def describe(sig: Any) -> str:
    """Human text for a signature."""
    if sig is None:
        return "null"
    if isinstance(sig, str):
        return sig
    if sig[0] == "list":
        return f"a list of {describe(sig[1])}" if sig[1] is not None else "a list"
    keys = ", ".join(k for k, _ in sig[1])
    return f"an object with keys {{{keys}}}" if keys else "an empty object"


def merge(a: Any, b: Any) -> Any:
    """The common type of two signatures (null fits anything); raises ColumnError."""
    if a is None:
        return b
    if b is None or a == b:
        return a
    if isinstance(a, tuple) and isinstance(b, tuple) and a[0] == b[0]:
        if a[0] == "list":
            return ("list", merge(a[1], b[1]))
        ka, kb = [k for k, _ in a[1]], [k for k, _ in b[1]]
        if ka == kb:
            return ("object", tuple((k, merge(x, y)) for (k, x), (_, y) in zip(a[1], b[1])))
    raise ColumnError(f"{describe(b)} where earlier values are {describe(a)}")


def too_deep(value: Any) -> bool:
    """True when ``value`` nests lists/objects deeper than :data:`MAX_DEPTH` (iterative)."""
    stack = [(value, 0)]
    while stack:
        v, d = stack.pop()
        if isinstance(v, (list, tuple, Mapping)):
            if d >= MAX_DEPTH:
                return True
            stack.extend((x, d + 1) for x in (v.values() if isinstance(v, Mapping) else v))
    return False


class ColumnTypes:
    """The type of each extra column so far, and the place that set it. Columns in ``loose``
    (reference answers and tests, normalised to text by :mod:`thresher.io.references`) are
    only checked for depth."""

    def __init__(self, skip: tuple[str, ...] = ("id", "messages", "category", "source"),
                 loose: tuple[str, ...] = ()):
        self.skip = set(skip)
        self.loose = set(loose)
        self.types: dict[str, Any] = {}
        self.where: dict[str, str] = {}

    def check(self, row: Mapping[str, Any], where: str) -> str | None:
        """Why ``row`` does not fit the columns seen so far (None when it fits); a fitting row
        updates the column types."""
        new: dict[str, Any] = {}
        for key, value in row.items():
            if key in self.skip:
                continue
            if key in self.loose:
                if too_deep(value):
                    return f"column '{key}': nested deeper than {MAX_DEPTH} levels"
                continue
            try:
                sig = signature(value)
            except ColumnError as e:
                return f"column '{key}': {e}"
            try:
                new[key] = merge(self.types.get(key), sig)
            except ColumnError:
                first = self.where[key]
                place = f"line {first}" if first.isdigit() else first
                return f"column '{key}': {describe(sig)}, but {place} holds {describe(self.types[key])}"
        for key, sig in new.items():
            if sig is not None and key not in self.where:
                self.where[key] = where
            self.types[key] = sig
        return None
