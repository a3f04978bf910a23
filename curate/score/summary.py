"""A score column's summary (counts, moments, quantiles, histogram) in bounded memory.

:func:`summarize_column` reads the column in blocks of at most :data:`BLOCK` values, each a
view of the column where it can be (a chunk without nulls), never a copy of the whole column:
a streamed score run holds its scores (8 bytes a row) and nothing more a row to summarise them.
The answers do not depend on how the column is chunked (one table, or the parts of a stream):

- the mean and the spread are exact sums (:func:`math.fsum`), whatever the order;
- the quantiles are exact order statistics, found by a radix select over the values' sort keys
  (16 bits a pass; a bucket of at most :data:`GATHER` values is gathered and sorted);
- the histogram counts blocks (:func:`thresher.histogram.histogram_of_blocks`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import polars as pl

from thresher.histogram import histogram_of_blocks

#: values a NumPy temporary holds at most (2 MB of float64)
BLOCK = 1 << 18
#: a bucket this small is gathered and sorted instead of refined by another pass
GATHER = 1 << 20
QUANTILES = (0.05, 0.25, 0.5, 0.75, 0.95)
_TOP = np.uint64(1 << 63)
_NAN_KEY = np.uint64((1 << 64) - 1)


def blocks_of(values: pl.Series) -> Callable[[], Iterator[np.ndarray]]:
    """A function giving, each call, the non-null values of ``values`` as float64 blocks."""

    def blocks() -> Iterator[np.ndarray]:
        offset = 0
        for length in values.chunk_lengths():
            chunk = values.slice(offset, length)
            offset += length
            if chunk.null_count():
                chunk = chunk.drop_nulls()
            arr = chunk.to_numpy()  # a view of a chunk without nulls
            for i in range(0, arr.size, BLOCK):
                block = arr[i:i + BLOCK]
                yield block if block.dtype == np.float64 else block.astype(np.float64)

    return blocks


def sort_keys(block: np.ndarray) -> np.ndarray:
    """Unsigned keys in the order NumPy sorts the floats (every NaN last, -0.0 as 0.0)."""
    bits = np.ascontiguousarray(block).view(np.uint64)
    keys = np.where(bits & _TOP, ~bits, bits | _TOP)
    keys[np.isnan(block)] = _NAN_KEY
    keys[block == 0] = _TOP
    return keys


def _float(key: int) -> float:
    bits = key ^ (1 << 63) if key >> 63 else ~key & ((1 << 64) - 1)
    return float(np.array([bits], dtype=np.uint64).view(np.float64)[0])


def order_stats(blocks: Callable[[], Iterator[np.ndarray]], ranks: list[int]) -> list[float]:
    """The values at ``ranks`` (0-based) of the sorted values, exactly, in a few passes."""
    # a target: [prefix of its key, bits fixed, rank among the keys with that prefix]
    targets = [[0, 0, r] for r in ranks]
    found: dict[int, float] = {}
    while len(found) < len(targets):
        pending = {(p, b) for i, (p, b, _) in enumerate(targets) if i not in found}
        counts = {g: np.zeros(1 << 16, dtype=np.int64) for g in pending}
        for block in blocks():
            keys = sort_keys(block)
            for (prefix, bits), total in counts.items():
                sub = keys if bits == 0 else keys[(keys >> np.uint64(64 - bits)) == np.uint64(prefix)]
                total += np.bincount((sub >> np.uint64(48 - bits)).astype(np.int64) & 0xFFFF, minlength=1 << 16)
        gather = {}
        for i, t in enumerate(targets):
            if i in found:
                continue
            cum = np.cumsum(counts[(t[0], t[1])])
            digit = int(np.searchsorted(cum, t[2], side="right"))
            t[2] -= int(cum[digit - 1]) if digit else 0
            t[0], t[1] = t[0] << 16 | digit, t[1] + 16
            if t[1] == 64:
                found[i] = _float(t[0])
            elif int(counts[(t[0] >> 16, t[1] - 16)][digit]) <= GATHER:
                gather.setdefault((t[0], t[1]), []).append(i)
        found.update(_gathered(blocks, gather, targets))
    return [found[i] for i in range(len(targets))]


def _gathered(blocks: Callable[[], Iterator[np.ndarray]], gather: dict, targets: list) -> dict[int, float]:
    """The targets whose bucket is small: its keys collected in one pass and sorted."""
    if not gather:
        return {}
    parts: dict = {g: [] for g in gather}
    for block in blocks():
        keys = sort_keys(block)
        for prefix, bits in gather:
            parts[(prefix, bits)].append(keys[(keys >> np.uint64(64 - bits)) == np.uint64(prefix)])
    out = {}
    for g, members in gather.items():
        keys = np.sort(np.concatenate(parts[g]))
        for i in members:
            out[i] = _float(int(keys[targets[i][2]]))
    return out


def moments(blocks: Callable[[], Iterator[np.ndarray]], n: int) -> tuple[float, float]:
    """The mean and the standard deviation, as exact sums of every value."""
    finite = all(np.isfinite(b).all() for b in blocks())
    if not finite:  # an inf or a NaN: the mean is one (the plain sum), the spread NaN
        return float(sum(float(b.sum()) for b in blocks())) / n, float("nan")
    mean = _fsum(lambda: (v for b in blocks() for v in _floats(b))) / n
    with np.errstate(over="ignore"):
        squares = _fsum(lambda: (v for b in blocks() for v in _floats((b - mean) ** 2)))
    return mean, math.sqrt(squares / n)


def _floats(block: np.ndarray) -> Iterator[float]:
    """The values of ``block`` as Python floats, 65,536 at a time (a bounded list)."""
    for i in range(0, block.size, 1 << 16):
        yield from block[i:i + (1 << 16)].tolist()


def _fsum(values: Callable[[], Iterator[float]]) -> float:
    """:func:`math.fsum` of ``values()``, or their plain sum (+-inf) where a partial sum
    overflows."""
    try:
        return math.fsum(values())
    except OverflowError:
        return sum(values())


def summarize_column(values: pl.Series, errors: pl.Series) -> dict:
    """Counts, moments, quantiles and a histogram of a score column and its error column
    (a null score: ``errors`` says why), in blocks (module docstring)."""
    failed = errors.filter(values.is_null())
    return _summary(blocks_of(values), len(values), len(values) - values.null_count(),
                    failed.head(5).cast(pl.String).to_list())


def _summary(blocks: Callable[[], Iterator[np.ndarray]], rows: int, n: int, examples: list) -> dict:
    """The summary of ``n`` scored values (``blocks``) among ``rows``, with the first failed
    rows' errors ``examples``."""
    out: dict = {"rows": rows, "scored": n, "errors": rows - n}
    if n:
        mean, std = moments(blocks, n)
        ranks = [0, n - 1, *(min(n - 1, int(q * n)) for q in QUANTILES)]
        lo, hi, *qs = order_stats(blocks, ranks)
        out.update(mean=mean, std=std, min=lo, max=hi, quantiles={str(q): v for q, v in zip(QUANTILES, qs)})
    out["histogram"] = histogram_of_blocks(blocks)
    out["error_examples"] = [e for e in examples if e]
    return out


def summarize_files(files: list[Path], column: str, error_column: str) -> dict:
    """:func:`summarize_column` of ``column`` (and ``error_column``) over the Parquet ``files``
    in order (a stage's final parts), reading one file's column at a time: the same answers,
    no per-row memory."""
    import pyarrow.parquet as pq

    def series(f: Path, name: str) -> pl.Series | None:
        if name not in pq.read_schema(f).names:
            return None
        return pl.from_arrow(pq.read_table(f, columns=[name]).column(0)).rename(name)  # type: ignore[union-attr]

    def blocks() -> Iterator[np.ndarray]:
        for f in files:
            values = series(f, column)
            if values is not None:
                yield from blocks_of(values.cast(pl.Float64))()

    rows = n = 0
    examples: list = []
    for f in files:
        values = series(f, column)
        size = pq.ParquetFile(f).metadata.num_rows
        rows += size
        scored = size - values.null_count() if values is not None else 0
        n += scored
        if scored < size and len(examples) < 5:
            errors = series(f, error_column)
            missing = values.is_null() if values is not None else pl.Series([True] * size)
            got = errors.filter(missing) if errors is not None else pl.Series([None] * int(missing.sum()))
            examples += got.head(5 - len(examples)).cast(pl.String).to_list()
    return _summary(blocks, rows, n, examples)
