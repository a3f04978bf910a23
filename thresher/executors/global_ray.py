"""A global stage on Ray whose driver holds no rows (``--executor ray``; issue 24, section 4).

For a :class:`~thresher.executor.GlobalStage` whose :meth:`~thresher.executor.GlobalStage.decides_on_ray`
is True for its config (dedup's MinHash components), on inputs that stream:

1. **Parts and side tables.** The inputs are planned as the row-wise Ray stream plans them
   (:func:`thresher.executors.stream_ray.plan_sources`: a finished stage's own part files, or
   the driver's conversion). One Ray task per source reads its rows, writes each part's rows
   unchanged as its pass-1 part (rows rejected on read as its pass-1 dropped part) and the
   stage's **side table** of the part (:meth:`~thresher.executor.GlobalStage.side_table`: for
   dedup the exact hash, rank key, signature and band keys of each row) beside it, then the
   part's marker. A part finished before a killed driver is reused as it is.
2. **Decisions.** :meth:`~thresher.executor.GlobalStage.decide_on_ray` runs on the driver but
   does its work in Ray tasks over the side tables; the tasks write, for every part, a
   *decided* file (:data:`~thresher.executors.rows.ROW_INDEX` and the drop columns,
   plus the stage's own columns) and return counts. The driver gets back only the stats.
3. **Second pass.** One task per part moves the rows its decided file names from kept to
   dropped and writes the final parts, returning the part's :class:`~thresher.tally.Tally`;
   the driver sums them, seals the parts and swaps them in as the stage's result.

What the driver holds: the list of parts (a few numbers each), object refs, counts and the
stats; no row, projection or per-row array.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import polars as pl

from thresher.executors.rows import ROW_INDEX
from thresher.executors.stream import (
    DroppedTable,
    ProjectedStage,
    WorkFolder,
    finish_streamed,
    part_rows,
    process_part,
)
from thresher.executors.stream_ray import (
    Job,
    Source,
    batches_of,
    plan_sources,
    seal_parts,
    worker_errors,
)
from thresher.io import parts
from thresher.io.stream import part_bytes
from thresher.stage_folder import DROPPED, KEPT, PARTS_WORK, kill_point
from thresher.tally import Tally

if TYPE_CHECKING:
    from thresher.executor import GlobalStage
    from thresher.io.inputs import ReadOptions
    from thresher.stage import StageFolder, StageResult

#: rows a row group of a side table holds (a task reading a few rows reads their groups only)
SIDE_GROUP_ROWS = 4096


@dataclass(frozen=True)
class SidePart:
    """One part's side table: part ``i`` numbers its rows ``lo .. hi - 1``."""

    i: int
    lo: int
    hi: int
    path: str


def side_path(work: WorkFolder, i: int) -> Path:
    """Part ``i``'s side table."""
    return work.root / "side" / parts.part_name(i)


def decided_folder(work: WorkFolder) -> Path:
    """The folder of the decided files (one per part)."""
    return work.root / "decided"


def run_global_ray(stage: StageFolder, impl: GlobalStage, paths: list[Path], config: Any,
                   opts: ReadOptions) -> StageResult:
    """Run the global stage ``impl`` on ``paths`` into ``stage`` on Ray (module docstring)."""
    from thresher.executors.ray_session import ray_address, session

    rows = part_rows()
    work = WorkFolder(stage.out / PARTS_WORK)
    work.open({**stage.fingerprint, "part_rows": rows, "part_bytes": part_bytes(), "executor": "ray-global"})
    where = ", ".join(str(p) for p in paths)
    job = Job(impl, config, where, opts, rows, work)
    with session(ray_address()), worker_errors():
        context = impl.setup(config, where, stage)
        try:
            sources, inputs = plan_sources(paths, opts, rows, work, quiet=stage.quiet)
            done = _first_pass(job, sources, quiet=stage.quiet)
            sides = [SidePart(d["i"], d["start"], d["end"], str(side_path(job.work, d["i"]))) for d in done]
            shutil.rmtree(decided_folder(job.work), ignore_errors=True)
            stats = impl.decide_on_ray(sides, decided_folder(job.work), context)
            kill_point("decided")
        finally:
            impl.teardown(context)
        tally = _second_pass(job, stage.name, [d["i"] for d in done])
        final = seal_parts(work)
    streamed = {"parts": len(done), "part_rows": rows, "part_bytes": part_bytes(),
                "parts_reused": sum(bool(d.get("reused")) for d in done), "passes": 2, "inputs": inputs}
    stats = {**stats, "executor": "ray", "streamed": streamed}
    return finish_streamed(stage, work, final, tally, stats, rows_in=sum(d["rows"] + d["rejected"] for d in done),
                           artefacts=context.artefacts)


# --- phase 1: rows and side tables, on the workers --------------------------------------------

def _finished(job: Job, i: int) -> bool:
    return job.work.marker(i).is_file() and side_path(job.work, i).is_file()


def source_parts(job: Job, source: Source) -> list[dict[str, Any]]:
    """On a worker: every unfinished part of ``source`` written (pass-1 rows, side table,
    marker); returns the parts' markers."""
    impl = ProjectedStage(job.impl)
    context = job.impl.setup(job.config, job.where, None)
    out = []
    try:
        for i, lo, hi, batch, rejected in batches_of(source, job.opts, job.rows):
            if _finished(job, i):
                out.append({**_marker(job, i), "reused": True})
                continue
            side = job.impl.side_table(batch.with_row_index(ROW_INDEX, offset=lo), context)
            parts.write_part(side, side_path(job.work, i).parent, i, row_group_size=SIDE_GROUP_ROWS)
            _, _, marker = process_part(impl, context, batch, rejected, i, lo, job.work, end=hi)  # type: ignore[arg-type]
            out.append({**marker, "i": i})
    finally:
        job.impl.teardown(context)
    return out


def _marker(job: Job, i: int) -> dict[str, Any]:
    return {**json.loads(job.work.marker(i).read_text(encoding="utf-8")), "i": i}


def _first_pass(job: Job, sources: list[Source], *, quiet: bool) -> list[dict[str, Any]]:
    """Every part of every source, reused or written by a Ray task; their markers in order."""
    import ray

    from thresher.progress import info

    done: list[dict[str, Any]] = []
    todo = []
    for s in sources:
        if all(_finished(job, i) for i, _, _ in s.parts):
            done += [{**_marker(job, i), "reused": True} for i, _, _ in s.parts]
        else:
            todo.append(s)
    if done and not quiet:
        info(f"{job.impl.name}: reusing {len(done)} finished parts from {job.work.root}")
    total = sum(len(s.parts) for s in sources)
    task = ray.remote(num_cpus=1)(source_parts)
    shared = ray.put(job)
    pending = [task.remote(shared, s) for s in todo]
    try:
        while pending:
            ready, pending = ray.wait(pending, num_returns=1)
            got = ray.get(ready[0])
            done += got
            for m in got:
                kill_point(f"part-{m['i']}")
            if not quiet:
                info(f"{job.impl.name}: {len(done)} of {total} parts read on Ray")
    finally:
        for ref in pending:
            ray.cancel(ref)
    return sorted(done, key=lambda m: m["i"])


# --- phase 3: the second pass, on the workers --------------------------------------------------

def apply_decided(name: str, work: WorkFolder, decided: Path, i: int) -> dict[str, Any]:
    """Part ``i``'s final files: its pass-1 rows less those its decided file names, which join
    its pass-1 dropped rows with the decided columns; returns the part's tally."""
    rows = parts.read(work.part("kept", i))
    old = parts.read(work.part("dropped", i))
    path = decided / parts.part_name(i)
    if path.is_file():
        dec = pl.read_parquet(path).with_columns(pl.col(ROW_INDEX).cast(rows.schema[ROW_INDEX]))
        kept = rows.join(dec.select(ROW_INDEX), on=ROW_INDEX, how="anti", maintain_order="left")
        moved = rows.drop([c for c in dec.columns if c != ROW_INDEX and c in rows.columns])
        moved = moved.join(dec, on=ROW_INDEX, how="inner", maintain_order="left")
    else:
        kept, moved = rows, rows.clear()
    kept = kept.drop(ROW_INDEX)
    dropped = DroppedTable(name)(kept, pl.concat([old, moved], how="diagonal_relaxed").drop(ROW_INDEX, strict=False))
    parts.write_part(kept, work.final / KEPT, i)
    parts.write_part(dropped, work.final / DROPPED, i)
    return Tally.of(name, kept, dropped).to_dict()


def _second_pass(job: Job, name: str, indices: list[int]) -> Tally:
    """Every part's final files written by a task; the sum of their tallies."""
    import ray

    shutil.rmtree(job.work.final, ignore_errors=True)
    task = ray.remote(num_cpus=1)(apply_decided)
    tallies = ray.get([task.remote(name, job.work, decided_folder(job.work), i) for i in indices])
    return Tally.total([Tally.from_dict(t) for t in tallies])
