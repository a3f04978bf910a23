"""The ``mix`` stage: a balanced, quality-first mixture of categories from one or more inputs.

Output (``kept.parquet``): the selected rows in a seeded random order, with ``category`` (as
the spec assigned it), ``source`` (``replay`` for replayed rows) and ``mix_copy`` (1 for a
row's first appearance, 2.. for upsampled copies, whose ids get a ``#<copy>`` suffix so ids
stay unique). ``dropped.parquet`` holds every input row that is not in the mix, with the
reason (duplicate id, no category, category not in the spec, below min_score, not
selected). ``stats.json`` has, per category, the wanted, available and taken counts.

Same inputs, spec and seed give the same ids in the same order.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import polars as pl

from thresher.curate.mix import select as sel
from thresher.curate.mix.gather import INPUT, LOCAL, Source, gather, narrow, open_input
from thresher.curate.mix.plan import CategoryPlan, make_plan
from thresher.curate.mix.spec import MixSpec, resolve_spec, spec_problems
from thresher.errors import ConfigError, InputError, ThresherError
from thresher.io import read_table
from thresher.progress import info
from thresher.stage import Stage, StageResult, dropped_frame

NAME = "mix"
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
    rank_by: str | None = None
    seed: int = 0
    replay: str | None = None
    replay_fraction: float = 0.0

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
                problems.extend(f"spec.{p}" if not p.startswith("the spec") else p for p in spec_probs)
                if parsed is not None and self.rank_by is None:
                    for c in parsed.categories:
                        if c.min_score is not None:
                            problems.append(f"spec.categories.{c.name}.min_score: needs rank_by (the score column)")
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


def _read(config: Config, inputs: list[Path]) -> tuple[MixSpec, list[Source], pl.DataFrame]:
    """The spec, the opened inputs and their narrow frame; every problem of the options and
    the spec (structure and categories missing from the data) is raised in one error."""
    problems = config.check()
    raw, where = resolve_spec(config.spec) if config.spec is not None else (None, "mix")
    parsed, _ = spec_problems(raw) if config.spec is not None else (None, [])
    where = "mix" if where == "mix spec" else where
    if parsed is None:
        raise ConfigError(problems or ["spec: unusable"], where=where)
    try:
        sources = [open_input(Path(p)) for p in inputs]
        df = _narrow_frame(sources, parsed, config.rank_by)
    except ThresherError:
        if problems:  # the spec's own problems come first: they may be the cause
            raise ConfigError(problems, where=where) from None
        raise
    if not parsed.rules:
        present = set(df[sel.CAT].drop_nulls().unique().to_list())
        problems.extend(f"spec.{p}" for p in parsed.unknown_category_problems(present))
    if problems:
        raise ConfigError(problems, where=where)
    return parsed, sources, df


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
        if rank_by and not src.frame.collect_schema()[rank_by].is_numeric():
            raise InputError(f"{src.path}: rank_by column {rank_by} is not numeric")
    extra = [sel.user_text().alias("__text")] if spec.rules else []
    cols = ["id", "source"] + ([spec.column] if not spec.rules else []) + ([rank_by] if rank_by and rank_by not in ("id", "source") else [])
    cols = list(dict.fromkeys(cols))
    df = narrow(sources, cols, extra)
    df = df.with_columns(sel.category_expr(spec).alias(sel.CAT))
    if rank_by:
        df = df.with_columns(pl.col(rank_by).cast(pl.Float64).alias(sel.SCORE))
    return df.drop("__text", strict=False)


def _replay(config: Config, spec: MixSpec, main_n: int, main_ids: pl.Series) -> tuple[pl.DataFrame, dict[str, Any]]:
    """Replay rows (full) to make up ``replay_fraction`` of the output, and their stats."""
    frac = config.replay_fraction
    wanted = round(frac * main_n / (1 - frac))
    df = read_table(config.replay)
    df = df.filter(~pl.col("id").is_in(main_ids.implode()))
    avail = df.height
    repeats = spec.max_repeats
    taken = min(wanted, avail * repeats)
    stats = {"file": str(config.replay), "fraction": frac, "wanted": wanted, "available": avail, "taken": taken}
    if taken < wanted:
        msg = f"replay: wanted {wanted} rows, {avail} available (max_repeats {repeats}), can take {taken}"
        if spec.on_shortfall == "fail":
            raise ThresherError(msg + " (on_shortfall: fail)")
        info(f"mix: {msg}")
    frame = pl.DataFrame(
        {sel.ROW: pl.int_range(avail, dtype=pl.Int64, eager=True), sel.CAT: [REPLAY_SOURCE] * avail}
    ).with_columns(sel.random_keys(avail, config.seed, stream=2))
    plan = [CategoryPlan(REPLAY_SOURCE, "replay", wanted, avail, repeats, taken)]
    chosen = sel.select(frame, plan, ranked=False) if taken else frame.head(0).drop(sel.KEY).with_columns(pl.lit(1, dtype=pl.Int64).alias(sel.COPY))
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


def _report(plan: list[CategoryPlan]) -> None:
    for p in plan:
        if p.taken < p.wanted:
            info(f"mix: category {p.name}: wanted {p.wanted}, available {p.available} "
                 f"(max_repeats {p.max_repeats}), taken {p.taken}")


def run(inputs: list[Path], out: Path, config: Config, *, force: bool = False) -> StageResult:
    """Mix ``inputs`` into ``out`` per ``config`` (see the module docstring)."""
    if not inputs:
        raise InputError("mix: no input given")
    raw, _ = resolve_spec(config.spec) if config.spec is not None else (None, "")
    stage_inputs = [*inputs, *([Path(config.replay)] if config.replay else [])]
    # the spec's content (not its path) is part of the fingerprint
    stage = Stage(NAME, out, inputs=stage_inputs, config=replace(config, spec=raw), force=force)
    if stage.done:
        return stage.result()
    spec, sources, df = _read(config, list(inputs))
    present = set(df[sel.CAT].drop_nulls().unique().to_list())

    # reasons for rows that cannot take part
    dup = ~pl.col("id").is_first_distinct()
    no_cat = pl.col(sel.CAT).is_null()
    names = [c.name for c in spec.categories] if spec.temperature is None else sorted(present)
    outside = ~pl.col(sel.CAT).is_in(names)
    df = df.with_columns(
        pl.when(dup).then(pl.lit("duplicate id (already in an earlier row or input)"))
        .when(no_cat).then(pl.lit("no category"))
        .when(outside).then(pl.format("category not in spec: {}", pl.col(sel.CAT)))
        .otherwise(pl.lit(None, dtype=pl.String))
        .alias("__why")
    )
    candidates = df.filter(pl.col("__why").is_null())
    candidates = candidates.with_columns(sel.random_keys(candidates.height, config.seed, stream=0))
    ok = sel.eligible(candidates, spec, names)
    available = dict(ok.group_by(sel.CAT).len().iter_rows())
    plan = make_plan(spec, available)
    _report(plan)
    chosen = sel.select(ok, plan, ranked=config.rank_by is not None)

    # map the selection back to input rows and gather their full content
    chosen = chosen.join(df.select(sel.ROW, INPUT, LOCAL), on=sel.ROW, how="left")
    full = gather(sources, chosen)
    kept = (
        chosen.join(full, on=[INPUT, LOCAL], how="left")
        .with_columns(pl.col(sel.CAT).alias("category"))
    )
    replay_stats = None
    if config.replay:
        replay_rows, replay_stats = _replay(config, spec, kept.height, df["id"])
        kept = pl.concat([kept, replay_rows], how="diagonal_relaxed")
    kept = sel.shuffle(kept.sort(sel.ROW, sel.COPY, nulls_last=True, maintain_order=True), config.seed)
    kept = _with_copies(kept).drop(sel.ROW, sel.CAT, INPUT, LOCAL, strict=False)
    kept = kept.select(["id", "messages", "category", "source", *[c for c in kept.columns if c not in ("id", "messages", "category", "source")]])

    # dropped: every input row that is not in the mix
    selected = chosen.select(sel.ROW).unique()
    mins = {c.name: c.min_score for c in spec.categories if c.min_score is not None}
    taken = {p.name: (p.taken, p.available) for p in plan}
    why = df.join(selected, on=sel.ROW, how="anti").with_columns(
        pl.coalesce(
            pl.col("__why"),
            pl.when(~pl.col(sel.ROW).is_in(ok[sel.ROW].implode())).then(
                pl.format(
                    "below min_score: {} < {}",
                    pl.lit(config.rank_by or ""),
                    pl.col(sel.CAT).replace_strict(list(mins), [str(v) for v in mins.values()], default=""),
                )
            ),
            pl.format(
                "not selected (category {}: {} of {} rows taken)",
                pl.col(sel.CAT),
                pl.col(sel.CAT).replace_strict(list(taken), [str(t) for t, _ in taken.values()], default="0"),
                pl.col(sel.CAT).replace_strict(list(taken), [str(a) for _, a in taken.values()], default="0"),
            ),
        ).alias("__reason")
    )
    dropped_full = gather(sources, why).join(why.select(INPUT, LOCAL, "__reason", sel.CAT), on=[INPUT, LOCAL])
    dropped = dropped_frame(
        dropped_full.with_columns(pl.col(sel.CAT).fill_null(pl.col("category")).alias("category")),
        NAME,
        pl.col("__reason"),
    ).drop("__reason", sel.CAT, INPUT, LOCAL, strict=False)

    stats = {
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
        }
    }
    return stage.finish(kept, dropped, stats, rows_in=df.height)
