"""The mix's inputs: narrow columns for the selection, full rows only for what is needed.

Canonical Parquet inputs (our own stage outputs) are scanned lazily: the selection reads
``id``, the category and score columns, and the conversations are read afterwards for the
selected rows only (and validated then). Other formats are read with
:func:`thresher.io.read_table` (validated in full) and kept in memory.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import polars as pl

from thresher.errors import InputError
from thresher.io import read_table
from thresher.schema import MESSAGES_DTYPE, table_problems

INPUT = "__input"
LOCAL = "__local"


@dataclass(frozen=True)
class Source:
    """One input: its path, a lazy view of its rows and their number."""

    path: Path
    frame: pl.LazyFrame
    height: int
    columns: tuple[str, ...]
    lazy: bool  # True when rows are validated only when gathered


def _canonical_parquet(path: Path) -> dict[str, pl.DataType] | None:
    if path.suffix.lower() not in (".parquet", ".pq") or not path.is_file():
        return None
    try:
        schema = pl.read_parquet_schema(path)
    except Exception:
        return None
    if schema.get("messages") != MESSAGES_DTYPE or schema.get("id") not in (pl.String, pl.Utf8):
        return None
    return dict(schema)


def open_input(path: Path) -> Source:
    """Open ``path``: lazily when it is canonical Parquet, else read and validated in full."""
    schema = _canonical_parquet(path)
    if schema is not None:
        lf = pl.scan_parquet(path)
        for col in ("category", "source"):
            if col not in schema:
                lf = lf.with_columns(pl.lit(None, dtype=pl.String).alias(col))
                schema[col] = pl.String
        height = lf.select(pl.len()).collect().item()
        if height == 0:
            raise InputError(f"{path}: empty file (no rows)")
        return Source(path, lf, height, tuple(schema), lazy=True)
    df = read_table(path)
    return Source(path, df.lazy(), df.height, tuple(df.columns), lazy=False)


def narrow(sources: list[Source], columns: list[str], extra: list[pl.Expr] | None = None) -> pl.DataFrame:
    """One frame of ``columns`` (plus ``extra`` expressions) over all inputs, with the input
    number (``__input``), the row number in that input (``__local``) and a global row
    number (``__row``)."""
    parts = []
    for i, src in enumerate(sources):
        parts.append(
            src.frame.select(
                pl.lit(i, dtype=pl.Int32).alias(INPUT),
                pl.int_range(pl.len(), dtype=pl.Int64).alias(LOCAL),
                *[pl.col(c) for c in columns],
                *(extra or []),
            )
        )
    df = pl.concat([p.collect() for p in parts], how="vertical_relaxed")
    return df.with_row_index("__row").with_columns(pl.col("__row").cast(pl.Int64))


def gather(sources: list[Source], wanted: pl.DataFrame) -> pl.DataFrame:
    """Full rows for the distinct ``(__input, __local)`` pairs of ``wanted``, with those two
    columns; rows of lazily opened inputs are validated here (one-line error on the first
    bad row, naming the file and row)."""
    frames = []
    for i, src in enumerate(sources):
        local = wanted.filter(pl.col(INPUT) == i)[LOCAL].unique().sort()
        if local.len() == 0:
            continue
        rows = (
            src.frame.with_row_index(LOCAL)
            .with_columns(pl.col(LOCAL).cast(pl.Int64))
            .join(pl.LazyFrame({LOCAL: local}), on=LOCAL, how="semi")
            .collect()
        )
        if src.lazy:
            bad = table_problems(rows.drop(LOCAL))
            bad = bad.filter(~pl.col("reason").str.starts_with("duplicate id"))
            if bad.height:
                row, reason = bad.row(0)
                raise InputError(f"{src.path}: row {int(rows[LOCAL][row - 1]) + 1}: {reason}")
        frames.append(rows.with_columns(pl.lit(i, dtype=pl.Int32).alias(INPUT)))
    if not frames:
        return sources[0].frame.head(0).collect().with_columns(
            pl.lit(0, dtype=pl.Int32).alias(INPUT), pl.lit(0, dtype=pl.Int64).alias(LOCAL)
        )
    return pl.concat(frames, how="diagonal_relaxed")
