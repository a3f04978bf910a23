"""Streaming on Ray (``--executor ray``): the workers read and write the rows, the driver holds
projections, counts and part names.

The phases of :mod:`thresher.executors.stream`, with the per-part work on the cluster:

0. **Inputs as parts.** When the input is one finished thresher stage output (its
   ``kept.parquet``, a file or a folder of parts, beside a done manifest), the workers read its
   files themselves: one task per file, each file's rows cut into parts of
   ``THRESHER_PART_ROWS``, whose :data:`~thresher.executors.rows.ROW_INDEX` ranges come from
   the Parquet footers' row counts (the driver reads no row). Any other input is converted
   once by the driver into canonical parts under the work folder
   (:func:`thresher.io.stream.iter_inputs`: one batch in memory at a time, ids checked across
   every input as the local run does), which the workers then read.
1. **Parts.** One Ray task per file with an unfinished part (actors for a stage that
   ``loads_model``: one ``setup`` per actor), each reading its file, numbering its rows from
   its part's offset, running ``process_batch`` and writing the pass-1 parts and their markers
   itself (:func:`~thresher.executors.stream.process_part`); it returns only the parts'
   projections and counters. Parts finished before a killed driver are reused: the driver reads
   only their projection columns.
2. **finalize** on the driver, over the projections, as locally (a one-pass run's tasks wrote
   the final parts already, and their markers hold the parts' tallies).
3. **Second pass** (not in a one-pass run). One Ray task per part (:func:`~thresher.executors.stream.rewrite_part`),
   each given only its part's slice of ``finalize``'s decisions; parts whose columns differ
   are conformed by tasks too; then the parts are swapped in as the stage's result.

The work folder (``OUT/.thresher-parts``) must be on a filesystem every node sees (as the
run folder already must be).
"""

from __future__ import annotations

import contextlib
import json
import shutil
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import polars as pl

from thresher.executors.ray import actor_options, user_error
from thresher.executors.ray_session import ray_address, session
from thresher.executors.stream import (
    DroppedTable,
    PartDone,
    WorkFolder,
    conform_part,
    decisions,
    finalize_parts,
    finish_streamed,
    harmonize_plan,
    part_decisions,
    part_rows,
    process_part,
    reuse_part,
    rewrite_part,
    streamed_stats,
)
from thresher.io import parts
from thresher.io.atomic import write_text_atomic
from thresher.io.stream import part_bytes
from thresher.stage_folder import (
    DROPPED,
    KEPT,
    PARTS_WORK,
    is_stage_manifest,
    kill_point,
    read_manifest,
)

if TYPE_CHECKING:
    from thresher.executor import RowStage, StageContext
    from thresher.io.inputs import ReadOptions
    from thresher.stage import StageFolder, StageResult

#: the folder (inside the work folder) of inputs converted by the driver
CONVERTED = "inputs"


@dataclass(frozen=True)
class Source:
    """One file the workers read, and the pass-1 parts it makes: ``(i, lo, hi)`` each, part
    ``i`` numbering its rows from ``lo`` (``hi``: where the next part starts)."""

    path: str
    parts: tuple[tuple[int, int, int], ...]
    rejected: str | None = None
    """A converted input's rows rejected on read (the file is then read as it is)."""


@dataclass(frozen=True)
class Job:
    """What every task of one run shares (sent to the cluster once)."""

    impl: Any
    config: Any
    where: str
    opts: Any
    rows: int
    work: WorkFolder
    shape: DroppedTable | None = None
    """A one-pass run's (:func:`~thresher.executors.stream.process_part`); None with a second pass."""


def run_streaming_ray(stage: StageFolder, impl: RowStage, paths: list[Path], config: Any,
                      opts: ReadOptions) -> StageResult:
    """Run the row-wise stage ``impl`` on ``paths`` into ``stage`` on Ray, in parts (module
    docstring); the stats add ``executor: ray`` and ``streamed.inputs`` (``"parts"``: the
    workers read the input's own files, ``"converted"``: the driver converted it first)."""
    rows = part_rows()
    one_pass = not impl.decides(config)
    work = WorkFolder(stage.out / PARTS_WORK)
    work.open({**stage.fingerprint, "part_rows": rows, "part_bytes": part_bytes(), "executor": "ray",
               "one_pass": one_pass})
    where = ", ".join(str(p) for p in paths)
    job = Job(impl, config, where, opts, rows, work, DroppedTable(stage.name) if one_pass else None)
    with session(ray_address()), worker_errors():
        context = impl.setup(config, where, stage)  # on the driver too: fails fast, and for finalize
        try:
            sources, inputs = plan_sources(paths, opts, rows, work, quiet=stage.quiet)
            done = _first_pass(job, sources, quiet=stage.quiet)
            _add_counters(context, done)
            kept, dropped, stats, tally = finalize_parts(impl, context, done, work)
        finally:
            impl.teardown(context)
        final = _seal(job) if one_pass else _second_pass(stage, job, done, kept, dropped)
    stats = {**stats, "executor": "ray", "streamed": {**streamed_stats(done, rows), "inputs": inputs}}
    return finish_streamed(stage, work, final, tally, stats, rows_in=sum(p.rows_in for p in done),
                           artefacts=context.artefacts)


@contextlib.contextmanager
def worker_errors() -> Iterator[None]:
    """A worker's :class:`~thresher.errors.ThresherError` (wrapped by Ray, whose wrapper also subclasses it) as
    the one-line error it was."""
    try:
        yield
    except Exception as e:
        cause = user_error(e)
        if cause is None or cause is e:
            raise
        raise cause from None  # its own class and message, without Ray's remote traceback


def _add_counters(context: StageContext, done: list[PartDone]) -> None:
    for p in done:
        for name, n in p.counters.items():
            context.count(name, n)


# --- phase 0: the inputs as files the workers read ------------------------------------------

def plan_sources(paths: list[Path], opts: ReadOptions, rows: int, work: WorkFolder, *,
                 quiet: bool = False) -> tuple[list[Source], str]:
    """The files the workers read and the parts each makes: the input's own files when it is
    one finished stage output (``"parts"``), else the driver's conversion (``"converted"``)."""
    found = stage_sources(paths, opts, rows)
    if found is not None:
        return found, "parts"
    return _convert(paths, opts, rows, work, quiet), "converted"


def _finished_output(p: Path) -> bool:
    """True for the kept rows of a finished thresher stage (a file or a folder of parts)."""
    m = read_manifest(p.parent)
    return p.name == KEPT and is_stage_manifest(m) and (m or {}).get("status") == "done"


def stage_sources(paths: list[Path], opts: ReadOptions, rows: int) -> list[Source] | None:
    """One :class:`Source` per non-empty file of a single finished stage output, its parts'
    ranges from the footers' row counts; None when the inputs are not that."""
    if len(paths) != 1 or opts.fmt not in (None, "messages") or not _finished_output(paths[0]):
        return None
    import pyarrow.parquet as pq

    sources, i, start = [], 0, 0
    for f in parts.files(paths[0]):
        meta = pq.ParquetFile(f).metadata
        n = meta.num_rows
        if n == 0:  # the local read skips an empty part too
            continue
        cuts, size = [], parts.batch_rows(meta, rows, part_bytes())  # as the local read cuts them
        for lo in range(0, n, size):  # pyarrow's batches: `size` rows each, the last fewer
            cuts.append((i, start + lo, start + min(n, lo + size)))
            i += 1
        sources.append(Source(str(f), tuple(cuts)))
        start += n
    return sources or None


def _convert(paths: list[Path], opts: ReadOptions, rows: int, work: WorkFolder, quiet: bool) -> list[Source]:
    """The inputs read once on the driver (a batch at a time) into canonical parts and their
    read rejects; a finished conversion of the same run is reused."""
    from thresher.io.stream import iter_inputs
    from thresher.progress import info

    folder = work.root / CONVERTED
    plan = folder / "sources.json"
    with contextlib.suppress(OSError, ValueError, TypeError, KeyError):
        return [Source(s["path"], tuple(tuple(c) for c in s["parts"]), s["rejected"])
                for s in json.loads(plan.read_text(encoding="utf-8"))]
    shutil.rmtree(folder, ignore_errors=True)
    sources, start = [], 0
    for i, (batch, rejected) in enumerate(iter_inputs(paths, opts, rows)):
        f = parts.write_part(batch, folder / "rows", i)
        r = parts.write_part(rejected, folder / "rejected", i)
        sources.append(Source(str(f), ((i, start, start + batch.height),), str(r)))
        start += batch.height
        if not quiet:
            info(f"inputs: part {i + 1} converted ({start:,} rows read)")
    write_text_atomic(plan, json.dumps([asdict(s) for s in sources]))
    return sources


# --- phase 1: the parts, on the workers -----------------------------------------------------

def batches_of(source: Source, opts: ReadOptions,
             rows: int) -> Iterator[tuple[int, int, int, pl.DataFrame, pl.DataFrame]]:
    """``(i, lo, hi, rows, rejected)`` of each of the source's parts, checked against the plan."""
    from thresher.io.stream import iter_inputs

    if source.rejected is not None:  # converted (and checked) by the driver: one part
        (i, lo, hi), = source.parts
        yield i, lo, hi, pl.read_parquet(source.path), pl.read_parquet(source.rejected)
        return
    planned = iter(source.parts)
    size = source.parts[0][2] - source.parts[0][1] if source.parts else rows
    # the driver's cuts (every part of a file `size` rows but the last), not this worker's env
    for batch, rejected in iter_inputs([source.path], opts, size, max_bytes=1 << 62):
        i, lo, hi = next(planned, (-1, 0, 0))
        if i < 0 or batch.height + rejected.height != hi - lo:
            raise RuntimeError(f"{source.path}: part {i} has {batch.height + rejected.height} rows, "
                               f"not the {hi - lo} its footer gave")
        yield i, lo, hi, batch, rejected
    if next(planned, None) is not None:
        raise RuntimeError(f"{source.path}: fewer rows than its footer gave")


def read_source(impl: RowStage, context: StageContext, source: Source, job: Job) -> list[PartDone]:
    """On a worker: every part of ``source`` through ``process_batch`` into its pass-1 files
    (a part finished before is reused); returns the parts' projections."""
    out = []
    one_pass = job.shape is not None
    for i, lo, hi, batch, rejected in batches_of(source, job.opts, job.rows):
        reused = job.work.finished(i, one_pass)
        if reused:
            k, d, marker = reuse_part(impl, job.config, job.work, i, one_pass=one_pass)
        else:
            k, d, marker = process_part(impl, context, batch, rejected, i, lo, job.work, end=hi, shape=job.shape)
        out.append(PartDone.of(impl, job.config, i, k, d, marker, reused))
    return out


_CONTEXTS: dict[str, Any] = {}


def source_task(job: Job, source: Source) -> list[PartDone]:
    """The Ray task of a stage without a model: :func:`read_source` with one ``setup`` per
    worker process and run."""
    key = f"{job.work.root}\n{type(job.impl).__module__}.{type(job.impl).__qualname__}\n{job.config!r}"
    context = _CONTEXTS.get(key)
    if context is None:  # worker processes outlive runs: never reuse another run's setup
        _CONTEXTS.clear()
        context = _CONTEXTS[key] = job.impl.setup(job.config, job.where, None)
    return read_source(job.impl, context, source, job)


class PartWorker:
    """The Ray actor of a model stage: one ``setup`` (one model load), then sources."""

    def __init__(self, job: Job):
        self.job = job
        self.context = job.impl.setup(job.config, job.where, None)

    def run(self, source: Source) -> list[PartDone]:
        """:func:`read_source` of one source."""
        return read_source(self.job.impl, self.context, source, self.job)


def _first_pass(job: Job, sources: list[Source], *, quiet: bool) -> list[PartDone]:
    """Every part of every source: reused (projection columns read here) or run on Ray."""
    from thresher.progress import info

    done: list[PartDone] = []
    todo = []
    one_pass = job.shape is not None
    for s in sources:
        if all(job.work.finished(i, one_pass) for i, _, _ in s.parts):
            done += [PartDone.of(job.impl, job.config, i,
                                 *reuse_part(job.impl, job.config, job.work, i, one_pass=one_pass), True)
                     for i, _, _ in s.parts]
        else:
            todo.append(s)
    if done and not quiet:
        info(f"{job.impl.name}: reusing {len(done)} finished parts from {job.work.root}")
    total = sum(len(s.parts) for s in sources)
    results = _actor_results(job, todo) if job.impl.loads_model else _task_results(job, todo)
    try:
        for got in results:
            done += got
            for p in got:
                kill_point(f"part-{p.i}")
            if not quiet:
                info(f"{job.impl.name}: {len(done)} of {total} parts done on Ray")
    finally:
        results.close()  # a failure cancels what is still pending
    return sorted(done, key=lambda p: p.i)


def _task_results(job: Job, todo: list[Source]) -> Iterator[list[PartDone]]:
    """One task per source; results as they finish."""
    import ray

    if not todo:
        return
    task = ray.remote(num_cpus=1)(source_task)
    shared = ray.put(job)
    pending = [task.remote(shared, s) for s in todo]
    try:
        while pending:
            ready, pending = ray.wait(pending, num_returns=1)
            yield ray.get(ready[0])
    finally:
        for ref in pending:
            ray.cancel(ref)


def _actor_results(job: Job, todo: list[Source]) -> Iterator[list[PartDone]]:
    """An actor pool (:func:`thresher.executors.ray.actor_options`) over the sources."""
    import ray
    from ray.util import ActorPool

    if not todo:
        return
    count, options = actor_options(job.impl, job.config)
    actor = ray.remote(PartWorker)
    actors = [actor.options(**options()).remote(job) for _ in range(min(count, len(todo)))]
    try:
        yield from ActorPool(actors).map_unordered(lambda a, s: a.run.remote(s), todo)
    finally:
        for a in actors:  # their models go with them
            ray.kill(a)


# --- phase 3: the second pass, on the workers -----------------------------------------------

def _second_pass(stage: StageFolder, job: Job, done: list[PartDone], kept: pl.DataFrame,
                 dropped: pl.DataFrame) -> Path:
    """Each part rewritten by a task with its slice of ``finalize``'s decisions; returns the
    folder holding the final ``kept.parquet`` and ``dropped.parquet``."""
    import ray

    work = job.work
    shutil.rmtree(work.final, ignore_errors=True)
    kept, dropped = decisions(kept, dropped)
    rewrite = ray.remote(num_cpus=1)(rewrite_part)
    table = DroppedTable(stage.name)
    ray.get([rewrite.remote(table, work, p.i, *part_decisions(kept, dropped, p.lo, p.hi)) for p in done])
    return _seal(job)


def _seal(job: Job) -> Path:
    return seal_parts(job.work)


def seal_parts(work: WorkFolder) -> Path:
    """The final parts given the same columns by tasks, then sealed (a single part becomes one
    file); returns their folder."""
    import ray

    conform = ray.remote(num_cpus=1)(conform_part)
    for name in (KEPT, DROPPED):
        folder = work.final / name
        if not folder.is_dir():  # sealed before a driver kill
            continue
        files, target = harmonize_plan(folder)
        ray.get([conform.remote(f, target) for f in files])
        parts.seal(folder)  # every part alike now
    return work.final
