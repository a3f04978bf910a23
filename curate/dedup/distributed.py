"""Dedup on a Ray cluster (``--executor ray``): the local engine's phases, scaled by bands.

Same parameters and seed, same kept set, reasons and clusters as
:func:`thresher.curate.dedup.engine.deduplicate`; only where the work runs differs:

1. **signatures** -- ``ray.data`` ``map_batches`` over the rows: normalised text, exact hash,
   MinHash signature and the band keys of each row (the same numba kernels as locally).
2. **exact** -- rows hash-partitioned on the exact hash; in each partition every group of
   equal texts keeps its best-ranked row (the survivor rule).
3. **candidates** -- band keys of the representatives hash-partitioned on ``(band, key)``;
   each partition groups its buckets and emits the candidate pairs exactly as
   :func:`~.lsh.candidate_pairs` (small buckets: all pairs; big ones: star and chain).
4. **verify** -- pairs partitioned by their first row are joined with that partition of the
   signatures, re-partitioned by their second row and joined again; the Jaccard estimate is
   computed in the workers and only pairs at or above the threshold survive. With
   ``verify: exact`` the candidate pairs come to the driver instead (it holds the rows) and
   are verified there by their true Jaccard, as locally.
5. **components** -- iterative min-label propagation over the verified pair table (each node
   takes the smallest label of its neighbours until nothing changes), in survivor-rank
   space, so a component's final label is its survivor.

The driver holds the rows (to write kept/dropped) and one survivor rank per row; signatures,
band keys and pairs stay in the cluster. ``cluster: star`` and ``against`` are not
distributed yet: they run the local engine on the driver.
"""

from __future__ import annotations

import functools
import time
from typing import Any

import numpy as np
import polars as pl

from thresher.curate.dedup.decision import DedupResult, decide, lsh_params, survivor_order
from thresher.curate.dedup.lsh import candidate_pairs
from thresher.executors.ray_session import cluster_cpus, session
from thresher.executors.shuffle import apply, default_partitions, gather, shuffle

#: label propagation stops after this many rounds even if labels still change (never seen)
MAX_ROUNDS = 10_000


def fsb(values: np.ndarray) -> Any:
    """A 2-D numpy array as a pyarrow fixed-size binary column (one row per array row)."""
    import pyarrow as pa

    values = np.ascontiguousarray(values)
    width = values.shape[1] * values.itemsize
    return pa.FixedSizeBinaryArray.from_buffers(pa.binary(width), values.shape[0],
                                                [None, pa.py_buffer(values.tobytes())])


def unfsb(column: Any, dtype: Any, width: int) -> np.ndarray:
    """Back from :func:`fsb`: ``(rows, width)`` numpy array of ``dtype``."""
    import pyarrow as pa

    arr = column.combine_chunks() if hasattr(column, "combine_chunks") else column
    n = len(arr)
    if n == 0:
        return np.zeros((0, width), dtype=dtype)
    item = np.dtype(dtype).itemsize * width
    if not pa.types.is_fixed_size_binary(arr.type):  # polars hands back (large) binary
        arr = arr.cast(pa.large_binary()).cast(pa.binary(item))
    buf = arr.buffers()[1]
    return np.frombuffer(buf, dtype=dtype, count=n * width, offset=arr.offset * item).reshape(n, width)


def _sign_batch(batch: Any, cfg: dict[str, Any], bands: int, rows: int) -> Any:
    """Phase 1 for one batch: exact hash, non-empty flag, signature and band keys."""
    import pyarrow as pa
    import xxhash

    from thresher.curate.dedup import _kernels
    from thresher.curate.dedup.minhash import signatures
    from thresher.curate.dedup.normalize import normalized_texts, options_of
    from thresher.curate.dedup.shingles import shingle_hashes

    df = pl.from_arrow(batch)
    texts = normalized_texts(df, cfg["on"], options_of(cfg))
    digests = [xxhash.xxh3_128_digest(t.encode("utf-8")) for t in texts]
    h, off = shingle_hashes(texts, ngram=cfg["ngram"], unit=cfg["shingle"], hash=cfg["hash"])
    sig = signatures(h, off, num_perm=cfg["num_perm"], seed=cfg["seed"])
    keys = np.empty((len(texts), bands), dtype=np.uint64)
    if len(texts):
        _kernels.band_keys(sig, bands, rows, keys)
    return pa.table({
        "idx": df["idx"].to_arrow(),
        "rank": df["rank"].to_arrow(),
        "h": pa.array(digests, pa.binary(16)),
        "hk": pa.array([int.from_bytes(d[:8], "little") for d in digests], pa.uint64()),
        "nonempty": pa.array([bool(t) for t in texts]),
        "sig": fsb(sig),
        "keys": fsb(keys),
    })


def _signatures(df: pl.DataFrame, cfg: Any, bands: int, rows: int, rank: np.ndarray) -> list[Any]:
    """Phase 1 on Ray Data: object refs of the signed blocks."""
    import ray.data


    table = df.select(pl.int_range(pl.len(), dtype=pl.Int64).alias("idx"),
                      pl.Series("rank", rank), "messages")
    parts = max(1, min(4 * cluster_cpus(), -(-table.height // 2000)))
    step = -(-table.height // parts)
    blocks = [table.slice(s, step).to_arrow() for s in range(0, table.height, step)]
    cfg_d = {k: getattr(cfg, k) for k in ("on", "nfkc", "casefold", "punctuation", "whitespace",
                                          "strip_chatter", "ngram", "shingle", "hash", "num_perm", "seed")}
    ds = ray.data.from_arrow(blocks).map_batches(
        _sign_batch, batch_format="pyarrow", batch_size=None, fn_args=(cfg_d, bands, rows))
    return list(ds.to_arrow_refs())


# --- phase 2: exact groups --------------------------------------------------------------

def _exact_map(t: Any) -> Any:
    return t.filter(t.column("nonempty")).select(["idx", "rank", "h", "hk"])


def exact_reduce(t: Any) -> Any:
    """``(i, rep)`` for each non-representative row of each exact group in this partition."""
    df = pl.from_arrow(t).sort("rank")
    groups = df.group_by("h", maintain_order=True).agg(pl.col("idx").first().alias("rep"), pl.col("idx"))
    pairs = groups.explode("idx").filter(pl.col("idx") != pl.col("rep"))
    return pairs.select(pl.col("idx").alias("i"), "rep").to_arrow()


# --- phase 3: band keys and candidate pairs ----------------------------------------------

def _band_rows(t: Any, bands: int, not_rep: Any) -> Any:
    """Long ``(band, key, idx)`` rows of the representatives in this block."""
    import pyarrow as pa
    import ray

    gone = ray.get(not_rep)
    idx = t.column("idx").to_numpy()
    sel = t.column("nonempty").to_numpy(zero_copy_only=False) & ~np.isin(idx, gone)
    keys = unfsb(t.column("keys"), np.uint64, bands)[sel]
    return pa.table({
        "band": pa.array(np.tile(np.arange(bands, dtype=np.uint16), len(keys))),
        "key": pa.array(keys.reshape(-1)),
        "idx": pa.array(np.repeat(idx[sel].astype(np.uint32), bands)),
    })


def bucket_pairs(t: Any, max_bucket: int) -> Any:
    return candidate_pairs(pl.from_arrow(t).lazy(), max_bucket=max_bucket).to_arrow()


def unique_pairs(t: Any) -> Any:
    return pl.from_arrow(t).unique().to_arrow()


# --- phase 4: verification in the workers ------------------------------------------------

def _sig_map(t: Any, not_rep: Any) -> Any:
    import ray

    gone = ray.get(not_rep) if not_rep is not None else None
    t = t.select(["idx", "rank", "sig", "nonempty"])
    if gone is not None:
        keep = t.column("nonempty").to_numpy(zero_copy_only=False) & ~np.isin(t.column("idx").to_numpy(), gone)
        t = t.filter(keep)
    return t.select(["idx", "rank", "sig"])


def _attach(pairs: Any, sigs: Any, col: str) -> Any:
    """``pairs`` with the rank and signature of their row ``col`` (a or b)."""
    left = pl.from_arrow(pairs)
    right = pl.from_arrow(sigs).rename({"idx": col, "rank": f"r{col}", "sig": f"sig_{col}"})
    right = right.with_columns(pl.col(col).cast(left.schema[col]))
    return left.join(right, on=col, how="inner").to_arrow()


def _score_pairs(t: Any, num_perm: int, threshold: float | None) -> Any:
    """Estimated Jaccard of each pair (as the local :func:`~.lsh.verify`), optionally filtered."""
    a = unfsb(t.column("sig_a"), np.uint32, num_perm)
    b = unfsb(t.column("sig_b"), np.uint32, num_perm)
    j = np.empty(len(a), dtype=np.float32)
    j[:] = (a == b).sum(axis=1) / num_perm
    out = pl.from_arrow(t.select(["a", "b", "ra", "rb"])).with_columns(pl.Series("j", j))
    if threshold is not None:
        out = out.filter(pl.col("j") >= np.float32(threshold) - np.float32(1e-6))
    return out.to_arrow()


def _jaccard_join(pairs: list[Any], sig_parts: list[Any], num_perm: int,
                  threshold: float | None) -> list[Any]:
    """Pairs ``(a, b)`` partitioned on ``a`` -> ``(a, b, ra, rb, j)``, computed in workers."""

    parts = len(sig_parts)
    with_a = apply(_attach, pairs, sig_parts, col="a")
    by_b = shuffle(with_a, "b", parts)
    with_b = apply(_attach, by_b, sig_parts, col="b")
    return apply(_score_pairs, with_b, num_perm=num_perm, threshold=threshold)


# --- phase 5: connected components by min-label propagation ------------------------------

def _init_labels(by_a: Any, by_b: Any) -> Any:
    """Every node of this partition labelled with itself (its survivor rank)."""
    nodes = pl.concat([pl.from_arrow(by_a).select(pl.col("ra").alias("v")),
                       pl.from_arrow(by_b).select(pl.col("rb").alias("v"))]).unique()
    return nodes.with_columns(pl.col("v").alias("l")).to_arrow()


def _propose(edges: Any, labels: Any, src: str, dst: str) -> Any:
    """Each edge proposes its ``src`` node's label to its ``dst`` node: ``(v, l)`` rows."""
    e = pl.from_arrow(edges).select(src, dst)
    lab = pl.from_arrow(labels).select(pl.col("v").alias(src), "l")
    return e.join(lab, on=src, how="inner").select(pl.col(dst).alias("v"), "l").to_arrow()


def _relabel(labels: Any, proposals: Any) -> Any:
    """New label = min(own label, proposals); ``changed`` marks the nodes that moved."""
    lab = pl.from_arrow(labels).select("v", "l")
    best = pl.from_arrow(proposals).group_by("v").agg(pl.col("l").min().alias("p"))
    out = lab.join(best, on="v", how="left").with_columns(
        pl.min_horizontal("l", pl.col("p").fill_null(pl.col("l"))).alias("new"))
    return out.select("v", pl.col("new").alias("l"), (pl.col("new") < pl.col("l")).alias("changed")).to_arrow()


def num_rows(t: Any) -> int:
    return t.num_rows


def _num_changed(t: Any) -> int:
    return int(pl.from_arrow(t)["changed"].sum())


def _moved(t: Any) -> Any:
    return pl.from_arrow(t).filter(pl.col("v") != pl.col("l")).select("v", "l").to_arrow()


def _components(verified: list[Any], parts: int) -> tuple[np.ndarray, np.ndarray, int]:
    """``(member_rank, survivor_rank)`` of every non-survivor node, and the rounds taken."""
    import ray


    by_a = shuffle(verified, "ra", parts)
    by_b = shuffle(verified, "rb", parts)
    labels = apply(_init_labels, by_a, by_b)
    rounds = 0
    while rounds < MAX_ROUNDS:
        rounds += 1
        props = (apply(_propose, by_a, labels, src="ra", dst="rb")
                 + apply(_propose, by_b, labels, src="rb", dst="ra"))
        labels = apply(_relabel, labels, shuffle(props, "v", parts))
        if sum(ray.get(apply(_num_changed, labels))) == 0:
            break
    moved = pl.from_arrow(gather(apply(_moved, labels)))
    return moved["v"].to_numpy(), moved["l"].to_numpy(), rounds


def _pairs_table(a: np.ndarray, b: np.ndarray) -> Any:
    import pyarrow as pa

    return pa.table({"a": pa.array(a.astype(np.uint32)), "b": pa.array(b.astype(np.uint32))})


def _exact_verify(df: pl.DataFrame, cfg: Any, cand: list[Any], rank: np.ndarray,
                  parts: int) -> tuple[list[Any], Any]:
    """``verify: exact`` under Ray: the candidate pairs come to the driver (which holds the
    rows), are verified there by their true Jaccard exactly as locally, and go back as the
    ``(a, b, ra, rb, j)`` table the components phase reads."""
    import ray

    from thresher.curate.dedup.exact import pair_verifier, table_texts
    from thresher.curate.dedup.lsh import verify

    pairs = pl.from_arrow(gather(cand)).select("a", "b").sort("a", "b")
    rows = np.concatenate([pairs["a"].to_numpy(), pairs["b"].to_numpy()]).astype(np.int64)
    exact = pair_verifier(rows, table_texts([df], cfg), cfg)
    ok = verify(None, pairs, cfg.threshold, exact)
    ok = ok.with_columns(pl.Series("ra", rank[ok["a"].to_numpy()]), pl.Series("rb", rank[ok["b"].to_numpy()]))
    step = max(1, -(-ok.height // parts))
    return [ray.put(ok.slice(s, step).select("a", "b", "ra", "rb", "j").to_arrow())
            for s in range(0, max(ok.height, 1), step)], exact


def ray_deduplicate(df: pl.DataFrame, cfg: Any, *, partitions: int | None = None) -> DedupResult:
    """:func:`~.engine.deduplicate` on the connected Ray cluster (components, no reference)."""
    import ray


    timings: dict[str, float] = {}
    t = t0 = time.perf_counter()
    n = df.height
    bands, rows = lsh_params(cfg)
    rank = survivor_order(n, df[cfg.keep_by] if cfg.keep_by else None)
    order = np.argsort(rank)  # rank -> row
    with session():
        parts = partitions or default_partitions()
        signed = _signatures(df, cfg, bands, rows, rank)
        flags = pl.from_arrow(gather(apply(lambda b: b.select(["idx", "nonempty"]), signed))).sort("idx")
        nonempty = flags["nonempty"].to_numpy()
        timings["signatures"] = time.perf_counter() - t
        t = time.perf_counter()
        ex = pl.from_arrow(gather(apply(exact_reduce, shuffle(signed, "hk", parts, fn=_exact_map))))
        ex_i, ex_rep = ex["i"].to_numpy().astype(np.int64), ex["rep"].to_numpy().astype(np.int64)
        not_rep = ray.put(ex_i)
        timings["exact"] = time.perf_counter() - t
        t = time.perf_counter()
        keys = shuffle(signed, "key", parts, fn=functools.partial(_band_rows, bands=bands, not_rep=not_rep))
        cand = apply(unique_pairs, shuffle(apply(bucket_pairs, keys, max_bucket=cfg.max_bucket), "a", parts))
        n_cand = sum(ray.get(apply(num_rows, cand)))
        timings["candidates"] = time.perf_counter() - t
        t = time.perf_counter()
        exact = None
        if cfg.verify in ("exact", "edit"):  # the signatures are not needed again
            verified, exact = _exact_verify(df, cfg, cand, rank, parts)
        else:
            sig_parts = shuffle(signed, "idx", parts, fn=functools.partial(_sig_map, not_rep=not_rep))
            verified = _jaccard_join(cand, sig_parts, cfg.num_perm, cfg.threshold)
        n_verified = sum(ray.get(apply(num_rows, verified)))
        timings["verify"] = time.perf_counter() - t
        t = time.perf_counter()
        member_r, surv_r, rounds = _components(verified, parts)
        near_i, near_s = order[member_r], order[surv_r]
        if exact is not None:
            scored = pl.DataFrame({"a": near_i.astype(np.int64), "b": near_s.astype(np.int64),
                                   "j": exact.jaccard(near_i, near_s)})
        else:
            near = shuffle([ray.put(_pairs_table(near_i, near_s))], "a", parts)
            scored = pl.from_arrow(gather(_jaccard_join(near, sig_parts, cfg.num_perm, None)))
            scored = scored.with_columns(pl.col("a").cast(pl.Int64), pl.col("b").cast(pl.Int64))
        timings["components"] = time.perf_counter() - t
    from thresher.progress import info

    seconds = time.perf_counter() - t0
    info(f"dedup: {n} rows on Ray in {seconds:.1f} s ({n / max(seconds, 1e-9):.0f} rows/s across the "
         f"cluster; {n_cand} candidate pairs, {rounds} label rounds)")
    keep = np.ones(n, dtype=bool)
    target = np.full(n, -1, dtype=np.int64)
    tj = np.ones(n, dtype=np.float32)
    counts = {"candidate_pairs": int(n_cand), "verified_pairs": int(n_verified),
              "executor": "ray", "partitions": parts, "label_rounds": rounds,
              "ray_seconds": round(seconds, 3)}
    return decide(cfg, df["id"].cast(pl.String), keep, target, tj, (ex_i, ex_rep),
                  (scored["a"].to_numpy(), scored["b"].to_numpy(), scored["j"].to_numpy()),
                  nonempty, counts, timings, bands_rows=(bands, rows))
