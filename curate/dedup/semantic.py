"""``mode: semantic``: exact duplicates, then paraphrases by sentence-embedding cosine.

Phases (the survivor rule, clusters, reasons and stats are the MinHash engine's):

1. **exact** -- normalised texts hashed (xxh3-128) as in the MinHash engine; each group of
   equal texts keeps its best-ranked row.
2. **embed** -- the representatives' texts (``on``; chatter stripped with ``strip_chatter``,
   otherwise as written: the embedder reads case and punctuation) through the embedder
   (:mod:`thresher.embed`), L2-normalised; reference rows likewise.
3. **neighbours** -- every pair with cosine >= ``cosine``, found block by block in numpy
   (exact search, memory ``block * block`` floats). An input row within ``cosine`` of a
   reference row is dropped (its most similar reference row named); input pairs form clusters
   (``components`` or ``star``) whose best-ranked row survives, the others are dropped with
   ``near-duplicate of <id> (cos=0.93)``.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import polars as pl

from thresher.curate.dedup.decision import (
    DedupResult,
    decide,
    exact_groups,
    near_duplicates,
    survivor_order,
)
from thresher.curate.dedup.normalize import normalized_texts, options_of, text_column


class CosineScores:
    """Cosine of row pairs from embeddings of some global rows (the ``exact`` duck type of the
    MinHash engine: :meth:`jaccard` gives the pair's similarity)."""

    def __init__(self, rows: np.ndarray, emb: np.ndarray):
        self.rows = np.asarray(rows, dtype=np.int64)  # sorted global indices of emb's rows
        self.emb = emb

    def jaccard(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        pa = np.searchsorted(self.rows, np.asarray(a, dtype=np.int64))
        pb = np.searchsorted(self.rows, np.asarray(b, dtype=np.int64))
        if not len(pa):
            return np.zeros(0, np.float32)
        return np.einsum("ij,ij->i", self.emb[pa], self.emb[pb]).astype(np.float32)


def _hashes(df: pl.DataFrame, cfg: Any) -> tuple[list[str], np.ndarray]:
    import xxhash

    texts = normalized_texts(df, cfg.on, options_of(cfg))
    return ([xxhash.xxh3_128_hexdigest(t.encode("utf-8")) for t in texts],
            np.array([bool(t) for t in texts], dtype=bool))


def _embed(df: pl.DataFrame, rows: np.ndarray, cfg: Any, embedder: Any) -> np.ndarray:
    texts = text_column(df[pl.Series(rows.astype(np.int64))] if len(rows) else df.clear(), cfg.on,
                        cfg.strip_chatter)
    return embedder.encode(texts.to_list())


def semantic_deduplicate(df: pl.DataFrame, cfg: Any, *, ref: pl.DataFrame | None = None,
                         ref_label: str = "reference") -> DedupResult:
    """:func:`~.engine.deduplicate` with embeddings instead of MinHash (see the module docstring)."""
    from thresher.embed import cosine_pairs, load_embedder, nearest
    from thresher.progress import progress

    t0 = time.perf_counter()
    timings: dict[str, float] = {}
    n = df.height
    in_hash, in_nonempty = _hashes(df, cfg)
    ref_hash, ref_nonempty = _hashes(ref, cfg) if ref is not None else ([], np.zeros(0, dtype=bool))
    rank = survivor_order(n, df[cfg.keep_by] if cfg.keep_by else None)
    keep, target, tj, (ex_i, ex_rep), is_rep = exact_groups(in_hash, in_nonempty, ref_hash, ref_nonempty, rank)
    timings["exact"] = time.perf_counter() - t0

    t = time.perf_counter()
    embedder = load_embedder(cfg.embedder, device=cfg.device, batch_size=cfg.embed_batch)
    reps = np.flatnonzero(is_rep)
    ref_rows = np.flatnonzero(ref_nonempty)
    with progress(len(reps) + len(ref_rows), "dedup: embeddings") as bar:
        emb = _embed(df, reps, cfg, embedder)
        bar.advance(len(reps))
        ref_emb = _embed(ref, ref_rows, cfg, embedder) if ref is not None else None
        bar.advance(len(ref_rows))
    timings["embed"] = time.perf_counter() - t
    embedded = int(len(reps) + len(ref_rows))

    t = time.perf_counter()
    ref_pairs = 0
    if ref_emb is not None and len(ref_rows) and len(reps):
        arg, best = nearest(emb, ref_emb)
        hit = best >= np.float32(cfg.cosine) - np.float32(1e-6)
        a = reps[hit]
        keep[a] = False
        is_rep[a] = False
        target[a] = -2 - ref_rows[arg[hit]]
        tj[a] = best[hit]
        ref_pairs = int(hit.sum())
        emb, reps = emb[~hit], reps[~hit]
    i, j, sim = cosine_pairs(emb, None, cfg.cosine)
    self_ok = pl.DataFrame({"a": reps[i], "b": reps[j], "j": sim},
                           schema={"a": pl.UInt32, "b": pl.UInt32, "j": pl.Float32})
    near = near_duplicates(None, self_ok, cfg, n, rank, CosineScores(reps, emb))
    timings["neighbours"] = time.perf_counter() - t
    counts = {"reference_rows": ref.height if ref is not None else 0, "candidate_pairs": int(len(i)) + ref_pairs,
              "verified_pairs": int(len(i)) + ref_pairs, "embedder": cfg.embedder, "cosine": cfg.cosine,
              "rows_embedded": embedded,
              "embed_rows_per_second": round(embedded / max(timings["embed"], 1e-9), 1)}
    return decide(cfg, df["id"].cast(pl.String), keep, target, tj, (ex_i, ex_rep), near, in_nonempty,
                  counts, timings, bands_rows=(0, 0),
                  against=(in_hash, ref_hash, ref["id"].cast(pl.String).to_list(), ref_label)
                  if ref is not None else None, measure="cos")
