"""The mix's decisions on a narrow frame, shared by the whole-table and the streaming path.

The frame holds one line per input row: ``__row`` (its global number), ``id``, ``__cat``
(the category the spec assigns) and, with ``rank_by``, ``__score``. From it come the rows
that cannot take part (:func:`with_exclusions`), the plan and the chosen rows
(:func:`choose`), the drop reasons (:func:`drop_rows`), the replay rows taken
(:func:`replay_choice`) and the stats (:func:`mix_stats`). Neither path needs more than
this frame to decide; the conversations are only read to be written.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import polars as pl

from thresher.curate.mix import select as sel
from thresher.curate.mix.gather import INPUT, LOCAL
from thresher.curate.mix.plan import CategoryPlan, make_plan
from thresher.curate.mix.spec import MixSpec, resolve_spec, spec_problems
from thresher.errors import ConfigError, InputError, ThresherError
from thresher.progress import info
from thresher.stage import dropped_frame

NAME = "mix"
CORE = ("id", "messages", "category", "source")
REPLAY_SOURCE = "replay"
#: scratch columns of the narrow frame, never written
INTERNAL = [sel.ROW, sel.CAT, sel.SCORE, sel.KEY, INPUT, LOCAL, "__why"]
ELIGIBLE = "__eligible"

T = TypeVar("T")


# ---------------------------------------------------------------- the spec and the inputs' columns


def checked_spec(config: Any) -> tuple[MixSpec, str, list[str]]:
    """``(spec, where, problems)``: the parsed spec, the name errors are given under and the
    problems of the options; raises at once when the spec cannot be parsed."""
    problems = config.check()
    raw, where = resolve_spec(config.spec) if config.spec is not None else (None, "mix")
    parsed, _ = spec_problems(raw) if config.spec is not None else (None, [])
    where = "mix" if where == "mix spec" else where
    if parsed is None:
        raise ConfigError(problems or ["spec: unusable"], where=where)
    return parsed, where, problems


def read_guarded(problems: list[str], where: str, read: Callable[[], T]) -> T:
    """``read()``; the options' own ``problems`` come first when it fails (they may be the
    cause), and a polars error applying the spec's rules becomes one line."""
    try:
        return read()
    except (ThresherError, pl.exceptions.PolarsError) as exc:
        if problems:
            raise ConfigError(problems, where=where) from None
        if isinstance(exc, ThresherError):
            raise
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise ConfigError([f"rules: cannot be applied ({first})"], where=where) from None


def categories_present(spec: MixSpec, df: pl.DataFrame, problems: list[str], where: str) -> set[str]:
    """The categories of the narrow frame ``df``; raises every problem at once (the options',
    and categories of the spec that the data does not have)."""
    present = set(df[sel.CAT].drop_nulls().unique().to_list())
    if not spec.rules:
        problems = [*problems, *(f"spec.{p}" for p in spec.unknown_category_problems(present))]
    if problems:
        raise ConfigError(problems, where=where)
    return present


def needed_columns(spec: MixSpec, rank_by: str | None) -> set[str]:
    """The columns every input must have for the selection."""
    need = {"id", "source", "messages" if spec.rules else spec.column}
    return need | ({rank_by} if rank_by else set())


def check_columns(path: Path, schema: dict[str, pl.DataType], spec: MixSpec, rank_by: str | None) -> None:
    """Raise when the input ``path`` (its columns ``schema``) lacks a needed column or its
    ``rank_by`` column is not numeric."""
    missing = sorted(c for c in needed_columns(spec, rank_by) if c not in schema)
    if missing:
        what = "rank_by column" if rank_by in missing else "column"
        raise InputError(f"{path}: {what} {', '.join(missing)} not found (columns: {', '.join(schema)})")
    if rank_by and not schema[rank_by].is_numeric():
        raise InputError(f"{path}: rank_by column {rank_by} is not numeric")


# ---------------------------------------------------------------- the selection


def duplicate_ids(ids: pl.Series) -> pl.Series:
    """True for each id already seen in an earlier row. Exact, and fast when there are no
    duplicates (the usual case): 64-bit hashes first, strings only where hashes repeat."""
    hashes = ids.hash(seed=7)
    if hashes.n_unique() == ids.len():
        return pl.repeat(False, ids.len(), eager=True)
    suspect = hashes.is_duplicated()
    flags = pl.repeat(False, ids.len(), eager=True)
    where = suspect.arg_true()
    return flags.scatter(where, ~ids.gather(where).is_first_distinct())


def with_exclusions(df: pl.DataFrame, names: list[str], duplicates: pl.Series | None = None) -> pl.DataFrame:
    """``__why``: the reason a row cannot take part (duplicate id, no or unknown category);
    ``duplicates`` (default: :func:`duplicate_ids` of ``df``) flags the rows whose id an earlier
    row had (a Ray task's share of the whole input's flags)."""
    dup = duplicate_ids(df["id"]) if duplicates is None else duplicates
    no_cat = pl.col(sel.CAT).is_null()
    outside = ~pl.col(sel.CAT).is_in(names)
    return df.with_columns(
        pl.when(dup)
        .then(pl.lit("duplicate id (already in an earlier row or input)"))
        .when(no_cat)
        .then(pl.lit("no category"))
        .when(outside)
        .then(pl.format("category not in spec: {}", pl.col(sel.CAT)))
        .otherwise(pl.lit(None, dtype=pl.String))
        .alias("__why")
    )


def report(plan: list[CategoryPlan]) -> None:
    """Say which categories could not fill their target."""
    for p in plan:
        if p.taken < p.wanted:
            info(
                f"mix: category {p.name}: wanted {p.wanted}, available {p.available} "
                f"(max_repeats {p.max_repeats}), taken {p.taken}"
            )


def choose(df: pl.DataFrame, spec: MixSpec, config: Any,
           names: list[str]) -> tuple[pl.DataFrame, list[CategoryPlan], pl.DataFrame]:
    """The eligible rows, the per-category plan and the chosen rows (with their copy numbers)."""
    # the selection works on row numbers, categories and scores only
    narrow_cols = [sel.ROW, sel.CAT, *([sel.SCORE] if config.rank_by else [])]
    candidates = df.select(*narrow_cols, "__why").filter(pl.col("__why").is_null()).drop("__why")
    candidates = candidates.with_columns(sel.random_keys(candidates.height, config.seed, stream=0))
    ok = sel.eligible(candidates, spec, names)
    available = dict(ok.group_by(sel.CAT).len().iter_rows())
    plan = make_plan(spec, available)
    report(plan)
    return ok, plan, sel.select(ok, plan, ranked=config.rank_by is not None)


def replay_choice(config: Any, spec: MixSpec, main_n: int, avail: int) -> tuple[pl.DataFrame, dict[str, Any]]:
    """The replay rows taken to make up ``replay_fraction`` of the output: ``__row`` (the
    number among the ``avail`` replay rows whose id is not in the main inputs) and
    ``__copy``, sorted by both; and the replay stats."""
    stats = replay_counts(config, spec, main_n, avail)
    wanted, taken, repeats = stats["wanted"], stats["taken"], spec.max_repeats
    if taken < wanted:
        msg = replay_shortfall(stats, repeats)
        if spec.on_shortfall == "fail":
            raise ThresherError(msg + " (on_shortfall: fail)")
        info(f"mix: {msg}")
    frame = pl.DataFrame(
        {sel.ROW: pl.int_range(avail, dtype=pl.Int64, eager=True), sel.CAT: [REPLAY_SOURCE] * avail}
    ).with_columns(sel.random_keys(avail, config.seed, stream=2))
    plan = [CategoryPlan(REPLAY_SOURCE, "replay", wanted, avail, repeats, taken)]
    chosen = sel.select(frame, plan, ranked=False).select(sel.ROW, sel.COPY)
    return chosen.sort([sel.ROW, sel.COPY]), stats


def replay_counts(config: Any, spec: MixSpec, main_n: int, avail: int) -> dict[str, Any]:
    """The replay stats: rows wanted to make up ``replay_fraction`` of ``main_n`` lines, the
    ``avail`` rows whose id is not in the main inputs, and the rows taken."""
    frac = config.replay_fraction
    wanted = round(frac * main_n / (1 - frac))
    taken = min(wanted, avail * spec.max_repeats)
    return {"file": str(config.replay), "fraction": frac, "wanted": wanted, "available": avail, "taken": taken}


def replay_shortfall(stats: dict[str, Any], repeats: int) -> str:
    """The message of a replay that cannot fill its share (``stats``: :func:`replay_counts`)."""
    return (f"replay: wanted {stats['wanted']} rows, {stats['available']} available (max_repeats {repeats}), "
            f"can take {stats['taken']}")


def output_positions(main_n: int, replay_n: int, seed: int) -> np.ndarray:
    """Where each line of the mix goes in the seeded output order: the chosen lines (in
    :func:`~thresher.curate.mix.select.select`'s order), then the replay lines (in
    :func:`replay_choice`'s); line ``j`` is written at position ``result[j]``."""
    order = sel.shuffle_order(main_n + replay_n, seed)
    where = np.empty(order.size, dtype=np.int64)
    where[order] = np.arange(order.size, dtype=np.int64)
    return where


# ---------------------------------------------------------------- what is written


def with_copies(df: pl.DataFrame) -> pl.DataFrame:
    """Unique ids for upsampled copies (``id#2`` ...) and the ``mix_copy`` column (replacing
    the one an input made by an earlier mix has)."""
    if "mix_copy" in df.columns and sel.COPY in df.columns:
        df = df.drop("mix_copy")
    return df.with_columns(
        pl.when(pl.col(sel.COPY) > 1)
        .then(pl.format("{}#{}", pl.col("id"), pl.col(sel.COPY)))
        .otherwise(pl.col("id"))
        .alias("id"),
    ).rename({sel.COPY: "mix_copy"})


def kept_columns(kept: pl.DataFrame) -> pl.DataFrame:
    """The kept rows without scratch columns, ``id, messages, category, source`` first."""
    kept = with_copies(kept).drop(INTERNAL, strict=False)
    return kept.select(["id", "messages", "category", "source", *[c for c in kept.columns if c not in CORE]])


def lookup(expr: pl.Expr, mapping: dict[str, str]) -> pl.Expr:
    """``mapping[expr]``, null when absent. (Per-category strings rather than pl.format over
    literals: polars 2.1 panics formatting scalars inside when/then on some frames.)"""
    if not mapping:
        return pl.lit(None, dtype=pl.String)
    return expr.replace_strict(
        list(mapping), list(mapping.values()), default=None, return_dtype=pl.String
    )


def drop_rows(frame: pl.DataFrame, spec: MixSpec, plan: list[CategoryPlan], config: Any) -> pl.DataFrame:
    """Rows not in the mix (``frame``: their columns, ``__why``, ``__cat`` and ``__eligible``)
    as dropped rows: the reason, the category the spec gave them, no scratch columns."""
    below = {
        c.name: f"below min_score: {config.rank_by} < {c.min_score}"
        for c in spec.categories
        if c.min_score is not None
    }
    unpicked = {
        p.name: f"not selected (category {p.name}: {p.taken} of {p.available} rows taken)"
        for p in plan
    }
    cat = pl.col(sel.CAT)
    reason = pl.coalesce(
        pl.col("__why"),
        pl.when(~pl.col(ELIGIBLE)).then(lookup(cat, below)),
        lookup(cat, unpicked),
    )
    dropped = frame.with_columns(reason.alias("__reason"), cat.fill_null(pl.col("category")).alias("category"))
    dropped = dropped_frame(dropped, NAME, pl.col("__reason")).drop([*INTERNAL, ELIGIBLE, "__reason"], strict=False)
    return dropped.select(["id", "category", "source", *[c for c in dropped.columns if c not in CORE]])


def mix_stats(config: Any, spec: MixSpec, plan: list[CategoryPlan], replay_stats: dict[str, Any] | None,
              seconds: dict[str, float]) -> dict[str, Any]:
    """The stage's stats: targets, availability and takings per category, replay, timings."""
    return {
        "mix": {
            "seed": config.seed,
            "rank_by": config.rank_by,
            "on_shortfall": spec.on_shortfall,
            "total_wanted": sum(p.wanted for p in plan),
            "total_taken": sum(p.taken for p in plan),
            "categories": [
                {
                    "category": p.name,
                    "target": p.kind,
                    "wanted": p.wanted,
                    "available": p.available,
                    "max_repeats": p.max_repeats,
                    "taken": p.taken,
                    "short": max(0, p.wanted - p.taken),
                    "received": p.received,
                }
                for p in plan
            ],
            "shortfall": [p.name for p in plan if p.taken < p.wanted],
            "replay": replay_stats,
            "seconds": seconds,
        }
    }
