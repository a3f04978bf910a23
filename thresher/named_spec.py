"""``[NAME=]KIND[:ARG]`` specs, the shape of ``--scorer`` and of eval's ``--judge``.

One parser for the common head (an optional column name, a known kind, the rest), so that the
two spec languages name things and refuse bad names and unknown kinds the same way.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from typing import NamedTuple

#: a spec's name: becomes part of a column name (``score_NAME``)
NAME_PATTERN = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")


class NamedSpec(NamedTuple):
    """A spec split into its parts (``name`` None when the spec names none)."""

    name: str | None
    kind: str
    arg: str
    has_arg: bool


def split_named_spec(text: str, what: str, kinds: Collection[str], error: type[Exception]) -> NamedSpec:
    """Split ``text`` as ``[NAME=]KIND[:ARG]`` (kind lower-cased, arg stripped); raise
    ``error`` with a one-line reason naming ``what`` ("scorer", "judge") when the name is not
    letters, digits and _ or the kind is not one of ``kinds``."""
    raw = str(text).strip()
    name = None
    if "=" in raw.split(":", 1)[0]:
        name, raw = (s.strip() for s in raw.split("=", 1))
        if not NAME_PATTERN.match(name):
            raise error(f"{what} {text!r}: name {name!r} must be letters, digits and _")
    kind, sep, arg = raw.partition(":")
    kind = kind.strip().lower()
    if kind not in kinds:
        raise error(f"unknown {what} {kind!r} in {text!r} (expected one of {', '.join(kinds)})")
    return NamedSpec(name, kind, arg.strip(), bool(sep))
