"""The streaming executor: a row-wise stage from its inputs to Parquet parts, a batch at a time.

Peak memory depends on the batch (``THRESHER_PART_ROWS`` rows, default 50,000), not on the
input. Three phases:

1. **Parts.** Each batch of the inputs (:func:`thresher.io.stream.iter_inputs`) is numbered
   (:data:`ROW_INDEX`), goes through ``process_batch``, and its kept and dropped rows are
   written as part ``i`` into ``OUT/.thresher-parts/`` (each file atomic, then a marker saying
   part ``i`` is finished). A rerun after a kill with the same fingerprint redoes only the
   parts without a marker.
2. **Projection.** ``finalize`` sees a projection of every part: :data:`ROW_INDEX` plus the
   columns the stage names in :meth:`~thresher.executor.RowStage.finalize_columns` (and
   ``category`` and the drop columns, which the stats count). Global rules (z-scores,
   ``auto`` cuts, best-of-n) run there: a few bytes a row, never the rows themselves.
3. **Second pass.** Each part is rewritten with what ``finalize`` decided: new columns joined
   by :data:`ROW_INDEX`, rows it dropped moved to the dropped part. The result is a folder of
   parts (one file when there is a single part) swapped in as one result set.
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
from thresher.schema import DROP_COLUMNS
from thresher.stage_folder import DROPPED, KEPT, PARTS_WORK, kill_point

if TYPE_CHECKING:
    from thresher.executor import RowStage, StageContext
    from thresher.io.inputs import ReadOptions
    from thresher.stage import StageFolder, StageResult

PART_ROWS_ENV = "THRESHER_PART_ROWS"
MIN_BYTES_ENV = "THRESHER_STREAM_MIN_BYTES"
#: inputs smaller than this are read whole (one batch, one file), as before streaming
STREAM_MIN_BYTES = 64 << 20


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


@dataclass
class _Work:
    """The work folder of a streaming run: finished parts and their markers."""

    root: Path
    kept: list[pl.DataFrame] = field(default_factory=list)
    dropped: list[pl.DataFrame] = field(default_factory=list)
    bounds: list[tuple[int, int]] = field(default_factory=list)
    """Each part's ROW_INDEX range ``[start, end)``."""
    rows_in: int = 0
    reused: int = 0

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
        return self.root / "pass1" / f"part-{i:05d}.json"

    def part(self, which: str, i: int) -> Path:
        return self.root / "pass1" / which / parts.part_name(i)


def run_streaming(stage: StageFolder, impl: RowStage, paths: list[Path], config: Any,
                  opts: ReadOptions) -> StageResult:
    """Run the row-wise stage ``impl`` on ``paths`` into ``stage`` in parts (module docstring)."""
    rows = part_rows()
    work = _Work(stage.out / PARTS_WORK)
    work.open({**stage.fingerprint, "part_rows": rows})
    where = ", ".join(str(p) for p in paths)
    context = impl.setup(config, where, stage)
    try:
        _first_pass(impl, config, context, paths, opts, rows, work)
        kept, dropped = _projection(work.kept), _projection(work.dropped)
        rejected = dropped.filter(pl.col(ROW_INDEX).is_null())  # on read: never seen by the stage
        kept, dropped, stats = impl.finalize(kept, dropped.filter(pl.col(ROW_INDEX).is_not_null()), context)
    finally:
        impl.teardown(context)
    stats = {**stats, "streamed": {"parts": len(work.bounds), "part_rows": rows, "parts_reused": work.reused}}
    final = _second_pass(stage, work, kept, dropped)
    counted = pl.concat([rejected, _with_drop_columns(dropped)], how="diagonal_relaxed")
    result = stage.finish_parts(final, kept, counted, stats, rows_in=work.rows_in,
                                artefacts=context.artefacts)
    shutil.rmtree(work.root, ignore_errors=True)
    return result


def _projection(frames: list[pl.DataFrame]) -> pl.DataFrame:
    frame = pl.concat(frames, how="diagonal_relaxed") if frames else pl.DataFrame({ROW_INDEX: []}, schema={ROW_INDEX: pl.UInt32})
    return frame.sort(ROW_INDEX, nulls_last=True)


def _project(df: pl.DataFrame, impl: RowStage, config: Any) -> pl.DataFrame:
    want = [ROW_INDEX, "category", *DROP_COLUMNS, *impl.finalize_columns(config, df.columns)]
    seen: list[str] = []
    for c in want:
        if c in df.columns and c not in seen:
            seen.append(c)
    return df.select(seen)


class ProjectedStage:
    """A streaming :class:`~thresher.executor.GlobalStage` as the row-wise streamer sees it:
    every batch is kept as it is (its :meth:`~thresher.executor.GlobalStage.project` columns
    go to the projection only), and ``finalize`` is the stage's ``run_projection``."""

    def __init__(self, impl: Any):
        self.impl = impl
        self.name = impl.name

    def streams(self, config: Any) -> bool:
        return self.impl.streams(config)

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


def _first_pass(impl: RowStage, config: Any, context: StageContext, paths: list[Path], opts: ReadOptions,
                rows: int, work: _Work) -> None:
    """Every batch through ``process_batch`` into a part (finished parts of a killed run reused)."""
    from thresher.executor import with_read_rejects
    from thresher.io.stream import iter_inputs
    from thresher.progress import info

    start = 0
    for i, (batch, rejected) in enumerate(iter_inputs(paths, opts, rows)):
        end = start + batch.height
        if work.marker(i).is_file():
            k, d = parts.read(work.part("kept", i)), parts.read(work.part("dropped", i))
            work.reused += 1
        else:
            impl.check(batch, config, context.where)
            k, d = impl.process_batch(batch.with_row_index(ROW_INDEX, offset=start), context)
            d = with_read_rejects(d, rejected)
            parts.write_part(k, work.root / "pass1" / "kept", i)
            parts.write_part(d, work.root / "pass1" / "dropped", i)
            write_text_atomic(work.marker(i), json.dumps({"rows": batch.height, "rejected": rejected.height}))
            kill_point(f"part-{i}")
        extra = getattr(impl, "extra", None)
        if extra is not None:  # a global stage's computed projection (recomputed for a reused part)
            more = extra(k, context)
            if more is not None:
                context.state["projected"].append(more)
        work.kept.append(_project(k, impl, config))
        work.dropped.append(_project(d, impl, config))
        work.bounds.append((start, end))
        work.rows_in += batch.height + rejected.height
        start = end
        if not context.stage or not context.stage.quiet:
            info(f"{impl.name}: part {i + 1} done ({start:,} rows read)")


def _with_drop_columns(dropped: pl.DataFrame) -> pl.DataFrame:
    return dropped.with_columns([pl.lit(None, dtype=pl.String).alias(c) for c in DROP_COLUMNS
                                 if c not in dropped.columns])


def _slice(df: pl.DataFrame, lo: int, hi: int) -> pl.DataFrame:
    """The rows of ``df`` (sorted by ROW_INDEX, nulls last) with ``lo <= ROW_INDEX < hi``."""
    idx = df[ROW_INDEX]
    a, b = idx.search_sorted(lo, side="left"), idx.search_sorted(hi, side="left")
    if idx.null_count():  # nulls sort last; search_sorted sees them as greatest
        b = min(b, df.height - idx.null_count())
    return df.slice(int(a), int(b) - int(a))


def _second_pass(stage: StageFolder, work: _Work, kept: pl.DataFrame, dropped: pl.DataFrame) -> Path:
    """Each part rewritten with ``finalize``'s decisions; returns the folder holding the final
    ``kept.parquet`` and ``dropped.parquet``."""
    final = work.root / "final"
    shutil.rmtree(final, ignore_errors=True)
    kept, dropped = kept.sort(ROW_INDEX, nulls_last=True), dropped.sort(ROW_INDEX, nulls_last=True)
    kept_cols = [c for c in kept.columns if c != ROW_INDEX]
    drop_cols = [c for c in dropped.columns if c != ROW_INDEX]
    for i, (lo, hi) in enumerate(work.bounds):
        k_old = parts.read(work.part("kept", i))
        d_old = parts.read(work.part("dropped", i))
        k_dec, d_dec = _slice(kept, lo, hi), _slice(dropped, lo, hi)
        k_new = _decide(k_old, k_dec, kept_cols)
        moved = _decide(k_old, d_dec, drop_cols)
        d_rest = d_old.join(d_dec.select(ROW_INDEX, *[c for c in drop_cols if c not in d_old.columns]),
                            on=ROW_INDEX, how="left", maintain_order="left")
        d_new = stage.dropped_table(k_new, pl.concat([d_rest, moved], how="diagonal_relaxed"))
        parts.write_part(k_new.drop(ROW_INDEX, strict=False), final / KEPT, i)
        parts.write_part(d_new.drop(ROW_INDEX, strict=False), final / DROPPED, i)
    for name in (KEPT, DROPPED):
        _harmonize(final / name)
        _single_file(final / name)
    return final


def _decide(rows: pl.DataFrame, decided: pl.DataFrame, columns: list[str]) -> pl.DataFrame:
    """The rows of ``rows`` that ``decided`` holds, with ``decided``'s columns (its values win)."""
    new = [c for c in columns if c in decided.columns]
    base = rows.drop([c for c in new if c in rows.columns])
    out = base.join(decided.select(ROW_INDEX, *new), on=ROW_INDEX, how="inner", maintain_order="left")
    return out.select([c for c in rows.columns if c in out.columns] + [c for c in new if c not in rows.columns])


def _harmonize(folder: Path) -> None:
    """Give every part the same columns in the same order (a column all null in one batch is
    typed by the parts that have values)."""
    files = parts.files(folder)
    schemas = [pl.read_parquet_schema(f) for f in files]
    if all(s == schemas[0] for s in schemas):
        return
    target = pl.concat([pl.DataFrame(schema=s) for s in schemas], how="diagonal_relaxed").schema
    for i, (f, s) in enumerate(zip(files, schemas)):
        if s != target:
            df = pl.read_parquet(f)
            df = df.with_columns([pl.lit(None).alias(c) for c in target if c not in df.columns])
            parts.write_part(df.select([pl.col(c).cast(t) for c, t in target.items()]), folder, i)


def _single_file(folder: Path) -> None:
    """A folder holding one part becomes that one file (small outputs stay one file)."""
    files = parts.files(folder)
    if len(files) == 1:
        tmp = folder.with_name(folder.name + ".one")
        os.replace(files[0], tmp)
        shutil.rmtree(folder)
        os.replace(tmp, folder)
