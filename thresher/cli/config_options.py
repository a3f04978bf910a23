"""Click options generated from a stage's Config dataclass: every option declared once.

A Config field documents itself with an attribute docstring (litgpt style)::

    threshold: float = 0.8
    '''Jaccard similarity at or above which two rows are near-duplicates, in (0, 1].'''

:func:`config_options` turns each field into a click option whose name, type, help and
shown default come from the field; the option's default is ``None`` and :func:`config_values`
keeps only the options the user gave, so the Config's own default fills the rest (the
dataclass is the one place a default is written). :class:`Opt` adjusts a field's spelling
where the command line differs from the recipe key (``--no-nfkc`` for ``nfkc``, ``-r/--rank``
for ``r``); ``recipe_only`` lists the fields that have no option.
"""

from __future__ import annotations

import ast
import dataclasses
import functools
import inspect
import textwrap
import types
import typing
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, Literal, Union, get_args, get_origin

import click

#: attribute set on a command function decorated by :func:`config_options`
CONFIG_ATTR = "__thresher_config__"
_UNSET: Any = object()


@dataclasses.dataclass(frozen=True)
class Opt:
    """How one Config field is spelled on the command line, where the default does not fit."""

    decls: tuple[str, ...] = ()
    """Option declarations, e.g. ``("--no-nfkc",)``, ``("-r", "--rank")`` or ``("--dora/--no-dora",)``."""
    flag_value: Any = _UNSET
    """For a single flag: the field's value when the flag is given (``False`` for ``--no-x``)."""
    type: Any = None
    """A click type replacing the one derived from the annotation (e.g. a ``click.Choice``)."""
    metavar: str | None = None
    """Metavar shown in ``--help``."""
    callback: Callable[..., Any] | None = None
    """A click callback converting the raw value (return ``None`` for "not given")."""
    multiple: bool | None = None
    """Repeatable option (default: for list/tuple fields)."""
    help: str | None = None
    """Help replacing the field's docstring (only for a CLI-specific spelling)."""
    required: bool = False
    """The command needs this option (the Config default does not do)."""
    default_text: str | None = None
    """What ``--help`` shows as the default (instead of the Config default's value)."""


@functools.cache
def field_docs(cls: type) -> dict[str, str]:
    """``{field: docstring}`` from the attribute docstrings in ``cls``'s source (and its bases')."""
    docs: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        if klass is object or not dataclasses.is_dataclass(klass):
            continue
        try:
            source = textwrap.dedent(inspect.getsource(klass))
        except (OSError, TypeError):
            continue
        body = ast.parse(source).body[0].body  # type: ignore[attr-defined]
        for node, nxt in zip(body, body[1:]):
            if (isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)
                    and isinstance(nxt, ast.Expr) and isinstance(nxt.value, ast.Constant)
                    and isinstance(nxt.value.value, str)):
                docs[node.target.id] = " ".join(inspect.cleandoc(nxt.value.value).split())
    return docs


def config_fields(cls: type) -> list[dataclasses.Field[Any]]:
    """The init fields of a Config dataclass (what a recipe or CLI may set)."""
    return [f for f in dataclasses.fields(cls) if f.init]


def _strip_optional(tp: Any) -> Any:
    if get_origin(tp) in (Union, types.UnionType):
        args = [a for a in get_args(tp) if a is not type(None)]
        if len(args) == 1:
            return args[0]
    return tp


def _default(f: dataclasses.Field[Any]) -> Any:
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:  # type: ignore[misc]
        return f.default_factory()  # type: ignore[misc]
    return None


def _click_type(tp: Any) -> Any:
    tp = _strip_optional(tp)
    if get_origin(tp) is Literal:
        return click.Choice([str(a) for a in get_args(tp)])
    if get_origin(tp) in (list, tuple):
        args = [a for a in get_args(tp) if a is not Ellipsis]
        return _click_type(args[0]) if args else None
    return {int: int, float: float, str: None, Path: click.Path()}.get(tp)


def _shown_default(value: Any) -> str | None:
    if value is None or isinstance(value, bool) or value == () or value == [] or value == {}:
        return None
    if isinstance(value, (list, tuple)):
        return ", ".join(str(v) for v in value)
    return str(value)


def _option(f: dataclasses.Field[Any], tp: Any, doc: str, spec: Opt) -> Callable[[Any], Any]:
    name = f.name
    default = _default(f)
    base = _strip_optional(tp)
    doc = doc.replace("``", "")  # reST literals read as plain words in --help
    kwargs: dict[str, Any] = {"default": None, "help": spec.help or doc}
    decls = spec.decls
    if base is bool:
        if not decls:
            decls = (f"--no-{name.replace('_', '-')}",) if default is True else (f"--{name.replace('_', '-')}",)
        if not any("/" in d for d in decls):
            kwargs["is_flag"] = True
            fv = spec.flag_value
            kwargs["flag_value"] = (not default if default is not None else True) if fv is _UNSET else fv
            if kwargs["flag_value"] is False and spec.help is None:
                kwargs["help"] = f"Turn off (on by default): {doc[:1].lower()}{doc[1:]}"
    else:
        decls = decls or (f"--{name.replace('_', '-')}",)
        shown = spec.default_text or _shown_default(default)
        if shown is not None and spec.help is None:
            kwargs["help"] = f"{doc}  [default: {shown}]"
        ctype = spec.type if spec.type is not None else _click_type(tp)
        if ctype is not None:
            kwargs["type"] = ctype
        multiple = spec.multiple if spec.multiple is not None else get_origin(base) in (list, tuple)
        if multiple:
            kwargs["multiple"] = True
    if spec.required:
        kwargs["required"] = True
    if spec.metavar:
        kwargs["metavar"] = spec.metavar
    if spec.callback is not None:
        kwargs["callback"] = spec.callback
    return click.option(*decls, name, **kwargs)


def config_options(cls: type, *, opts: Mapping[str, Opt] | None = None,
                   recipe_only: Iterable[str] = (), only: Iterable[str] | None = None,
                   mark: bool = True) -> Callable[[Any], Any]:
    """A decorator adding one click option per field of ``cls`` (except ``recipe_only``).

    The click parameter is named after the field, its default is ``None`` (not given) and its
    help is the field's docstring plus the Config default; see :func:`config_values`. ``only``
    picks a subset of the fields (a command sharing some of another stage's options).
    ``mark=False`` leaves the command's stage Config mark alone (a shared bundle such as
    :func:`thresher.cli.options.read_options`).
    """
    opts = dict(opts or {})
    fields = config_fields(cls)
    names = {f.name for f in fields}
    skip = frozenset(recipe_only) | (names - set(only) if only is not None else frozenset())
    if only is not None and set(only) - names:
        raise TypeError(f"{cls.__qualname__} has no field(s) {', '.join(sorted(set(only) - names))}")
    unknown = (set(opts) | skip) - names
    if unknown:  # a typo here would silently drop an option
        raise TypeError(f"{cls.__qualname__} has no field(s) {', '.join(sorted(unknown))}")
    hints = typing.get_type_hints(cls)
    docs = field_docs(cls)

    def decorate(fn: Any) -> Any:
        for f in reversed(fields):
            if f.name not in skip:
                fn = _option(f, hints[f.name], docs.get(f.name, ""), opts.get(f.name, Opt()))(fn)
        if mark:
            setattr(fn, CONFIG_ATTR, (cls, skip))
        return fn

    return decorate


def config_values(cls: type, options: dict[str, Any]) -> dict[str, Any]:
    """Pop ``cls``'s fields out of a command's ``options``; keep the ones the user gave.

    An option left out is ``None`` (or ``()`` when repeatable), so the Config default applies.
    """
    values: dict[str, Any] = {}
    for f in config_fields(cls):
        if f.name not in options:
            continue
        v = options.pop(f.name)
        if v is None or v == ():
            continue
        values[f.name] = list(v) if isinstance(v, tuple) else v
    return values
