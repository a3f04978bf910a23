"""What every executor shares: the input-position column, putting rows back in input order,
and :class:`BatchFn`, a :class:`~thresher.executor.RowStage` as one callable over a batch.

This module imports nothing of :mod:`thresher.executor` at run time (the executors are
imported by :func:`thresher.executor.run_stage`, never the other way round).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import polars as pl

from thresher.schema import DROP_COLUMNS

if TYPE_CHECKING:
    from thresher.executor import RowStage

#: the executor's input-position column (kept rows and dropped rows carry it until the end)
ROW_INDEX = "__thresher_row"


def in_order(df: pl.DataFrame, drop: bool = False) -> pl.DataFrame:
    """``df`` sorted by :data:`ROW_INDEX` (unchanged without it); ``drop`` removes the column."""
    if ROW_INDEX not in df.columns:
        return df
    df = df.sort(ROW_INDEX)
    return df.drop(ROW_INDEX) if drop else df


class BatchFn:
    """``Dataset.map_batches`` adapter for a :class:`RowStage` (a callable class: Ray builds
    one per actor, so :meth:`RowStage.setup` runs once per worker).

    Each call takes a pyarrow Table (or polars DataFrame) and returns one pyarrow Table of the
    kept rows followed by the dropped ones; dropped rows have a non-null ``drop_stage``.
    """

    def __init__(self, impl: RowStage, config: Any, where: str = ""):
        self.impl = impl
        self.context = impl.setup(config, where, None)

    def __call__(self, batch: Any) -> Any:
        df = batch if isinstance(batch, pl.DataFrame) else pl.from_arrow(batch)
        kept, dropped = self.impl.process_batch(df, self.context)
        kept = kept.with_columns([pl.lit(None, dtype=pl.String).alias(c) for c in DROP_COLUMNS
                                  if c not in kept.columns])
        return pl.concat([kept, dropped], how="diagonal_relaxed").to_arrow()

    @staticmethod
    def split(table: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
        """Split a :meth:`__call__` output back into ``(kept, dropped)``."""
        is_dropped = pl.col("drop_stage").is_not_null()
        kept = table.filter(~is_dropped).drop([c for c in DROP_COLUMNS if c in table.columns])
        return kept, table.filter(is_dropped)
