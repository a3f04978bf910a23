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

import resource
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from thresher.curate.dedup.lsh import (
    band_key_frame,
    candidate_pairs,
    components,
    optimal_params,
    pair_jaccard,
    verify,
)
from thresher.curate.dedup.minhash import signatures
from thresher.curate.dedup.normalize import NormalizeOptions, normalized_texts, options_of
from thresher.curate.dedup.shingles import shingle_hashes
from thresher.curate.dedup.store import BandKeyStore, SignatureStore, parse_size

#: LSH Jaccard threshold for candidates under ``verify: edit`` when none is given: one typo in
#: a 20-character text leaves a character 3-gram Jaccard near 0.6
EDIT_LSH_THRESHOLD = 0.4


@dataclass
class DedupResult:
    """Output of :func:`deduplicate`: row masks and reasons, clusters and statistics."""

    keep: np.ndarray                 # bool per input row
    reasons: list[str | None]        # drop reason per input row (None when kept)
    duplicate_of: list[str | None]   # id of the row each dropped row duplicates
    jaccard: np.ndarray              # Jaccard to that row (estimated or exact; NaN when kept)
    clusters: pl.DataFrame           # cluster, id, kept, jaccard, match, kept_id
    stats: dict[str, Any] = field(default_factory=dict)


def _fmt_j(j: float) -> str:
    return f"{j:.2f}"


def lsh_params(cfg: Any) -> tuple[int, int]:
    """``(bands, rows)``: given, or chosen (as datasketch) for ``lsh_threshold`` (default:
    ``threshold``, except under ``verify: edit``, whose threshold is no Jaccard)."""
    if cfg.bands:
        return cfg.bands, cfg.rows
    lsh = getattr(cfg, "lsh_threshold", None)
    if lsh is None:
        lsh = EDIT_LSH_THRESHOLD if cfg.verify == "edit" else cfg.threshold
    return optimal_params(lsh, cfg.num_perm)


def _survivor_order(n: int, keyval: pl.Series | None) -> np.ndarray:
    """Rank of each row under the survivor rule (0 = best): highest keep_by (null and NaN
    lowest), then first seen."""
    if keyval is None:
        return np.arange(n, dtype=np.int64)
    if keyval.dtype.is_float():
        keyval = keyval.fill_nan(None)
    frame = pl.DataFrame({"v": keyval, "i": np.arange(n, dtype=np.int64)})
    order = frame.with_row_index("pos").sort(["v", "i"], descending=[True, False], nulls_last=True)["pos"]
    rank = np.empty(n, dtype=np.int64)
    rank[order.to_numpy()] = np.arange(n, dtype=np.int64)
    return rank


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
    bands, rows = lsh_params(cfg)
    id_series = df["id"].cast(pl.String)
    ref_ids = ref["id"].cast(pl.String).to_list() if ref is not None else []

    # 1. signatures (input rows 0..n-1, reference rows n..n+m-1)
    sigstore = SignatureStore(n + m, cfg.num_perm, budget, spill_dir)
    sig = sigstore.array
    with progress(n + m, "dedup: signatures") as bar:
        in_hash, in_nonempty = _sign_rows(df, cfg, sig, 0, norm, bar)
        ref_hash, ref_nonempty = (_sign_rows(ref, cfg, sig, n, norm, bar) if ref is not None
                                  else ([], np.zeros(0, dtype=bool)))
    timings["signatures"] = time.perf_counter() - t0

    # 2. exact duplicates
    t = time.perf_counter()
    rank = _survivor_order(n, df[cfg.keep_by] if cfg.keep_by else None)
    keep, target, tj, (ex_i, ex_rep), is_rep = _exact(in_hash, in_nonempty, ref_hash, ref_nonempty, rank)
    timings["exact"] = time.perf_counter() - t

    # 3. band keys of representatives and reference rows
    t = time.perf_counter()
    keystore = _band_keys(sig, np.concatenate([is_rep, ref_nonempty]), cfg, bands, rows,
                          BandKeyStore(budget, spill_dir), progress)
    timings["band_keys"] = time.perf_counter() - t

    # 4. candidate pairs and verification (updates keep/is_rep/target/tj for reference matches)
    t = time.perf_counter()
    tables = [df] + ([ref] if ref is not None else [])
    self_ok, ref_ok, n_cand, exact = _verify(sig, keystore, cfg, n, keep, is_rep, target, tj, progress,
                                             tables)
    timings["verify"] = time.perf_counter() - t

    # 5. clusters and survivors
    t = time.perf_counter()
    near_i, near_s, near_j = _near_duplicates(sig, self_ok, cfg, n, rank, exact)
    del exact
    timings["clusters"] = time.perf_counter() - t
    spilled = bool(sigstore.spilled or keystore.spilled)
    sigstore.close()
    counts = {"reference_rows": m, "candidate_pairs": int(n_cand),
              "verified_pairs": int(self_ok.height + ref_ok.height), "spilled": spilled}
    return decide(cfg, id_series, keep, target, tj, (ex_i, ex_rep), (near_i, near_s, near_j),
                  in_nonempty, counts, timings, bands_rows=(bands, rows),
                  against=(in_hash, ref_hash, ref_ids, ref_label) if ref is not None else None)


def _exact(in_hash: list[str], in_nonempty: np.ndarray, ref_hash: list[str], ref_nonempty: np.ndarray,
           rank: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, tuple[np.ndarray, np.ndarray],
                                      np.ndarray]:
    """Phase 2: exact copies of a reference row, then of an earlier (better-ranked) input row.

    Returns ``keep``, ``target`` (survivor input index, or ``-2 - ref index``), ``tj``
    (estimated Jaccard to the target), the exact pairs ``(row, representative)`` and
    ``is_rep`` (the non-empty rows that go on to the near-duplicate phases).
    """
    n = len(in_hash)
    keep = np.ones(n, dtype=bool)
    target = np.full(n, -1, dtype=np.int64)
    tj = np.ones(n, dtype=np.float32)
    if len(ref_hash):
        first_ref: dict[str, int] = {}
        for j, h in enumerate(ref_hash):
            if ref_nonempty[j]:
                first_ref.setdefault(h, j)
        for i, h in enumerate(in_hash):
            j = first_ref.get(h)
            if j is not None and in_nonempty[i]:
                keep[i] = False
                target[i] = -2 - j
    exact_frame = (
        pl.DataFrame({"h": in_hash, "i": np.arange(n, dtype=np.int64), "rank": rank})
        .filter(pl.Series(keep & in_nonempty))
        .sort("rank")
    )
    rep_of = exact_frame.group_by("h", maintain_order=True).agg(pl.col("i").first().alias("rep"), pl.col("i"))
    pairs = rep_of.explode("i").filter(pl.col("i") != pl.col("rep"))
    ex_i = pairs["i"].to_numpy()
    ex_rep = pairs["rep"].to_numpy()
    is_rep = keep & in_nonempty
    is_rep[ex_i] = False
    return keep, target, tj, (ex_i, ex_rep), is_rep


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
            tables: list[pl.DataFrame]) -> tuple[pl.DataFrame, pl.DataFrame, int, Any]:
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
        from thresher.curate.dedup.exact import pair_verifier, table_texts

        rows = np.concatenate([cand["a"].to_numpy(), cand["b"].to_numpy()]).astype(np.int64)
        exact = pair_verifier(rows, table_texts(tables, cfg), cfg)
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


def _near_duplicates(sig: Any, self_ok: pl.DataFrame, cfg: Any, n: int, rank: np.ndarray,
                     exact: Any = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Phase 5: clusters of verified pairs and their survivors: ``(row, survivor, jaccard)``
    (the true Jaccard when ``exact`` holds the candidate rows' shingle sets)."""
    sa = self_ok["a"].to_numpy().astype(np.int64)
    sb = self_ok["b"].to_numpy().astype(np.int64)
    members = np.unique(np.concatenate([sa, sb]))
    if cfg.cluster == "star":
        # every dropped row is a direct, verified near-duplicate of its survivor
        from thresher.curate.dedup._kernels import star_survivors

        order = members[np.argsort(rank[members], kind="stable")]
        tgt = star_survivors(n, order, sa, sb)
        near_i = np.flatnonzero(tgt >= 0)
        near_s = tgt[near_i]
    else:
        # connected components: one survivor per component
        root = components(n, sa, sb)
        comp = pl.DataFrame({"i": members, "root": root[members], "rank": rank[members]})
        surv = (comp.sort("rank").group_by("root", maintain_order=True)
                .agg(pl.col("i").first().alias("s"), pl.col("i")))
        pairs_near = surv.explode("i").filter(pl.col("i") != pl.col("s"))
        near_i = pairs_near["i"].to_numpy()
        near_s = pairs_near["s"].to_numpy()
    if not len(near_i):
        near_j = np.zeros(0, np.float32)
    else:
        near_j = exact.jaccard(near_i, near_s) if exact is not None else pair_jaccard(sig, near_i, near_s)
    return near_i, near_s, near_j


def decide(cfg: Any, id_series: pl.Series, keep: np.ndarray, target: np.ndarray, tj: np.ndarray,
           exact: tuple[np.ndarray, np.ndarray], near: tuple[np.ndarray, np.ndarray, np.ndarray],
           nonempty: np.ndarray, counts: dict[str, Any], timings: dict[str, float], *,
           bands_rows: tuple[int, int], against: tuple | None = None, measure: str = "J") -> DedupResult:
    """Phase 5's end, shared by the local and the Ray engine: from the exact groups
    ``(member, representative)`` and the near pairs ``(row, survivor, jaccard)`` to the
    per-row decision, reasons, clusters.parquet and stats."""
    ex_i, ex_rep = exact
    near_i, near_s, near_j = near
    keep[near_i] = False
    target[near_i] = near_s
    tj[near_i] = near_j
    # exact members follow their representative's fate
    rep_target = target[ex_rep]
    keep[ex_i] = False
    target[ex_i] = np.where(rep_target == -1, ex_rep, rep_target)
    tj[ex_i] = np.where(rep_target == -1, 1.0, tj[ex_rep])
    exact_kind = np.zeros(len(keep), dtype=bool)
    exact_kind[ex_i[rep_target == -1]] = True
    reasons, dup_of, kinds = _reasons(keep, target, tj, exact_kind, id_series.to_list(), against, measure)
    clusters = _clusters(keep, target, tj, exact_kind, id_series)
    stats = _stats(cfg, clusters, kinds, nonempty, counts, timings, bands_rows,
                   against[3] if against is not None else None)
    jac = np.where(keep, np.nan, tj).astype(np.float32)
    return DedupResult(keep=keep, reasons=reasons, duplicate_of=dup_of, jaccard=jac,
                       clusters=clusters, stats=stats)


def _reasons(keep: np.ndarray, target: np.ndarray, tj: np.ndarray, exact_kind: np.ndarray,
             ids: list[str], against: tuple | None, measure: str = "J") -> tuple[list, list, dict[str, int]]:
    """Drop reason and duplicate id of every row, and the counts by kind (``measure``: the
    similarity's name in the reason, ``J`` for Jaccard, ``cos`` for a cosine)."""
    in_hash, ref_hash, ref_ids, ref_label = against if against is not None else ([], [], [], "")
    n = len(keep)
    reasons: list[str | None] = [None] * n
    dup_of: list[str | None] = [None] * n
    kinds = {"exact": 0, "near": 0, "against_exact": 0, "against_near": 0}
    for i in np.flatnonzero(~keep):
        tgt = int(target[i])
        j = float(tj[i])
        if tgt <= -2:
            rid = dup_of[i] = ref_ids[-2 - tgt]
            if in_hash[i] == ref_hash[-2 - tgt]:
                kinds["against_exact"] += 1
                reasons[i] = f"exact duplicate of {rid} in {ref_label}"
            else:
                kinds["against_near"] += 1
                reasons[i] = f"near-duplicate of {rid} in {ref_label} ({measure}={_fmt_j(j)})"
        elif exact_kind[i]:
            kinds["exact"] += 1
            dup_of[i] = ids[tgt]
            reasons[i] = f"exact duplicate of {ids[tgt]}"
        else:
            kinds["near"] += 1
            dup_of[i] = ids[tgt]
            reasons[i] = f"near-duplicate of {ids[tgt]} ({measure}={_fmt_j(j)})"
    return reasons, dup_of, kinds


def _clusters(keep: np.ndarray, target: np.ndarray, tj: np.ndarray, exact_kind: np.ndarray,
              id_series: pl.Series) -> pl.DataFrame:
    """clusters.parquet: every input row dropped against another input row, plus its survivor."""
    in_cluster = (~keep) & (target >= 0)
    member_idx = np.flatnonzero(in_cluster)
    surv_idx = target[member_idx]
    all_surv = np.unique(surv_idx)
    cl_idx = np.concatenate([all_surv, member_idx])
    cl_surv = np.concatenate([all_surv, surv_idx])
    cl_j = np.concatenate([np.ones(len(all_surv), np.float32), tj[member_idx]])
    cl_match = (["kept"] * len(all_surv)
                + ["exact" if exact_kind[i] else "near" for i in member_idx])
    return (
        pl.DataFrame({"i": cl_idx, "s": cl_surv, "jaccard": cl_j, "match": cl_match})
        .with_columns(pl.col("s").rank("dense").cast(pl.UInt32).sub(1).alias("cluster"))
        .sort("cluster", "i")
        .select(
            "cluster",
            pl.col("i").map_batches(lambda c: id_series.gather(c), return_dtype=pl.String).alias("id"),
            (pl.col("i") == pl.col("s")).alias("kept"),
            pl.col("jaccard").round(4),
            "match",
            pl.col("s").map_batches(lambda c: id_series.gather(c), return_dtype=pl.String).alias("kept_id"),
        )
    )


def _stats(cfg: Any, clusters: pl.DataFrame, kinds: dict[str, int], nonempty: np.ndarray,
           counts: dict[str, Any], timings: dict[str, float], bands_rows: tuple[int, int],
           ref_label: str | None) -> dict[str, Any]:
    sizes = clusters.group_by("cluster").len()["len"] if clusters.height else pl.Series([], dtype=pl.UInt32)
    hist = np.bincount(np.minimum(sizes.to_numpy(), 10)) if len(sizes) else np.zeros(0, int)
    return {
        "on": cfg.on,
        "mode": getattr(cfg, "mode", "minhash"),
        "strip_chatter": getattr(cfg, "strip_chatter", False),
        "threshold": cfg.threshold,
        "num_perm": cfg.num_perm,
        "ngram": cfg.ngram,
        "shingle": cfg.shingle,
        "hash": cfg.hash,
        "verify": cfg.verify,
        "bands": bands_rows[0],
        "rows": bands_rows[1],
        "keep_by": cfg.keep_by,
        "cluster": cfg.cluster,
        "against": ref_label,
        "reference_rows": counts.get("reference_rows", 0),
        "empty_text_rows": int((~nonempty).sum()),
        "exact_duplicates": kinds["exact"],
        "near_duplicates": kinds["near"],
        "against_exact": kinds["against_exact"],
        "against_near": kinds["against_near"],
        "clusters": len(sizes),
        "largest_cluster": int(sizes.max()) if len(sizes) else 0,
        "cluster_sizes": {(f"{k}" if k < 10 else "10+"): int(v) for k, v in enumerate(hist) if v},
        "candidate_pairs": counts["candidate_pairs"],
        "verified_pairs": counts["verified_pairs"],
        "spilled": counts.get("spilled", False),
        "memory_budget": cfg.memory,
        **{k: v for k, v in counts.items() if k not in ("reference_rows", "candidate_pairs",
                                                          "verified_pairs", "spilled")},
        "phase_seconds": {k: round(v, 3) for k, v in timings.items()},
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }
