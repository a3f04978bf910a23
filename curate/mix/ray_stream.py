"""The streaming mix on Ray (``--executor ray``): the workers read, decide and write, the driver
holds counts, per-category summaries, small plans and file names, never a row.

:func:`run_streaming_ray` writes what :func:`thresher.curate.mix.stream.run_streaming` writes
(the same kept rows in the same order, the same dropped rows and reasons in the same parts, the
same stats plus ``"executor": "ray"``). Each step is a set of Ray tasks:

1. **Projection**, one task per *unit*: a part file of a canonical Parquet input (its first
   row's number within the input from the footers' counts: the driver reads no row), or a whole
   other input (read a batch at a time, as the local stream reads it). The task writes the
   unit's projection (``id``, ``__cat``, ``__score``, :func:`.stream.project`) under
   ``WORK/proj`` and returns its size, batch heights, columns and category counts. The replay
   file is one more task (its ids and categories).
2. **Duplicate ids**: a hash-partitioned shuffle (:mod:`thresher.executors.shuffle`) of
   ``(hash(id), row, id)``; each partition flags the rows whose id an earlier row had, and the
   replay rows whose id is in the main inputs. The flags stay in the object store.
3. **Exclusions**, one task per unit (:func:`.decide.with_exclusions` with its share of the
   flags, :func:`.select.eligible`): a decisions file per unit; the driver gets each unit's
   candidates and eligible rows per category, and makes the plan (:func:`.plan.make_plan`).
4. **The per-category cut**, a distributed select. Locally a category's eligible rows are
   ranked by score (descending) then by a seeded key, and the first ``taken % available``
   get one copy more than the rest (``taken // available``). Here a row's rank is the triple
   ``(a, b, row)``: ``a`` the score's order-preserving bits (:func:`score_order`), ``b`` the
   53 bits of its key (candidate ``k`` of the whole input gets the ``k``-th draw of
   :func:`.select.random_keys`' generator, :func:`candidate_keys`; reversed without
   ``rank_by``, as :func:`.select.select` then sorts the key descending), the row number breaking a
   tie of both (polars leaves such a tie's order open; it needs two equal 53-bit draws). Each
   round, tasks return per-category histograms (:data:`BUCKETS` buckets, each with its min
   and max) of the keys in the range still open; the driver narrows the range to the bucket
   holding the cut, on ``a`` and then (a single score left) on ``b``, until it holds at most
   :data:`GATHER` rows, which the tasks return for the driver to sort. The driver holds
   O(buckets x categories) numbers a round.
5. **Output order**, in ONE task (:func:`order_task`): genuinely global and O(chosen). It
   sorts the chosen lines as :func:`.select.select` orders them, takes the replay rows
   (:func:`.decide.replay_choice`), gives every line its seeded position
   (:func:`.decide.output_positions`) and writes the lines of each unit to its own file.
6. **Rows**: one task per unit (and one for the replay file) reads it again and writes its
   chosen lines to spill fragments by output part and its other rows to its dropped parts
   (:func:`.stream.write_main`); one task per output part puts it together in position order
   (atomic parts, :mod:`thresher.io.parts`). The driver renames the dropped parts into place
   (rows rejected on read first, then the rest, in input order) and seals both folders.

The stats' counts come back as small grouped projections (a :data:`thresher.tally.WEIGHT`
column). The work folder (``OUT/.thresher-parts``) must be on a filesystem every node sees.
"""

from __future__ import annotations

import contextlib
import math
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from thresher.curate.mix import select as sel
from thresher.curate.mix.decide import (
    ELIGIBLE,
    categories_present,
    check_columns,
    checked_spec,
    mix_stats,
    output_positions,
    read_guarded,
    replay_choice,
    replay_shortfall,
    report,
    with_exclusions,
)
from thresher.curate.mix.gather import LOCAL, lazy_schema
from thresher.curate.mix.plan import CategoryPlan, make_plan
from thresher.curate.mix.spec import MixSpec
from thresher.curate.mix.stream import (
    DROPPED_ROWS,
    POS,
    REJECTED,
    SPILL,
    Input,
    Lines,
    Plan,
    Writer,
    conform,
    dropped_target,
    kept_target,
    out_rows,
    project,
    replay_projection,
    union,
    write_main,
    write_replay,
)
from thresher.errors import ThresherError
from thresher.executor import WrittenParts
from thresher.io import parts
from thresher.io.inputs import ReadOptions
from thresher.stage_folder import DROPPED, KEPT
from thresher.tally import WEIGHT

#: rows of a category's open range that the tasks return whole for the driver to sort
GATHER = 4096
#: buckets of a round's histograms
BUCKETS = 256
A, B, CODE, CAND, REPLAY = "__a", "__b", "__code", "__cand", "__replay"
_TOP = np.uint64(1 << 63)
_B_MAX = (1 << 53) - 1


@dataclass(frozen=True)
class Unit:
    """What one task reads: a part file of a canonical Parquet input, or a whole other input."""

    index: int
    input: str
    """The input as given (errors name it)."""
    file: str | None
    """The part file of a canonical Parquet input (None: the whole input)."""
    lazy: dict[str, Any] | None
    """A canonical Parquet input's columns (:func:`.gather.lazy_schema`), else None."""
    first: int = 0
    """Its first row's number within its input."""


@dataclass(frozen=True)
class Job:
    """What every task of one run shares."""

    config: Any
    spec: MixSpec
    read: ReadOptions
    rows: int
    work: str

    def path(self, *names: str) -> Path:
        """A path in the work folder."""
        return Path(self.work, *names)

    def file(self, folder: str, unit: int | str) -> Path:
        """The file of ``unit`` (its index, or ``replay``) in the work folder's ``folder``."""
        return self.path(folder, f"{unit:05d}.parquet" if isinstance(unit, int) else f"{unit}.parquet")


def save(df: pl.DataFrame, path: Path) -> Path:
    """Write ``df`` to ``path`` atomically (its folder made)."""
    from thresher.io.atomic import atomic_path

    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        df.write_parquet(tmp)
    return path


# ---------------------------------------------------------------- on the driver


def plan_units(paths: list[Path], read: ReadOptions) -> list[Unit]:
    """The units of ``paths``, in input order: a canonical Parquet input's non-empty part files
    (an empty input one unit, whose task raises as the local read does), else the input."""
    import pyarrow.parquet as pq

    units: list[Unit] = []
    for p in paths:
        lazy = lazy_schema(p, read)
        if lazy is None:
            units.append(Unit(len(units), str(p), None, None))
            continue
        first = 0
        for f in parts.files(p):
            n = pq.ParquetFile(f).metadata.num_rows
            if n:
                units.append(Unit(len(units), str(p), str(f), dict(lazy), first))
                first += n
        if first == 0:
            units.append(Unit(len(units), str(p), None, dict(lazy)))
    return units


def results(refs: list[Any]) -> list[Any]:
    """The tasks' results in order; the first task (in order) that failed raises its own error
    (a :class:`~thresher.errors.ThresherError` or a polars error, without Ray's wrapping)."""
    import ray

    out = []
    for ref in refs:
        try:
            out.append(ray.get(ref))
        except ray.exceptions.RayTaskError as e:
            for r in refs:
                with contextlib.suppress(Exception):
                    ray.cancel(r)
            cause = getattr(e, "cause", None)
            raise (cause if isinstance(cause, Exception) else e) from None
    return out


def _remote(fn: Any) -> Any:
    import ray

    return ray.remote(num_cpus=1)(fn)


def _offsets(sizes: list[int]) -> list[int]:
    return [0, *np.cumsum(sizes, dtype=np.int64).tolist()][: len(sizes)]


def _merge(counts: list[dict[str, int]]) -> dict[str, int]:
    out: dict[str, int] = {}
    for c in counts:
        for k, n in c.items():
            out[k] = out.get(k, 0) + n
    return out


def _weighed(frame: pl.DataFrame) -> pl.DataFrame:
    """``frame`` (a tally's projection) grouped, a :data:`~thresher.tally.WEIGHT` per line; a
    row rejected on read loses its reason (the tally counts those by code)."""
    if "drop_reason" in frame.columns:
        read = pl.col("drop_stage").cast(pl.String) == "read"
        frame = frame.with_columns(pl.when(read).then(None).otherwise(pl.col("drop_reason")).alias("drop_reason"))
    cols = [pl.col(c).cast(pl.String) for c in frame.columns]
    if frame.height == 0:
        return frame.select(cols).with_columns(pl.lit(0, dtype=pl.Int64).alias(WEIGHT))
    return frame.select(cols).group_by(frame.columns).agg(pl.len().cast(pl.Int64).alias(WEIGHT))


@dataclass
class Projected:
    """The driver's summary of the projection step."""

    units: list[Unit]
    sizes: list[dict[str, Any]]
    offsets: list[int]
    present: set[str]
    replay: dict[str, Any] | None

    @property
    def rows(self) -> int:
        return sum(s["n"] for s in self.sizes)


def _project_all(job: Job, paths: list[Path], problems: list[str], where: str) -> Projected:
    """Step 1 (the projection tasks); the options' problems and a spec's categories missing
    from the data raise as the local stream raises them."""
    units = plan_units(paths, job.read)

    def run() -> list[dict[str, Any]]:
        task = _remote(project_task)
        return results([task.remote(job, u) for u in units])

    sizes = read_guarded(problems, where, run)
    present = set().union(*(s["cats"] for s in sizes)) if sizes else set()
    categories_present(job.spec, pl.DataFrame({sel.CAT: sorted(present)}, schema={sel.CAT: pl.String}),
                       problems, where)
    replay = results([_remote(replay_task).remote(job)])[0] if job.config.replay else None
    return Projected(units, sizes, _offsets([s["n"] for s in sizes]), present, replay)


def _flags(job: Job, pro: Projected) -> list[Any]:
    """Step 2: object refs of the duplicate-id flags, hash-partitioned."""
    from thresher.executors.shuffle import apply, default_partitions, shuffle

    blocks = [(str(job.file("proj", u.index)), off, False) for u, off in zip(pro.units, pro.offsets)]
    if pro.replay is not None:
        blocks.append((str(job.file("proj", "replay")), 0, True))
    return apply(flag_task, shuffle(blocks, "__h", default_partitions(), id_block))


def _plan(job: Job, pro: Projected, names: list[str], flags: list[Any]) -> tuple[list[CategoryPlan], list[int]]:
    """Step 3: the exclusions (one task per unit), the plan; and each unit's first candidate."""
    task = _remote(mark_task)
    marked = results([task.remote(job, u, off, s["n"], names, *flags)
                      for u, off, s in zip(pro.units, pro.offsets, pro.sizes)])
    plan = make_plan(job.spec, _merge([m["available"] for m in marked]))
    report(plan)
    return plan, _offsets([m["candidates"] for m in marked])


@dataclass
class Cut:
    """A category's open range in the distributed select: on ``a`` (level 0) or, with ``a``
    fixed, on ``b`` (level 1); ``need``: rows of the range still to take; ``count``: its rows."""

    level: int
    fixed: int
    lo: int
    hi: int
    need: int
    count: int

    def query(self, code: int) -> tuple[int, int, int, int, int, int, bool]:
        """What a round's task computes for this range."""
        width = -(-(self.hi - self.lo + 1) // BUCKETS)
        gather = self.count <= GATHER or (self.level == 1 and self.lo == self.hi)
        return code, self.level, self.fixed, self.lo, self.hi, width, gather

    def narrow(self, counts: np.ndarray, mins: np.ndarray, maxs: np.ndarray) -> None:
        """Keep the bucket holding the cut (its own min and max)."""
        cum = np.cumsum(counts)
        b = int(np.searchsorted(cum, self.need))
        self.need -= int(cum[b] - counts[b])
        self.count, self.lo, self.hi = int(counts[b]), int(mins[b]), int(maxs[b])
        if self.level == 0 and self.lo == self.hi:  # one score left: on to the keys
            self.level, self.fixed, self.lo, self.hi = 1, self.lo, 0, _B_MAX


def _cuts(job: Job, pro: Projected, starts: list[int], active: list[CategoryPlan]) -> dict[int, tuple[int, int, int]]:
    """Step 4: per active category with ``taken % available`` rows taking one copy more, the
    rank ``(a, b, row)`` of the last of them."""
    ranked = job.config.rank_by is not None
    names = [p.name for p in active]
    open_ = {c: Cut(0 if ranked else 1, 0, 0, (1 << 64) - 1 if ranked else _B_MAX, p.taken % p.available, p.available)
             for c, p in enumerate(active) if p.taken % p.available}
    done: dict[int, tuple[int, int, int]] = {}
    task = _remote(round_task)
    while open_:
        queries = [cut.query(c) for c, cut in open_.items()]
        answers = results([task.remote(job, u, off, start, names, queries)
                           for u, off, start in zip(pro.units, pro.offsets, starts)])
        for i, q in enumerate(queries):
            got = [a[i] for a in answers]
            if q[-1]:  # the range's rows: sorted here
                a, b, r = (np.concatenate([g[j] for g in got]) for j in range(3))
                k = np.lexsort((r, b, a))[open_[q[0]].need - 1]
                done[q[0]] = (int(a[k]), int(b[k]), int(r[k]))
                del open_[q[0]]
            else:
                counts = np.sum([g[0] for g in got], axis=0)
                open_[q[0]].narrow(counts, np.min([g[1] for g in got], axis=0), np.max([g[2] for g in got], axis=0))
    return done


def _choose(job: Job, pro: Projected, plan: list[CategoryPlan], starts: list[int],
            flags: list[Any]) -> dict[str, Any] | None:
    """Steps 4 and 5: the cut, each unit's chosen rows (a task each), then the output order (one
    task, given the replay rows' flags); returns the replay stats."""
    active = [p for p in plan if p.taken > 0]
    cuts = _cuts(job, pro, starts, active)
    bases = [p.taken // p.available for p in active]
    task = _remote(choose_task)
    results([task.remote(job, u, off, start, [p.name for p in active], bases, cuts)
             for u, off, start in zip(pro.units, pro.offsets, starts)])
    main_n = sum(p.taken for p in plan)
    n_replay = pro.replay["n"] if pro.replay is not None else 0
    return results([_remote(order_task).remote(job, pro.units, pro.offsets, [p.name for p in active], main_n,
                                               n_replay, *flags)])[0]


def _schemas(pro: Projected, job: Job, plan: list[CategoryPlan]) -> tuple[dict[str, Any], dict[str, Any]]:
    """The columns of kept.parquet and dropped.parquet (from the tasks' column lists)."""
    main: dict[str, Any] = {}
    rejected: dict[str, Any] = {}
    for s in pro.sizes:
        main = union(main, pl.DataFrame(schema=s["schema"]))
        if s["rejected"]:
            rejected = union(rejected, pl.DataFrame(schema=s["rejected"]))
    replay = pro.replay["schema"] if pro.replay is not None else None
    return kept_target(main, replay), dropped_target(main, rejected, job.spec, plan, job.config)


def _write(job: Job, pro: Projected, plan: list[CategoryPlan], paths: list[Path],
           n_lines: int) -> tuple[int, pl.DataFrame, pl.DataFrame]:
    """Step 6: the rows written by unit, then the output parts put together; returns the lines
    a part holds and the kept and dropped rows' grouped projections."""
    kept_schema, dropped_schema = _schemas(pro, job, plan)
    size = out_rows(paths, pro.rows, job.rows)
    task = _remote(write_task)
    refs = [task.remote(job, u, s["heights"], plan, kept_schema, dropped_schema, size)
            for u, s in zip(pro.units, pro.sizes)]
    if pro.replay is not None:
        refs.append(_remote(replay_write_task).remote(job, kept_schema, dropped_schema, size))
    dropped = [d for d in results(refs) if d is not None]
    build = _remote(assemble_task)
    kept = results([build.remote(job, b, kept_schema) for b in range(math.ceil(n_lines / size))])
    final = job.path("final")
    if n_lines == 0:
        parts.write_part(pl.DataFrame(schema=kept_schema), final / KEPT, 0)
    empty = pl.DataFrame(schema={"category": pl.String, WEIGHT: pl.Int64})
    return size, pl.concat([empty, *kept], how="diagonal_relaxed"), pl.concat(dropped, how="diagonal_relaxed")


def _finish_dropped(job: Job, pro: Projected, dropped_schema: dict[str, Any]) -> Path:
    """The dropped parts renamed into place (every unit's rows rejected on read first), both
    folders sealed; returns the folder holding them."""
    final = job.path("final")
    units = [job.path("units", f"{u.index:05d}") for u in pro.units]
    found = [f for kind in (REJECTED, DROPPED_ROWS) for u in units if (u / kind).is_dir() for f in parts.files(u / kind)]
    (final / DROPPED).mkdir(parents=True, exist_ok=True)
    for i, f in enumerate(found):
        os.replace(f, final / DROPPED / parts.part_name(i))
    if not found:
        parts.write_part(pl.DataFrame(schema=dropped_schema), final / DROPPED, 0)
    for name in (KEPT, DROPPED):
        parts.seal(final / name)
    return final


def run_streaming_ray(config: Any, paths: list[Path], read: ReadOptions, work: Path, timer: Any) -> WrittenParts:
    """Mix ``paths`` per ``config`` on Ray (module docstring), into ``work`` (emptied first);
    the result of :func:`thresher.curate.mix.stream.run_streaming`, with ``"executor": "ray"``."""
    from thresher.executors.stream import part_rows

    spec, where, problems = checked_spec(config)
    shutil.rmtree(work, ignore_errors=True)
    job = Job(config, spec, read, part_rows(), str(work))
    pro = _project_all(job, paths, problems, where)
    timer.lap("read")
    names = [c.name for c in spec.categories] if spec.temperature is None else sorted(pro.present)
    flags = _flags(job, pro)
    plan, starts = _plan(job, pro, names, flags)
    replay_stats = _choose(job, pro, plan, starts, flags)
    del flags
    if replay_stats is not None and replay_stats["taken"] < replay_stats["wanted"]:
        from thresher.progress import info

        info(f"mix: {replay_shortfall(replay_stats, spec.max_repeats)}")
    timer.lap("select")
    n_lines = sum(p.taken for p in plan) + (replay_stats["taken"] if replay_stats else 0)
    size, kept, dropped = _write(job, pro, plan, paths, n_lines)
    timer.lap("gather")
    folder = _finish_dropped(job, pro, _schemas(pro, job, plan)[1])
    timer.lap("dropped")
    stats = {**mix_stats(config, spec, plan, replay_stats, timer.seconds), "executor": "ray",
             "streamed": {"parts": max(1, math.ceil(n_lines / size)), "part_rows": size, "parts_reused": 0}}
    n_rejected = sum(s["n_rejected"] for s in pro.sizes)
    return WrittenParts(folder, kept, dropped, stats, rows_in=pro.rows + n_rejected)


# ---------------------------------------------------------------- on the workers


def unit_input(job: Job, unit: Unit) -> Input:
    """The unit as the local stream reads it (an input, or one part file of it)."""
    return Input(Path(unit.input), job.read, unit.lazy, only=Path(unit.file) if unit.file else None)


def project_task(job: Job, unit: Unit) -> dict[str, Any]:
    """Step 1 on a worker: the unit's projection written to its file; returns its row count,
    batch heights, columns (rows and rows rejected on read) and category counts."""
    src = unit_input(job, unit)
    rank_by = job.config.rank_by
    if src.lazy is not None:
        check_columns(src.path, src.lazy, job.spec, rank_by)
    frames, n_rejected = [], 0
    for batch, rejected in src.batches(job.rows):
        src.note(batch, rejected)
        n_rejected += rejected.height
        frames.append(project(batch, job.spec, rank_by))
    if src.lazy is None:
        check_columns(src.path, src.schema, job.spec, rank_by)
    schema = {"id": pl.String, sel.CAT: pl.String, **({sel.SCORE: pl.Float64} if rank_by else {})}
    df = pl.concat([pl.DataFrame(schema=schema), *frames], how="vertical_relaxed")
    save(df, job.file("proj", unit.index))
    cats = dict(df[sel.CAT].drop_nulls().value_counts().iter_rows())
    return {"n": df.height, "heights": list(src.heights), "schema": dict(src.schema), "rejected": dict(src.rejected),
            "n_rejected": n_rejected, "cats": cats}


def replay_task(job: Job) -> dict[str, Any]:
    """Step 1 for the replay file: its ids and categories written; returns its rows and columns."""
    df, schema = replay_projection(Path(job.config.replay), job.rows)
    save(df, job.file("proj", "replay"))
    return {"n": df.height, "schema": schema}


def id_block(block: tuple[str, int, bool]) -> Any:
    """Map side of step 2: a projection file's ``(hash(id), row, replay?, id)`` as Arrow."""
    path, offset, replay = block
    ids = pl.read_parquet(path, columns=["id"])["id"]
    return pl.DataFrame({"__h": ids.hash(seed=7), sel.ROW: pl.int_range(offset, offset + ids.len(), dtype=pl.Int64,
                                                                        eager=True),
                         REPLAY: pl.repeat(replay, ids.len(), eager=True), "id": ids}).to_arrow()


def flag_task(table: Any) -> Any:
    """Reduce side of step 2 (one hash partition): the rows whose id an earlier row had, and
    the replay rows whose id is in the main inputs (``__row``, ``__replay``), as Arrow."""
    from thresher.curate.mix.decide import duplicate_ids

    df = pl.from_arrow(table)
    assert isinstance(df, pl.DataFrame)
    main = df.filter(~pl.col(REPLAY)).sort(sel.ROW)
    dup = main.filter(duplicate_ids(main["id"]))
    taken = df.filter(pl.col(REPLAY) & pl.col("id").is_in(main["id"].implode()))
    return pl.concat([dup.select(sel.ROW, REPLAY), taken.select(sel.ROW, REPLAY)]).to_arrow()


def flagged(flags: tuple[Any, ...], replay: bool, lo: int, hi: int) -> np.ndarray:
    """The flagged rows (step 2) of the main inputs (or, ``replay``, of the replay file) in
    ``[lo, hi)``, sorted."""
    rows = [pl.from_arrow(t).filter((pl.col(REPLAY) == replay) & pl.col(sel.ROW).is_between(lo, hi, closed="left"))
            [sel.ROW].to_numpy() for t in flags]
    return np.sort(np.concatenate([np.empty(0, dtype=np.int64), *rows]))


def mark_task(job: Job, unit: Unit, offset: int, n: int, names: list[str], *flags: Any) -> dict[str, Any]:
    """Step 3 on a worker: the unit's exclusions and eligible rows (its decisions file);
    returns its candidates and its eligible rows per category."""
    df = pl.read_parquet(job.file("proj", unit.index))
    dup = np.zeros(n, dtype=np.bool_)
    dup[flagged(flags, False, offset, offset + n) - offset] = True
    df = with_exclusions(df, names, pl.Series(dup)).with_row_index(LOCAL)
    candidates = df.filter(pl.col("__why").is_null())
    ok = sel.eligible(candidates, job.spec, names)
    eligible = np.zeros(n, dtype=np.bool_)
    eligible[ok[LOCAL].to_numpy()] = True
    keep = [sel.CAT, "__why", *([sel.SCORE] if job.config.rank_by else [])]
    save(df.select(keep).with_columns(pl.Series(ELIGIBLE, eligible), pl.col("__why").is_null().alias(CAND)),
         job.file("decide", unit.index))
    return {"candidates": candidates.height, "available": dict(ok.group_by(sel.CAT).len().iter_rows())}


def score_order(score: pl.Series) -> np.ndarray:
    """``score`` as unsigned integers in :func:`.select.select`'s order (best first): NaN and
    missing scores last, ``-0.0`` equal to ``0.0`` as polars sorts them."""
    x = score.cast(pl.Float64).fill_nan(None).fill_null(float("-inf")).to_numpy() + 0.0
    bits = x.view(np.uint64)
    ascending = np.where(bits >> np.uint64(63) == 1, ~bits, bits | _TOP)
    return ~ascending


def candidate_keys(seed: int, start: int, n: int) -> np.ndarray:
    """The 53 bits of the seeded keys of candidates ``start .. start + n - 1``
    (:func:`.select.random_keys` draws key ``k`` as ``(u_k >> 11) / 2**53``)."""
    bits = np.random.PCG64(np.random.SeedSequence([seed, 0]))
    bits.advance(start)
    return bits.random_raw(n) >> np.uint64(11)


def keyed(job: Job, unit: Unit, offset: int, start: int, names: list[str]) -> pl.DataFrame:
    """The unit's eligible rows of the categories ``names``: ``__code`` (their index), ``__a``,
    ``__b`` and ``__row`` (the rank's parts) and ``__local``."""
    d = pl.read_parquet(job.file("decide", unit.index)).with_row_index(LOCAL)
    cands = d.filter(pl.col(CAND))
    keys = candidate_keys(job.config.seed, start, cands.height)
    if not job.config.rank_by:  # .select.select sorts a lone key descending
        keys = np.uint64(_B_MAX) - keys
    cands = cands.with_columns(pl.Series(B, keys, dtype=pl.UInt64))
    el = cands.filter(pl.col(ELIGIBLE)).with_columns(
        pl.col(sel.CAT).replace_strict(names, list(range(len(names))), default=None, return_dtype=pl.Int64)
        .alias(CODE)).filter(pl.col(CODE).is_not_null())
    a = score_order(el[sel.SCORE]) if job.config.rank_by else np.zeros(el.height, dtype=np.uint64)
    return el.select(LOCAL, CODE, B, (pl.col(LOCAL).cast(pl.Int64) + offset).alias(sel.ROW)).with_columns(
        pl.Series(A, a, dtype=pl.UInt64))


def round_task(job: Job, unit: Unit, offset: int, start: int, names: list[str],
               queries: list[tuple[int, int, int, int, int, int, bool]]) -> list[tuple[np.ndarray, ...]]:
    """A round of step 4 on a worker: per query (a category's open range), the histogram of the
    unit's keys in it (counts, mins, maxs) or, to gather, their ``(a, b, row)``."""
    df = keyed(job, unit, offset, start, names)
    code, a, b, row = (df[c].to_numpy() for c in (CODE, A, B, sel.ROW))
    out = []
    for c, level, fixed, lo, hi, width, gather in queries:
        v = a if level == 0 else b
        m = (code == c) & (v >= np.uint64(lo)) & (v <= np.uint64(hi))
        if level == 1:
            m &= a == np.uint64(fixed)
        if gather:
            out.append((a[m], b[m], row[m]))
            continue
        bucket = ((v[m] - np.uint64(lo)) // np.uint64(width)).astype(np.int64)
        mins = np.full(BUCKETS, np.iinfo(np.uint64).max, dtype=np.uint64)
        maxs = np.zeros(BUCKETS, dtype=np.uint64)
        np.minimum.at(mins, bucket, v[m])
        np.maximum.at(maxs, bucket, v[m])
        out.append((np.bincount(bucket, minlength=BUCKETS), mins, maxs))
    return out


def choose_task(job: Job, unit: Unit, offset: int, start: int, names: list[str], bases: list[int],
                cuts: dict[int, tuple[int, int, int]]) -> int:
    """Step 4's end on a worker: the unit's chosen rows (``__row``, ``__a``, ``__b``, copies,
    ``__code``) written; returns their number."""
    df = keyed(job, unit, offset, start, names)
    code, a, b, row = (df[c].to_numpy() for c in (CODE, A, B, sel.ROW))
    copies = np.asarray(bases, dtype=np.int64)[code] if len(names) else np.zeros(0, dtype=np.int64)
    for c, (ca, cb, cr) in cuts.items():
        ua, ub = np.uint64(ca), np.uint64(cb)
        first = (a < ua) | ((a == ua) & ((b < ub) | ((b == ub) & (row <= cr))))
        copies = copies + ((code == c) & first)
    chosen = df.select(sel.ROW, A, B, CODE).with_columns(pl.Series("__copies", copies)).filter(pl.col("__copies") > 0)
    save(chosen, job.file("chosen", unit.index))
    return chosen.height


def order_task(job: Job, units: list[Unit], offsets: list[int], names: list[str], main_n: int, n_replay: int,
               *flags: Any) -> dict[str, Any] | None:
    """Step 5, in ONE task (global, O(chosen)): every chosen line in :func:`.select.select`'s
    order (rank, then copy), the replay rows taken, the seeded positions of all; the lines
    written per unit (``__local``, ``__copy``, ``__pos``, ``category``) and for the replay
    file (``__row``, ``__copy``, ``__pos``). Returns the replay stats."""
    ch = pl.concat([pl.read_parquet(job.file("chosen", u.index)) for u in units])
    order = np.lexsort((ch[sel.ROW].to_numpy(), ch[B].to_numpy(), ch[A].to_numpy()))
    copies = ch["__copies"].to_numpy()[order]
    rows, codes = np.repeat(ch[sel.ROW].to_numpy()[order], copies), np.repeat(ch[CODE].to_numpy()[order], copies)
    copy = np.arange(rows.size, dtype=np.int64) - np.repeat(np.cumsum(copies) - copies, copies) + 1
    if rows.size != main_n:
        raise RuntimeError(f"mix: {rows.size} lines chosen, the plan takes {main_n}")
    replay_rows, replay_copies, stats = np.empty(0, dtype=np.int64), np.empty(0, dtype=np.int64), None
    if job.config.replay:
        free = np.setdiff1d(np.arange(n_replay, dtype=np.int64), flagged(flags, True, 0, n_replay))
        taken, stats = replay_choice(job.config, job.spec, main_n, int(free.size))
        replay_rows, replay_copies = free[taken[sel.ROW].to_numpy()], taken[sel.COPY].to_numpy()
    pos = output_positions(main_n, replay_rows.size, job.config.seed)
    o = np.lexsort((copy, rows))
    rows, copy, at, labels = rows[o], copy[o], pos[:main_n][o], pl.Series("category", names, dtype=pl.String)
    cuts = np.searchsorted(rows, [*offsets, np.iinfo(np.int64).max])
    for u, off, lo, hi in zip(units, offsets, cuts[:-1], cuts[1:]):
        save(pl.DataFrame({LOCAL: rows[lo:hi] - off, sel.COPY: copy[lo:hi], POS: at[lo:hi],
                           "category": labels.gather(codes[o][lo:hi])},
                          schema={LOCAL: pl.Int64, sel.COPY: pl.Int64, POS: pl.Int64, "category": pl.String}),
             job.file("lines", u.index))
    if job.config.replay:
        save(pl.DataFrame({sel.ROW: replay_rows, sel.COPY: replay_copies, POS: pos[main_n:]},
                          schema={sel.ROW: pl.Int64, sel.COPY: pl.Int64, POS: pl.Int64}), job.file("lines", "replay"))
    return stats


def _lines(df: pl.DataFrame, rows: str, labels: bool) -> Lines:
    return Lines(df[rows].to_numpy(), df[sel.COPY].to_numpy(), df[POS].to_numpy(), df["category"] if labels else None)


def write_task(job: Job, unit: Unit, heights: list[int], plan: list[CategoryPlan], kept_schema: dict[str, Any],
               dropped_schema: dict[str, Any], size: int) -> pl.DataFrame:
    """Step 6 on a worker: the unit read again, its chosen lines spilled by output part, its
    other rows to its dropped parts (:func:`.stream.write_main`); returns its dropped rows'
    grouped projection."""
    src = unit_input(job, unit)
    lines = pl.read_parquet(job.file("lines", unit.index))
    d = pl.read_parquet(job.file("decide", unit.index), columns=[sel.CAT, "__why", ELIGIBLE])
    in_mix = np.zeros(d.height, dtype=np.bool_)
    in_mix[lines[LOCAL].to_numpy()] = True
    mine = Plan(job.spec, plan, d.select(sel.CAT, "__why"), in_mix, d[ELIGIBLE].to_numpy(), _lines(lines, LOCAL, True),
                None, pl.DataFrame(), None)
    writer = Writer(job.path("units", f"{unit.index:05d}"), size, kept_schema, dropped_schema)
    lo, first, sizes = 0, unit.first, iter(heights)
    for batch, rejected in src.batches(job.rows):
        if next(sizes, None) != batch.height:
            raise ThresherError(f"{src.path}: changed while the mix was reading it; run it again")
        write_main(src, batch, rejected, lo, first, mine, job.config, writer)
        lo, first = lo + batch.height, first + batch.height
    if next(sizes, None) is not None:
        raise ThresherError(f"{src.path}: changed while the mix was reading it; run it again")
    return _weighed(writer.dropped_projection())


def replay_write_task(job: Job, kept_schema: dict[str, Any], dropped_schema: dict[str, Any], size: int) -> None:
    """Step 6 for the replay file: its rows taken, spilled by output part
    (:func:`.stream.write_replay`)."""
    none = np.zeros(0, dtype=np.bool_)
    empty = Lines(np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64))
    mine = Plan(job.spec, [], pl.DataFrame(), none, none, empty,
                _lines(pl.read_parquet(job.file("lines", "replay")), sel.ROW, False), pl.DataFrame(), None)
    writer = Writer(job.path("units", "replay"), size, kept_schema, dropped_schema)
    write_replay(Path(job.config.replay), mine, job.rows, writer)


def assemble_task(job: Job, b: int, kept_schema: dict[str, Any]) -> pl.DataFrame:
    """Step 6's end: output part ``b`` put together from every unit's fragments, in position
    order; returns its rows' grouped ``category``."""
    folders = [u / SPILL / f"{b:05d}" for u in sorted(job.path("units").iterdir())]
    frags = [pl.read_parquet(f) for folder in folders if folder.is_dir() for f in parts.files(folder)]
    kept = conform(pl.concat(frags, how="diagonal_relaxed").sort(POS), kept_schema)
    parts.write_part(kept, job.path("final", KEPT), b)
    return _weighed(kept.select("category"))
