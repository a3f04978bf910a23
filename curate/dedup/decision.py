"""The dedup engines' shared decision: survivor ranks, exact groups, near-duplicate
clusters and their survivors, and from those the per-row result (:class:`DedupResult`:
keep mask, reasons, clusters.parquet, stats).

The local engine (:mod:`.engine`), the semantic one (:mod:`.semantic`) and the Ray one
(:mod:`.distributed`) all end here, so they keep the same rows for the same pairs.
"""

from __future__ import annotations

import resource
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import polars as pl

from thresher.curate.dedup.lsh import components, optimal_params, pair_jaccard

#: LSH Jaccard threshold for candidates under ``verify: edit`` when none is given: one typo in
#: a 20-character text leaves a character 3-gram Jaccard near 0.6
EDIT_LSH_THRESHOLD = 0.4


@dataclass
class DedupResult:
    """Output of :func:`.engine.deduplicate`: row masks and reasons, clusters and statistics."""

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


def survivor_order(n: int, keyval: pl.Series | None) -> np.ndarray:
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


def exact_groups(in_hash: list[str], in_nonempty: np.ndarray, ref_hash: list[str], ref_nonempty: np.ndarray,
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


def near_duplicates(sig: Any, self_ok: pl.DataFrame, cfg: Any, n: int, rank: np.ndarray,
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
    reasons, dup_of, kinds = _reasons(keep, target, tj, exact_kind, id_series, against, measure)
    clusters = _clusters(keep, target, tj, exact_kind, id_series)
    stats = _stats(cfg, clusters, kinds, nonempty, counts, timings, bands_rows,
                   against[3] if against is not None else None)
    jac = np.where(keep, np.nan, tj).astype(np.float32)
    return DedupResult(keep=keep, reasons=reasons, duplicate_of=dup_of, jaccard=jac,
                       clusters=clusters, stats=stats)


def _reasons(keep: np.ndarray, target: np.ndarray, tj: np.ndarray, exact_kind: np.ndarray,
             id_series: pl.Series, against: tuple | None, measure: str = "J") -> tuple[list, list, dict[str, int]]:
    """Drop reason and duplicate id of every row, and the counts by kind (``measure``: the
    similarity's name in the reason, ``J`` for Jaccard, ``cos`` for a cosine)."""
    in_hash, ref_hash, ref_ids, ref_label = against if against is not None else ([], [], [], "")
    n = len(keep)
    reasons: list[str | None] = [None] * n
    dup_of: list[str | None] = [None] * n
    kinds = {"exact": 0, "near": 0, "against_exact": 0, "against_near": 0}
    drop = np.flatnonzero(~keep)
    # the survivors' ids only (not a Python string per row)
    ids = dict(zip(target[drop].tolist(), id_series.gather(np.maximum(target[drop], 0)).to_list()))
    for i in drop:
        tgt = int(target[i])
        j = float(tj[i])
        if tgt <= -2:
            rid = dup_of[i] = ref_ids[-2 - tgt]
            if in_hash[int(i)] == ref_hash[-2 - tgt]:
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
    return dedup_stats(cfg, cluster_sizes(sizes.to_numpy()), kinds, int((~nonempty).sum()), counts, timings,
                       bands_rows, ref_label)


def cluster_sizes(sizes: np.ndarray) -> dict[str, Any]:
    """``clusters``, ``largest_cluster`` and ``cluster_sizes`` (a histogram, 10+ together) of
    the stats, from each cluster's size."""
    hist = np.bincount(np.minimum(sizes, 10)) if len(sizes) else np.zeros(0, int)
    return {"clusters": len(sizes), "largest_cluster": int(sizes.max()) if len(sizes) else 0,
            "cluster_sizes": {(f"{k}" if k < 10 else "10+"): int(v) for k, v in enumerate(hist) if v}}


def dedup_stats(cfg: Any, sizes: dict[str, Any], kinds: dict[str, int], empty_rows: int,
                counts: dict[str, Any], timings: dict[str, float], bands_rows: tuple[int, int],
                ref_label: str | None) -> dict[str, Any]:
    """The dedup stage's own stats (``sizes``: :func:`cluster_sizes`; ``kinds``: rows dropped
    by kind, ``exact``, ``near``, ``against_exact``, ``against_near``)."""
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
        "empty_text_rows": empty_rows,
        "exact_duplicates": kinds["exact"],
        "near_duplicates": kinds["near"],
        "against_exact": kinds["against_exact"],
        "against_near": kinds["against_near"],
        **sizes,
        "candidate_pairs": counts["candidate_pairs"],
        "verified_pairs": counts["verified_pairs"],
        "spilled": counts.get("spilled", False),
        "memory_budget": cfg.memory,
        **{k: v for k, v in counts.items() if k not in ("reference_rows", "candidate_pairs",
                                                          "verified_pairs", "spilled")},
        "phase_seconds": {k: round(v, 3) for k, v in timings.items()},
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }
