"""Dedup on Ray from side tables: the phases of :mod:`.ray_stream` in order (:func:`decide`),
and their end, the per-row decisions, written per part by Ray tasks."""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import polars as pl

from thresher.curate.dedup.decision import cluster_sizes, dedup_stats, lsh_params
from thresher.curate.dedup.distributed import bucket_pairs, num_rows, unique_pairs
from thresher.curate.dedup.ray_stream import (
    Group,
    band_rows,
    components,
    estimate,
    exact_members,
    exact_rows,
    groups_of,
    read_rows,
)
from thresher.executors.rows import ROW_INDEX
from thresher.executors.shuffle import apply, concat, default_partitions, route, shuffle
from thresher.io import parts
from thresher.io.writers import write_table

#: rows of input a partition of the shuffles holds at most on average (more rows: more partitions)
PARTITION_ROWS = 1_000_000
#: rows dropped by kind, as the stats count them
KINDS = ("exact", "near", "against_exact", "against_near")


def follow(ex: Any, near: Any) -> Any:
    """``(i, target, j, exact)`` of every dropped row of this partition: the near-duplicates
    ``near`` (``a``, survivor ``b``, ``j``) and the exact copies ``ex`` (``i``, ``rep``), a copy
    following its representative to the representative's survivor when that one is dropped."""
    e = pl.from_arrow(ex).select(pl.col("i").cast(pl.Int64), pl.col("rep").cast(pl.Int64))  # type: ignore[union-attr]
    n = pl.from_arrow(near).select(pl.col("a").cast(pl.Int64).alias("i"),  # type: ignore[union-attr]
                                   pl.col("b").cast(pl.Int64).alias("target"), pl.col("j").cast(pl.Float32))
    copies = e.join(n.rename({"i": "rep", "target": "s", "j": "sj"}), on="rep", how="left")
    copies = copies.select("i", pl.coalesce("s", "rep").alias("target"),
                           pl.coalesce("sj", pl.lit(1.0, dtype=pl.Float32)).alias("j"),
                           pl.col("s").is_null().alias("exact"))
    return pl.concat([copies, n.with_columns(pl.lit(False).alias("exact"))]).to_arrow()


def survivor_ids(drops: Any, group: Group) -> Any:
    """``drops`` with the id of each row's survivor (``kept_id``), read from its group."""
    df = pl.from_arrow(drops)
    ids = read_rows(group, df["target"].to_numpy(), ["id"])  # type: ignore[index]
    ids = ids.rename({"idx": "target", "id": "kept_id"})
    return df.join(ids, on="target", how="left").to_arrow()  # type: ignore[union-attr]


def _decided_frame(df: pl.DataFrame) -> pl.DataFrame:
    """The decided rows (:data:`ROW_INDEX` and the columns dropped rows get) of ``df``."""
    reasons = [f"exact duplicate of {kid}" if ex else f"near-duplicate of {kid} (J={x:.2f})"
               for kid, ex, x in zip(df["kept_id"].to_list(), df["exact"].to_list(), df["j"].to_list())]
    return df.select(
        pl.col("i").alias(ROW_INDEX), pl.col("kept_id").alias("duplicate_of"),
        pl.col("j").cast(pl.Float32).round(4).alias("duplicate_jaccard"),
        pl.lit("dedup", dtype=pl.String).alias("drop_stage"),
        pl.when(pl.col("exact")).then(pl.lit("exact-duplicate")).otherwise(pl.lit("near-duplicate"))
        .alias("drop_code"),
        pl.Series("drop_reason", reasons, dtype=pl.String))


def write_decided(drops: Any, group: Group, decided: str) -> tuple[Any, dict[str, int]]:
    """The decided file of each part of the group (``drops``: the group's
    dropped rows, with ``kept_id``); returns their clusters.parquet rows and counts."""
    df = pl.from_arrow(drops).sort("i")  # type: ignore[union-attr]
    own = read_rows(group, df["i"].to_numpy(), ["id"]).rename({"idx": "i"})
    df = df.join(own, on="i", how="left", maintain_order="left")
    dec = _decided_frame(df)
    for i, lo, hi, _ in group.parts:  # an empty one too: the dropped rows' columns, none dropped
        parts.write_part(dec.filter((pl.col(ROW_INDEX) >= lo) & (pl.col(ROW_INDEX) < hi)), decided, i)
    counts = {"exact": int(df["exact"].sum()), "near": int((~df["exact"]).sum())}
    return df.select("i", pl.col("target").alias("s"), "id", "kept_id", "j", "exact").to_arrow(), counts


def write_clusters(path: str, *fragments: Any) -> dict[str, Any]:
    """clusters.parquet from every dropped row (one task: O(dropped rows)), as
    :func:`~.decision.decide` writes it; returns the cluster counts of the stats."""
    df = pl.from_arrow(concat(*fragments)) if fragments else pl.DataFrame()
    schema = {"cluster": pl.UInt32, "id": pl.String, "kept": pl.Boolean, "jaccard": pl.Float32,
              "match": pl.String, "kept_id": pl.String}
    if not df.height:  # type: ignore[union-attr]
        write_table(pl.DataFrame(schema=schema), path)
        return cluster_sizes(np.zeros(0, dtype=np.int64))
    survivors = df.select(pl.col("s").alias("i"), "s", pl.col("kept_id").alias("id"), "kept_id").unique("s")  # type: ignore[union-attr]
    rows = pl.concat([
        survivors.with_columns(pl.lit(1.0, dtype=pl.Float32).alias("j"), pl.lit("kept").alias("match")),
        df.select("i", "s", "id", "kept_id", pl.col("j").cast(pl.Float32),  # type: ignore[union-attr]
                  pl.when(pl.col("exact")).then(pl.lit("exact")).otherwise(pl.lit("near")).alias("match"))])
    clusters = (rows.with_columns(pl.col("s").rank("dense").cast(pl.UInt32).sub(1).alias("cluster"))
                .sort("cluster", "i")
                .select("cluster", "id", (pl.col("i") == pl.col("s")).alias("kept"),
                        pl.col("j").round(4).alias("jaccard"), "match", "kept_id"))
    write_table(clusters, path)
    return cluster_sizes(clusters.group_by("cluster").len()["len"].to_numpy())


def _candidates(groups: list[Group], ex: list[Any], bands: int, cfg: Any, n_parts: int) -> tuple[list[Any], int]:
    """Phase 2: the candidate pairs (object refs) and the empty rows counted on the way."""
    import ray

    band = ray.remote(num_returns=2)(band_rows)
    made = [band.remote(g, e, bands) for g, e in zip(groups, route(ex, "i", [g.lo for g in groups]))]
    empty = sum(ray.get([m[1] for m in made]))
    keys = shuffle([m[0] for m in made], "key", n_parts)
    pairs = apply(bucket_pairs, keys, max_bucket=cfg.max_bucket)
    return apply(unique_pairs, shuffle(pairs, "a", n_parts)), empty


def _decisions(groups: list[Group], ex: list[Any], near: list[Any], n_parts: int, decided: str,
               clusters_path: str) -> tuple[dict[str, int], dict[str, Any]]:
    """Phase 5: the decided files and clusters.parquet; the counts by kind and the clusters'."""
    import ray

    bounds = [g.lo for g in groups]
    drops = apply(follow, shuffle(ex, "rep", n_parts), shuffle(near, "a", n_parts))
    named = [ray.remote(survivor_ids).remote(d, g) for d, g in zip(route(drops, "target", bounds), groups)]
    written = [ray.remote(num_returns=2)(write_decided).remote(d, g, decided)
               for d, g in zip(route(named, "i", bounds), groups)]
    sizes = ray.get(ray.remote(write_clusters).remote(clusters_path, *[w[0] for w in written]))
    kinds = {"exact": 0, "near": 0}
    for c in ray.get([w[1] for w in written]):
        kinds = {k: kinds[k] + c[k] for k in kinds}
    return kinds, sizes


def decide(sides: list[Any], decided: str, cfg: Any, clusters_path: str) -> dict[str, Any]:
    """Every phase on Ray over the side tables ``sides``: the decided files written under
    ``decided`` and clusters.parquet at ``clusters_path``; returns the stage's stats."""
    import ray

    timings: dict[str, float] = {}
    t = t0 = time.perf_counter()
    rows_in = sides[-1].hi - sides[0].lo if sides else 0
    if not rows_in:
        sizes = write_clusters(clusters_path)
        counts = {"candidate_pairs": 0, "verified_pairs": 0, "executor": "ray"}
        return dedup_stats(cfg, sizes, {k: 0 for k in KINDS}, 0, counts, timings, lsh_params(cfg), None)
    n_parts = max(default_partitions(), -(-rows_in // PARTITION_ROWS))  # a partition's memory stays bounded
    groups = groups_of(sides, n_parts)
    bands, rows = lsh_params(cfg)
    ex = apply(exact_members, shuffle([s.path for s in sides], "hk", n_parts, fn=exact_rows))
    ray.wait(ex, num_returns=len(ex))
    timings["exact"] = time.perf_counter() - t
    t = time.perf_counter()
    cand, empty = _candidates(groups, ex, bands, cfg, n_parts)
    n_cand = sum(ray.get(apply(num_rows, cand)))
    timings["candidates"] = time.perf_counter() - t
    t = time.perf_counter()
    verified = estimate(cand, groups, cfg.num_perm, cfg.threshold)
    n_verified = sum(ray.get(apply(num_rows, verified)))
    timings["verify"] = time.perf_counter() - t
    t = time.perf_counter()
    pairs, rounds = components(verified, n_parts)
    near = estimate(pairs, groups, cfg.num_perm, None)
    timings["components"] = time.perf_counter() - t
    t = time.perf_counter()
    kinds, sizes = _decisions(groups, ex, near, n_parts, decided, clusters_path)
    timings["decisions"] = time.perf_counter() - t
    counts = {"candidate_pairs": int(n_cand), "verified_pairs": int(n_verified), "executor": "ray",
              "partitions": n_parts, "label_rounds": rounds, "ray_seconds": round(time.perf_counter() - t0, 3)}
    kinds = {**kinds, "against_exact": 0, "against_near": 0}
    return dedup_stats(cfg, sizes, kinds, empty, counts, timings, (bands, rows), None)
