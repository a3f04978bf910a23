"""The ``mix`` stage: a balanced, quality-first mixture of categories from one or more inputs.

Output (``kept.parquet``): the selected rows in a seeded random order, with ``category`` (as
the spec assigned it), ``source`` (``replay`` for replayed rows) and ``mix_copy`` (1 for a
row's first appearance, 2.. for upsampled copies, whose ids get a ``#<copy>`` suffix so ids
stay unique). ``dropped.parquet`` names every input row that is not in the mix, with the
reason (duplicate id, no category, category not in the spec, below min_score, not
selected) and all its columns except ``messages``: unselected rows are not bad rows, their
conversations stay unchanged in the input, and leaving them out keeps a 10M-row mix fast.
``stats.json`` has, per category, the wanted, available and taken counts.

Only narrow columns (ids, categories, scores) are read for the selection; conversations are
read for the selected rows only (see :mod:`.gather`).

Same inputs, spec and seed give the same ids in the same order.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from thresher.curate.mix import select as sel
from thresher.curate.mix.gather import INPUT, LOCAL, Source, messages_for, narrow, open_input
from thresher.curate.mix.plan import CategoryPlan, make_plan
from thresher.curate.mix.spec import MixSpec, resolve_spec, spec_problems
from thresher.errors import ConfigError, InputError, ThresherError
from thresher.executor import GlobalStage, run_stage
from thresher.io import read_table
from thresher.io.inputs import ReadOptions
from thresher.progress import info
from thresher.stage import StageResult, dropped_frame

NAME = "mix"
CORE = ("id", "messages", "category", "source")
REPLAY_SOURCE = "replay"


@dataclass(frozen=True)
class Config:
    """Options of the mix stage (the recipe keys are the field names).

    ``spec``: the mix spec, a mapping or the path of a YAML file (see :mod:`.spec`);
    ``rank_by``: a score column; within a category the top-scored rows are taken first
    (``min_score`` in the spec applies to it); ``seed``: random choices and output order;
    ``replay``: a file of general rows mixed back in so that they make up exactly
    ``replay_fraction`` of the output (rounded to a whole row).
    """

    spec: Any = None
    """Mix spec (a mapping, or a YAML file): per category count or weight, total, max_repeats,
    on_shortfall."""
    rank_by: str | None = None
    """Score column: take the top-scored rows of each category first (default: seeded random)."""
    seed: int = 0
    """Seed for sampling and output order."""
    replay: str | None = None
    """General rows to mix back in (marked source=replay) against forgetting."""
    replay_fraction: float = 0.0
    """Share of the output made of replay rows, e.g. 0.1."""

    def check(self) -> list[str]:
        """Every problem of the options and of the spec's structure."""
        problems: list[str] = []
        if self.spec is None:
            problems.append("spec: required (a mapping or the path of a YAML file)")
        else:
            try:
                raw, _ = resolve_spec(self.spec)
            except ThresherError as exc:
                problems.append(f"spec: {exc}")
            else:
                parsed, spec_probs = spec_problems(raw)
                problems.extend(
                    f"spec.{p}" if not p.startswith("the spec") else p for p in spec_probs
                )
                if parsed is not None and self.rank_by is None:
                    for c in parsed.categories:
                        if c.min_score is not None:
                            problems.append(
                                f"spec.categories.{c.name}.min_score: needs rank_by (the score column)"
                            )
        if self.rank_by is not None and not str(self.rank_by).strip():
            problems.append("rank_by: must be a column name, got an empty string")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            problems.append(f"seed: must be a whole number >= 0, got {self.seed!r}")
        if not 0 <= self.replay_fraction < 1:
            problems.append(f"replay_fraction: must be in [0, 1), got {self.replay_fraction}")
        if self.replay_fraction > 0 and not self.replay:
            problems.append("replay_fraction: needs replay (a file of rows to mix back in)")
        if self.replay and self.replay_fraction == 0:
            problems.append("replay: given but replay_fraction is 0")
        if self.replay and not Path(self.replay).exists():
            problems.append(f"replay: {self.replay}: no such file or folder")
        return problems


def _read(
    config: Config, inputs: list[Path], read: ReadOptions | None = None
) -> tuple[MixSpec, list[Source], pl.DataFrame, set[str]]:
    """The spec, the opened inputs, their narrow frame and the categories present; every
    problem of the options and the spec (structure and categories missing from the data)
    is raised in one error."""
    problems = config.check()
    raw, where = resolve_spec(config.spec) if config.spec is not None else (None, "mix")
    parsed, _ = spec_problems(raw) if config.spec is not None else (None, [])
    where = "mix" if where == "mix spec" else where
    if parsed is None:
        raise ConfigError(problems or ["spec: unusable"], where=where)
    try:
        sources = [open_input(Path(p), read) for p in inputs]
        df = _narrow_frame(sources, parsed, config.rank_by)
    except (ThresherError, pl.exceptions.PolarsError) as exc:
        if problems:  # the spec's own problems come first: they may be the cause
            raise ConfigError(problems, where=where) from None
        if isinstance(exc, ThresherError):
            raise
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise ConfigError([f"rules: cannot be applied ({first})"], where=where) from None
    present = set(df[sel.CAT].drop_nulls().unique().to_list())
    if not parsed.rules:
        problems.extend(f"spec.{p}" for p in parsed.unknown_category_problems(present))
    if problems:
        raise ConfigError(problems, where=where)
    return parsed, sources, df, present


def _narrow_frame(sources: list[Source], spec: MixSpec, rank_by: str | None) -> pl.DataFrame:
    need = {"id", "source"}
    if spec.rules:
        need.add("messages")
    else:
        need.add(spec.column)
    if rank_by:
        need.add(rank_by)
    for src in sources:
        missing = sorted(c for c in need if c not in src.columns)
        if missing:
            what = "rank_by column" if rank_by in missing else "column"
            raise InputError(
                f"{src.path}: {what} {', '.join(missing)} not found (columns: {', '.join(src.columns)})"
            )
        if rank_by and not src.schema[rank_by].is_numeric():
            raise InputError(f"{src.path}: rank_by column {rank_by} is not numeric")
    extra = [sel.user_text().alias("__text")] if spec.rules else []
    df = narrow(sources, extra)
    df = df.with_columns(sel.category_expr(spec).alias(sel.CAT))
    if rank_by:
        df = df.with_columns(pl.col(rank_by).cast(pl.Float64).alias(sel.SCORE))
    return df.drop("__text", strict=False)


def _replay(
    config: Config, spec: MixSpec, main_n: int, main_ids: pl.Series
) -> tuple[pl.DataFrame, dict[str, Any]]:
    """Replay rows (full) to make up ``replay_fraction`` of the output, and their stats."""
    frac = config.replay_fraction
    wanted = round(frac * main_n / (1 - frac))
    df = read_table(config.replay)
    df = df.filter(~pl.col("id").is_in(main_ids.implode()))
    avail = df.height
    repeats = spec.max_repeats
    taken = min(wanted, avail * repeats)
    stats = {
        "file": str(config.replay),
        "fraction": frac,
        "wanted": wanted,
        "available": avail,
        "taken": taken,
    }
    if taken < wanted:
        msg = f"replay: wanted {wanted} rows, {avail} available (max_repeats {repeats}), can take {taken}"
        if spec.on_shortfall == "fail":
            raise ThresherError(msg + " (on_shortfall: fail)")
        info(f"mix: {msg}")
    frame = pl.DataFrame(
        {sel.ROW: pl.int_range(avail, dtype=pl.Int64, eager=True), sel.CAT: [REPLAY_SOURCE] * avail}
    ).with_columns(sel.random_keys(avail, config.seed, stream=2))
    plan = [CategoryPlan(REPLAY_SOURCE, "replay", wanted, avail, repeats, taken)]
    chosen = sel.select(frame, plan, ranked=False)
    rows = (
        df.with_row_index(sel.ROW)
        .with_columns(pl.col(sel.ROW).cast(pl.Int64))
        .join(chosen.select(sel.ROW, sel.COPY), on=sel.ROW, how="inner")
        .with_columns(
            pl.lit(REPLAY_SOURCE).alias("source"),
            pl.col("category").fill_null(REPLAY_SOURCE),
        )
        .drop(sel.ROW)
    )
    return rows, stats


def _with_copies(df: pl.DataFrame) -> pl.DataFrame:
    """Unique ids for upsampled copies (``id#2`` ...) and the ``mix_copy`` column."""
    return df.with_columns(
        pl.when(pl.col(sel.COPY) > 1)
        .then(pl.format("{}#{}", pl.col("id"), pl.col(sel.COPY)))
        .otherwise(pl.col("id"))
        .alias("id"),
    ).rename({sel.COPY: "mix_copy"})


def _duplicate_ids(ids: pl.Series) -> pl.Series:
    """True for each id already seen in an earlier row. Exact, and fast when there are no
    duplicates (the usual case): 64-bit hashes first, strings only where hashes repeat."""
    hashes = ids.hash(seed=7)
    if hashes.n_unique() == ids.len():
        return pl.repeat(False, ids.len(), eager=True)
    suspect = hashes.is_duplicated()
    flags = pl.repeat(False, ids.len(), eager=True)
    where = suspect.arg_true()
    return flags.scatter(where, ~ids.gather(where).is_first_distinct())


def _lookup(expr: pl.Expr, mapping: dict[str, str]) -> pl.Expr:
    """``mapping[expr]``, null when absent. (Per-category strings rather than pl.format over
    literals: polars 2.1 panics formatting scalars inside when/then on some frames.)"""
    if not mapping:
        return pl.lit(None, dtype=pl.String)
    return expr.replace_strict(
        list(mapping), list(mapping.values()), default=None, return_dtype=pl.String
    )


def _report(plan: list[CategoryPlan]) -> None:
    for p in plan:
        if p.taken < p.wanted:
            info(
                f"mix: category {p.name}: wanted {p.wanted}, available {p.available} "
                f"(max_repeats {p.max_repeats}), taken {p.taken}"
            )


_INTERNAL = [sel.ROW, sel.CAT, sel.SCORE, sel.KEY, INPUT, LOCAL, "__why"]


def _with_exclusions(df: pl.DataFrame, names: list[str]) -> pl.DataFrame:
    """``__why``: the reason a row cannot take part (duplicate id, no or unknown category)."""
    dup = _duplicate_ids(df["id"])
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


def _choose(df: pl.DataFrame, spec: MixSpec, config: Config,
            names: list[str]) -> tuple[pl.DataFrame, list[CategoryPlan], pl.DataFrame]:
    """The eligible rows, the per-category plan and the chosen rows (with their copy numbers)."""
    # the selection works on row numbers, categories and scores only
    narrow_cols = [sel.ROW, sel.CAT, *([sel.SCORE] if config.rank_by else [])]
    candidates = df.select(*narrow_cols, "__why").filter(pl.col("__why").is_null()).drop("__why")
    candidates = candidates.with_columns(sel.random_keys(candidates.height, config.seed, stream=0))
    ok = sel.eligible(candidates, spec, names)
    available = dict(ok.group_by(sel.CAT).len().iter_rows())
    plan = make_plan(spec, available)
    _report(plan)
    return ok, plan, sel.select(ok, plan, ranked=config.rank_by is not None)


def _gather(df: pl.DataFrame, sources: list[Source], chosen: pl.DataFrame, spec: MixSpec,
            config: Config) -> tuple[pl.DataFrame, np.ndarray, dict[str, Any] | None]:
    """The kept rows in their seeded order (and replay rows), the in-mix mask, replay stats."""
    # narrow columns by position, conversations read for the chosen rows only
    picked = chosen[sel.ROW].to_numpy()
    in_mix = np.zeros(df.height, dtype=np.bool_)
    in_mix[picked] = True
    rows = np.flatnonzero(in_mix)  # sorted, unique
    position = np.cumsum(in_mix) - 1  # row -> its index in ``rows``
    base = df[rows].with_columns(messages_for(sources, df, rows).alias("messages"))
    labels = chosen.select(pl.col(sel.CAT).alias("category"), sel.COPY)
    replay_stats = None
    if config.replay:
        replay_rows, replay_stats = _replay(config, spec, chosen.height, df["id"])
        kept = base[position[picked]].with_columns(labels)
        kept = sel.shuffle(pl.concat([kept, replay_rows], how="diagonal_relaxed"), config.seed)
    else:  # the same order as above, with a single gather of the conversations
        order = sel.shuffle_order(chosen.height, config.seed)
        kept = base[position[picked][order]].with_columns(labels[order])
    kept = _with_copies(kept).drop(_INTERNAL, strict=False)
    kept = kept.select(
        ["id", "messages", "category", "source", *[c for c in kept.columns if c not in CORE]]
    )
    return kept, in_mix, replay_stats


def _dropped(df: pl.DataFrame, ok: pl.DataFrame, in_mix: np.ndarray, spec: MixSpec, plan: list[CategoryPlan],
             config: Config) -> pl.DataFrame:
    """Every input row that is not in the mix, without its conversation (it is unchanged in
    the input; rows are named by id, with the reason)."""
    eligible = np.zeros(df.height, dtype=np.bool_)
    eligible[ok[sel.ROW].to_numpy()] = True
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
        pl.when(~pl.col("__eligible")).then(_lookup(cat, below)),
        _lookup(cat, unpicked),
    )
    dropped = (
        df.with_columns(pl.Series("__eligible", eligible))
        .filter(pl.Series(~in_mix))
        .with_columns(reason.alias("__reason"), cat.fill_null(pl.col("category")).alias("category"))
    )
    dropped = dropped_frame(dropped, NAME, pl.col("__reason")).drop(
        [*_INTERNAL, "__eligible", "__reason"], strict=False
    )
    return dropped.select(
        ["id", "category", "source", *[c for c in dropped.columns if c not in CORE]]
    )


def _stats(config: Config, spec: MixSpec, plan: list[CategoryPlan], replay_stats: dict[str, Any] | None,
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


class MixStage(GlobalStage):
    """Global: the categories' shares are chosen over every input row at once. It reads its
    inputs itself (narrow columns first, conversations of the chosen rows only)."""

    name = NAME
    config_cls = Config
    cli = "thresher.curate.mix.cli:mix"
    cli_group = "curate"
    summary = "Mix categories into a balanced, quality-first set."
    reads_rows = False
    position = 60

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self._clock = time.perf_counter()

    def reads(self, config: Config) -> list[tuple[str, str]]:
        """The ``rank_by`` score column."""
        return [("rank_by", config.rank_by)] if config.rank_by else []

    def writes(self, config: Config) -> set[str]:
        """``mix_copy``."""
        return {"mix_copy"}

    def fingerprint_inputs(self, inputs: list[Path], config: Config) -> list[Path]:
        return [*inputs, *([Path(config.replay)] if config.replay else [])]

    def fingerprint_config(self, config: Config) -> Config:
        """The spec's content (not its path) is part of the fingerprint."""
        raw, _ = resolve_spec(config.spec) if config.spec is not None else (None, "")
        return replace(config, spec=raw)

    def lap(self, name: str) -> None:
        """Record the seconds since the last lap under ``name``."""
        now = time.perf_counter()
        self.seconds[name] = round(now - self._clock, 3)
        self._clock = now

    def run_table(self, table: pl.DataFrame, context: Any) -> tuple[pl.DataFrame, pl.DataFrame, dict[str, Any]]:
        config = context.config
        self._clock = time.perf_counter()
        spec, sources, df, present = _read(config, list(context.inputs), context.read)
        self.lap("read")
        names = [c.name for c in spec.categories] if spec.temperature is None else sorted(present)
        df = _with_exclusions(df, names)
        ok, plan, chosen = _choose(df, spec, config, names)
        self.lap("select")
        kept, in_mix, replay_stats = _gather(df, sources, chosen, spec, config)
        self.lap("gather")
        dropped = _dropped(df, ok, in_mix, spec, plan, config)
        self.lap("dropped")
        stats = _stats(config, spec, plan, replay_stats, self.seconds)
        rejected = [s.rejected for s in sources if s.rejected is not None and s.rejected.height]
        if rejected:
            dropped = pl.concat([*rejected, dropped], how="diagonal_relaxed")
        context.state["rows_in"] = df.height + sum(r.height for r in rejected)
        return kept, dropped, stats

    def rows_in(self, table: pl.DataFrame, context: Any) -> int | None:
        return context.state["rows_in"]


def run(inputs: list[Path], out: Path, config: Config, *, force: bool = False,
        read: ReadOptions | dict | None = None) -> StageResult:
    """Mix ``inputs`` (files or run folders) into ``out`` per ``config`` (see the module docstring)."""
    if not inputs:
        raise InputError("mix: no input given")
    impl = MixStage()
    result = run_stage(impl, inputs, out, config, force=force, read=read)
    if not result.reused:
        impl.lap("write")
        result.stats["mix"]["seconds"] = impl.seconds
    return result
