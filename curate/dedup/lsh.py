"""Locality-sensitive hashing over MinHash signatures, as a streaming polars pipeline.

- :func:`optimal_params` picks bands ``b`` and rows ``r`` the way ``datasketch.MinHashLSH``
  does (minimise the weighted false positive + false negative probability mass).
- :func:`band_key_frame` turns a block of signatures into long rows ``(band, key, idx)``, one
  64-bit key per document and band (these are what spill to parquet).
- :func:`candidate_pairs` groups equal ``(band, key)`` (:func:`shared_buckets`, band by band)
  and emits the pairs of documents sharing a bucket (all pairs in buckets up to ``max_bucket`` members;
  a star from the smallest and largest index plus a sorted chain in bigger buckets).
- :func:`verify` keeps the pairs whose estimated (or, with ``verify: exact``, true) Jaccard
  reaches the threshold and
  :func:`components` joins verified pairs into clusters (union-find).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import numpy as np
import polars as pl

KEY_SCHEMA = {"band": pl.UInt16, "key": pl.UInt64, "idx": pl.UInt32}
PAIR_SCHEMA = {"a": pl.UInt32, "b": pl.UInt32}


def _integrate(f: Callable[[float], float], lo: float, hi: float) -> float:
    from scipy.integrate import quad

    return quad(f, lo, hi)[0]


def _fp(threshold: float, b: int, r: int) -> float:
    return _integrate(lambda s: 1 - (1 - s ** float(r)) ** float(b), 0.0, threshold)


def _fn(threshold: float, b: int, r: int) -> float:
    return _integrate(lambda s: 1 - (1 - (1 - s ** float(r)) ** float(b)), threshold, 1.0)


@functools.lru_cache(maxsize=64)
def optimal_params(threshold: float, num_perm: int,
                   weights: tuple[float, float] = (0.5, 0.5)) -> tuple[int, int]:
    """``(bands, rows)`` minimising ``fp_weight * FP + fn_weight * FN`` (datasketch's method).

    Same grid search and integrals as ``datasketch.lsh._optimal_param``, so the result is the
    ``(b, r)`` that ``MinHashLSH(threshold, num_perm, weights)`` would choose.
    """
    fpw, fnw = weights
    best = float("inf")
    opt = (0, 0)
    for b in range(1, num_perm + 1):
        for r in range(1, num_perm // b + 1):
            err = _fp(threshold, b, r) * fpw + _fn(threshold, b, r) * fnw
            if err < best:
                best, opt = err, (b, r)
    return opt


def band_key_frame(sig: np.ndarray, bands: int, rows: int, start: int = 0) -> pl.DataFrame:
    """Long frame ``(band u16, key u64, idx u32)`` of the band keys of ``sig`` (row i -> start+i)."""
    from thresher.curate.dedup import _kernels

    n = sig.shape[0]
    keys = np.empty((n, bands), dtype=np.uint64)
    if n:
        _kernels.band_keys(np.ascontiguousarray(sig), bands, rows, keys)
    return pl.DataFrame(
        {
            "band": np.tile(np.arange(bands, dtype=np.uint16), n),
            "key": keys.reshape(-1),
            "idx": np.repeat(np.arange(start, start + n, dtype=np.uint32), bands),
        },
        schema=KEY_SCHEMA,
    )


def shared_buckets(keys: pl.LazyFrame, streaming: bool = False) -> pl.DataFrame:
    """The buckets ``(band, key)`` holding two or more documents: one row each, ``idx`` the
    sorted list of its documents.

    Band by band: a band's keys are sorted in numpy and only the repeated ones are grouped, so
    the working memory is ~30 bytes per key of one band, not a hash table of every key (a
    polars ``group_by`` with a list per key needs ~200 bytes per key of all bands)."""
    engine = "streaming" if streaming else "auto"
    bands = keys.select(pl.col("band").unique().sort()).collect(engine=engine)["band"].to_list()
    parts: list[pl.DataFrame] = []
    first = 0
    for b in bands:
        f = keys.filter(pl.col("band") == b).select("key", "idx").collect(engine=engine)
        key, idx = f["key"].to_numpy(), f["idx"].to_numpy()
        del f
        order = np.lexsort((idx, key))  # by key, then document
        key = key[order]
        same = key[1:] == key[:-1]
        shared = np.zeros(len(key), dtype=bool)
        shared[1:] |= same
        shared[:-1] |= same
        key = key[shared]
        bucket = np.cumsum(np.concatenate([[True], key[1:] != key[:-1]]) if len(key) else np.zeros(0, bool))
        parts.append(pl.DataFrame({"bucket": (bucket - 1 + first).astype(np.int64),
                                   "idx": idx[order[shared]]}, schema={"bucket": pl.Int64, "idx": pl.UInt32}))
        first += int(bucket[-1]) if len(bucket) else 0
    if not parts:
        return pl.DataFrame(schema={"idx": pl.List(pl.UInt32)})
    return (pl.concat(parts).group_by("bucket", maintain_order=True).agg(pl.col("idx"))
            .select(pl.col("idx").cast(pl.List(pl.UInt32))))


def candidate_pairs(keys: pl.LazyFrame, max_bucket: int = 64, streaming: bool = False) -> pl.DataFrame:
    """Unique pairs ``(a < b)`` of documents that share at least one ``(band, key)`` bucket."""
    buckets = shared_buckets(keys, streaming)
    size = buckets["idx"].list.len()
    small = buckets.filter(size <= max_bucket).with_row_index("bid").explode("idx")
    parts = [
        small.join(small, on="bid", suffix="_r")
        .filter(pl.col("idx") < pl.col("idx_r"))
        .select(pl.col("idx").alias("a"), pl.col("idx_r").alias("b"))
    ]
    large = buckets.filter(size > max_bucket).with_row_index("bid")
    if large.height:
        members = large.explode("idx")
        firsts = large.select("bid", pl.col("idx").list.first().alias("first"),
                              pl.col("idx").list.last().alias("last"))
        members = members.join(firsts, on="bid")
        parts.append(members.filter(pl.col("idx") != pl.col("first"))
                     .select(pl.col("first").alias("a"), pl.col("idx").alias("b")))
        parts.append(members.filter(pl.col("idx") != pl.col("last"))
                     .select(pl.col("idx").alias("a"), pl.col("last").alias("b")))
        parts.append(members.with_columns(pl.col("idx").shift(-1).over("bid").alias("nxt"))
                     .drop_nulls("nxt").select(pl.col("idx").alias("a"), pl.col("nxt").alias("b")))
    out = pl.concat([p.cast(PAIR_SCHEMA) for p in parts])
    return out.unique(maintain_order=False).sort("a", "b")


def pair_jaccard(sig: np.ndarray, a: np.ndarray, b: np.ndarray, chunk: int = 1 << 20) -> np.ndarray:
    """Estimated Jaccard of each pair ``(sig[a[p]], sig[b[p]])`` (float32), chunked."""
    from thresher.curate.dedup import _kernels

    out = np.empty(len(a), dtype=np.float32)
    counts = np.empty(min(chunk, max(len(a), 1)), dtype=np.int64)
    P = sig.shape[1]
    for s in range(0, len(a), chunk):
        ia = np.ascontiguousarray(a[s:s + chunk], dtype=np.int64)
        ib = np.ascontiguousarray(b[s:s + chunk], dtype=np.int64)
        c = counts[: len(ia)]
        _kernels.count_equal(sig, sig, ia, ib, c)
        out[s:s + len(ia)] = c / P
    return out


def verify(sig: np.ndarray, pairs: pl.DataFrame, threshold: float, exact: Any = None) -> pl.DataFrame:
    """The pairs whose Jaccard is ``>= threshold``, with a ``j`` column: estimated from the
    signatures, or the true Jaccard of the shingle sets when ``exact`` (an
    :class:`~.exact.ShingleSets` holding every row of ``pairs``) is given."""
    a = pairs["a"].to_numpy()
    b = pairs["b"].to_numpy()
    j = exact.jaccard(a, b) if exact is not None else pair_jaccard(sig, a, b)
    ok = j >= np.float32(threshold) - np.float32(1e-6)
    return pl.DataFrame({"a": a[ok], "b": b[ok], "j": j[ok]},
                        schema={"a": pl.UInt32, "b": pl.UInt32, "j": pl.Float32})


def components(n: int, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Connected components of ``n`` nodes and edges ``(a, b)``: each node's smallest member."""
    from thresher.curate.dedup import _kernels

    return _kernels.connected_components(
        n, np.ascontiguousarray(a, dtype=np.int64), np.ascontiguousarray(b, dtype=np.int64)
    )
