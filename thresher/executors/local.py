"""The local executor: a row-wise stage's batches in this process, one after the other."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import polars as pl

from thresher.executors.rows import ROW_INDEX, in_order

if TYPE_CHECKING:
    from thresher.executor import RowStage, StageContext
    from thresher.stage import StageFolder


def batches(table: pl.DataFrame, rows: int | None) -> Iterator[pl.DataFrame]:
    """``table`` in slices of ``rows`` (one slice when None or the table is small)."""
    if rows is None or table.height <= rows:
        yield table
        return
    for start in range(0, table.height, rows):
        yield table.slice(start, rows)


def run_batches(impl: RowStage, table: pl.DataFrame, context: StageContext,
                rows: int | None = None) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Every batch through ``impl.process_batch``; kept and dropped in input order, each with
    the input position in column ``ROW_INDEX`` (:meth:`RowStage.finalize` may use it)."""
    from thresher.progress import progress

    numbered = table.with_row_index(ROW_INDEX)
    size = rows if rows is not None else impl.batch_rows
    kept, dropped = [], []
    if size is None or table.height <= size:  # one batch: the stage shows its own progress
        context.single_batch = True
        try:
            kept, dropped = impl.process_batch(numbered, context)
        finally:
            context.single_batch = False
        return in_order(kept), in_order(dropped)
    with progress(table.height, impl.name) as bar:
        for part in batches(numbered, size):
            k, d = impl.process_batch(part, context)
            kept.append(k)
            dropped.append(d)
            bar.advance(part.height)
    return in_order(pl.concat(kept, how="diagonal_relaxed")), in_order(pl.concat(dropped, how="diagonal_relaxed"))


class LocalExecutor:
    """Row-wise stages in this process: setup once, every batch, finalize, teardown."""

    name = "local"

    def run_rows(self, impl: RowStage, config: Any, table: pl.DataFrame, stage: StageFolder | None,
                 where: str) -> tuple[pl.DataFrame, pl.DataFrame, dict[str, Any], StageContext]:
        """``(kept, dropped, stats, context)`` of ``impl`` over ``table`` (kept and dropped in
        input order, without :data:`ROW_INDEX`)."""
        context = impl.setup(config, where, stage)
        try:
            kept, dropped = run_batches(impl, table, context)
            kept, dropped, stats = impl.finalize(kept, dropped, context)
        finally:
            impl.teardown(context)
        return in_order(kept, drop=True), in_order(dropped, drop=True), stats, context
