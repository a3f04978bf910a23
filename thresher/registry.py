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
    static_facts.cache_clear()


def targets() -> dict[str, str]:
    """name -> ``"module:Class"`` (or a module) of every registered stage, in registry order."""
    return {**dict(_installed()), **OVERRIDES}


def names(*, recipe: bool = False) -> list[str]:
    """Every registered stage name in pipeline order (``position``, then name; ``recipe``: only
    those a recipe's ``stages`` may hold; a stage whose module does not import is listed, so
    that using it names the import error)."""
    facts = {n: _listing(n) for n in targets()}
    ordered = sorted(facts, key=lambda n: (facts[n].get("position", 1000), n))
    return [n for n in ordered if not recipe or facts[n].get("in_recipe", True)]


def _listing(name: str) -> dict[str, Any]:
    """The facts that list a stage (name, position, in_recipe, cli, cli_group, summary), read
    from its class's source without importing it when they are plain literals (so that
    ``thresher --help`` imports no stage), else from the imported class."""
    found = static_facts(targets()[name])
    if found is not None:
        return found
    cls = _class_or_none(name)
    if cls is None:
        return {}
    return {k: getattr(cls, k) for k in LISTING if hasattr(cls, k)} | {"__doc__": cls.__doc__}


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
    """Stage ``name``'s command when it is listed in ``group`` (no stage module is imported
    when its listing facts are literals in its source)."""
    f = _listing(name) if name in targets() else {}
    if f.get("cli") and f.get("cli_group", "") == group and f.get("name") == name:  # an alias has none
        return f["cli"], f.get("summary") or _first_line(f.get("__doc__"))
    return None


def _first_line(doc: str | None) -> str:
    return (doc or "").strip().split("\n")[0]


#: the facts :func:`names` and :func:`command` need (class attributes with literal values)
LISTING = ("name", "position", "in_recipe", "cli", "cli_group", "summary")
_BASES = {"RowStage", "GlobalStage", "StageFacts"}


@functools.cache
def static_facts(target: str) -> dict[str, Any] | None:
    """The :data:`LISTING` facts of ``"module:Class"`` read from the module's source (the class
    must subclass RowStage/GlobalStage directly and say its ``name``; values are literals or
    module-level literal constants), or None: then the class is imported instead."""
    import ast
    import importlib.util

    mod_name, _, attr = target.partition(":")
    try:
        spec = importlib.util.find_spec(mod_name)
        source = open(spec.origin, encoding="utf-8").read() if spec and spec.origin else None  # noqa: SIM115
        tree = ast.parse(source) if source else None
    except (ImportError, OSError, SyntaxError, ValueError):
        return None
    if tree is None or not attr:
        return None
    constants = _literals(tree.body, {})
    for node in tree.body:
        if isinstance(node, ast.ClassDef) and node.name == attr:
            if not {getattr(b, "id", getattr(b, "attr", "")) for b in node.bases} & _BASES:
                return None
            found = {k: v for k, v in _literals(node.body, constants).items() if k in LISTING}
            found["__doc__"] = ast.get_docstring(node)
            return found if "name" in found else None
    return None


def _literals(body: list, constants: dict[str, Any]) -> dict[str, Any]:
    """``NAME = literal`` (or ``= CONSTANT``) assignments among ``body``'s statements."""
    import ast

    out: dict[str, Any] = {}
    for node in body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1:
            target, value = node.targets[0], node.value
        elif isinstance(node, ast.AnnAssign) and node.value is not None:
            target, value = node.target, node.value
        else:
            continue
        if not isinstance(target, ast.Name):
            continue
        if isinstance(value, ast.Name) and value.id in constants:
            out[target.id] = constants[value.id]
            continue
        try:
            out[target.id] = ast.literal_eval(value)
        except ValueError:
            continue
    return out
