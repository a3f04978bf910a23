"""A stage's rows on disk: one Parquet file, or a Parquet dataset (a folder of part files).

A stage that streams writes ``kept.parquet`` and ``dropped.parquet`` as folders of part files
``part-00000.parquet``, ``part-00001.parquet`` ... (each written atomically, every part with
the same columns, at least one part even when there are no rows); a small output stays one
file. Both read the same way everywhere:

- polars: ``pl.scan_parquet(path)`` / ``pl.read_parquet(path)`` (a folder of parts is read
  whole), or :func:`scan` / :func:`read` here;
- pyarrow: ``pq.read_table(path)``, ``ray.data.read_parquet(path)``;
- datasets: ``load_dataset("parquet", data_files=files(path))`` (or ``PATH/*.parquet``).

The stage's ``manifest.json`` records every part's row count, size and hash (``parts``), so
that :func:`count` needs no scan and a damaged part is found.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import polars as pl

PART_PREFIX = "part-"
PART_SUFFIX = ".parquet"


def part_name(index: int) -> str:
    """The file name of part ``index`` (``part-00042.parquet``)."""
    return f"{PART_PREFIX}{index:05d}{PART_SUFFIX}"


def is_part(name: str) -> bool:
    """True for a part file's name (not a temporary file of an interrupted write)."""
    return name.startswith(PART_PREFIX) and name.endswith(PART_SUFFIX)


def is_dataset(path: str | os.PathLike) -> bool:
    """True for a folder of part files (a stage's ``kept.parquet`` written by a streaming stage)."""
    p = Path(path)
    return p.is_dir() and any(is_part(n) for n in os.listdir(p))


def exists(path: str | os.PathLike) -> bool:
    """True when ``path`` holds rows in either layout (a Parquet file or a folder of parts)."""
    p = Path(path)
    return p.is_file() or is_dataset(p)


def files(path: str | os.PathLike) -> list[Path]:
    """The Parquet files of ``path``: itself when it is a file, its parts in order when a folder."""
    p = Path(path)
    if p.is_dir():
        return sorted(p / n for n in os.listdir(p) if is_part(n))
    return [p]


def scan(path: str | os.PathLike) -> pl.LazyFrame:
    """A lazy frame over ``path`` (either layout)."""
    return pl.scan_parquet([str(f) for f in files(path)])


def read(path: str | os.PathLike, columns: list[str] | None = None) -> pl.DataFrame:
    """Every row of ``path`` (either layout), optionally only ``columns``."""
    lf = scan(path)
    return (lf.select(columns) if columns is not None else lf).collect()


def schema(path: str | os.PathLike) -> pl.Schema:
    """The columns of ``path`` (from its first file's footer)."""
    return pl.read_parquet_schema(files(path)[0])  # type: ignore[return-value]


def count(path: str | os.PathLike) -> int:
    """The number of rows of ``path`` (from the Parquet footers, no data read)."""
    import pyarrow.parquet as pq

    return sum(pq.ParquetFile(f).metadata.num_rows for f in files(path))


def batch_rows(metadata: Any, rows: int, max_bytes: int | None) -> int:
    """Rows a batch of the Parquet file with footer ``metadata`` holds: ``rows``, fewer when
    ``rows`` rows of the file's average size would pass ``max_bytes`` uncompressed (at least 1).
    The same footer always gives the same answer, so batch boundaries are stable across runs."""
    if not max_bytes or metadata.num_rows == 0:
        return rows
    raw = sum(metadata.row_group(g).total_byte_size for g in range(metadata.num_row_groups))
    per_row = max(1, raw // metadata.num_rows)
    return max(1, min(rows, max_bytes // per_row))


def iter_batches(path: str | os.PathLike, rows: int, columns: list[str] | None = None,
                 max_bytes: int | None = None) -> Iterator[pl.DataFrame]:
    """``path`` in batches of at most ``rows`` rows (by row group, part after part), fewer
    when the rows are large (:func:`batch_rows`, ``max_bytes`` uncompressed a batch)."""
    import pyarrow.parquet as pq

    for f in files(path):
        pf = pq.ParquetFile(f)
        if pf.metadata.num_rows == 0:
            continue
        size = batch_rows(pf.metadata, rows, max_bytes)
        for batch in pf.iter_batches(batch_size=size, columns=columns):
            yield pl.from_arrow(batch)  # type: ignore[misc]


def size(path: str | os.PathLike) -> int:
    """Bytes on disk of ``path`` (either layout)."""
    return sum(f.stat().st_size for f in files(path))


def write_part(df: pl.DataFrame, folder: str | os.PathLike, index: int, **kwargs: Any) -> Path:
    """Write ``df`` as part ``index`` of the dataset folder ``folder`` (created), atomically."""
    from thresher.io.atomic import atomic_path

    target = Path(folder) / part_name(index)
    with atomic_path(target) as tmp:
        df.write_parquet(tmp, **kwargs)
    return target


def harmonize(folder: str | os.PathLike) -> None:
    """Give every part of ``folder`` the same columns in the same order (a column all null in
    one batch is typed by the parts that have values); parts already alike are not rewritten."""
    found = files(folder)
    schemas = [pl.read_parquet_schema(f) for f in found]
    if all(s == schemas[0] for s in schemas):
        return
    target = pl.concat([pl.DataFrame(schema=s) for s in schemas], how="diagonal_relaxed").schema
    for f, s in zip(found, schemas):
        if s != target:
            df = pl.read_parquet(f)
            df = df.with_columns([pl.lit(None).alias(c) for c in target if c not in df.columns])
            write_part(df.select([pl.col(c).cast(t) for c, t in target.items()]), folder,
                       int(f.name[len(PART_PREFIX):-len(PART_SUFFIX)]))


def seal(folder: str | os.PathLike) -> None:
    """Finish a folder of parts: :func:`harmonize` it, and make a folder holding a single part
    that one file (small outputs stay one file)."""
    import shutil

    harmonize(folder)
    found = files(folder)
    if len(found) == 1:
        p = Path(folder)
        tmp = p.with_name(p.name + ".one")
        os.replace(found[0], tmp)
        shutil.rmtree(p)
        os.replace(tmp, p)
