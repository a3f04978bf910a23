"""The dedup pipeline on DataFrames: exact, ``--against`` reference, then MinHash/LSH near.

Phases (each with a progress bar):

1. **signatures** -- in chunks of ``chunk_rows``: build the text (``--on``), normalise it,
   hash it for exact matching (xxh3-128) and compute its MinHash signature into a
   :class:`~.store.SignatureStore` (RAM or a memory-mapped spill file).
2. **exact** -- rows whose normalised text equals a reference row's are dropped; among the
   rest, each group of equal texts keeps one representative (the survivor rule below).
3. **band keys** -- representatives' (and reference rows') band keys go to a
   :class:`~.store.BandKeyStore` (parquet spill files when over budget).
4. **candidates / verify** -- polars ``group_by`` on ``(band, key)`` gives candidate pairs;
   only pairs whose estimated Jaccard (``verify: exact``: the true Jaccard of the candidate
   rows' re-computed shingle sets) reaches the threshold are kept. Pairs with a reference
   row drop the input row; input-input pairs are joined into clusters (union-find).
5. **survivors** -- (``cluster="star"``: greedily, best row first, each survivor claims its
   direct verified neighbours) in each cluster the row with the highest ``keep_by`` value survives
   (nulls lowest; ties go to the row seen first); every other row is dropped with
   ``exact duplicate of <id>`` or ``near-duplicate of <id> (J=0.87)``, naming the survivor.

Rows whose normalised text is empty are never compared (always kept).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from thresher.curate.dedup.decision import (
    DedupResult,
    decide,
    exact_groups,
    lsh_params,
    near_duplicates,
    survivor_order,
)
from thresher.curate.dedup.exact import table_texts
from thresher.curate.dedup.lsh import (
    band_key_frame,
    candidate_pairs,
    verify,
)
from thresher.curate.dedup.minhash import signatures
from thresher.curate.dedup.normalize import NormalizeOptions, normalized_texts, options_of
from thresher.curate.dedup.shingles import shingle_hashes
from thresher.curate.dedup.store import BandKeyStore, SignatureStore, parse_size


def _sign_rows(df: pl.DataFrame, cfg: Any, store: np.ndarray, offset: int, norm: NormalizeOptions,
               bar: Any) -> tuple[list[str], np.ndarray]:
    """Phase 1 for one table: exact hashes (list) and non-empty mask; signatures into ``store``."""
    import xxhash

    hashes: list[str] = []
    nonempty = np.zeros(df.height, dtype=bool)
    for s in range(0, df.height, cfg.chunk_rows):
        part = df.slice(s, cfg.chunk_rows)
        texts = normalized_texts(part, cfg.on, norm)
        hashes.extend(xxhash.xxh3_128_hexdigest(t.encode("utf-8")) for t in texts)
        nonempty[s:s + len(texts)] = [bool(t) for t in texts]
        h, off = shingle_hashes(texts, ngram=cfg.ngram, unit=cfg.shingle, hash=cfg.hash)
        signatures(h, off, num_perm=cfg.num_perm, seed=cfg.seed,
                   out=store[offset + s: offset + s + len(texts)])
        bar.advance(len(texts))
    return hashes, nonempty


def deduplicate(df: pl.DataFrame, cfg: Any, *, ref: pl.DataFrame | None = None,
                ref_label: str = "reference", spill_dir: Path) -> DedupResult:
    """Deduplicate ``df`` (and drop rows matching ``ref``) under config ``cfg`` (see stage.Config).

    Under ``--executor ray`` (components clustering, no reference) the work runs on the Ray
    cluster (:mod:`.distributed`), with the same result.
    """
    if getattr(cfg, "mode", "minhash") == "semantic":
        from thresher.curate.dedup.semantic import semantic_deduplicate

        return semantic_deduplicate(df, cfg, ref=ref, ref_label=ref_label)
    if ref is None and cfg.cluster == "components" and df.height:
        from thresher.executors.ray_session import current

        if current() == "ray":
            from thresher.curate.dedup.distributed import ray_deduplicate

            return ray_deduplicate(df, cfg)
    from thresher.progress import progress

    t0 = time.perf_counter()
    timings: dict[str, float] = {}
    n = df.height
    m = ref.height if ref is not None else 0
    norm = options_of(cfg)
    budget = parse_size(cfg.memory)

    # 1. signatures (input rows 0..n-1, reference rows n..n+m-1)
    sigstore = SignatureStore(n + m, cfg.num_perm, budget, spill_dir)
    sig = sigstore.array
    with progress(n + m, "dedup: signatures") as bar:
        in_hash, in_nonempty = _sign_rows(df, cfg, sig, 0, norm, bar)
        ref_hash, ref_nonempty = (_sign_rows(ref, cfg, sig, n, norm, bar) if ref is not None
                                  else ([], np.zeros(0, dtype=bool)))
    timings["signatures"] = time.perf_counter() - t0
    tables = [df] + ([ref] if ref is not None else [])
    signed = Signed(sig, in_hash, in_nonempty, ref_hash, ref_nonempty, sigstore)
    del sig
    try:
        return decide_signed(cfg, signed, df["id"].cast(pl.String), df[cfg.keep_by] if cfg.keep_by else None,
                             ref=(ref["id"].cast(pl.String).to_list(), ref_label) if ref is not None else None,
                             texts_of=table_texts(tables, cfg), spill_dir=spill_dir, timings=timings)
    finally:
        sigstore.close()


@dataclass
class Signed:
    """Phase 1's output, for :func:`decide_signed`: signatures of the input rows ``0..n-1`` then
    of the reference rows ``n..n+m-1``, and each side's exact hashes and non-empty masks (the
    hashes of both sides of one kind: hex strings, or digests). ``store`` holds the signatures
    (``spilled``, ``close()``), released once the clusters are known."""

    sig: Any
    in_hash: Sequence[Any]
    in_nonempty: np.ndarray
    ref_hash: Sequence[Any]
    ref_nonempty: np.ndarray
    store: Any


def decide_signed(cfg: Any, signed: Signed, id_series: pl.Series, keyval: pl.Series | None, *,
                  ref: tuple[list[str], str] | None, texts_of: Callable[[np.ndarray], list[str]],
                  spill_dir: Path, timings: dict[str, float]) -> DedupResult:
    """Phases 2-5 from the signatures (:class:`Signed`): exact groups, band keys of the
    representatives, verified candidate pairs, clusters and survivors. ``keyval``: the keep_by
    column; ``ref``: the reference's ids and label; ``texts_of``: the normalised texts of
    global rows (read only under ``verify: exact`` or ``edit``)."""
    from thresher.progress import progress

    n, m = len(signed.in_nonempty), len(signed.ref_nonempty)
    sig = signed.sig
    budget = parse_size(cfg.memory)
    bands, rows = lsh_params(cfg)

    # 2. exact duplicates
    t = time.perf_counter()
    rank = survivor_order(n, keyval)
    keep, target, tj, (ex_i, ex_rep), is_rep = exact_groups(signed.in_hash, signed.in_nonempty, signed.ref_hash,
                                                            signed.ref_nonempty, rank)
    timings["exact"] = time.perf_counter() - t

    # 3. band keys of representatives and reference rows
    t = time.perf_counter()
    keystore = _band_keys(sig, np.concatenate([is_rep, signed.ref_nonempty]), cfg, bands, rows,
                          BandKeyStore(budget, spill_dir), progress)
    timings["band_keys"] = time.perf_counter() - t

    # 4. candidate pairs and verification (updates keep/is_rep/target/tj for reference matches)
    t = time.perf_counter()
    self_ok, ref_ok, n_cand, exact = _verify(sig, keystore, cfg, n, keep, is_rep, target, tj, progress,
                                             texts_of)
    timings["verify"] = time.perf_counter() - t

    # 5. clusters and survivors
    t = time.perf_counter()
    near_i, near_s, near_j = near_duplicates(sig, self_ok, cfg, n, rank, exact)
    del exact, sig
    timings["clusters"] = time.perf_counter() - t
    spilled = bool(signed.store.spilled or keystore.spilled)
    signed.sig = None
    signed.store.close()
    counts = {"reference_rows": m, "candidate_pairs": int(n_cand),
              "verified_pairs": int(self_ok.height + ref_ok.height), "spilled": spilled}
    return decide(cfg, id_series, keep, target, tj, (ex_i, ex_rep), (near_i, near_s, near_j),
                  signed.in_nonempty, counts, timings, bands_rows=(bands, rows),
                  against=(signed.in_hash, signed.ref_hash, *ref) if ref is not None else None)


def _band_keys(sig: Any, include: np.ndarray, cfg: Any, bands: int, rows: int, keystore: BandKeyStore,
               progress: Any) -> BandKeyStore:
    """Phase 3: the LSH band keys of the included rows, chunk by chunk, into ``keystore``."""
    total = len(include)
    with progress(total, "dedup: band keys") as bar:
        for s in range(0, total, cfg.chunk_rows):
            sel = np.flatnonzero(include[s:s + cfg.chunk_rows])
            if len(sel):
                frame = band_key_frame(np.asarray(sig[s + sel]), bands, rows, 0)
                frame = frame.with_columns(pl.Series("idx", np.repeat((s + sel).astype(np.uint32), bands)))
                keystore.add(frame)
            bar.advance(min(cfg.chunk_rows, total - s))
    return keystore


def _verify(sig: Any, keystore: BandKeyStore, cfg: Any, n: int, keep: np.ndarray, is_rep: np.ndarray,
            target: np.ndarray, tj: np.ndarray, progress: Any,
            texts_of: Callable[[np.ndarray], list[str]]) -> tuple[pl.DataFrame, pl.DataFrame, int, Any]:
    """Phase 4: candidate pairs from the band keys, verified against the threshold (by the
    estimate, or with ``verify: exact`` by the true Jaccard of the candidate rows' shingles).

    Input rows matching a reference row are dropped here (in ``keep``/``is_rep``/``target``/
    ``tj``, in place) and leave the input-input pairs. Returns the verified input pairs, the
    verified reference pairs, the number of candidates and the candidate rows'
    :class:`~.exact.ShingleSets` (None unless exact).
    """
    cand = candidate_pairs(keystore.lazy(), max_bucket=cfg.max_bucket, streaming=keystore.spilled)
    n_cand = cand.height
    keystore.cleanup()
    ref_cand = cand.filter((pl.col("a") < n) & (pl.col("b") >= n))
    self_cand = cand.filter(pl.col("b") < n)
    exact = None
    if cfg.verify in ("exact", "edit"):
        from thresher.curate.dedup.exact import pair_verifier

        rows = np.concatenate([cand["a"].to_numpy(), cand["b"].to_numpy()]).astype(np.int64)
        exact = pair_verifier(rows, texts_of, cfg)
    del cand
    with progress(ref_cand.height + self_cand.height, "dedup: verify", unit="pairs") as bar:
        ref_ok = verify(sig, ref_cand, cfg.threshold, exact)
        bar.advance(ref_cand.height)
        if ref_ok.height:
            best = ref_ok.sort("j", descending=True).unique("a", keep="first")
            a = best["a"].to_numpy().astype(np.int64)
            keep[a] = False
            is_rep[a] = False
            target[a] = -2 - (best["b"].to_numpy().astype(np.int64) - n)
            tj[a] = best["j"].to_numpy()
            # drop the pairs touching rows already dropped against the reference
            gone = pl.Series(a.astype(np.uint32))
            self_cand = self_cand.filter(~pl.col("a").is_in(gone) & ~pl.col("b").is_in(gone))
        self_ok = verify(sig, self_cand, cfg.threshold, exact)
        bar.advance(self_cand.height)
    return self_ok, ref_ok, n_cand, exact


