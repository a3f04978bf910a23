"""The mix's inputs: narrow columns for the selection, conversations only for kept rows.

Canonical Parquet inputs (our own stage outputs) are scanned lazily: the selection reads
every column except ``messages``, and the conversations are read afterwards for the selected
rows only (and validated then). Other formats are read with :func:`thresher.io.read_table`
(validated in full) and kept in memory.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl

from thresher.errors import InputError
from thresher.io.inputs import ReadOptions, rejects_frame
from thresher.schema import MESSAGES_DTYPE, table_problems

INPUT = "__input"
LOCAL = "__local"
ROW = "__row"


@dataclass(frozen=True)
class Source:
    """One input: its path, a lazy view of its rows, their number and columns."""

    path: Path
    frame: pl.LazyFrame
    height: int
    schema: dict[str, pl.DataType]
    lazy: bool  # True when rows are validated only when gathered
    rejected: pl.DataFrame | None = None  # rows rejected on read (on_bad_rows="skip")

    @property
    def columns(self) -> tuple[str, ...]:
        return tuple(self.schema)


def _canonical_parquet(path: Path) -> dict[str, pl.DataType] | None:
    from thresher.io import parts

    if path.suffix.lower() not in (".parquet", ".pq") or not parts.exists(path):  # a file or a folder of parts
        return None
    try:
        schema = parts.schema(path)
    except (OSError, pl.exceptions.PolarsError):
        return None
    if schema.get("messages") != MESSAGES_DTYPE or schema.get("id") not in (pl.String, pl.Utf8):
        return None
    return dict(schema)


def lazy_schema(path: Path, read: ReadOptions | None = None) -> dict[str, pl.DataType] | None:
    """The columns of ``path`` when it is read lazily (canonical Parquet and no other format
    forced; ``category`` and ``source`` added when missing, as :func:`with_core` adds them),
    else None."""
    read = read or ReadOptions()
    schema = _canonical_parquet(path) if read.fmt in (None, "messages") else None
    if schema is not None:
        for col in ("category", "source"):
            schema.setdefault(col, pl.String)
    return schema


def with_core(frame: pl.DataFrame | pl.LazyFrame) -> pl.DataFrame | pl.LazyFrame:
    """``frame`` with null ``category`` and ``source`` columns where it has none."""
    names = frame.collect_schema().names()
    missing = [c for c in ("category", "source") if c not in names]
    return frame.with_columns([pl.lit(None, dtype=pl.String).alias(c) for c in missing]) if missing else frame


def check_messages(path: Path, ids: pl.Series, messages: pl.Series, local: pl.Series) -> None:
    """Validate the conversations of rows of a lazily read input (``local``: their row
    numbers in it, 0-based, in order); the first bad one is a one-line error."""
    bad = table_problems(pl.DataFrame({"id": ids, "messages": messages}))
    bad = bad.filter(~pl.col("reason").str.starts_with("duplicate id"))
    if bad.height:
        row, reason = bad.row(0)
        raise InputError(f"{path}: row {int(local[row - 1]) + 1}: {reason}")


def open_input(path: Path, read: ReadOptions | None = None) -> Source:
    """Open ``path``: lazily when it is canonical Parquet (and no other format is forced),
    else read and validated in full with the read options ``read``."""
    from thresher.io import parts
    from thresher.io.readers import read_rows

    read = read or ReadOptions()
    schema = lazy_schema(path, read)
    if schema is not None:
        lf = with_core(parts.scan(path))
        height = lf.select(pl.len()).collect().item()
        if height == 0:
            raise InputError(f"{path}: empty file (no rows)")
        return Source(path, lf, height, schema, lazy=True)
    res = read_rows(path, read.fmt, on_bad_rows=read.on_bad_rows, split=read.split)
    df = res.table
    return Source(path, df.lazy(), df.height, dict(df.schema), lazy=False, rejected=rejects_frame(res.rejects))


def narrow(sources: list[Source], extra: list[pl.Expr] | None = None) -> pl.DataFrame:
    """Every column except ``messages`` (plus ``extra`` expressions, which may read it)
    over all inputs, with the input number (``__input``), the row number in that input
    (``__local``) and a global row number (``__row``, 0..n-1)."""
    parts = []
    for i, src in enumerate(sources):
        cols = [c for c in src.columns if c != "messages"]
        parts.append(
            src.frame.select(
                pl.lit(i, dtype=pl.Int32).alias(INPUT),
                pl.int_range(pl.len(), dtype=pl.Int64).alias(LOCAL),
                *[pl.col(c) for c in cols],
                *(extra or []),
            ).collect()
        )
    df = pl.concat(parts, how="diagonal_relaxed")
    return df.with_row_index(ROW).with_columns(pl.col(ROW).cast(pl.Int64))


def messages_for(sources: list[Source], df: pl.DataFrame, rows: np.ndarray) -> pl.Series:
    """The ``messages`` of the global rows ``rows`` (sorted, unique) of ``df``, in that
    order; rows of lazily opened inputs are validated (one-line error naming file and row)."""
    picked = df[rows].select(INPUT, LOCAL, "id")
    parts = []
    for i, src in enumerate(sources):
        mine = picked.filter(pl.col(INPUT) == i)
        if mine.height == 0:
            continue
        local = mine[LOCAL]
        msgs = (
            src.frame.select("messages")
            .with_row_index(LOCAL)
            .filter(pl.col(LOCAL).cast(pl.Int64).is_in(local.implode()))
            .collect()["messages"]
        )
        if src.lazy:
            check_messages(src.path, mine["id"], msgs, local)
        parts.append(msgs)
    return pl.concat(parts) if parts else pl.Series("messages", [], dtype=MESSAGES_DTYPE)
