"""The stage registry: every stage thresher knows, built-in or plug-in, in one place.

A stage is registered as a Python entry point in the group ``thresher.stages``: the entry's
name is the recipe stage name and its value the stage class (``"module:Class"``, a
:class:`thresher.executor.RowStage` or :class:`thresher.executor.GlobalStage` subclass). The
built-in stages are listed in thresher's ``pyproject.toml``; a plug-in package lists its own
the same way and needs no edit of the core::

    [project.entry-points."thresher.stages"]
    shout = "my_pkg.shout.stage:ShoutStage"

Everything the core knows about a stage (its Config, CLI command, whether it makes data,
loads a model, which columns it reads and writes) is a fact on that class
(:class:`thresher.executor.StageFacts`); the recipe, the CLI groups, preflight and the Ray
executor loop over :func:`names`. Reading the entry points imports nothing; a stage's module
is imported when one of its facts is asked for.
"""

from __future__ import annotations

import functools
import importlib
from importlib import metadata
from types import ModuleType
from typing import Any

GROUP = "thresher.stages"

#: name -> target that replaces (or adds to) the installed entry points: tests point a stage at
#: a double (``"tests.recipe.fakes.train"``: a module exposing ``Config`` and ``run``, with the
#: default facts, or ``"module:Class"``). Patch it with ``monkeypatch.setitem``.
OVERRIDES: dict[str, str] = {}


@functools.cache
def _installed() -> tuple[tuple[str, str], ...]:
    seen: dict[str, str] = {}
    for ep in metadata.entry_points(group=GROUP):
        seen.setdefault(ep.name, ep.value)
    return tuple(seen.items())


def refresh() -> None:
    """Read the entry points again (after installing a plug-in in this process)."""
    _installed.cache_clear()
    _load.cache_clear()


def targets() -> dict[str, str]:
    """name -> ``"module:Class"`` (or a module) of every registered stage, in registry order."""
    return {**dict(_installed()), **OVERRIDES}


def names(*, recipe: bool = False) -> list[str]:
    """Every registered stage name in pipeline order (``position``, then name; ``recipe``: only
    those a recipe's ``stages`` may hold; a stage whose module does not import is listed, so
    that using it names the import error)."""
    classes = {n: _class_or_none(n) for n in targets()}
    ordered = sorted(classes, key=lambda n: (getattr(classes[n], "position", 1000), n))
    return [n for n in ordered if not recipe or getattr(classes[n], "in_recipe", True)]


def _class_or_none(name: str) -> type | None:
    try:
        return stage_class(name)
    except ImportError:
        return None


@functools.cache
def _load(target: str) -> tuple[ModuleType, type | None]:
    mod_name, _, attr = target.partition(":")
    module = importlib.import_module(mod_name)
    if attr and not hasattr(module, attr):  # a stale entry point: like a module that is not there
        raise ImportError(f"{mod_name} has no {attr}", name=mod_name)
    return module, (getattr(module, attr) if attr else None)


def stage_module(name: str) -> ModuleType:
    """The module of stage ``name`` (its ``Config`` and ``run``: the stage contract)."""
    return _load(targets()[name])[0]


def stage_class(name: str) -> type:
    """The stage class of ``name`` (a module-only test double gets the default facts)."""
    from thresher.executor import StageFacts

    module, cls = _load(targets()[name])
    if cls is not None:
        return cls
    return type(f"{name}Facts", (StageFacts,), {"name": name, "config_cls": getattr(module, "Config", None),
                                                 "makes_data": getattr(module, "MAKES_DATA", True)})


def facts(name: str) -> Any:
    """An instance of stage ``name``'s class: its facts (``models``, ``reads`` ...)."""
    return stage_class(name)()


def config_cls(name: str) -> type:
    """The Config dataclass of stage ``name``."""
    return stage_class(name).config_cls or stage_module(name).Config


def data_stages() -> tuple[str, ...]:
    """Stages whose kept.parquet is (a version of) the dataset; the last one in a run is "the"
    dataset."""
    return tuple(n for n in names() if getattr(_class_or_none(n), "makes_data", False))


def commands(group: str) -> dict[str, tuple[str, str]]:
    """The CLI commands of the stages listed in ``group`` (``""``: top level): name ->
    ``("module:attr", short help)``, for :class:`thresher.cli.lazy.LazyGroup`."""
    return {name: cmd for name in names() if (cmd := command(group, name)) is not None}


def command(group: str, name: str) -> tuple[str, str] | None:
    """Stage ``name``'s command when it is listed in ``group`` (only that stage is imported)."""
    cls = _class_or_none(name) if name in targets() else None
    if cls is not None and cls.cli and cls.cli_group == group and cls.name == name:  # an alias has none
        return cls.cli, cls.summary or _first_line(cls.__doc__)
    return None


def _first_line(doc: str | None) -> str:
    return (doc or "").strip().split("\n")[0]
