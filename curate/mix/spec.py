"""The mix spec: what the final set is made of, parsed into frozen dataclasses.

A spec is a YAML file or a mapping (a recipe embeds it under the mix stage's ``spec`` key)::

    total: 10000               # size of the mix (replay rows come on top)
    max_repeats: 1             # a row may appear at most this many times (1: no upsampling)
    on_shortfall: redistribute # redistribute | keep | fail
    temperature: 2.0           # optional: T-sampling over natural sizes for categories
                               #   that have no count/weight of their own
    column: category           # where categories come from (default: category) ...
    rules:                     # ... or rules, first match wins, on the user turns' text
      - {category: code, regex: "\\bdef |```"}
      - {category: math, keywords: [integral, equation]}
      - {category: chat, source: [chitchat]}   # the row's source name
    fallback: other            # rows no rule matches (or with a null category column)
    categories:
      code: {count: 3000}                # exactly 3000 rows
      math: {weight: 0.5, min_score: 0.7, max_repeats: 2}
      chat: {weight: 0.2}                # 20% of total

``count`` is an absolute number of rows and ``weight`` a share of ``total``; the meaning
never depends on the number's form. With weights and no ``total``, the weights must sum to
1 and the total is the largest mix that the data supports with exactly these shares. With
``temperature``, the data's categories that have no count or weight share what is left of
``total`` (all rows when there is no total) in proportion to ``size ** (1 / T)``.

A category that cannot fill its target (fewer than ``target / max_repeats`` rows) is
reported; ``on_shortfall: redistribute`` gives the missing rows to weight/temperature
categories with room, in proportion to their targets (``count`` categories always get
exactly their count); ``keep`` leaves the mix short; ``fail`` stops with the numbers.

Every problem is collected and reported at once (:class:`thresher.errors.ConfigError`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from thresher.errors import ConfigError, ThresherError

WEIGHT_TOLERANCE = 1e-6


@dataclass(frozen=True)
class Rule:
    """Assigns ``category`` to rows whose user text matches ``regex`` and/or one of the
    ``keywords`` (whole words, any case) and/or whose ``source`` is one of ``sources``;
    every matcher given must match."""

    category: str
    regex: str | None = None
    keywords: tuple[str, ...] = ()
    sources: tuple[str, ...] = ()


@dataclass(frozen=True)
class CategorySpec:
    """One category's target: ``count`` rows, or ``weight`` x total, or (neither) a share
    from temperature sampling; with its own ``max_repeats`` and ``min_score`` if set."""

    name: str
    count: int | None = None
    weight: float | None = None
    max_repeats: int | None = None
    min_score: float | None = None


#: what a mix does when a category has fewer rows than asked
OnShortfall = Literal["redistribute", "keep", "fail"]


@dataclass(frozen=True)
class MixSpec:
    """A parsed, validated mix spec (see the module docstring for the YAML form)."""

    categories: tuple[CategorySpec, ...] = ()
    total: int | None = None
    max_repeats: int = 1
    on_shortfall: OnShortfall = "redistribute"
    temperature: float | None = None
    column: str = "category"
    rules: tuple[Rule, ...] = ()
    fallback: str | None = None

    def category(self, name: str) -> CategorySpec | None:
        """The entry for ``name``, or ``None`` when the spec does not list it."""
        for c in self.categories:
            if c.name == name:
                return c
        return None

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.categories)

    def known_categories(self) -> set[str] | None:
        """Categories that rules can produce (``None`` when they come from a column)."""
        if not self.rules:
            return None
        known = {r.category for r in self.rules}
        if self.fallback is not None:
            known.add(self.fallback)
        return known

    def unknown_category_problems(self, present: set[str]) -> list[str]:
        """Problems for spec categories that are not among ``present`` ones."""
        return [
            f"categories.{name}: unknown category (not in the data; known: {_names(present)})"
            for name in self.names
            if name not in present
        ]


def _names(names: set[str]) -> str:
    items = sorted(names)
    if len(items) > 12:
        return ", ".join(items[:12]) + f", ... ({len(items)} in all)"
    return ", ".join(items) or "none"


def _regex_problem(pattern: str) -> str | None:
    """Why polars' regex engine rejects ``pattern`` (the engine the rules run on)."""
    import polars as pl

    try:
        pl.select(pl.lit("").str.contains(pattern))
    except pl.exceptions.PolarsError as exc:  # ComputeError, with a multi-line message
        lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
        detail = [ln.removeprefix("error:").strip() for ln in lines if ln.startswith("error:")]
        return detail[0] if detail else (lines[0] if lines else "invalid regex")
    return None


@dataclass(frozen=True)
class _RuleOptions:
    """The keys of one ``rules`` entry (validated by ``thresher.config``)."""

    category: str | None = None
    """The category the rule assigns (required)."""
    regex: str | None = None
    """A regex (polars' engine) the user turns' text must match."""
    keywords: tuple[str, ...] = ()
    """Words (whole, any case) of which the user text must contain one."""
    source: tuple[str, ...] = ()
    """Source names of which the row's must be one."""

    def check(self) -> list[str]:
        p: list[str] = []
        if not self.category:
            p.append("category: required, a non-empty string")
        if self.regex is not None:
            if not self.regex:
                p.append("regex: must be a non-empty string")
            elif (why := _regex_problem(self.regex)) is not None:
                p.append(f"regex: invalid ({why})")
        if not all(k.strip() for k in self.keywords):
            p.append("keywords: must be a list of non-empty strings")
        return p


def _parse_rules(raw: Any, problems: list[str]) -> tuple[Rule, ...]:
    from thresher.config import from_dict_partial

    if raw is None:
        return ()
    if not isinstance(raw, list):
        problems.append("rules: must be a list of {category, regex|keywords|source}")
        return ()
    rules = []
    for i, item in enumerate(raw):  # counted from 0, like stages[0] and inputs[0]
        where = f"rules[{i}]"
        if not isinstance(item, Mapping):
            problems.append(f"{where}: must be a mapping with category and regex, keywords or source")
            continue
        item = {k: [v] if k in ("keywords", "source") and isinstance(v, str) else v for k, v in item.items()}
        rule, found = from_dict_partial(_RuleOptions, item, where)
        problems.extend(found)
        if rule is None:
            continue
        keywords = rule.keywords if all(k.strip() for k in rule.keywords) else ()
        regex = rule.regex or None
        if regex is None and not keywords and not rule.source and "regex" not in item:
            problems.append(f"{where}: needs at least one of regex, keywords, source")
        if rule.category:
            rules.append(Rule(rule.category, regex, keywords, rule.source))
    return tuple(rules)


@dataclass(frozen=True)
class _CategoryOptions:
    """The keys of one ``categories`` entry (validated by ``thresher.config``)."""

    count: int | None = None
    """Rows to take."""
    weight: float | None = None
    """Share of ``total`` (or of the output when no total is given), in [0, 1]."""
    max_repeats: int | None = None
    """Copies of one row at most (default: the spec's max_repeats)."""
    min_score: float | None = None
    """Rows whose rank_by score is below this are not eligible."""

    def check(self) -> list[str]:
        p: list[str] = []
        if self.count is not None and self.count < 0:
            p.append(f"count: must be >= 0, got {self.count}")
        if self.weight is not None and not 0 <= self.weight <= 1:
            p.append(f"weight: must be in [0, 1], got {self.weight}")
        if self.max_repeats is not None and self.max_repeats < 1:
            p.append(f"max_repeats: must be a whole number >= 1, got {self.max_repeats!r}")
        if self.min_score is not None and not math.isfinite(self.min_score):
            p.append(f"min_score: must be a number, got {self.min_score!r}")
        return p


def _parse_category(
    name: Any, raw: Any, problems: list[str], *, temperature: float | None
) -> CategorySpec | None:
    from thresher.config import validate

    where = f"categories.{name}"
    if not isinstance(name, str) or not name:
        problems.append(f"categories: category names must be non-empty strings, got {name!r}")
        return None
    if raw is None:
        raw = {}
    if not isinstance(raw, Mapping):
        problems.append(
            f"{where}: must be a mapping such as {{count: 100}} or {{weight: 0.2}}, got {raw!r}"
        )
        return None
    if raw.get("count") is None and raw.get("weight") is None and temperature is None:
        problems.append(f"{where}: needs count or weight (or a top-level temperature)")
    if raw.get("count") is not None and raw.get("weight") is not None:
        problems.append(f"{where}: give count or weight, not both")
        raw = {k: v for k, v in raw.items() if k != "count"}  # the totals are checked once, on the weights
    keep: dict[str, Any] = {}
    for key, value in raw.items():  # one key at a time: a bad value leaves the others checked
        found = validate(_CategoryOptions, {key: value}, where)
        problems.extend(found)
        if not found:
            keep[key] = value
    weight = keep.get("weight")
    return CategorySpec(name, keep.get("count"), float(weight) if weight is not None else None,
                        keep.get("max_repeats"), float(keep["min_score"]) if keep.get("min_score") is not None
                        else None)


def _total_problems(categories: list[CategorySpec], total: int | None,
                    temperature: float | None) -> list[str]:
    """Whether the counts and weights fit together (and with ``total``)."""
    problems: list[str] = []
    counts = [c.count for c in categories if c.count is not None]
    weights = [c.weight for c in categories if c.weight is not None]
    wsum = math.fsum(weights)
    if weights:
        if total is None:
            if counts:
                problems.append(
                    "total: required when both counts and weights are given (weights are shares of total)"
                )
            elif abs(wsum - 1) > WEIGHT_TOLERANCE:
                problems.append(
                    f"weights: must sum to 1 when no total is given, they sum to {wsum:g}"
                )
        elif wsum > 1 + WEIGHT_TOLERANCE:
            problems.append(f"weights: sum to {wsum:g}, more than 1")
    if total is not None and counts and sum(counts) + wsum * total > total * (1 + WEIGHT_TOLERANCE):
        problems.append(
            f"total: counts ({sum(counts)}) plus weights x total ({wsum * total:g}) exceed total {total}"
        )
    if temperature is not None and total is None and (counts or weights):
        problems.append("total: required when temperature is combined with counts or weights")
    return problems


@dataclass(frozen=True)
class _SpecOptions:
    """The top-level keys of a mix spec (validated by ``thresher.config``)."""

    total: int | None = None
    """Size of the mix (replay rows come on top)."""
    max_repeats: int = 1
    """Copies of one row at most (1: no upsampling)."""
    on_shortfall: OnShortfall = "redistribute"
    """What to do when a category cannot fill its target."""
    temperature: float | None = None
    """T-sampling over natural sizes for categories with no count or weight of their own."""
    column: str = "category"
    """The column categories come from (when there are no rules)."""
    rules: Any = None
    """Rules assigning categories, first match wins (each validated as a rule)."""
    fallback: str | None = None
    """The category of rows no rule matches (or with a null category column)."""
    categories: Any = None
    """Category name -> its target (each validated as a category entry)."""

    def check(self) -> list[str]:
        p: list[str] = []
        if self.total is not None and self.total < 1:
            p.append(f"total: must be a whole number >= 1, got {self.total!r}")
        if self.max_repeats < 1:
            p.append(f"max_repeats: must be a whole number >= 1, got {self.max_repeats!r}")
        if self.temperature is not None and not (math.isfinite(self.temperature) and self.temperature > 0):
            p.append(f"temperature: must be a number > 0, got {self.temperature!r}")
        if not self.column:
            p.append(f"column: must be a column name, got {self.column!r}")
        if self.fallback is not None and not self.fallback:
            p.append(f"fallback: must be a category name, got {self.fallback!r}")
        return p


def spec_problems(raw: Any) -> tuple[MixSpec | None, list[str]]:
    """Parse a spec mapping; return the spec (``None`` when unusable) and every problem."""
    from thresher.config import from_dict_partial

    if raw is None:
        raw = {}
    if not isinstance(raw, Mapping):
        return None, [f"the spec must be a mapping, got {type(raw).__name__}"]
    top, problems = from_dict_partial(_SpecOptions, raw)
    top = top or _SpecOptions()
    total = top.total if top.total is not None and top.total >= 1 else None
    max_repeats = max(top.max_repeats, 1)
    on_shortfall = top.on_shortfall
    temperature = top.temperature
    if temperature is not None and not (math.isfinite(temperature) and temperature > 0):
        temperature = None
    column = top.column or "category"
    fallback = top.fallback or None
    rules = _parse_rules(raw.get("rules"), problems)
    if "column" in raw and rules:
        problems.append("column and rules: categories come from a column or from rules, not both")

    cats_raw = raw.get("categories", {})
    categories: list[CategorySpec] = []
    if cats_raw is None:
        cats_raw = {}
    if not isinstance(cats_raw, Mapping):
        problems.append("categories: must be a mapping of category name to {count|weight, ...}")
        cats_raw = {}
    for name, entry in cats_raw.items():
        parsed = _parse_category(name, entry, problems, temperature=temperature)
        if parsed is not None:
            categories.append(parsed)

    if not categories and temperature is None:
        problems.append("categories: the spec lists no category (give categories or a temperature)")

    problems.extend(_total_problems(categories, total, temperature))
    if rules:
        known = {r.category for r in rules} | ({fallback} if fallback else set())
        for c in categories:
            if c.name not in known:
                problems.append(
                    f"categories.{c.name}: unknown category (rules and fallback give: {_names(known)})"
                )
    spec = MixSpec(
        categories=tuple(categories),
        total=total,
        max_repeats=max_repeats,
        on_shortfall=on_shortfall,
        temperature=temperature,
        column=column,
        rules=rules,
        fallback=fallback,
    )
    return spec, problems


def read_spec_file(path: Path) -> Any:
    """The raw mapping in a YAML (or JSON) spec file; a clear error when unreadable."""
    import yaml

    from thresher.yamlutil import safe_load as unique_yaml_load

    if not path.is_file():
        raise ThresherError(f"{path}: mix spec file not found")
    try:
        return unique_yaml_load(path.read_text(encoding="utf-8"))  # a repeated key is an error
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f":{mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or "invalid YAML"
        raise ThresherError(f"{path}{line}: {problem}") from None


def resolve_spec(spec: Any) -> tuple[Any, str]:
    """The raw mapping of ``spec`` (a mapping, or a path to a YAML file) and where it came
    from, for messages."""
    if isinstance(spec, (str, Path)):
        path = Path(spec)
        return read_spec_file(path), str(path)
    return spec, "mix spec"


def load_spec(spec: Any, *, present: set[str] | None = None) -> MixSpec:
    """Parse and validate ``spec`` (mapping or YAML path); when the data's categories
    ``present`` are known, spec categories missing from them are problems too.

    Raises :class:`ConfigError` listing every problem.
    """
    raw, where = resolve_spec(spec)
    parsed, problems = spec_problems(raw)
    if parsed is not None and present is not None and not parsed.rules:
        problems.extend(parsed.unknown_category_problems(present))
    if problems or parsed is None:
        raise ConfigError(problems, where=where)
    return parsed
