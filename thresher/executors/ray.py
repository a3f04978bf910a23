"""The Ray executor: a row-wise stage on a Ray cluster (``--executor ray``).

:class:`RayExecutor` runs a :class:`~thresher.executor.RowStage` as ``ray.data``
``map_batches`` over its ``process_batch``: model stages (``loads_model``: generate,
score, eval) in an actor pool (one model load per actor, ``num_gpus`` per actor when the
cluster has GPUs, vLLM tensor parallelism through a placement group from
``ray_remote_args_fn``), the others as tasks. Every batch's output is written by the worker
as a Parquet shard into the stage folder (``ray-shards/``); a rerun after a crash or a killed
driver processes only the rows no shard holds yet. The driver then runs the stage's
``finalize`` with a context from ``setup`` plus the workers' summed counters, and
:func:`thresher.executor.run_stage` writes kept/dropped/stats and the manifest exactly as
for the local executor. The cluster session and the executor setting are
:mod:`thresher.executors.ray_session`.

Multi-node clusters need the run folder on a filesystem every node sees (NFS, a mounted
bucket): workers write their shards there.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from thresher.errors import ThresherError
from thresher.executors.ray_session import (
    cluster_cpus,
    cluster_gpus,
    ray_actors,
    ray_address,
    session,
)
from thresher.executors.rows import ROW_INDEX, BatchFn, in_order

SHARDS = "ray-shards"


# --- row-wise stages as map_batches ----------------------------------------------------------

def _shard_name(start: int, rows: int) -> str:
    return f"part-{start:010d}-{rows:08d}.parquet"


def _parse_shard(name: str) -> tuple[int, int] | None:
    parts = name[:-len(".parquet")].split("-") if name.endswith(".parquet") else []
    if len(parts) != 3 or parts[0] != "part" or not (parts[1].isdigit() and parts[2].isdigit()):
        return None
    return int(parts[1]), int(parts[2])


def _prepare_shards(shard_dir: Any, plan: dict[str, Any]) -> list[tuple[int, int]]:
    """Finished shards ``(start, rows)`` of the same plan; a changed plan clears the folder."""
    import json
    import shutil

    from thresher.io.atomic import write_text_atomic

    plan_path = shard_dir / "plan.json"
    try:
        same = json.loads(plan_path.read_text()) == json.loads(json.dumps(plan))
    except (OSError, ValueError):
        same = False
    if not same:
        shutil.rmtree(shard_dir, ignore_errors=True)
        shard_dir.mkdir(parents=True, exist_ok=True)
        write_text_atomic(plan_path, json.dumps(plan, indent=2))
        return []
    return sorted(s for f in shard_dir.iterdir() if (s := _parse_shard(f.name)) is not None)


def _pending(n: int, done: list[tuple[int, int]], shard_rows: int) -> list[tuple[int, int]]:
    """Slices ``(start, rows)`` of at most ``shard_rows`` covering the rows no shard holds."""
    import numpy as np

    todo = np.ones(n, dtype=bool)
    for s, r in done:
        todo[s:s + r] = False
    out: list[tuple[int, int]] = []
    idx = np.flatnonzero(todo)
    if not len(idx):
        return out
    breaks = np.flatnonzero(np.diff(idx) != 1) + 1
    for run in np.split(idx, breaks):
        for s in range(int(run[0]), int(run[-1]) + 1, shard_rows):
            out.append((s, min(shard_rows, int(run[-1]) + 1 - s)))
    return out


class ShardWriter:
    """The ``map_batches`` UDF: ``process_batch`` on one batch, written as a Parquet shard.

    A callable class, so in an actor pool :meth:`RowStage.setup` (the model load) runs once
    per actor. Returns one summary row per batch (rows, kept, seconds, counters) for the
    driver's progress; the rows themselves go to ``shard_dir``, never through the driver.
    """

    def __init__(self, impl: Any, config: Any, where: str, shard_dir: str):
        self.fn = BatchFn(impl, config, where)
        self.shard_dir = shard_dir

    def __call__(self, batch: Any) -> Any:
        import json
        import time
        from pathlib import Path

        import polars as pl
        import pyarrow as pa

        from thresher.io.atomic import atomic_path, write_text_atomic

        t0 = time.perf_counter()
        before = dict(self.fn.context.counters)
        out = pl.from_arrow(self.fn(batch))
        rows = batch.num_rows
        start = int(pl.from_arrow(batch.column(ROW_INDEX)).min())
        delta = {k: v - before.get(k, 0) for k, v in self.fn.context.counters.items()}
        shard = Path(self.shard_dir) / _shard_name(start, rows)
        # the counters first: a shard file never exists without them
        write_text_atomic(shard.with_suffix(".counters.json"), json.dumps(delta))
        with atomic_path(shard) as tmp:
            out.write_parquet(tmp)
        kept = int(out["drop_stage"].is_null().sum()) if "drop_stage" in out.columns else out.height
        return pa.table({"rows": [rows], "kept": [kept], "seconds": [time.perf_counter() - t0],
                         "counters": [json.dumps(delta)]})


_WORKER_FNS: dict[str, ShardWriter] = {}


def _shard_task(batch: Any, impl: Any, config: Any, where: str, shard_dir: str) -> Any:
    """Task form of :class:`ShardWriter` for stateless stages: one setup per worker process."""
    key = f"{shard_dir}\n{config!r}"  # worker processes outlive runs: never reuse another config's setup
    fn = _WORKER_FNS.get(key)
    if fn is None:
        _WORKER_FNS.clear()
        fn = _WORKER_FNS[key] = ShardWriter(impl, config, where, shard_dir)
    return fn(batch)


def _tensor_parallel(config: Any) -> int:
    return int(getattr(config, "tensor_parallel_size", 1) or 1)


def _placement_args(tp: int) -> Callable[[], dict[str, Any]]:
    """``ray_remote_args_fn`` for vLLM with tensor parallelism: each actor gets a placement
    group of ``tp`` GPU bundles on one node (vLLM's engine workers use the bundles)."""

    def fn() -> dict[str, Any]:
        import ray
        from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

        pg = ray.util.placement_group([{"GPU": 1, "CPU": 1}] * tp, strategy="STRICT_PACK")
        return {"scheduling_strategy": PlacementGroupSchedulingStrategy(
            pg, placement_group_capture_child_tasks=True)}

    return fn


def _map_options(impl: Any, config: Any) -> dict[str, Any]:
    """How ``map_batches`` runs the stage: actors for model stages, tasks otherwise."""
    if not impl.loads_model:  # a stage that loads a model runs in an actor pool (one load per actor)
        return {"compute_actors": False}
    gpus = cluster_gpus()
    tp = _tensor_parallel(config)
    actors = ray_actors() or (max(1, gpus // tp) if gpus else max(1, cluster_cpus() // 2))
    opts: dict[str, Any] = {"compute_actors": True, "concurrency": actors}
    if gpus and tp > 1:
        opts["num_gpus"] = 0  # the placement group holds the GPUs
        opts["ray_remote_args_fn"] = _placement_args(tp)
    elif gpus:
        opts["num_gpus"] = 1
    return opts


def actor_options(impl: Any, config: Any) -> tuple[int, Callable[[], dict[str, Any]]]:
    """For a model stage (``loads_model``) run by actors outside ``map_batches``: how many
    actors, and a function giving one actor's remote options (a GPU each when the cluster has
    GPUs; a placement group of ``tensor_parallel_size`` GPUs with vLLM tensor parallelism)."""
    opts = _map_options(impl, config)
    count = int(opts.get("concurrency") or 1)

    def one() -> dict[str, Any]:
        out = {"num_gpus": opts["num_gpus"]} if "num_gpus" in opts else {}
        args_fn = opts.get("ray_remote_args_fn")
        return {**out, **(args_fn() if args_fn else {})}

    return count, one


def _shard_rows(impl: Any, n: int) -> int:
    rows = getattr(impl, "batch_rows", None)
    if rows:
        return int(rows)
    return max(1, min(2000, -(-n // (4 * cluster_cpus()))))  # a few shards per worker


def _run_dataset(impl: Any, config: Any, where: str, shard_dir: Any, slices: list[Any]) -> None:
    """Run the pending slices through ``map_batches`` (progress in rows/s)."""
    import time

    import ray.data

    from thresher.progress import info, progress

    opts = _map_options(impl, config)
    actors = opts.pop("compute_actors")
    ds = ray.data.from_arrow(slices)
    common = {"batch_size": None, "batch_format": "pyarrow"}
    if actors:
        ds = ds.map_batches(ShardWriter, fn_constructor_args=(impl, config, where, str(shard_dir)),
                            **common, **opts)
    else:
        ds = ds.map_batches(_shard_task, fn_args=(impl, config, where, str(shard_dir)), **common)
    total = sum(s.num_rows for s in slices)
    done, t0 = 0, time.perf_counter()
    with progress(total, f"{impl.name} (ray)", extra="{task.fields[rows_s]:.0f} rows/s") as bar:
        for summary in ds.iter_batches(batch_size=None, batch_format="pyarrow"):
            for row in summary.to_pylist():
                done += row["rows"]
                bar.advance(row["rows"], rows_s=done / max(time.perf_counter() - t0, 1e-9))
    seconds = time.perf_counter() - t0
    info(f"{impl.name}: {done} rows on Ray in {seconds:.1f} s ({done / max(seconds, 1e-9):.0f} rows/s "
         f"across the cluster)")


def user_error(exc: BaseException) -> BaseException | None:
    """The :class:`ThresherError` a Ray worker raised, found in Ray's wrapping exceptions."""
    seen: set[int] = set()
    todo: list[Any] = [exc]
    while todo:
        e = todo.pop()
        if e is None or id(e) in seen:
            continue
        seen.add(id(e))
        cause = getattr(e, "cause", None)
        if isinstance(e, ThresherError) and cause is None and type(e).__module__.startswith("thresher"):
            return e
        todo += [cause, e.__cause__, e.__context__]
    return None


def _shard_counters(files: list[Any]) -> dict[str, float]:
    """The stage's counters summed over every shard (finished before a crash or now)."""
    import json

    counters: dict[str, float] = {}
    for f in files:
        try:
            items = json.loads(f.with_suffix(".counters.json").read_text()).items()
        except (OSError, ValueError):
            continue
        for k, v in items:
            counters[k] = counters.get(k, 0) + v
    return counters


def run_batches_ray(impl: Any, table: Any, config: Any, where: str,
                    stage: Any) -> tuple[Any, Any, dict[str, Any], Any]:
    """A row-wise stage on Ray (see the module docstring): ``(kept, dropped, stats, context)``
    as :class:`~thresher.executors.local.LocalExecutor` returns them."""
    context = impl.setup(config, where, stage)  # on the driver too: fails fast, and for finalize
    try:
        with session(ray_address()):
            kept, dropped, files = _run_shards(impl, table, config, where, stage)
        for k, v in _shard_counters(files).items():
            context.count(k, v)
        kept, dropped, stats = impl.finalize(in_order(kept), in_order(dropped), context)
    finally:
        impl.teardown(context)
    stats = {**stats, "executor": "ray", "shards": len(files)}
    return in_order(kept, drop=True), in_order(dropped, drop=True), stats, context


def _run_shards(impl: Any, table: Any, config: Any, where: str, stage: Any) -> tuple[Any, Any, list[Any]]:
    """The pending shards on Ray, then every shard read back: ``(kept, dropped, files)``."""
    import polars as pl

    from thresher.progress import info

    numbered = table.with_row_index(ROW_INDEX)
    shard_rows = _shard_rows(impl, numbered.height)
    shard_dir = stage.out / SHARDS
    fingerprint = {k: v for k, v in stage.fingerprint.items() if k != "thresher"}
    plan = {"fingerprint": fingerprint, "rows": numbered.height, "shard_rows": shard_rows}
    done = _prepare_shards(shard_dir, plan)
    todo = _pending(numbered.height, done, shard_rows)
    if done:
        info(f"{impl.name}: reusing {len(done)} finished shards ({sum(r for _, r in done)} rows) "
             f"from {shard_dir}")
    if todo:
        try:
            _run_dataset(impl, config, where, shard_dir, [numbered.slice(s, r).to_arrow() for s, r in todo])
        except Exception as e:  # a worker's ThresherError arrives wrapped (with its traceback)
            cause = user_error(e)
            if cause is None:
                raise
            raise ThresherError(str(cause).strip().splitlines()[0]) from None
    files = sorted(p for p in shard_dir.iterdir() if _parse_shard(p.name))
    kept, dropped = BatchFn.split(pl.concat([pl.read_parquet(p) for p in files], how="diagonal_relaxed"))
    return kept, dropped, files


class RayExecutor:
    """Row-wise stages on the Ray cluster of :func:`~thresher.executors.ray_session.session`."""

    name = "ray"

    def run_rows(self, impl: Any, config: Any, table: Any, stage: Any,
                 where: str) -> tuple[Any, Any, dict[str, Any], Any]:
        """``(kept, dropped, stats, context)``, as :class:`~thresher.executors.local.LocalExecutor`
        returns them (``stats`` adds ``executor: ray`` and the number of shards)."""
        return run_batches_ray(impl, table, config, where, stage)
