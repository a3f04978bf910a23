"""Hash-partitioned tables over plain Ray tasks, for the distributed dedup (:mod:`.distributed`).

A partitioned table is a list of object refs of Arrow tables, one per partition.
:func:`shuffle` repartitions blocks on an integer column, :func:`apply` runs a function per
partition and :func:`gather` brings the partitions to the driver: the distributed dedup's
joins and its iterative connected components, where an iteration costs milliseconds of
scheduling instead of a Ray Data execution's start-up.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from thresher.executors.ray_session import cluster_cpus


def default_partitions() -> int:
    """Partitions for the shuffles: two per CPU of the cluster."""
    return max(2, 2 * cluster_cpus())


def _remote(fn: Callable[..., Any], **options: Any) -> Any:
    import ray

    return ray.remote(**options)(fn) if options else ray.remote(fn)


def split_table(table: Any, key: str, parts: int, fn: Callable[[Any], Any] | None,
                bounds: Sequence[int] | None = None) -> tuple:
    """Map side of a shuffle: apply ``fn``, then split rows by ``hash(key) % parts``, or with
    ``bounds`` by range (part ``p``: ``bounds[p] <= key < bounds[p + 1]``, the last unbounded)."""
    import numpy as np
    import pyarrow as pa

    if fn is not None:
        table = fn(table)
    if table.num_rows == 0:
        empty = table.slice(0, 0)
        return tuple(empty for _ in range(parts)) if parts > 1 else empty
    if bounds is not None:
        values = table.column(key).to_numpy().astype(np.int64, copy=False)
        part = np.maximum(np.searchsorted(np.asarray(bounds, dtype=np.int64), values, side="right") - 1, 0)
        part = part.astype(np.uint64)
    else:
        values = table.column(key).to_numpy().astype(np.uint64, copy=False)
        part = ((values * np.uint64(0x9E3779B97F4A7C15)) >> np.uint64(40)) % np.uint64(parts)
    order = np.argsort(part, kind="stable")
    bounds = np.searchsorted(part[order], np.arange(parts + 1, dtype=np.uint64))
    table = table.take(pa.array(order))
    out = tuple(table.slice(int(bounds[p]), int(bounds[p + 1] - bounds[p])) for p in range(parts))
    return out if parts > 1 else out[0]


def concat(*tables: Any) -> Any:
    """Arrow tables as one (columns promoted where the types differ)."""
    import pyarrow as pa

    return pa.concat_tables(tables, promote_options="permissive") if len(tables) > 1 else tables[0]


def shuffle(blocks: Sequence[Any], key: str, parts: int,
            fn: Callable[[Any], Any] | None = None, bounds: Sequence[int] | None = None) -> list[Any]:
    """Hash-partition Arrow blocks (object refs) on the integer column ``key``.

    ``fn`` (optional) transforms each block on the map side first (a block may then be any
    argument ``fn`` takes, e.g. a file name). Returns ``parts`` object refs; partition ``p``
    holds every row whose ``key`` hashes to ``p`` (with ``bounds``: falls in range ``p``).
    """
    split = _remote(split_table, num_returns=parts)
    maps = [split.remote(b, key, parts, fn, bounds) for b in blocks]
    if parts == 1:
        maps = [[m] for m in maps]
    concat_task = _remote(concat)
    return [concat_task.remote(*[m[p] for m in maps]) for p in range(parts)]


def route(blocks: Sequence[Any], key: str, bounds: Sequence[int],
          fn: Callable[[Any], Any] | None = None) -> list[Any]:
    """Range-partition Arrow blocks on the integer column ``key``: one object ref per range
    ``[bounds[p], bounds[p + 1])`` (rows below ``bounds[0]`` go to the first)."""
    return shuffle(blocks, key, len(bounds), fn, bounds)


def apply(fn: Callable[..., Any], *partitions: Sequence[Any], **kwargs: Any) -> list[Any]:
    """Run ``fn(part_a[p], part_b[p], ..., **kwargs)`` as one task per partition ``p``."""
    task = _remote(fn)
    return [task.remote(*args, **kwargs) for args in zip(*partitions)]


def gather(refs: Sequence[Any]) -> Any:
    """Fetch and concatenate Arrow tables (object refs) on the driver."""
    import ray

    return concat(*ray.get(list(refs)))
