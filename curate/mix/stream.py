"""The mix as a streaming pass: the plan from a projection, the rows written part by part.

When the inputs are large (:func:`streams`: every input reads in batches and they hold at
least ``$THRESHER_STREAM_MIN_BYTES``), the mix never holds the rows:

1. **Projection.** Each input is read a batch at a time (``$THRESHER_PART_ROWS`` rows):
   canonical Parquet by row groups, its conversations validated only for the rows written
   (as :func:`~thresher.curate.mix.gather.open_input` reads it); any other input through
   :func:`thresher.io.stream.iter_inputs`, each with its own ids (as
   :func:`~thresher.io.readers.read_rows` reads it whole). A batch leaves ``id``, the category
   the spec gives it and the ``rank_by`` score; the replay file leaves its ids and categories.
2. **Decisions.** The whole-table path's selection (:mod:`.decide`) runs on that frame, and
   each chosen line (a row or an upsampled copy) gets its position in the seeded output order.
3. **Rows.** The inputs are read again. A batch's chosen lines go to spill fragments by output
   part (position // part rows), its other rows straight to a dropped part with their reason;
   then each output part is put together from its fragments in position order.

The result is what the whole-table path writes: the same kept rows in the same order, the
same dropped rows and reasons (rows rejected on read first), the same stats (plus
``streamed``; a killed run starts again, there is no resume per part). What grows with the
input is the projection: per input row its id (a 16-byte string view, plus the id's length
beyond 12 characters), its category (16) and score (8), its row number (8), ``__why`` (16)
and two flags (2), about 70 bytes plus the id; the selection briefly adds about 40 bytes per
candidate, and the dropped rows' stats projection 16 bytes per dropped row (categorical).
Measured: peak RSS 491 MiB for 200k rows and 560 MiB for 800k (13-character ids), about 120
bytes a row, where the whole-table path went from 480 to 1,370 MiB. Peak memory otherwise
depends on the part size.
"""

from __future__ import annotations

import math
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from thresher.curate.mix import select as sel
from thresher.curate.mix.decide import (
    ELIGIBLE,
    REPLAY_SOURCE,
    categories_present,
    check_columns,
    checked_spec,
    choose,
    drop_rows,
    kept_columns,
    mix_stats,
    needed_columns,
    output_positions,
    read_guarded,
    replay_choice,
    with_copies,
    with_exclusions,
)
from thresher.curate.mix.gather import check_messages, lazy_schema, with_core
from thresher.curate.mix.plan import CategoryPlan
from thresher.curate.mix.spec import MixSpec
from thresher.errors import InputError, ThresherError
from thresher.executor import WrittenParts
from thresher.io import parts
from thresher.io.inputs import ReadOptions, rejects_frame
from thresher.schema import DROP_COLUMNS
from thresher.stage_folder import DROPPED, KEPT

POS = "__pos"
KEPT_WORK, SPILL, REJECTED, DROPPED_ROWS = "final", "spill", "rejected", "dropped"


def streams(inputs: list[Path], read: ReadOptions, replay: str | None) -> bool:
    """True when the mix of ``inputs`` (and the ``replay`` file) should stream: every one
    reads in batches and together they hold at least ``$THRESHER_STREAM_MIN_BYTES``."""
    from thresher.executors.stream import MIN_BYTES_ENV, STREAM_MIN_BYTES
    from thresher.io.stream import input_bytes, streamable

    if not inputs or not streamable(inputs, read):
        return False
    extra = [Path(replay)] if replay else []
    if extra and not (extra[0].is_file() and streamable(extra)):
        return False
    floor = int(os.environ.get(MIN_BYTES_ENV) or STREAM_MIN_BYTES)
    return floor <= 0 or input_bytes([*inputs, *extra]) >= floor


# ---------------------------------------------------------------- reading


def union(schema: dict[str, pl.DataType], frame: pl.DataFrame) -> dict[str, pl.DataType]:
    """The columns of ``schema`` and ``frame`` together (types as a relaxed concat gives them)."""
    if not schema:
        return dict(frame.schema)
    return dict(pl.concat([pl.DataFrame(schema=schema), frame.clear()], how="diagonal_relaxed").schema)


@dataclass
class Input:
    """One input of the mix, read a batch at a time (twice: projection, then rows)."""

    path: Path
    read: ReadOptions
    lazy: dict[str, pl.DataType] | None
    """The columns of a canonical Parquet input (validated only where written), else None."""
    heights: list[int] = field(default_factory=list)
    schema: dict[str, pl.DataType] = field(default_factory=dict)
    """Every batch's columns together."""
    rejected: dict[str, pl.DataType] = field(default_factory=dict)
    """The columns of its rows rejected on read (empty: none)."""
    only: Path | None = None
    """Read only this part file of a canonical Parquet input (a Ray task's share of it)."""

    @classmethod
    def open(cls, path: Path, read: ReadOptions) -> Input:
        """The input ``path`` as the whole-table path would open it."""
        return cls(path, read, lazy_schema(path, read))

    def batches(self, rows: int) -> Iterator[tuple[pl.DataFrame, pl.DataFrame]]:
        """``(rows, rejected on read)`` a batch of at most ``rows`` rows at a time."""
        from thresher.io.stream import iter_inputs

        if self.lazy is None:
            for batch, rejected in iter_inputs([self.path], self.read, rows):
                yield with_core(batch), rejected
            return
        seen = 0
        for batch in parts.iter_batches(self.only or self.path, rows):
            seen += batch.height
            yield with_core(batch), rejects_frame([])
        if seen == 0:
            raise InputError(f"{self.path}: empty file (no rows)")

    def note(self, batch: pl.DataFrame, rejected: pl.DataFrame) -> None:
        """Remember a batch's size and columns on the first read."""
        self.heights.append(batch.height)
        self.schema = union(self.schema, batch)
        if rejected.height:
            self.rejected = union(self.rejected, rejected)


def project(batch: pl.DataFrame, spec: MixSpec, rank_by: str | None) -> pl.DataFrame:
    """``id``, ``__cat`` and (with ``rank_by``) ``__score`` of one batch, as the whole-table
    path computes them (a column the batch lacks is null, as in the whole input)."""
    missing = [c for c in needed_columns(spec, rank_by) if c not in batch.columns]
    batch = batch.with_columns([pl.lit(None, dtype=pl.Float64 if c == rank_by else pl.String).alias(c)
                                for c in missing])
    if spec.rules:
        batch = batch.with_columns(sel.user_text().alias("__text"))
    exprs = [pl.col("id"), sel.category_expr(spec).alias(sel.CAT)]
    if rank_by:
        numeric = batch.schema[rank_by].is_numeric() or batch.schema[rank_by] == pl.Null
        score = pl.col(rank_by).cast(pl.Float64) if numeric else pl.lit(None, dtype=pl.Float64)
        exprs.append(score.alias(sel.SCORE))  # not numeric: check_columns names it after the input
    return batch.select(exprs)


def _projection(inputs: list[Input], spec: MixSpec, rank_by: str | None, rows: int) -> pl.DataFrame:
    """The narrow frame of every input row (``__row``, ``id``, ``__cat``, ``__score``)."""
    from thresher.progress import info

    frames = []
    for src in inputs:
        if src.lazy is not None:
            check_columns(src.path, src.lazy, spec, rank_by)
        for batch, rejected in src.batches(rows):
            src.note(batch, rejected)
            frames.append(project(batch, spec, rank_by))
        if src.lazy is None:
            check_columns(src.path, src.schema, spec, rank_by)
        info(f"mix: {src.path}: {sum(src.heights):,} rows projected")
    df = pl.concat(frames, how="vertical_relaxed")
    return df.with_row_index(sel.ROW).with_columns(pl.col(sel.ROW).cast(pl.Int64))


def replay_projection(path: Path, rows: int) -> tuple[pl.DataFrame, dict[str, pl.DataType]]:
    """The replay file's ``id`` and ``category`` per row, and its columns."""
    from thresher.io.stream import iter_inputs

    frames, schema = [], {}
    for batch, _ in iter_inputs([path], ReadOptions(), rows):
        batch = with_core(batch)
        schema = union(schema, batch)
        frames.append(batch.select("id", pl.col("category").cast(pl.String)))
    return pl.concat(frames), schema


# ---------------------------------------------------------------- deciding


@dataclass
class Lines:
    """Output lines of one stream of inputs, sorted by ``rows``: the input row (its number in
    the stream), copy number, output position and, for the main inputs, the category."""

    rows: np.ndarray
    copies: np.ndarray
    pos: np.ndarray
    labels: pl.Series | None = None

    def within(self, lo: int, hi: int) -> slice:
        """The lines of the stream's rows ``[lo, hi)``."""
        a, b = np.searchsorted(self.rows, [lo, hi])
        return slice(int(a), int(b))


@dataclass
class Plan:
    """Everything the second pass needs: the per-row flags and reasons, the lines to write."""

    spec: MixSpec
    plan: list[CategoryPlan]
    frame: pl.DataFrame
    """``__cat`` and ``__why`` of every main input row."""
    in_mix: np.ndarray
    eligible: np.ndarray
    main: Lines
    replay: Lines | None
    kept: pl.DataFrame
    """The category of every output line (for the stats)."""
    replay_stats: dict[str, Any] | None


def decide(df: pl.DataFrame, spec: MixSpec, config: Any, names: list[str],
           replay: pl.DataFrame | None) -> Plan:
    """The whole-table path's selection on the projection ``df`` (and the replay ids)."""
    df = with_exclusions(df, names)
    ok, plan, chosen = choose(df, spec, config, names)
    in_mix = np.zeros(df.height, dtype=np.bool_)
    in_mix[chosen[sel.ROW].to_numpy()] = True
    eligible = np.zeros(df.height, dtype=np.bool_)
    eligible[ok[sel.ROW].to_numpy()] = True
    replay_lines, replay_stats, replay_cats = None, None, pl.Series("category", [], dtype=pl.String)
    n_replay = 0
    if replay is not None:
        free = ~replay["id"].is_in(df["id"].implode())
        taken, replay_stats = replay_choice(config, spec, chosen.height, int(free.sum()))
        rows = free.arg_true().cast(pl.Int64).to_numpy()[taken[sel.ROW].to_numpy()]
        n_replay = taken.height
        replay_lines = Lines(rows, taken[sel.COPY].to_numpy(), np.empty(0, dtype=np.int64))
        replay_cats = replay["category"].gather(rows).fill_null(REPLAY_SOURCE)
    pos = output_positions(chosen.height, n_replay, config.seed)
    lines = chosen.with_columns(pl.Series(POS, pos[: chosen.height])).sort(sel.ROW, maintain_order=True)
    main = Lines(lines[sel.ROW].to_numpy(), lines[sel.COPY].to_numpy(), lines[POS].to_numpy(), lines[sel.CAT])
    if replay_lines is not None:
        replay_lines.pos = pos[chosen.height:]
    kept = pl.DataFrame({"category": pl.concat([chosen[sel.CAT], replay_cats]).cast(pl.Categorical)})
    return Plan(spec, plan, df.select(sel.CAT, "__why"), in_mix, eligible, main, replay_lines, kept, replay_stats)


# ---------------------------------------------------------------- the target columns


def conform(df: pl.DataFrame, target: dict[str, pl.DataType]) -> pl.DataFrame:
    """``df`` with exactly the columns ``target`` names, in its order and types (missing: null)."""
    df = df.with_columns([pl.lit(None, dtype=t).alias(c) for c, t in target.items() if c not in df.columns])
    return df.select([pl.col(c).cast(t) for c, t in target.items()])


def kept_target(main: dict[str, pl.DataType], replay: dict[str, pl.DataType] | None) -> dict[str, pl.DataType]:
    """The columns of kept.parquet, as the whole-table path's concat and select give them."""
    base = pl.DataFrame(schema=main)
    base = base.select([c for c in base.columns if c != "messages"] + ["messages"]).with_columns(
        pl.lit(None, dtype=pl.String).alias("category"), pl.lit(None, dtype=pl.Int64).alias(sel.COPY))
    if replay is not None:
        extra = pl.DataFrame(schema=replay).with_columns(pl.lit(None, dtype=pl.Int64).alias(sel.COPY)).with_columns(
            pl.lit(REPLAY_SOURCE).alias("source"), pl.col("category").fill_null(REPLAY_SOURCE))
        base = pl.concat([base, extra], how="diagonal_relaxed")
    return dict(kept_columns(base).schema)


def dropped_target(main: dict[str, pl.DataType], rejected: dict[str, pl.DataType], spec: MixSpec,
                   plan: list[CategoryPlan], config: Any) -> dict[str, pl.DataType]:
    """The columns of dropped.parquet: rows rejected on read first, the drop columns last."""
    frame = pl.DataFrame(schema=main).drop("messages").with_columns(
        pl.lit(None, dtype=pl.String).alias(sel.CAT), pl.lit(None, dtype=pl.String).alias("__why"),
        pl.lit(None, dtype=pl.Boolean).alias(ELIGIBLE))
    dropped = drop_rows(frame, spec, plan, config)
    if rejected:
        dropped = pl.concat([pl.DataFrame(schema=rejected), dropped], how="diagonal_relaxed")
    order = [*(c for c in dropped.columns if c not in DROP_COLUMNS), *DROP_COLUMNS]
    return dict(dropped.select(order).schema)


# ---------------------------------------------------------------- writing


@dataclass
class Writer:
    """The second pass's output: spill fragments of the kept lines by output part, dropped
    parts, rows rejected on read (kept apart: they come first), the dropped rows' projection."""

    work: Path
    rows: int
    kept_schema: dict[str, pl.DataType]
    dropped_schema: dict[str, pl.DataType]
    batch: int = 0
    counted: list[pl.DataFrame] = field(default_factory=list)

    def spill(self, lines: pl.DataFrame) -> None:
        """Kept lines (with ``__pos``) into the fragments of their output parts."""
        if lines.height == 0:
            return
        bucket = (pl.col(POS) // self.rows).alias("__bucket")
        for (b,), frag in lines.with_columns(bucket).partition_by("__bucket", as_dict=True).items():
            parts.write_part(frag.drop("__bucket"), self.work / SPILL / f"{b:05d}", self.batch)

    def drop(self, dropped: pl.DataFrame, rejected: pl.DataFrame) -> None:
        """A batch's dropped rows and its rows rejected on read."""
        for frame, folder in ((rejected, REJECTED), (dropped, DROPPED_ROWS)):
            if frame.height:
                parts.write_part(conform(frame, self.dropped_schema), self.work / folder, self.batch)
                cols = [c for c in ("category", *DROP_COLUMNS) if c in frame.columns]
                self.counted.append(frame.select([pl.col(c).cast(pl.Categorical) for c in cols]))

    def finish(self, n_lines: int) -> Path:
        """Put the output parts together from their fragments (position order) and the dropped
        parts behind the rejected ones; returns the folder holding kept.parquet and dropped.parquet."""
        out = self.work / KEPT_WORK
        shutil.rmtree(out, ignore_errors=True)
        for b in range(math.ceil(n_lines / self.rows)):
            folder = self.work / SPILL / f"{b:05d}"
            frags = [pl.read_parquet(f) for f in parts.files(folder)]
            lines = pl.concat(frags, how="diagonal_relaxed").sort(POS)
            parts.write_part(conform(lines, self.kept_schema), out / KEPT, b)
            shutil.rmtree(folder)
        if n_lines == 0:
            parts.write_part(pl.DataFrame(schema=self.kept_schema), out / KEPT, 0)
        found = [*_files(self.work / REJECTED), *_files(self.work / DROPPED_ROWS)]
        (out / DROPPED).mkdir(parents=True)
        for i, f in enumerate(found):
            os.replace(f, out / DROPPED / parts.part_name(i))
        if not parts.is_dataset(out / DROPPED):
            parts.write_part(pl.DataFrame(schema=self.dropped_schema), out / DROPPED, 0)
        for name in (KEPT, DROPPED):
            parts.seal(out / name)
        return out

    def dropped_projection(self) -> pl.DataFrame:
        """``category`` and the drop columns of every dropped row (for the stats)."""
        empty = pl.DataFrame(schema={c: pl.Categorical for c in ("category", *DROP_COLUMNS)})
        return pl.concat([empty, *self.counted], how="diagonal_relaxed")


def _files(folder: Path) -> list[Path]:
    """The part files of ``folder`` in order (none when it was never made)."""
    return parts.files(folder) if folder.is_dir() else []


def _picked(batch: pl.DataFrame, lines: Lines, lo: int) -> tuple[pl.DataFrame, np.ndarray]:
    """The lines of ``batch`` (stream rows ``[lo, lo + height)``) with ``__copy`` and
    ``__pos`` (and the category), and their rows' numbers in the batch."""
    cut = lines.within(lo, lo + batch.height)
    local = lines.rows[cut] - lo
    picked = batch[local].with_columns(pl.Series(sel.COPY, lines.copies[cut]), pl.Series(POS, lines.pos[cut]))
    if lines.labels is not None:
        picked = picked.with_columns(lines.labels[cut].alias("category"))
    return picked, local


def write_main(src: Input, batch: pl.DataFrame, rejected: pl.DataFrame, lo: int, first: int,
                plan: Plan, config: Any, writer: Writer) -> None:
    """One batch of a main input (stream rows from ``lo``; ``first``: its first row's number
    in its input): chosen lines to the spill, other rows to a dropped part."""
    picked, local = _picked(batch, plan.main, lo)
    if src.lazy is not None and picked.height:  # validated where written, as the whole-table path does
        rows = np.unique(local)
        check_messages(src.path, batch["id"].gather(rows), batch["messages"].gather(rows), pl.Series(rows + first))
    writer.spill(with_copies(picked))
    hi = lo + batch.height
    mine = plan.frame.slice(lo, batch.height)
    frame = batch.drop("messages").with_columns(mine[sel.CAT], mine["__why"], pl.Series(ELIGIBLE, plan.eligible[lo:hi]))
    dropped = frame.filter(pl.Series(~plan.in_mix[lo:hi]))
    writer.drop(drop_rows(dropped, plan.spec, plan.plan, config), rejected)
    writer.batch += 1


def write_replay(path: Path, plan: Plan, rows: int, writer: Writer) -> None:
    """The replay rows taken, into the spill."""
    from thresher.io.stream import iter_inputs

    lo = 0
    for batch, _ in iter_inputs([path], ReadOptions(), rows):
        picked, _ = _picked(with_core(batch), plan.replay, lo)  # type: ignore[arg-type]
        picked = picked.with_columns(pl.lit(REPLAY_SOURCE).alias("source"), pl.col("category").fill_null(REPLAY_SOURCE))
        writer.spill(with_copies(picked))
        writer.batch += 1
        lo += batch.height


def _second_pass(inputs: list[Input], plan: Plan, config: Any, writer: Writer) -> None:
    """Read every input again and write its rows (the replay rows last)."""
    from thresher.progress import info

    lo = 0
    for src in inputs:
        first, sizes = 0, iter(src.heights)
        for batch, rejected in src.batches(writer.rows):
            if next(sizes, None) != batch.height:
                raise ThresherError(f"{src.path}: changed while the mix was reading it; run it again")
            write_main(src, batch, rejected, lo, first, plan, config, writer)
            lo, first = lo + batch.height, first + batch.height
        if next(sizes, None) is not None:
            raise ThresherError(f"{src.path}: changed while the mix was reading it; run it again")
        info(f"mix: {src.path}: rows written")
    if plan.replay is not None:
        write_replay(Path(config.replay), plan, writer.rows, writer)


def out_rows(paths: list[Path], n_in: int, rows: int) -> int:
    """Lines an output part holds: ``rows``, fewer when rows of the inputs' average size would
    pass ``$THRESHER_PART_BYTES`` (a part is gathered in memory before it is written)."""
    from thresher.io.stream import input_bytes, part_bytes

    average = max(1, input_bytes(paths) // max(1, n_in))
    return max(1, min(rows, part_bytes() // average))


def run_streaming(config: Any, paths: list[Path], read: ReadOptions, work: Path, timer: Any) -> WrittenParts:
    """Mix ``paths`` per ``config`` in a streaming pass (module docstring); the result is
    written under ``work`` (emptied first) and returned for
    :meth:`~thresher.stage.StageFolder.finish_parts`. ``timer.lap(name)`` records the
    timings in ``timer.seconds``."""
    from thresher.executors.stream import part_rows

    lap = timer.lap
    rows = part_rows()
    spec, where, problems = checked_spec(config)
    inputs = [Input.open(Path(p), read) for p in paths]
    df = read_guarded(problems, where, lambda: _projection(inputs, spec, config.rank_by, rows))
    present = categories_present(spec, df, problems, where)
    replay, replay_schema = replay_projection(Path(config.replay), rows) if config.replay else (None, None)
    lap("read")
    names = [c.name for c in spec.categories] if spec.temperature is None else sorted(present)
    plan = decide(df, spec, config, names, replay)
    n_in, n_lines = df.height, plan.kept.height
    del df, replay
    lap("select")
    main_schema: dict[str, pl.DataType] = {}
    rejected_schema: dict[str, pl.DataType] = {}
    for src in inputs:
        main_schema = union(main_schema, pl.DataFrame(schema=src.schema))
        if src.rejected:
            rejected_schema = union(rejected_schema, pl.DataFrame(schema=src.rejected))
    shutil.rmtree(work, ignore_errors=True)
    writer = Writer(work, out_rows(paths, n_in, rows), kept_target(main_schema, replay_schema),
                    dropped_target(main_schema, rejected_schema, spec, plan.plan, config))
    _second_pass(inputs, plan, config, writer)
    lap("gather")
    folder = writer.finish(n_lines)
    dropped = writer.dropped_projection()
    for leftover in (SPILL, REJECTED, DROPPED_ROWS):
        shutil.rmtree(work / leftover, ignore_errors=True)
    lap("dropped")
    stats = {**mix_stats(config, spec, plan.plan, plan.replay_stats, timer.seconds),
             "streamed": {"parts": max(1, math.ceil(n_lines / writer.rows)), "part_rows": writer.rows, "parts_reused": 0}}
    n_rejected = int((dropped["drop_stage"] == "read").sum()) if dropped.height else 0
    return WrittenParts(folder, plan.kept, dropped, stats, rows_in=n_in + n_rejected)
