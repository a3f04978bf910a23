"""The Ray executor: thresher's stages on a Ray cluster (``--executor ray``).

Ray is an optional extra (``pip install 'thresher[ray]'``); this module imports it lazily, so
``thresher --help`` and the local executor never need it.

- :func:`use` / :func:`current` hold the executor chosen by ``--executor`` (stage commands,
  ``thresher run``) or ``executor:`` (recipes); :func:`thresher.executor.run_stage` asks
  :func:`current` and hands row-wise stages to :func:`run_batches_ray`.
- :func:`session` connects to ``--ray-address`` (default ``$RAY_ADDRESS``) or starts a local
  cluster for the run, and shuts down only what it started.
- :func:`run_batches_ray` runs a :class:`~thresher.executor.RowStage` as ``ray.data``
  ``map_batches`` over its ``process_batch``: model stages (generate, score) in an actor pool
  (one model load per actor, ``num_gpus`` per actor when the cluster has GPUs, vLLM tensor
  parallelism through a placement group from ``ray_remote_args_fn``), the others as tasks.
  Every batch's output is written by the worker as a Parquet shard into the stage folder
  (``ray-shards/``); a rerun after a crash or a killed driver processes only the rows no shard
  holds yet. The driver then runs the stage's ``finalize`` and writes kept/dropped/stats and
  the manifest exactly as the local executor does.
- :func:`shuffle` / :func:`apply` are hash-partitioned tables (lists of object refs of Arrow
  tables, one per partition) for the distributed dedup's joins and its iterative connected
  components: plain Ray tasks, so an iteration costs milliseconds of scheduling instead of a
  Ray Data execution's start-up.

Multi-node clusters need the run folder on a filesystem every node sees (NFS, a mounted
bucket): workers write their shards there.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from thresher.errors import ThresherError

INSTALL_HINT = "--executor ray needs Ray: pip install 'thresher[ray]'"
EXECUTORS = ("local", "ray")
SHARDS = "ray-shards"
_SETTINGS: dict[str, Any] = {"executor": "local", "address": None, "actors": None}


def use(executor: str = "local", address: str | None = None, actors: int | None = None) -> None:
    """Choose the executor for the stages run from now on in this process."""
    _SETTINGS.update(executor=check_executor(executor), address=address, actors=actors)


def current() -> str:
    """The executor chosen by :func:`use` (``local`` unless ``--executor ray`` was given)."""
    return _SETTINGS["executor"]


@contextlib.contextmanager
def using(executor: str, address: str | None = None) -> Iterator[None]:
    """:func:`use` for the duration of a block (the recipe runner; on Ray, one session for
    the whole block), then restore the previous choice."""
    saved = dict(_SETTINGS)
    use(executor, address or saved.get("address"), saved.get("actors"))
    try:
        if executor == "ray":
            with session(_SETTINGS["address"]):
                yield
        else:
            yield
    finally:
        _SETTINGS.update(saved)


def require_ray() -> Any:
    """The ``ray`` module, or a one-line :class:`ThresherError` saying how to install it."""
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError:
        raise ThresherError(INSTALL_HINT) from None
    return ray


def check_executor(name: str) -> str:
    """``name`` if it is a known executor (``local`` or ``ray``), else a one-line error."""
    if name not in EXECUTORS:
        raise ThresherError(f"executor: must be one of {', '.join(EXECUTORS)}, got {name!r}")
    if name == "ray":
        require_ray()
    return name


def _quiet_data_context() -> None:
    import logging

    import ray.data

    logging.getLogger("ray").setLevel(logging.WARNING)
    logging.getLogger("ray.data").setLevel(logging.ERROR)  # "no available CPUs" while tasks run

    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = False
    ctx.print_on_execution_start = False
    with contextlib.suppress(AttributeError):
        ctx.enable_operator_progress_bars = False


@contextlib.contextmanager
def session(address: str | None = None, *, num_cpus: int | None = None) -> Iterator[Any]:
    """Use the Ray cluster at ``address`` (or ``$RAY_ADDRESS``), or start a local one.

    An already initialised Ray (a test fixture, a user's driver script) is used as it is and
    left running. A cluster this function started is shut down on exit.
    """
    ray = require_ray()
    if ray.is_initialized():
        _quiet_data_context()
        yield ray
        return
    address = address or os.environ.get("RAY_ADDRESS") or None
    kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False,
                              "configure_logging": False}
    if address is None and num_cpus is not None:
        kwargs["num_cpus"] = num_cpus
    try:
        ray.init(address=address, **kwargs)
    except ConnectionError as e:
        raise ThresherError(f"--ray-address {address}: cannot connect to a Ray cluster ({e})") from None
    try:
        _quiet_data_context()
        yield ray
    finally:
        ray.shutdown()


def cluster_cpus() -> int:
    """Number of CPUs in the connected cluster (at least 1)."""
    import ray

    return max(1, int(ray.cluster_resources().get("CPU", 1)))


def cluster_gpus() -> int:
    """Number of GPUs in the connected cluster."""
    import ray

    return int(ray.cluster_resources().get("GPU", 0))


def default_partitions() -> int:
    """Partitions for the shuffles: two per CPU of the cluster."""
    return max(2, 2 * cluster_cpus())


# --- hash-partitioned tables over Ray tasks ------------------------------------------------

def _remote(fn: Callable[..., Any], **options: Any) -> Any:
    import ray

    return ray.remote(**options)(fn) if options else ray.remote(fn)


def _split_table(table: Any, key: str, parts: int, fn: Callable[[Any], Any] | None) -> tuple:
    """Map side of a shuffle: apply ``fn``, then split rows by ``hash(key) % parts``."""
    import numpy as np
    import pyarrow as pa

    if fn is not None:
        table = fn(table)
    if table.num_rows == 0:
        empty = table.slice(0, 0)
        return tuple(empty for _ in range(parts)) if parts > 1 else empty
    values = table.column(key).to_numpy().astype(np.uint64, copy=False)
    part = ((values * np.uint64(0x9E3779B97F4A7C15)) >> np.uint64(40)) % np.uint64(parts)
    order = np.argsort(part, kind="stable")
    bounds = np.searchsorted(part[order], np.arange(parts + 1, dtype=np.uint64))
    table = table.take(pa.array(order))
    out = tuple(table.slice(int(bounds[p]), int(bounds[p + 1] - bounds[p])) for p in range(parts))
    return out if parts > 1 else out[0]


def _concat(*tables: Any) -> Any:
    import pyarrow as pa

    return pa.concat_tables(tables, promote_options="permissive") if len(tables) > 1 else tables[0]


def shuffle(blocks: Sequence[Any], key: str, parts: int,
            fn: Callable[[Any], Any] | None = None) -> list[Any]:
    """Hash-partition Arrow blocks (object refs) on the integer column ``key``.

    ``fn`` (optional) transforms each block on the map side first. Returns ``parts`` object
    refs; partition ``p`` holds every row whose ``key`` hashes to ``p``.
    """
    split = _remote(_split_table, num_returns=parts)
    maps = [split.remote(b, key, parts, fn) for b in blocks]
    if parts == 1:
        maps = [[m] for m in maps]
    concat = _remote(_concat)
    return [concat.remote(*[m[p] for m in maps]) for p in range(parts)]


def apply(fn: Callable[..., Any], *partitions: Sequence[Any], **kwargs: Any) -> list[Any]:
    """Run ``fn(part_a[p], part_b[p], ..., **kwargs)`` as one task per partition ``p``."""
    task = _remote(fn)
    return [task.remote(*args, **kwargs) for args in zip(*partitions)]


def gather(refs: Sequence[Any]) -> Any:
    """Fetch and concatenate Arrow tables (object refs) on the driver."""
    import ray

    return _concat(*ray.get(list(refs)))


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
        from thresher.executor import BatchFn

        self.fn = BatchFn(impl, config, where)
        self.shard_dir = shard_dir

    def __call__(self, batch: Any) -> Any:
        import json
        import time
        from pathlib import Path

        import polars as pl
        import pyarrow as pa

        from thresher.executor import ROW_INDEX
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
    actors = _SETTINGS.get("actors") or (max(1, gpus // tp) if gpus else max(1, cluster_cpus() // 2))
    opts: dict[str, Any] = {"compute_actors": True, "concurrency": actors}
    if gpus and tp > 1:
        opts["num_gpus"] = 0  # the placement group holds the GPUs
        opts["ray_remote_args_fn"] = _placement_args(tp)
    elif gpus:
        opts["num_gpus"] = 1
    return opts


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


def _user_error(exc: BaseException) -> BaseException | None:
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
    as :func:`thresher.executor.run_stage` gets them from the local path."""
    from thresher.executor import _in_order

    context = impl.setup(config, where, stage)  # on the driver too: fails fast, and for finalize
    try:
        with session(_SETTINGS.get("address")):
            kept, dropped, files = _run_shards(impl, table, config, where, stage)
        for k, v in _shard_counters(files).items():
            context.count(k, v)
        kept, dropped, stats = impl.finalize(_in_order(kept), _in_order(dropped), context)
    finally:
        impl.teardown(context)
    stats = {**stats, "executor": "ray", "shards": len(files)}
    return _in_order(kept, drop=True), _in_order(dropped, drop=True), stats, context


def _run_shards(impl: Any, table: Any, config: Any, where: str, stage: Any) -> tuple[Any, Any, list[Any]]:
    """The pending shards on Ray, then every shard read back: ``(kept, dropped, files)``."""
    import polars as pl

    from thresher.executor import ROW_INDEX, BatchFn
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
            cause = _user_error(e)
            if cause is None:
                raise
            raise ThresherError(str(cause).strip().splitlines()[0]) from None
    files = sorted(p for p in shard_dir.iterdir() if _parse_shard(p.name))
    kept, dropped = BatchFn.split(pl.concat([pl.read_parquet(p) for p in files], how="diagonal_relaxed"))
    return kept, dropped, files
