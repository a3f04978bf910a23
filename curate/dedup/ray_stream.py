"""Dedup of streamed rows on Ray, every decision in Ray tasks (issue 24, section 4).

:mod:`thresher.executors.global_ray` runs the stage: the workers read the parts and write
each part's **side table** (:func:`side_table`: row number, id, survivor key, exact hash,
non-empty flag, MinHash signature and band keys); then :func:`decide` runs the phases of the
local engine (:mod:`.engine`) as Ray tasks over those files, with the same parameters and
the same result (kept rows, reasons, clusters, counts):

1. **exact** -- the non-empty rows hash-partitioned on their exact hash; each group of equal
   texts keeps its best-ranked row. The survivor rank is the pair ``(key, row)``: ``key``
   orders the ``keep_by`` values highest first (null and NaN last, as
   :func:`~.decision.survivor_order`), the row number breaks ties, so no global sort is needed.
2. **candidates** -- the band keys of the representatives (each group of parts reads its own
   side tables, less the rows the exact phase dropped), hash-partitioned on ``(band, key)``,
   paired as :func:`~.lsh.candidate_pairs` pairs them.
3. **verify** -- pairs routed to the group of parts holding their first row, which reads just
   those rows' signatures (by row group) and attaches them; then routed by their second row;
   the Jaccard estimate is computed there and pairs below the threshold dropped.
4. **components** -- min-label propagation over the verified pairs, each label the
   ``(key, row)`` rank of a node, until no label changes: a component's label is its survivor.
5. **decisions** -- each dropped row's survivor (an exact copy follows its representative),
   the survivor's id read from its group's side tables, the reasons written per part as the
   *decided* files; clusters.parquet written by one task from the dropped rows (O(dropped)).

The driver holds the list of parts, object refs and counts. The workers hold a partition of
the exact hashes (about 40 bytes a row) and of the band keys (``14 * bands`` bytes a row) at a
time; the signatures stay in the side tables on disk.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl

from thresher.curate.dedup.decision import lsh_params
from thresher.curate.dedup.distributed import fsb, unfsb
from thresher.errors import ThresherError
from thresher.executors.rows import ROW_INDEX
from thresher.executors.shuffle import apply, concat, route, shuffle

#: label propagation stops after this many rounds even if labels still change (never seen)
MAX_ROUNDS = 10_000
#: the key of a row without a keep_by value (last)
NO_KEY = np.uint64(2**64 - 1)
#: the side table's columns besides ``idx`` that :func:`read_rows` reads
SIDE_TYPES = {"id": pl.String, "k": pl.UInt64, "sig": pl.Binary, "keys": pl.Binary, "ne": pl.Boolean}


# --- side tables (on the workers, per part) ------------------------------------------------------

def rank_keys(values: pl.Series | None, n: int) -> np.ndarray:
    """``uint64`` keys whose ascending order is the survivor order of ``values`` (highest
    first; null and NaN last; None: all equal, so the row number decides)."""
    if values is None or values.dtype == pl.Null:
        return np.full(n, NO_KEY, dtype=np.uint64)
    if values.dtype.is_temporal():
        values = values.to_physical()
    v = values.cast(pl.Float64).fill_nan(None)
    null = v.is_null().to_numpy()
    arr = v.fill_null(0.0).to_numpy().astype(np.float64) + 0.0  # -0.0 sorts as 0.0
    bits = arr.view(np.uint64)
    sortable = np.where(bits >> np.uint64(63) == 1, ~bits, bits | np.uint64(1 << 63))
    keys = ~sortable
    keys[null] = NO_KEY
    return keys


def side_table(batch: pl.DataFrame, cfg: Any, where: str) -> pl.DataFrame:
    """One part's side table (``batch`` numbered in :data:`ROW_INDEX`)."""

    from thresher.curate.dedup import _kernels
    from thresher.curate.dedup.normalize import options_of
    from thresher.curate.dedup.streaming import sign_rows

    keep_by = cfg.keep_by
    if keep_by and keep_by not in batch.columns and int(batch[ROW_INDEX][0]) == 0:
        raise ThresherError(f"{where}: keep_by column {keep_by!r} not found "
                            f"(columns: {', '.join(c for c in batch.columns if c != ROW_INDEX)})")
    values = batch[keep_by] if keep_by and keep_by in batch.columns else None
    if values is not None and values.dtype != pl.Null and not (
            values.dtype.is_numeric() or values.dtype == pl.Boolean or values.dtype.is_temporal()):
        raise ThresherError(f"{where}: keep_by column {keep_by!r} is {values.dtype}, not a number "
                            "(keep_by keeps the highest value, e.g. a score_* column)")
    bands, rows = lsh_params(cfg)
    frames = []
    for s in range(0, batch.height, cfg.chunk_rows):
        chunk = batch.slice(s, cfg.chunk_rows)
        digests, nonempty, sig, _ = sign_rows(chunk, cfg, options_of(cfg))
        keys = np.empty((chunk.height, bands), dtype=np.uint64)
        if chunk.height:
            _kernels.band_keys(sig, bands, rows, keys)
        frames.append(pl.DataFrame({
            "idx": chunk[ROW_INDEX].cast(pl.Int64), "id": chunk["id"].cast(pl.String),
            "k": rank_keys(values.slice(s, cfg.chunk_rows) if values is not None else None, chunk.height),
            "h": pl.Series(digests, dtype=pl.Binary),
            "hk": np.array([int.from_bytes(d[:8], "little") for d in digests], dtype=np.uint64),
            "ne": nonempty, "sig": pl.from_arrow(fsb(sig)), "keys": pl.from_arrow(fsb(keys))}))
    if not frames:
        return pl.DataFrame(schema={"idx": pl.Int64, "id": pl.String, "k": pl.UInt64, "h": pl.Binary,
                                    "hk": pl.UInt64, "ne": pl.Boolean, "sig": pl.Binary, "keys": pl.Binary})
    return pl.concat(frames)


# --- reading side tables ------------------------------------------------------------------------

@dataclass(frozen=True)
class Group:
    """Consecutive parts' side tables: ``parts`` are ``(i, lo, hi, path)`` in row order (part
    ``i`` numbers its rows ``lo .. hi - 1``)."""

    parts: tuple[tuple[int, int, str], ...]

    @property
    def lo(self) -> int:
        return self.parts[0][1]


def groups_of(sides: list[Any], count: int) -> list[Group]:
    """``sides`` (:class:`~thresher.executors.global_ray.SidePart`, in order) cut into at most
    ``count`` groups of consecutive parts."""
    count = max(1, min(count, len(sides)))
    cuts = np.linspace(0, len(sides), count + 1).round().astype(int)
    return [Group(tuple((s.i, s.lo, s.hi, s.path) for s in sides[a:b])) for a, b in zip(cuts[:-1], cuts[1:]) if b > a]


def read_rows(group: Group, idx: np.ndarray, columns: list[str]) -> pl.DataFrame:
    """The side-table rows ``idx`` (row numbers in the group) with ``columns`` (and ``idx``),
    reading only the row groups that hold them."""
    import pyarrow.parquet as pq

    idx = np.unique(np.asarray(idx, dtype=np.int64))
    frames = []
    for _, lo, hi, path in group.parts:
        mine = idx[(idx >= lo) & (idx < hi)]
        if not len(mine):
            continue
        f = pq.ParquetFile(path)
        starts = np.cumsum([0] + [f.metadata.row_group(r).num_rows for r in range(f.num_row_groups)])
        wanted = np.unique(np.searchsorted(starts, mine - lo, side="right") - 1)
        t = pl.from_arrow(f.read_row_groups(wanted.tolist(), columns=["idx", *columns]))
        frames.append(t.filter(pl.col("idx").is_in(pl.Series(mine))))  # type: ignore[union-attr]
    if not frames:
        return pl.DataFrame(schema={"idx": pl.Int64, **{c: SIDE_TYPES[c] for c in columns}})
    return pl.concat(frames)



def attach(pairs: Any, group: Group, col: str, columns: list[str]) -> Any:
    """``pairs`` (an Arrow table) with the side ``columns`` of their row ``col``, as
    ``<column>_<col>``."""
    df = pl.from_arrow(pairs)
    rows = read_rows(group, df[col].to_numpy(), columns)  # type: ignore[index]
    rows = rows.rename({"idx": col, **{c: f"{c}_{col}" for c in columns}})
    rows = rows.with_columns(pl.col(col).cast(df.schema[col]))  # type: ignore[union-attr]
    return df.join(rows, on=col, how="inner").to_arrow()  # type: ignore[union-attr]


# --- phase 1: exact groups ----------------------------------------------------------------------

def exact_rows(path: str) -> Any:
    """The non-empty rows of a side table: ``idx, k, h, hk``."""
    import pyarrow.parquet as pq

    t = pq.read_table(path, columns=["idx", "k", "h", "hk", "ne"])
    return t.filter(t.column("ne")).select(["idx", "k", "h", "hk"])


def exact_members(t: Any) -> Any:
    """``(i, rep)`` for each row of an exact group (this partition's) but its best-ranked."""
    df = pl.from_arrow(t).sort("k", "idx")  # type: ignore[union-attr]
    groups = df.group_by("h", maintain_order=True).agg(pl.col("idx").first().alias("rep"), pl.col("idx"))
    pairs = groups.explode("idx").filter(pl.col("idx") != pl.col("rep"))
    return pairs.select(pl.col("idx").alias("i"), "rep").to_arrow()


# --- phase 2: band keys -------------------------------------------------------------------------

def band_rows(group: Group, gone: Any, bands: int) -> tuple[Any, int]:
    """Long ``(band, key, idx)`` rows of the group's representatives, and its empty rows."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    dropped = pl.from_arrow(gone)["i"].to_numpy()  # type: ignore[index]
    out, empty = [], 0
    for _, _, _, path in group.parts:
        t = pq.read_table(path, columns=["idx", "ne", "keys"])
        idx = t.column("idx").to_numpy()
        ne = t.column("ne").to_numpy(zero_copy_only=False)
        empty += int((~ne).sum())
        sel = ne & ~np.isin(idx, dropped)
        keys = unfsb(t.column("keys"), np.uint64, bands)[sel]
        out.append(pa.table({
            "band": pa.array(np.tile(np.arange(bands, dtype=np.uint16), len(keys))),
            "key": pa.array(keys.reshape(-1)),
            "idx": pa.array(np.repeat(idx[sel].astype(np.uint32), bands))}))
    return concat(*out), empty


# --- phase 3: pairs and their Jaccard estimates -------------------------------------------------

def score(t: Any, num_perm: int, threshold: float | None) -> Any:
    """``(a, b, k_a, k_b, j)``: the estimated Jaccard of each pair, those below ``threshold``
    left out (as :func:`~.lsh.verify`)."""
    df = pl.from_arrow(t)
    a = unfsb(df["sig_a"].to_arrow(), np.uint32, num_perm)  # type: ignore[index]
    b = unfsb(df["sig_b"].to_arrow(), np.uint32, num_perm)  # type: ignore[index]
    j = ((a == b).sum(axis=1) / num_perm).astype(np.float32)
    out = df.select("a", "b", "k_a", "k_b").with_columns(pl.Series("j", j, dtype=pl.Float32))  # type: ignore[union-attr]
    if threshold is not None:
        out = out.filter(pl.col("j") >= np.float32(threshold) - np.float32(1e-6))
    return out.to_arrow()


def estimate(pairs: list[Any], groups: list[Group], num_perm: int, threshold: float | None) -> list[Any]:
    """Pairs ``(a, b)`` (object refs) -> ``(a, b, k_a, k_b, j)`` per group of ``b``."""
    import ray

    bounds = [g.lo for g in groups]
    task = ray.remote(attach)
    with_a = [task.remote(p, g, "a", ["k", "sig"]) for p, g in zip(route(pairs, "a", bounds), groups)]
    with_b = [task.remote(p, g, "b", ["k", "sig"]) for p, g in zip(route(with_a, "b", bounds), groups)]
    return apply(score, with_b, num_perm=num_perm, threshold=threshold)


# --- phase 4: components by min-label propagation over (key, row) -------------------------------

def init_labels(by_a: Any, by_b: Any) -> Any:
    """Every node of this partition labelled with its own rank ``(lk, li)``."""
    a = pl.from_arrow(by_a).select(pl.col("a").cast(pl.Int64).alias("v"), pl.col("k_a").alias("lk"))  # type: ignore[union-attr]
    b = pl.from_arrow(by_b).select(pl.col("b").cast(pl.Int64).alias("v"), pl.col("k_b").alias("lk"))  # type: ignore[union-attr]
    return pl.concat([a, b]).unique("v").with_columns(pl.col("v").alias("li")).to_arrow()


def propose(edges: Any, labels: Any, src: str, dst: str) -> Any:
    """Each edge proposes its ``src`` node's label to its ``dst`` node: ``(v, lk, li)``."""
    e = pl.from_arrow(edges).select(pl.col(src).cast(pl.Int64), pl.col(dst).cast(pl.Int64))  # type: ignore[union-attr]
    lab = pl.from_arrow(labels).select(pl.col("v").alias(src), "lk", "li")  # type: ignore[union-attr]
    return e.join(lab, on=src, how="inner").select(pl.col(dst).alias("v"), "lk", "li").to_arrow()


def relabel(labels: Any, proposals: Any) -> Any:
    """Each node's smallest label of its own and the proposals; ``changed`` marks movers."""
    old = pl.from_arrow(labels).select("v", "lk", "li")  # type: ignore[union-attr]
    every = pl.concat([old, pl.from_arrow(proposals).select("v", "lk", "li")])  # type: ignore[union-attr]
    best = every.sort("v", "lk", "li").group_by("v", maintain_order=True).first()
    out = old.join(best, on="v", suffix="_new")
    return out.select("v", pl.col("lk_new").alias("lk"), pl.col("li_new").alias("li"),
                      (pl.col("li_new") != pl.col("li")).alias("changed")).to_arrow()


def changed(t: Any) -> int:
    return int(pl.from_arrow(t)["changed"].sum())  # type: ignore[index]


def members(t: Any) -> Any:
    """``(a, b)``: each node ``a`` whose component's survivor ``b`` is another row."""
    df = pl.from_arrow(t).filter(pl.col("v") != pl.col("li"))  # type: ignore[union-attr]
    return df.select(pl.col("v").cast(pl.UInt32).alias("a"), pl.col("li").cast(pl.UInt32).alias("b")).to_arrow()


def components(verified: list[Any], parts: int) -> tuple[list[Any], int]:
    """``(a, b)`` per partition: each member ``a`` of a component and its survivor ``b``; the
    rounds taken."""
    import ray

    by_a, by_b = shuffle(verified, "a", parts), shuffle(verified, "b", parts)
    labels = apply(init_labels, by_a, by_b)
    rounds = 0
    while rounds < MAX_ROUNDS:
        rounds += 1
        props = apply(propose, by_a, labels, src="a", dst="b") + apply(propose, by_b, labels, src="b", dst="a")
        labels = apply(relabel, labels, shuffle(props, "v", parts))
        if sum(ray.get(apply(changed, labels))) == 0:
            break
    return apply(members, labels), rounds
