"""The streaming executor: a row-wise stage from its inputs to Parquet parts, a batch at a time.

Peak memory depends on the batch (``THRESHER_PART_ROWS`` rows, default 50,000, and at most
``THRESHER_PART_BYTES`` of input, default 32 MiB), not on the
input. Three phases:

1. **Parts.** Each batch of the inputs (:func:`thresher.io.stream.iter_inputs`) is numbered
   (:data:`ROW_INDEX`), goes through ``process_batch``, and its kept and dropped rows are
   written as part ``i`` into ``OUT/.thresher-parts/`` (each file atomic, then a marker saying
   part ``i`` is finished). A rerun after a kill with the same fingerprint redoes only the
   parts without a marker.
2. **Projection.** ``finalize`` sees a projection of every part: :data:`ROW_INDEX` plus the
   columns the stage names in :meth:`~thresher.executor.RowStage.finalize_columns` (and
   ``category`` and the drop columns, which the stats count). Global rules (z-scores,
   ``auto`` cuts, best-of-n) run there: a few bytes a row, never the rows themselves. The
   projections are held compact (:func:`compact`): the String columns of
   :data:`CATEGORICAL_COLUMNS` as a polars Categorical (4 bytes a row, not a 16-byte view)
   and a kept part's drop columns left out when all null; the second pass writes them back as
   the rows hold them (:func:`as_written`), so the parts keep their schema.
3. **Second pass.** Each part is rewritten with what ``finalize`` decided: new columns joined
   by :data:`ROW_INDEX`, rows it dropped moved to the dropped part. The result is a folder of
   parts (one file when there is a single part) swapped in as one result set.

A stage whose ``finalize`` decides nothing under its config (it only computes stats:
:meth:`~thresher.executor.RowStage.decides` is False, e.g. decontam, score without pass rates,
filter without score rules) runs in **one pass**: phase 1 writes the final parts directly, each
part's stats are counted as it is written (a :class:`~thresher.tally.Tally` in its marker), and
``finalize`` sees only the columns it reads (:func:`lean`: no row numbers, no category, no drop
columns, an all-null String column as a polars Null column of no bytes). Nothing is held per
row beyond those columns, and no part is read or written twice.

Phases 1 and 3 are per-part functions (:func:`process_part`, :func:`reuse_part`,
:func:`rewrite_part`, :func:`conform_part`) that touch nothing but their part's files, so the
Ray executor (:mod:`thresher.executors.stream_ray`) runs the same code as remote tasks.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import polars as pl

from thresher.executors.rows import ROW_INDEX
from thresher.io import parts
from thresher.io.atomic import write_text_atomic
from thresher.io.stream import part_bytes
from thresher.schema import DROP_COLUMNS
from thresher.stage_folder import DROPPED, KEPT, PARTS_WORK, kill_point
from thresher.tally import Tally

if TYPE_CHECKING:
    from collections.abc import Callable

    from thresher.executor import RowStage, StageContext
    from thresher.io.inputs import ReadOptions
    from thresher.stage import StageFolder, StageResult

PART_ROWS_ENV = "THRESHER_PART_ROWS"
MIN_BYTES_ENV = "THRESHER_STREAM_MIN_BYTES"
#: inputs smaller than this are read whole (one batch, one file), as before streaming
STREAM_MIN_BYTES = 64 << 20
#: projection columns held as a polars Categorical while they are String: few distinct values
#: each (a category, a stage, a code), 4 bytes a row instead of a 16-byte view (and the text
#: beyond 12 characters); ``drop_reason`` (free text, often one value a row) stays String
CATEGORICAL_COLUMNS: tuple[str, ...] = ("category", "drop_stage", "drop_code")


def part_rows() -> int:
    """Rows per batch and part (``$THRESHER_PART_ROWS``, default 50,000)."""
    from thresher.io.stream import BATCH_ROWS

    return max(1, int(os.environ.get(PART_ROWS_ENV) or BATCH_ROWS))


def should_stream(impl: RowStage, config: Any, paths: list[Path], opts: ReadOptions) -> bool:
    """True when ``impl`` streams: it supports it for ``config``, every input reads in
    batches, and the inputs are at least ``$THRESHER_STREAM_MIN_BYTES`` (default 64 MiB)."""
    from thresher.io.stream import input_bytes, streamable

    if not impl.streams(config) or not streamable(paths, opts):
        return False
    floor = int(os.environ.get(MIN_BYTES_ENV) or STREAM_MIN_BYTES)
    return floor <= 0 or input_bytes(paths) >= floor


@dataclass(frozen=True)
class WorkFolder:
    """The work folder of a streaming run (``OUT/.thresher-parts``): pass-1 parts and their
    markers, the final parts. Only a path: a Ray task gets it as an argument."""

    root: Path

    def open(self, key: dict[str, Any]) -> None:
        """Keep the finished parts of a run with the same ``key``; start afresh otherwise."""
        stamp = self.root / "key.json"
        text = json.dumps(key, sort_keys=True, default=str)
        try:
            same = stamp.read_text(encoding="utf-8") == text
        except OSError:
            same = False
        if not same:
            shutil.rmtree(self.root, ignore_errors=True)
            (self.root / "pass1").mkdir(parents=True)
            write_text_atomic(stamp, text)

    def marker(self, i: int) -> Path:
        """Part ``i``'s marker: present once both of its pass-1 files are written."""
        return self.root / "pass1" / f"part-{i:05d}.json"

    def part(self, which: str, i: int) -> Path:
        """Pass-1 part ``i`` of ``which`` (``"kept"`` or ``"dropped"``)."""
        return self.root / "pass1" / which / parts.part_name(i)

    @property
    def final(self) -> Path:
        """Where the second pass (or a one-pass run) writes ``kept.parquet`` and ``dropped.parquet``."""
        return self.root / "final"

    def final_part(self, which: str, i: int) -> Path:
        """Final part ``i`` of ``which`` (``KEPT`` or ``DROPPED``); the file itself once a
        single part was sealed into one file."""
        folder = self.final / which
        return folder if folder.is_file() else folder / parts.part_name(i)

    def finished(self, i: int, one_pass: bool) -> bool:
        """True when part ``i`` is done: its marker, and (one pass) both its final files."""
        if not self.marker(i).is_file():
            return False
        return not one_pass or all(self.final_part(w, i).is_file() for w in (KEPT, DROPPED))


@dataclass
class PartDone:
    """What the run keeps of a finished pass-1 part: its :data:`ROW_INDEX` range
    ``[lo, hi)``, its projections (:func:`project`), its counts and counters."""

    i: int
    lo: int
    hi: int
    kept: pl.DataFrame
    dropped: pl.DataFrame
    rows_in: int
    counters: dict[str, float] = field(default_factory=dict)
    reused: bool = False
    tally: Tally | None = None
    """The part's counts (a one-pass run's; None when a second pass decides)."""

    @classmethod
    def of(cls, impl: RowStage, config: Any, i: int, kept: pl.DataFrame, dropped: pl.DataFrame,
           marker: dict[str, Any], reused: bool) -> PartDone:
        """Part ``i`` from its rows (or projections) and its marker (a one-pass part's holds
        its tally: its projections are then :func:`lean`)."""
        counts = marker.get("tally")
        if counts is not None:
            k, d, tally = lean(kept, impl, config), lean(dropped, impl, config), Tally.from_dict(counts)
        else:
            k, d, tally = project(kept, impl, config, kept=True), project(dropped, impl, config), None
        return cls(i, int(marker["start"]), int(marker["end"]), k, d, int(marker["rows"]) + int(marker["rejected"]),
                   dict(marker.get("counters") or {}), reused, tally)


class DroppedTable:
    """:meth:`thresher.stage.StageFolder.dropped_table` of stage ``name`` as a small picklable
    callable (a Ray task gets it instead of the stage folder)."""

    def __init__(self, name: str):
        self.name = name

    def __call__(self, kept: pl.DataFrame, dropped: pl.DataFrame | None) -> pl.DataFrame:
        from thresher.stage import StageFolder

        return StageFolder.dropped_table(self, kept, dropped)  # type: ignore[arg-type]  # reads .name only


def run_streaming(stage: StageFolder, impl: RowStage, paths: list[Path], config: Any,
                  opts: ReadOptions) -> StageResult:
    """Run the row-wise stage ``impl`` on ``paths`` into ``stage`` in parts (module docstring)."""
    rows = part_rows()
    one_pass = not impl.decides(config)
    work = WorkFolder(stage.out / PARTS_WORK)
    work.open({**stage.fingerprint, "part_rows": rows, "part_bytes": part_bytes(), "one_pass": one_pass})
    where = ", ".join(str(p) for p in paths)
    context = impl.setup(config, where, stage)
    shape = stage.dropped_table if one_pass else None
    try:
        done = _first_pass(impl, config, context, paths, opts, rows, work, shape)
        kept, dropped, stats, tally = finalize_parts(impl, context, done, work)
    finally:
        impl.teardown(context)
    stats = {**stats, "streamed": streamed_stats(done, rows)}
    final = seal_final(work) if one_pass else _second_pass(stage, work, done, kept, dropped)
    return finish_streamed(stage, work, final, tally, stats, rows_in=sum(p.rows_in for p in done),
                           artefacts=context.artefacts)


def finalize_parts(impl: RowStage, context: StageContext, done: list[PartDone],
                   work: WorkFolder | None = None) -> tuple[pl.DataFrame, pl.DataFrame, dict[str, Any], Tally]:
    """``finalize`` over the projections of every part: ``(kept, dropped, stats, tally)``,
    ``tally`` counting the final rows (the rows rejected on read, never seen by the stage,
    included): the parts' tallies summed in a one-pass run, else counted from ``finalize``'s
    decisions. A one-pass stage that :meth:`~thresher.executor.RowStage.summarizes_parts`
    gets the final kept parts of ``work`` instead of projections."""
    if done and all(p.tally is not None for p in done):
        if work is not None and impl.summarizes_parts(context.config):
            stats = impl.summarize_parts([work.final_part(KEPT, p.i) for p in done], context)
            return pl.DataFrame(), pl.DataFrame(), stats, Tally.total([p.tally for p in done if p.tally])
        return _finalize_lean(impl, context, done)
    kept = _projection([p.kept for p in done])
    for p in done:  # the projections live on in `kept` and `dropped` only
        p.kept = pl.DataFrame()
    dropped = _projection([p.dropped for p in done])
    for p in done:
        p.dropped = pl.DataFrame()
    rejected = dropped.filter(pl.col(ROW_INDEX).is_null())
    kept, dropped, stats = impl.finalize(kept, dropped.filter(pl.col(ROW_INDEX).is_not_null()), context)
    counted = pl.concat([rejected, _with_drop_columns(dropped)], how="diagonal_relaxed")
    return kept, dropped, stats, Tally.of(impl.name, kept, counted)


def _finalize_lean(impl: RowStage, context: StageContext,
                   done: list[PartDone]) -> tuple[pl.DataFrame, pl.DataFrame, dict[str, Any], Tally]:
    """:func:`finalize_parts` of a one-pass run: ``finalize`` over the :func:`lean`
    projections, which must come back as many rows as they went in (it decides nothing)."""
    kept = pl.concat([p.kept for p in done], how="diagonal_relaxed", rechunk=False)  # no second copy
    dropped = pl.concat([p.dropped for p in done], how="diagonal_relaxed", rechunk=False)
    for p in done:
        p.kept = p.dropped = pl.DataFrame()
    new_kept, new_dropped, stats = impl.finalize(kept, dropped, context)
    if (new_kept.height, new_dropped.height) != (kept.height, dropped.height):
        raise RuntimeError(f"{impl.name}: finalize moved rows although decides() is False for its config")
    return new_kept, new_dropped, stats, Tally.total([p.tally for p in done if p.tally is not None])


def streamed_stats(done: list[PartDone], rows: int) -> dict[str, Any]:
    """The ``streamed`` block of the stats: parts, rows a part, parts reused from a killed
    run, passes over the rows (1: the stage decided nothing at finalize)."""
    return {"parts": len(done), "part_rows": rows, "part_bytes": part_bytes(),
            "parts_reused": sum(p.reused for p in done),
            "passes": 1 if done and all(p.tally is not None for p in done) else 2}


def finish_streamed(stage: StageFolder, work: WorkFolder, final: Path, tally: Tally, stats: dict[str, Any], *,
                    rows_in: int, artefacts: dict[str, str]) -> StageResult:
    """Swap the final parts in as the stage's result (``tally`` counts them), then remove
    the work folder."""
    result = stage.finish_parts(final, tally, stats, rows_in=rows_in, artefacts=artefacts)
    shutil.rmtree(work.root, ignore_errors=True)
    return result


def seal_final(work: WorkFolder) -> Path:
    """A one-pass run's final parts sealed (:func:`thresher.io.parts.seal`); returns their folder."""
    for name in (KEPT, DROPPED):
        if (work.final / name).is_dir():
            parts.seal(work.final / name)
    return work.final


def _projection(frames: list[pl.DataFrame]) -> pl.DataFrame:
    frame = pl.concat(frames, how="diagonal_relaxed") if frames else pl.DataFrame({ROW_INDEX: []}, schema={ROW_INDEX: pl.UInt32})
    index = frame[ROW_INDEX]
    if index.null_count() == 0 and index.is_sorted():  # parts come in order: no second copy
        return frame
    return frame.sort(ROW_INDEX, nulls_last=True)


def projection_columns(impl: RowStage, config: Any, columns: list[str]) -> list[str]:
    """The columns of a part (of ``columns``) its projection keeps, in order."""
    want = [ROW_INDEX, "category", *DROP_COLUMNS, *impl.finalize_columns(config, columns)]
    seen: list[str] = []
    for c in want:
        if c in columns and c not in seen:
            seen.append(c)
    return seen


def lean(df: pl.DataFrame, impl: RowStage, config: Any) -> pl.DataFrame:
    """A one-pass part's projection: only the columns ``finalize`` reads
    (:meth:`~thresher.executor.RowStage.finalize_columns`), an all-null String column as a
    polars Null column (no bytes), and :data:`ROW_INDEX` as a Null column (it keeps the
    count of rows, not their numbers)."""
    cols = [c for c in impl.finalize_columns(config, df.columns) if c in df.columns and c != ROW_INDEX]
    if getattr(impl, "summarizes_parts", lambda _: False)(config):
        cols = []  # its stats come from the final parts' files
    null = {c for c in cols if df.schema[c] == pl.String and df[c].null_count() == df.height}
    return pl.DataFrame([_nulls(ROW_INDEX, df.height), *(_nulls(c, df.height) if c in null else df[c] for c in cols)])


def _nulls(name: str, n: int) -> pl.Series:
    """``n`` nulls as a polars Null column: no bytes, whatever ``n``."""
    return pl.Series(name, dtype=pl.Null).extend_constant(None, n)


def project(df: pl.DataFrame, impl: RowStage, config: Any, *, kept: bool = False) -> pl.DataFrame:
    """A part's projection: what ``finalize`` and the stats read of its rows (``kept``: of
    its kept rows), held compact (:func:`compact`)."""
    return compact(df.select(projection_columns(impl, config, df.columns)), kept=kept)


def compact(projection: pl.DataFrame, *, kept: bool = False) -> pl.DataFrame:
    """``projection`` in fewer bytes a row, with the same values: its String columns of
    :data:`CATEGORICAL_COLUMNS` as Categorical and, for ``kept`` rows, the drop columns left
    out where every value is null (the stats count drops from the dropped projection)."""
    schema = projection.schema
    null = [c for c in DROP_COLUMNS if kept and c in schema and projection[c].null_count() == projection.height]
    cast = [pl.col(c).cast(pl.Categorical) for c in CATEGORICAL_COLUMNS
            if c in schema and c not in null and schema[c] == pl.String]
    return projection.drop(null).with_columns(cast)


def as_written(decided: pl.DataFrame, *rows: pl.DataFrame) -> pl.DataFrame:
    """``decided`` (a part's slice of ``finalize``'s decisions) with the columns
    :func:`compact` made Categorical back to String, unless the part's ``rows`` (its pass-1
    tables) hold them as Categorical themselves: the final parts keep the rows' dtypes."""
    schema = decided.schema
    back = [c for c in CATEGORICAL_COLUMNS if c in schema and isinstance(schema[c], pl.Categorical)
            and not any(isinstance(r.schema.get(c), pl.Categorical) for r in rows)]
    return decided.with_columns([pl.col(c).cast(pl.String) for c in back]) if back else decided


class ProjectedStage:
    """A streaming :class:`~thresher.executor.GlobalStage` as the row-wise streamer sees it:
    every batch is kept as it is (its :meth:`~thresher.executor.GlobalStage.project` columns
    go to the projection only), and ``finalize`` is the stage's ``run_projection``."""

    def __init__(self, impl: Any):
        self.impl = impl
        self.name = impl.name

    def streams(self, config: Any) -> bool:
        return self.impl.streams(config)

    def decides(self, config: Any) -> bool:
        return True  # its finalize is the stage's decision

    def setup(self, config: Any, where: str = "", stage: Any = None) -> StageContext:
        context = self.impl.setup(config, where, stage)
        context.state["projected"] = []
        return context

    def check(self, table: pl.DataFrame, config: Any, where: str) -> None:
        check = getattr(self.impl, "check", None)
        if check is not None:
            check(table, config, where)

    def process_batch(self, table: pl.DataFrame, context: StageContext) -> tuple[pl.DataFrame, pl.DataFrame]:
        return table, table.clear().with_columns([pl.lit(None, dtype=pl.String).alias(c) for c in DROP_COLUMNS])

    def extra(self, table: pl.DataFrame, context: StageContext) -> pl.DataFrame | None:
        """The stage's computed projection columns of a (numbered) batch."""
        more = self.impl.project(table, context)
        return None if more is None else more.with_columns(table[ROW_INDEX])

    def finalize_columns(self, config: Any, columns: list[str]) -> list[str]:
        return ["id", *self.impl.projection_columns(config, columns)]

    def finalize(self, kept: pl.DataFrame, dropped: pl.DataFrame, context: StageContext):
        extra = context.state.pop("projected")
        if extra:
            kept = kept.join(pl.concat(extra, how="diagonal_relaxed"), on=ROW_INDEX, how="left", maintain_order="left")
        return self.impl.run_projection(kept, context)

    def teardown(self, context: StageContext) -> None:
        self.impl.teardown(context)


def process_part(impl: RowStage, context: StageContext, batch: pl.DataFrame, rejected: pl.DataFrame,
                 i: int, start: int, work: WorkFolder, end: int | None = None,
                 shape: Callable[[pl.DataFrame, pl.DataFrame], pl.DataFrame] | None = None,
                 ) -> tuple[pl.DataFrame, pl.DataFrame, dict[str, Any]]:
    """Part ``i`` through ``process_batch``: ``batch`` numbered from ``start``, its kept and
    dropped rows (the rows ``rejected`` on read first) written as pass-1 part ``i``, then its
    marker. Returns ``(kept, dropped, marker)``; the marker holds the part's range ``[start,
    end)`` (``end``: ``start`` plus the batch's rows unless given), its counts and the
    counters ``process_batch`` added.

    With ``shape`` (a one-pass run: :meth:`~thresher.stage.StageFolder.dropped_table` or
    :class:`DroppedTable`) the rows are written as final part ``i`` instead, and the marker
    holds their :class:`~thresher.tally.Tally`; the ``dropped`` returned is then the stage's
    own (the rejected rows are counted, never seen by ``finalize``)."""
    impl.check(batch, context.config, context.where)
    before = dict(context.counters)
    kept, dropped = impl.process_batch(batch.with_row_index(ROW_INDEX, offset=start), context)
    every = pl.concat([rejected, dropped], how="diagonal_relaxed") if rejected.height else dropped
    marker: dict[str, Any] = {
        "rows": batch.height, "rejected": rejected.height, "start": start,
        "end": start + batch.height if end is None else end,
        "counters": {k: v - before.get(k, 0) for k, v in context.counters.items() if v != before.get(k, 0)}}
    if shape is None:
        parts.write_part(kept, work.root / "pass1" / "kept", i)
        parts.write_part(every, work.root / "pass1" / "dropped", i)
    else:
        kept = kept.drop(ROW_INDEX, strict=False)
        shaped = shape(kept, every.drop(ROW_INDEX, strict=False))
        parts.write_part(kept, work.final / KEPT, i)
        parts.write_part(shaped, work.final / DROPPED, i)
        marker["tally"] = Tally.of(impl.name, kept, shaped).to_dict()
        every = dropped
    write_text_atomic(work.marker(i), json.dumps(marker))
    return kept, every, marker


def reuse_part(impl: RowStage, config: Any, work: WorkFolder, i: int, full: bool = False,
               one_pass: bool = False) -> tuple[pl.DataFrame, pl.DataFrame, dict[str, Any]]:
    """Finished part ``i`` of a killed run: ``(kept, dropped, marker)``, the rows read with
    only their projection's columns unless ``full`` (``one_pass``: from its final files, the
    stage's own dropped rows only, with the columns ``finalize`` reads)."""
    marker = json.loads(work.marker(i).read_text(encoding="utf-8"))
    if one_pass:
        return _final_rows(impl, config, work, i, KEPT), _final_rows(impl, config, work, i, DROPPED), marker
    frames = []
    for which in ("kept", "dropped"):
        path = work.part(which, i)
        cols = None if full else projection_columns(impl, config, list(parts.schema(path)))
        frames.append(parts.read(path, cols))
    return frames[0], frames[1], marker


def _final_rows(impl: RowStage, config: Any, work: WorkFolder, i: int, which: str) -> pl.DataFrame:
    """A one-pass part's final rows as :func:`lean` needs them: the columns ``finalize``
    reads and a :data:`ROW_INDEX` column for the count (of dropped rows, the stage's own)."""
    lf = parts.scan(work.final_part(which, i))
    names = lf.collect_schema().names()
    cols = [c for c in impl.finalize_columns(config, names) if c in names and c != ROW_INDEX]
    if which == DROPPED:
        lf = lf.filter(pl.col("drop_stage").fill_null("") != "read")
    counted = lf.select(pl.lit(None, dtype=pl.Null).alias(ROW_INDEX), *cols) if cols else lf.select(pl.len())
    df = counted.collect()
    if cols:
        return df
    return pl.DataFrame([_nulls(ROW_INDEX, int(df.item()))])


def _first_pass(impl: RowStage, config: Any, context: StageContext, paths: list[Path], opts: ReadOptions,
                rows: int, work: WorkFolder,
                shape: Callable[[pl.DataFrame, pl.DataFrame], pl.DataFrame] | None = None) -> list[PartDone]:
    """Every batch through ``process_batch`` into a part (finished parts of a killed run
    reused); ``shape``: a one-pass run's (:func:`process_part`)."""
    from thresher.io.stream import iter_inputs
    from thresher.progress import info

    extra = getattr(impl, "extra", None)  # a global stage's computed projection (needs the rows)
    done: list[PartDone] = []
    start = 0
    for i, (batch, rejected) in enumerate(iter_inputs(paths, opts, rows)):
        reused = work.finished(i, shape is not None)
        if reused:
            k, d, marker = reuse_part(impl, config, work, i, full=extra is not None, one_pass=shape is not None)
            for name, n in (marker.get("counters") or {}).items():
                context.count(name, n)
        else:
            k, d, marker = process_part(impl, context, batch, rejected, i, start, work, shape=shape)
            kill_point(f"part-{i}")
        if extra is not None:  # recomputed for a reused part
            more = extra(k, context)
            if more is not None:
                context.state["projected"].append(more)
        bounds = {"start": start, "end": start + batch.height, "rows": batch.height, "rejected": rejected.height}
        done.append(PartDone.of(impl, config, i, k, d, {**marker, **bounds}, reused))
        start += batch.height
        if not context.stage or not context.stage.quiet:
            info(f"{impl.name}: part {i + 1} done ({start:,} rows read)")
    return done


def _with_drop_columns(dropped: pl.DataFrame) -> pl.DataFrame:
    return dropped.with_columns([pl.lit(None, dtype=pl.String).alias(c) for c in DROP_COLUMNS
                                 if c not in dropped.columns])


def decisions(kept: pl.DataFrame, dropped: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    """``finalize``'s kept and dropped projections sorted by :data:`ROW_INDEX` (nulls last),
    ready for :func:`part_decisions`."""
    return kept.sort(ROW_INDEX, nulls_last=True), dropped.sort(ROW_INDEX, nulls_last=True)


def part_decisions(kept: pl.DataFrame, dropped: pl.DataFrame, lo: int, hi: int) -> tuple[pl.DataFrame, pl.DataFrame]:
    """The rows of the sorted :func:`decisions` that fall in a part's range ``[lo, hi)``."""
    return _slice(kept, lo, hi), _slice(dropped, lo, hi)


def _slice(df: pl.DataFrame, lo: int, hi: int) -> pl.DataFrame:
    """The rows of ``df`` (sorted by ROW_INDEX, nulls last) with ``lo <= ROW_INDEX < hi``."""
    idx = df[ROW_INDEX]
    a, b = idx.search_sorted(lo, side="left"), idx.search_sorted(hi, side="left")
    if idx.null_count():  # nulls sort last; search_sorted sees them as greatest
        b = min(b, df.height - idx.null_count())
    return df.slice(int(a), int(b) - int(a))


def rewrite_part(dropped_table: Callable[[pl.DataFrame, pl.DataFrame], pl.DataFrame], work: WorkFolder,
                 i: int, kept: pl.DataFrame, dropped: pl.DataFrame) -> None:
    """Second pass of part ``i``: its pass-1 rows with ``finalize``'s decisions for it
    (:func:`part_decisions`: ``kept`` and ``dropped`` projections, their new columns joined
    by :data:`ROW_INDEX`, their Categorical columns back to String, :func:`as_written`),
    written as final part ``i``; ``dropped_table`` shapes the dropped rows
    (:meth:`~thresher.stage.StageFolder.dropped_table`, or :class:`DroppedTable`)."""
    kept_cols = [c for c in kept.columns if c != ROW_INDEX]
    drop_cols = [c for c in dropped.columns if c != ROW_INDEX]
    k_old = parts.read(work.part("kept", i))
    d_old = parts.read(work.part("dropped", i))
    kept, dropped = as_written(kept, k_old, d_old), as_written(dropped, k_old, d_old)
    k_new = _decide(k_old, kept, kept_cols)
    moved = _decide(k_old, dropped, drop_cols)
    d_rest = d_old.join(dropped.select(ROW_INDEX, *[c for c in drop_cols if c not in d_old.columns]),
                        on=ROW_INDEX, how="left", maintain_order="left")
    d_new = dropped_table(k_new, pl.concat([d_rest, moved], how="diagonal_relaxed"))
    parts.write_part(k_new.drop(ROW_INDEX, strict=False), work.final / KEPT, i)
    parts.write_part(d_new.drop(ROW_INDEX, strict=False), work.final / DROPPED, i)


def _second_pass(stage: StageFolder, work: WorkFolder, done: list[PartDone], kept: pl.DataFrame,
                 dropped: pl.DataFrame) -> Path:
    """Each part rewritten with ``finalize``'s decisions; returns the folder holding the final
    ``kept.parquet`` and ``dropped.parquet``."""
    shutil.rmtree(work.final, ignore_errors=True)
    kept, dropped = decisions(kept, dropped)
    for p in done:
        rewrite_part(stage.dropped_table, work, p.i, *part_decisions(kept, dropped, p.lo, p.hi))
    for name in (KEPT, DROPPED):
        parts.seal(work.final / name)
    return work.final


def _decide(rows: pl.DataFrame, decided: pl.DataFrame, columns: list[str]) -> pl.DataFrame:
    """The rows of ``rows`` that ``decided`` holds, with ``decided``'s columns (its values win)."""
    new = [c for c in columns if c in decided.columns]
    base = rows.drop([c for c in new if c in rows.columns])
    out = base.join(decided.select(ROW_INDEX, *new), on=ROW_INDEX, how="inner", maintain_order="left")
    return out.select([c for c in rows.columns if c in out.columns] + [c for c in new if c not in rows.columns])


def harmonize_plan(folder: Path) -> tuple[list[Path], dict[str, pl.DataType]]:
    """The parts of ``folder`` whose columns differ from the union of every part's (read
    from the footers), and that union (what :func:`conform_part` gives them)."""
    found = parts.files(folder)
    schemas = [pl.read_parquet_schema(f) for f in found]
    if all(list(s.items()) == list(schemas[0].items()) for s in schemas):
        return [], dict(schemas[0]) if schemas else {}
    target = dict(pl.concat([pl.DataFrame(schema=s) for s in schemas], how="diagonal_relaxed").schema)
    return [f for f, s in zip(found, schemas) if list(s.items()) != list(target.items())], target


def conform_part(path: Path, target: dict[str, pl.DataType]) -> None:
    """Rewrite one part with the columns ``target`` names, in its order (missing ones null)."""
    df = pl.read_parquet(path)
    df = df.with_columns([pl.lit(None).alias(c) for c in target if c not in df.columns])
    parts.write_part(df.select([pl.col(c).cast(t) for c, t in target.items()]), path.parent,
                     int(path.name[len(parts.PART_PREFIX):-len(parts.PART_SUFFIX)]))
