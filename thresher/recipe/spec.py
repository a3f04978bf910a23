"""Recipes: one YAML file from prompts and a teacher to a curated set and a trained student.

A recipe looks like::

    name: quickstart
    seed: 0
    holdout: 16                 # prompts kept aside for the `eval` stage (optional)
    inputs:
      - chatterbot: english     # or `path: data.jsonl` / `hub: org/name`
        categories: [food, science]
        source: chatterbot-corpus
    stages:
      - generate: {n: 4}
      - generate: {input: inputs, teacher: student}   # `input`: another stage's rows feed this one
      - score: {input: generate#1, passrate_from: {student: generate#2}}
      - dedup: {threshold: 0.8}
      - train: {base: smollm2}
      - report: {}

:func:`thresher.recipe.loading.load_recipe` reads it and :func:`parse_recipe` parses it into frozen dataclasses and validates everything before
anything runs: each stage's options are built by that stage's own ``Config`` (the stage
module is imported lazily), and every problem is reported in one :class:`ConfigError` whose
parts carry their key path (``stages[3].dedup.threshold: must be in (0, 1]``).
Relative paths in a recipe are relative to the current directory, like CLI options.

Each stage is fed the previous data stage's rows unless it names its ``input``: ``inputs``
(the recipe's inputs), a stage name (``generate``, when the recipe has one), the N-th stage
of a name (``generate#2``) or ``stages[I]``; it must be an earlier data stage. A stage
Config's ``_stage_refs`` fields (score's ``passrate_from``) may name stages the same way.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from thresher.choices import Executor
from thresher.config import did_you_mean, short_repr
from thresher.errors import ConfigError, ThresherError
from thresher.io.inputs import OnBadRows
from thresher.io.shapes import Shape
from thresher.registry import (  # the stages: one registry
    config_cls,
    data_stages,
    stage_module,  # noqa: F401 - re-exported (the recipe's stage modules)
    targets,
)
from thresher.registry import names as stage_names_known

INPUT_KINDS = ("path", "hub", "chatterbot")
#: the train stage option naming the student's base model (required in a recipe)
BASE_KEYS = ("base", "base_model")


@dataclass(frozen=True)
class InputSpec:
    """One entry of a recipe's ``inputs``.

    ``kind`` is ``path`` (a local file or folder in any format the core reads), ``hub`` (a
    Hugging Face dataset name) or ``chatterbot`` (the chatterbot-corpus package; ``value``
    is the language, ``categories`` the YAML file names to take, all when empty).
    ``source``/``category`` fill those columns; ``limit`` keeps the first N rows; ``format``,
    ``split`` and ``on_bad_rows`` are the read options (``skip`` puts rejected rows in the
    inputs step's dropped.parquet).
    """

    kind: str
    value: str
    source: str | None = None
    category: str | None = None
    limit: int | None = None
    format: Shape | None = None
    split: str | None = None
    categories: tuple[str, ...] = ()
    responses: bool = False
    on_bad_rows: OnBadRows = "error"


@dataclass(frozen=True)
class StageSpec:
    """One validated stage of a recipe: its name, position and built ``Config``; ``input``
    names the stage whose rows feed it (None: the previous data stage)."""

    name: str
    index: int
    config: Any
    input: str | None = None

    @property
    def folder(self) -> str:
        """The stage's folder inside the run directory (``03-dedup``)."""
        return f"{self.index + 1:02d}-{self.name}"

    @property
    def where(self) -> str:
        """The stage's key path in the recipe (``stages[2].dedup``)."""
        return f"stages[{self.index}].{self.name}"


@dataclass(frozen=True)
class Recipe:
    """A parsed, validated recipe."""

    name: str
    seed: int
    inputs: tuple[InputSpec, ...]
    stages: tuple[StageSpec, ...]
    holdout: int = 0
    description: str = ""
    path: Path | None = field(default=None, compare=False)
    executor: Executor = "local"  # --executor overrides it

    def stage(self, name: str) -> StageSpec | None:
        """The first stage called ``name`` (None when the recipe has none)."""
        return next((s for s in self.stages if s.name == name), None)

    def to_dict(self) -> dict[str, Any]:
        """The resolved recipe (every stage option filled with its value) as plain data."""
        from thresher.config import to_dict

        inputs = []
        for spec in self.inputs:
            d: dict[str, Any] = {spec.kind: spec.value}
            for f in dataclasses.fields(spec):
                if f.name in ("kind", "value"):
                    continue
                v = getattr(spec, f.name)
                if f.name in INPUT_KEYS[spec.kind] and v not in (None, (), False, "error"):
                    d[f.name] = list(v) if isinstance(v, tuple) else v
            inputs.append(d)
        return {
            "name": self.name,
            "seed": self.seed,
            **({"description": self.description} if self.description else {}),
            "holdout": self.holdout,
            **({"executor": self.executor} if self.executor != "local" else {}),
            "inputs": inputs,
            "stages": [{s.name: {**({"input": s.input} if s.input else {}), **to_dict(s.config)}}
                       for s in self.stages],
        }

    def to_yaml(self) -> str:
        """The resolved recipe as YAML text."""
        return yaml.safe_dump(self.to_dict(), sort_keys=False, allow_unicode=True)


def _str(v: Any) -> bool:
    return isinstance(v, str) and bool(v.strip())


def safe_name(name: str) -> bool:
    """True when ``name`` is one safe path component (``runs/NAME`` stays under ``runs/``)."""
    import re

    return bool(re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}", name))


@dataclass(frozen=True)
class _InputEntry:
    """The options every input entry may give (validated by ``thresher.config``)."""

    source: str | None = None
    """Value of the ``source`` column."""
    category: str | None = None
    """Value of the ``category`` column."""
    limit: int | None = None
    """Keep the first N rows."""

    def check(self) -> list[str]:
        if self.limit is not None and self.limit < 1:
            return [f"limit: expected a positive integer, got {self.limit!r}"]
        return []


@dataclass(frozen=True)
class _ReadInput(_InputEntry):
    """The read options of an input that is read as records (a file or a hub dataset)."""

    format: Shape | None = None
    """Force the record format (default: detected)."""
    split: str | None = None
    """The split to read (a DatasetDict folder or a hub dataset; default: train)."""
    on_bad_rows: OnBadRows = "error"
    """``skip`` records bad rows in the inputs step's dropped.parquet (drop_stage read) instead of stopping."""


@dataclass(frozen=True)
class _PathInput(_ReadInput):
    """``{path: FILE}``: a local file or folder in any format the core reads (also compressed:
    .gz, .bz2, .xz, .zst)."""

    path: str = ""
    """The file or folder."""


@dataclass(frozen=True)
class _HubInput(_ReadInput):
    """``{hub: NAME}``: a Hugging Face dataset."""

    hub: str = ""
    """The dataset name."""


@dataclass(frozen=True)
class _ChatterbotInput(_InputEntry):
    """``{chatterbot: LANGUAGE}``: the chatterbot-corpus package."""

    chatterbot: str = ""
    """The corpus language."""
    categories: tuple[str, ...] = ()
    """The corpus YAML files to take (all when empty)."""
    responses: bool = False
    """Also take the corpus' alternative responses."""

    def check(self) -> list[str]:
        problems = super().check()
        if not all(_str(c) for c in self.categories):
            problems.append(f"categories: expected a list of names, got {list(self.categories)!r}")
        return problems


_INPUT_ENTRIES: dict[str, type[_InputEntry]] = {"path": _PathInput, "hub": _HubInput, "chatterbot": _ChatterbotInput}
#: the keys an input entry of each kind may give
INPUT_KEYS: dict[str, tuple[str, ...]] = {
    kind: tuple(f.name for f in dataclasses.fields(cls)) for kind, cls in _INPUT_ENTRIES.items()
}


def _parse_input(i: int, raw: Any, problems: list[str], check_files: bool) -> InputSpec | None:
    from thresher.config import from_dict

    where = f"inputs[{i}]"
    if isinstance(raw, str):
        raw = {"path": raw}
    if not isinstance(raw, Mapping):
        problems.append(f"{where}: expected a mapping like {{path: FILE}}, got {raw!r}")
        return None
    kinds = [k for k in INPUT_KINDS if k in raw]
    if len(kinds) != 1:
        what = "none" if not kinds else ", ".join(kinds)
        problems.append(f"{where}: needs exactly one of path, hub, chatterbot (got {what})")
        return None
    kind = kinds[0]
    raw = dict(raw)
    if isinstance(raw.get("categories"), str):
        raw["categories"] = [raw["categories"]]
    if raw.get("categories") is None:
        raw.pop("categories", None)
    try:
        entry = from_dict(_INPUT_ENTRIES[kind], raw, where)
    except ConfigError as e:
        problems.extend(e.problems)
        return None
    value = getattr(entry, kind)
    if not _str(value):
        problems.append(f"{where}.{kind}: expected a non-empty string, got {value!r}")
        return None
    if check_files and kind == "path" and not Path(value).exists():
        problems.append(f"{where}.path: file not found: {value}")
    if kind == "chatterbot":
        from thresher.recipe.chatterbot import chatterbot_files

        try:
            chatterbot_files(value, entry.categories)
        except ThresherError as e:
            problems.append(f"{where}.chatterbot: {e}")
    return InputSpec(kind=kind, value=str(value), source=entry.source, category=entry.category,
                     limit=entry.limit, format=getattr(entry, "format", None), split=getattr(entry, "split", None),
                     categories=getattr(entry, "categories", ()), responses=getattr(entry, "responses", False),
                     on_bad_rows=getattr(entry, "on_bad_rows", "error"))


def _parse_stage(i: int, raw: Any, seed: int, problems: list[str]) -> StageSpec | None:
    if isinstance(raw, str):
        raw = {raw: {}}
    if not isinstance(raw, Mapping) or len(raw) != 1:
        problems.append(f"stages[{i}]: expected one stage name with its options, like {{dedup: {{...}}}}")
        return None
    name, opts = next(iter(raw.items()))
    known = stage_names_known(recipe=True)
    if name not in known:
        close = did_you_mean(name, known)
        hint = f"did you mean '{close}'? " if close else ""
        problems.append(
            f"stages[{i}]: unknown stage '{name}' ({hint}known: {', '.join(known)})"
        )
        return None
    where = f"stages[{i}].{name}"
    if opts is None:
        opts = {}
    if not isinstance(opts, Mapping):
        problems.append(f"{where}: expected a mapping of options, got {opts!r}")
        return None
    try:
        cls = config_cls(name)
    except ImportError as e:
        problems.append(f"{where}: stage module {targets()[name].split(':')[0]} is not available ({e})")
        return None
    # YAML 1.1 reads a bare `on:` / `off:` key as a boolean; mean the word
    opts = {({True: "on", False: "off"}[k] if isinstance(k, bool) else k): v for k, v in opts.items()}
    fields = {f.name for f in dataclasses.fields(cls)}
    feed = opts.pop(INPUT_KEY, None) if INPUT_KEY not in fields else None
    if feed is not None and not _str(feed):
        problems.append(f"{where}.{INPUT_KEY}: expected a stage such as inputs, generate#1 or stages[0], got {feed!r}")
        feed = None
    if "seed" in fields and "seed" not in opts:
        opts["seed"] = seed
    if name == "train":
        base_keys = [k for k in BASE_KEYS if k in fields]
        if base_keys and not any(_str(opts.get(k)) for k in base_keys):
            problems.append(f"{where}.{base_keys[0]}: required (the student's base model)")
    try:
        config = _from_dict_safe(cls, opts, where)
    except ConfigError as e:
        problems.extend(e.problems)
        return None
    return StageSpec(name=name, index=i, config=config, input=feed)


def _from_dict_safe(cls: type, opts: dict[str, Any], where: str) -> Any:
    """``from_dict``, but a ``check()`` that crashes on a wrongly typed value (it runs even
    when a type problem was found) yields the type problems instead of a traceback."""
    from thresher.config import from_dict

    try:
        return from_dict(cls, opts, where)
    except ConfigError:
        raise
    except Exception as e:  # noqa: BLE001 - a stage's check() tripping over a bad type
        unchecked = type(cls.__name__, (cls,), {"check": lambda self: []})
        try:
            from_dict(unchecked, opts, where)
        except ConfigError as ce:
            raise ConfigError(ce.problems) from None
        raise ConfigError(f"{where}: invalid options ({type(e).__name__}: {e})") from None


@dataclass(frozen=True)
class _RecipeTop:
    """The top-level keys of a recipe (validated by ``thresher.config``)."""

    name: str | None = None
    """The recipe's name (required)."""
    seed: int = 0
    """The seed every stage gets unless it sets its own."""
    description: str | None = None
    """Free text about the recipe."""
    holdout: int = 0
    """Prompts kept aside for the ``eval`` stage."""
    executor: Executor = "local"
    """Where stages run: local, or ray (``--executor`` overrides it)."""
    inputs: Any = None
    """The input entries (each validated as a path, hub or chatterbot entry)."""
    stages: Any = None
    """The ordered stages (each validated by its stage's ``Config``)."""

    def check(self) -> list[str]:
        problems = []
        if self.name is None:
            problems.append("name: required")
        elif not _str(self.name):
            problems.append(f"name: expected a non-empty string, got {self.name!r}")
        elif not safe_name(self.name):
            problems.append(f"name: must be one folder name (letters, digits, '.', '_' and '-', starting "
                            f"with a letter or digit, at most 100 characters; it names runs/NAME), "
                            f"got {short_repr(self.name)}")
        if self.holdout < 0:
            problems.append(f"holdout: expected a non-negative integer, got {self.holdout!r}")
        return problems


#: the keys a recipe may give at its top level
TOP_KEYS: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(_RecipeTop))


def parse_recipe(data: Mapping[str, Any], *, path: Path | None = None, check_files: bool = True) -> Recipe:
    """Validate raw recipe data and build a :class:`Recipe`; one ConfigError lists every problem."""
    from thresher.config import from_dict_partial

    top, problems = from_dict_partial(_RecipeTop, data)
    top = top or _RecipeTop()
    name = top.name if _str(top.name) else "recipe"
    seed = top.seed
    holdout = max(top.holdout, 0)
    executor = top.executor  # an unknown one is a problem above, and top has the default
    description = top.description or ""

    inputs = _parse_list(data, "inputs", "a list of path, hub or chatterbot entries", problems,
                         lambda i, raw: _parse_input(i, raw, problems, check_files))
    stages = _parse_list(data, "stages", "an ordered list of stages", problems,
                         lambda i, raw: _parse_stage(i, raw, seed, problems))
    if stages is not None:
        problems.extend(_order_problems(data["stages"], holdout))
        problems.extend(_ref_problems(stages, data["stages"]))
    if problems:
        raise ConfigError(problems)
    return Recipe(
        name=str(name),
        seed=seed,
        inputs=tuple(inputs or ()),
        stages=tuple(stages or ()),
        holdout=holdout,
        description=description,
        path=path,
        executor=executor,
    )


def _parse_list(data: Mapping[str, Any], key: str, what: str, problems: list[str],
                parse: Any) -> list[Any] | None:
    """The parsed entries of the required, non-empty list ``data[key]`` (None when it is not one)."""
    raw = data.get(key)
    if raw is None:
        problems.append(f"{key}: required ({what})")
        return None
    if not isinstance(raw, list) or not raw:
        problems.append(f"{key}: expected a non-empty list, got {raw!r}")
        return None
    return [spec for i, item in enumerate(raw) if (spec := parse(i, item)) is not None]


#: the recipe key (beside a stage's options) naming the stage whose rows feed it
INPUT_KEY = "input"
_STAGE_REF = re.compile(r"^(?:(?P<inputs>inputs)|stages\[(?P<index>\d+)\]|(?P<name>[a-z_]+)(?:#(?P<nth>\d+))?)$")


def stage_names(raw_stages: list) -> list[str | None]:
    """Each raw stage entry's name (None for a malformed entry)."""
    return [next(iter(s)) if isinstance(s, Mapping) and len(s) == 1 else s if isinstance(s, str) else None
            for s in raw_stages]


def resolve_stage_ref(ref: str, names: Sequence[str | None], before: int) -> tuple[int | None, str | None]:
    """``(index, problem)``: the index of the stage ``ref`` names (-1: the recipe's inputs),
    which must be an earlier data stage than ``before``; ``(None, None)`` when ``ref`` is not
    a stage reference at all (a file path)."""
    m = _STAGE_REF.match(str(ref).strip())
    if m is None or (m["name"] and m["name"] not in stage_names_known(recipe=True)):
        return None, None
    if m["inputs"]:
        return -1, None
    if m["index"] is not None:
        i = int(m["index"])
        if i >= len(names):
            return None, f"{ref!r}: the recipe has no stages[{i}]"
    else:
        same = [j for j, n in enumerate(names) if n == m["name"]]
        if m["nth"] is None and len(same) > 1:
            return None, f"{ref!r}: the recipe has {len(same)} {m['name']} stages; say which with {m['name']}#1 ..."
        nth = int(m["nth"] or 1)
        if not same or not 1 <= nth <= len(same):
            return None, f"{ref!r}: the recipe has no such stage"
        i = same[nth - 1]
    if i >= before:
        return None, f"{ref!r}: names stages[{i}], which does not run before this stage"
    data = data_stages()
    if names[i] not in data:
        return None, f"{ref!r}: stages[{i}] ({names[i]}) writes no rows (data stages: {', '.join(data)})"
    return i, None


def stage_refs(config: Any) -> dict[str, dict[str, str]]:
    """The values of a Config's ``_stage_refs`` fields: field -> {key: value} (a plain string
    field is keyed by ``""``)."""
    out = {}
    for name in getattr(config, "_stage_refs", ()):
        value = getattr(config, name, None)
        if isinstance(value, Mapping):
            out[name] = {str(k): v for k, v in value.items() if isinstance(v, str)}
        elif isinstance(value, str):
            out[name] = {"": value}
    return out


def _ref_problems(stages: list[StageSpec], raw_stages: list) -> list[str]:
    """Every ``input`` and stage-reference field must name an earlier data stage."""
    names = stage_names(raw_stages)
    problems = []
    for spec in stages:
        if spec.input is not None:
            i, why = resolve_stage_ref(spec.input, names, spec.index)
            if why or i is None:
                problems.append(f"{spec.where}.{INPUT_KEY}: {why or f'{spec.input!r} is not a stage'} "
                                "(expected inputs, NAME, NAME#N or stages[I])")
        for field_name, values in stage_refs(spec.config).items():
            for key, value in values.items():
                _, why = resolve_stage_ref(value, names, spec.index)
                if why:
                    problems.append(f"{spec.where}.{field_name}{'.' + key if key else ''}: {why}")
    return problems


def _order_problems(raw_stages: list, holdout: int) -> list[str]:
    """Consistency between stages: eval needs held-out prompts, and models to compare
    (a train stage before it, or models named in its options)."""
    names = [next(iter(s)) if isinstance(s, Mapping) and len(s) == 1 else s for s in raw_stages]
    problems = []
    for i, name in enumerate(names):
        if name not in ("eval", "evaluate"):
            continue
        opts = raw_stages[i][name] if isinstance(raw_stages[i], Mapping) else None
        if "train" not in names[:i] and not (isinstance(opts, Mapping) and opts.get("models")):
            problems.append(f"stages[{i}].{name}: needs a train stage before it (or models to compare)")
        if holdout < 1 and not (isinstance(opts, Mapping) and opts.get("heldout")):
            problems.append(f"stages[{i}].{name}: needs held-out prompts (set holdout: N at the top, or heldout)")
    return problems
