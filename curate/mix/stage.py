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
read for the selected rows only (see :mod:`.gather`). Large inputs stream (:mod:`.stream`):
the plan comes from a projection and the rows are written part by part, with the same result.

Same inputs, spec and seed give the same ids in the same order.
"""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from thresher.curate.mix import select as sel
from thresher.curate.mix import stream as mix_stream
from thresher.curate.mix.decide import (
    CORE,
    ELIGIBLE,
    NAME,
    REPLAY_SOURCE,
    categories_present,
    check_columns,
    checked_spec,
    choose,
    drop_rows,
    duplicate_ids,
    kept_columns,
    mix_stats,
    read_guarded,
    replay_choice,
    with_exclusions,
)
from thresher.curate.mix.gather import Source, messages_for, narrow, open_input
from thresher.curate.mix.plan import CategoryPlan
from thresher.curate.mix.spec import MixSpec, resolve_spec, spec_problems
from thresher.errors import InputError, ThresherError
from thresher.executor import GlobalStage, WrittenParts, run_stage
from thresher.io import read_table
from thresher.io.inputs import ReadOptions
from thresher.stage import StageResult
from thresher.stage_folder import PARTS_WORK

__all__ = ["CORE", "NAME", "REPLAY_SOURCE", "Config", "MixStage", "run"]


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
    parsed, where, problems = checked_spec(config)

    def opened() -> tuple[list[Source], pl.DataFrame]:
        sources = [open_input(Path(p), read) for p in inputs]
        return sources, _narrow_frame(sources, parsed, config.rank_by)

    sources, df = read_guarded(problems, where, opened)
    present = categories_present(parsed, df, problems, where)
    return parsed, sources, df, present


def _narrow_frame(sources: list[Source], spec: MixSpec, rank_by: str | None) -> pl.DataFrame:
    for src in sources:
        check_columns(src.path, src.schema, spec, rank_by)
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
    df = read_table(config.replay)
    df = df.filter(~pl.col("id").is_in(main_ids.implode()))
    chosen, stats = replay_choice(config, spec, main_n, df.height)
    rows = (
        df.with_row_index(sel.ROW)
        .with_columns(pl.col(sel.ROW).cast(pl.Int64))
        .join(chosen, on=sel.ROW, how="inner", maintain_order="left")
        .with_columns(
            pl.lit(REPLAY_SOURCE).alias("source"),
            pl.col("category").fill_null(REPLAY_SOURCE),
        )
        .drop(sel.ROW)
    )
    return rows, stats


_duplicate_ids = duplicate_ids  # the name the tests know


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
    return kept_columns(kept), in_mix, replay_stats


def _dropped(df: pl.DataFrame, ok: pl.DataFrame, in_mix: np.ndarray, spec: MixSpec, plan: list[CategoryPlan],
             config: Config) -> pl.DataFrame:
    """Every input row that is not in the mix, without its conversation (it is unchanged in
    the input; rows are named by id, with the reason)."""
    eligible = np.zeros(df.height, dtype=np.bool_)
    eligible[ok[sel.ROW].to_numpy()] = True
    frame = df.with_columns(pl.Series(ELIGIBLE, eligible)).filter(pl.Series(~in_mix))
    return drop_rows(frame, spec, plan, config)


class MixStage(GlobalStage):
    """Global: the categories' shares are chosen over every input row at once. It reads its
    inputs itself (narrow columns first, conversations of the chosen rows only)."""

    name = "mix"
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
        df = with_exclusions(df, names)
        ok, plan, chosen = choose(df, spec, config, names)
        self.lap("select")
        kept, in_mix, replay_stats = _gather(df, sources, chosen, spec, config)
        self.lap("gather")
        dropped = _dropped(df, ok, in_mix, spec, plan, config)
        self.lap("dropped")
        stats = mix_stats(config, spec, plan, replay_stats, self.seconds)
        rejected = [s.rejected for s in sources if s.rejected is not None and s.rejected.height]
        if rejected:
            dropped = pl.concat([*rejected, dropped], how="diagonal_relaxed")
        context.state["rows_in"] = df.height + sum(r.height for r in rejected)
        return kept, dropped, stats

    def rows_in(self, table: pl.DataFrame, context: Any) -> int | None:
        return context.state["rows_in"]

    def run_parts(self, context: Any) -> WrittenParts | None:
        """Large inputs stream (:mod:`.stream`): the plan from a projection, the rows written
        in parts (under ``--executor ray`` by Ray tasks, :mod:`.ray_stream`); small ones (None)
        go through :meth:`run_table`."""
        config = context.config
        if not mix_stream.streams(list(context.inputs), context.read, config.replay):
            return None
        self._clock = time.perf_counter()
        work = context.stage.out / PARTS_WORK
        from thresher.executors.ray_session import current

        if current() == "ray":  # the workers read, decide and write; the driver holds no row
            from thresher.curate.mix.ray_stream import run_streaming_ray
            from thresher.executors.ray_session import ray_address, session

            with session(ray_address()):
                return run_streaming_ray(config, list(context.inputs), context.read, work, self)
        return mix_stream.run_streaming(config, list(context.inputs), context.read, work, self)


def run(inputs: list[Path], out: Path, config: Config, *, force: bool = False,
        read: ReadOptions | dict | None = None) -> StageResult:
    """Mix ``inputs`` (files or run folders) into ``out`` per ``config`` (see the module docstring)."""
    if not inputs:
        raise InputError("mix: no input given")
    impl = MixStage()
    result = run_stage(impl, inputs, out, config, force=force, read=read)
    if "streamed" in result.stats and not result.reused:
        shutil.rmtree(Path(out) / PARTS_WORK, ignore_errors=True)  # what finish_parts left of the work folder
    if not result.reused:
        impl.lap("write")
        result.stats["mix"]["seconds"] = impl.seconds
    return result
