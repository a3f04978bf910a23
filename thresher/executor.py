"""The stage protocol: row-wise and global stages, their facts, and run_stage.

A stage is one of two kinds:

- a **row-wise** stage (:class:`RowStage`: generate, score, filter, decontam) turns a batch
  of rows into ``(kept, dropped)`` with a pure :meth:`RowStage.process_batch`; what is
  expensive to build (a model, a benchmark index) is built once per worker by
  :meth:`RowStage.setup` and handed to every batch as the ``context``;
  :meth:`RowStage.finalize` then sees every batch's output once (global rules, stats);
- a **global** stage (:class:`GlobalStage`: dedup, mix, select, eval, report, the recipe's
  inputs step, train) needs the whole table at once and implements :meth:`GlobalStage.run_table`.

Both declare their facts (:class:`StageFacts`: name, Config, command, whether they make data
or load a model, the columns they read and write); :mod:`thresher.registry` lists the stages.

:func:`run_stage` drives both: it fingerprints the inputs, config and read options
(:func:`open_stage`, also the one door of a stage that holds its folder itself: train),
reuses a finished result, reads the inputs through the one input path
(:func:`thresher.io.inputs.read_inputs`), hands a row-wise stage's rows to an executor object
(:func:`thresher.executors.pick`: :class:`~thresher.executors.local.LocalExecutor`, or
:class:`~thresher.executors.ray.RayExecutor` under ``--executor ray``; one seam,
``run_rows``), adds the rows rejected on read to ``dropped`` (``drop_stage = "read"``) and
writes the stage folder. :class:`BatchFn` (from :mod:`thresher.executors.rows`) is the
callable class to hand to ``Dataset.map_batches`` (``setup`` in ``__init__``, one load per
actor; each call returns kept and dropped rows in one table, dropped ones with a non-null
``drop_stage``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import polars as pl

from thresher.executors import pick
from thresher.executors.rows import ROW_INDEX, BatchFn
from thresher.io.inputs import ReadOptions, read_inputs, resolve_inputs
from thresher.stage import StageFolder, StageResult

__all__ = ["ROW_INDEX", "BatchFn", "GlobalStage", "RowStage", "StageContext", "WrittenParts", "run_stage"]


@dataclass
class StageContext:
    """What every batch of one worker sees: the config plus what :meth:`RowStage.setup` built.

    ``state`` holds the stage's own objects (a loaded model, an index); ``counters`` are
    numbers the stage adds up across batches for its stats (seconds, cache hits).
    ``stage`` is the run folder (None inside a remote worker) and ``where`` names the inputs
    for error messages. ``single_batch`` is True while the executor hands the whole table
    over as one batch (a stage may then free each model as soon as it is done with it).
    """

    config: Any
    where: str = ""
    stage: StageFolder | None = None
    state: dict[str, Any] = field(default_factory=dict)
    counters: dict[str, float] = field(default_factory=dict)
    single_batch: bool = False
    artefacts: dict[str, str] = field(default_factory=dict)
    """Named extra outputs the stage wrote into its folder (name -> path inside it)."""
    inputs: list[Path] = field(default_factory=list)
    """The resolved input paths (a stage with ``reads_rows = False`` reads them itself)."""
    read: ReadOptions = field(default_factory=ReadOptions)
    """The read options (for a stage that reads its inputs itself)."""
    force: bool = False
    """``--force``: a stage that runs nested stages passes it on."""

    def count(self, name: str, n: float = 1) -> None:
        """Add ``n`` to counter ``name``."""
        self.counters[name] = self.counters.get(name, 0) + n


class StageFacts:
    """What a stage declares about itself; the registry (:mod:`thresher.registry`), the CLI,
    the recipe's preflight and the Ray executor read these, never a list in the core.

    ``name`` is the recipe stage name, ``config_cls`` its frozen Config; ``cli`` the click
    command (``"module:attr"``) listed in the group ``cli_group`` (``""``: top level,
    ``"curate"``; another group declares its commands itself) with the short help
    ``summary``; ``makes_data`` says its ``kept.parquet`` is a version of the dataset (False
    for train, eval, report); ``loads_model`` runs it in a Ray actor pool (one load per
    actor); ``in_recipe`` False keeps it out of a recipe's ``stages`` (the inputs step);
    ``reads_rows`` False lets it read its inputs itself.
    """

    name: ClassVar[str] = ""
    config_cls: ClassVar[type | None] = None
    cli: ClassVar[str] = ""
    cli_group: ClassVar[str] = ""
    summary: ClassVar[str] = ""
    makes_data: ClassVar[bool] = True
    loads_model: ClassVar[bool] = False
    in_recipe: ClassVar[bool] = True
    reads_rows: ClassVar[bool] = True
    position: ClassVar[int] = 1000
    """Where the stage usually sits in a pipeline; orders listings (built-ins: 0 to 110)."""
    """False: :func:`run_stage` does not read the inputs; the stage reads ``context.inputs``
    with ``context.read`` itself (mix reads narrow columns, report reads run folders)."""

    def models(self, config: Any) -> list[tuple[str, str | None]]:
        """``(option, model)`` pairs the stage loads (None: the embedded default), checked
        before a recipe runs."""
        return []

    def reads(self, config: Any) -> list[tuple[str, str]]:
        """``(option, column)`` pairs the stage reads beyond id/messages/category/source."""
        return []

    def writes(self, config: Any) -> set[str] | None:
        """Columns the stage adds to its rows (None: unknown, it may add anything)."""
        return None

    def fingerprint_inputs(self, inputs: list[Path], config: Any) -> list[Path]:
        """Every file the result depends on (default: the inputs)."""
        return list(inputs)

    def fingerprint_config(self, config: Any) -> Any:
        """The config as fingerprinted (default: itself; mix puts its spec's content there)."""
        return config

    def rows_in(self, table: pl.DataFrame, context: StageContext) -> int | None:
        """Rows in for the stats (None: kept + dropped)."""
        return table.height


class RowStage(StageFacts):
    """A stage whose rows are processed independently, in batches (see the module docstring).

    Subclasses set :attr:`name` and implement :meth:`process_batch`; the other hooks have
    sensible defaults. ``batch_rows`` is the local executor's batch size (None: the whole
    table in one batch, for stages whose per-batch overhead is high).
    """

    kind: ClassVar[str] = "row"
    batch_rows: ClassVar[int | None] = None

    def check(self, table: pl.DataFrame, config: Any, where: str) -> None:
        """Raise a one-line error when ``table`` cannot be processed (a missing column ...)."""

    def setup(self, config: Any, where: str = "", stage: StageFolder | None = None) -> StageContext:
        """Build the per-worker context (load models here; once per worker)."""
        return StageContext(config, where, stage)

    def process_batch(self, table: pl.DataFrame, context: StageContext) -> tuple[pl.DataFrame, pl.DataFrame]:
        """``(kept, dropped)`` for one batch; dropped rows carry ``drop_stage``/``drop_code``/``drop_reason``.

        Must be pure in the rows (no dependence on other batches) and keep unknown columns.
        """
        raise NotImplementedError

    def finalize(self, kept: pl.DataFrame, dropped: pl.DataFrame,
                 context: StageContext) -> tuple[pl.DataFrame, pl.DataFrame, dict[str, Any]]:
        """Once, over every batch's output: global rules and the stage's stats."""
        return kept, dropped, {}

    def teardown(self, context: StageContext) -> None:
        """Release what :meth:`setup` built (models, connections)."""

    def streams(self, config: Any) -> bool:
        """True when the stage may run in parts (:mod:`thresher.executors.stream`): its
        :meth:`finalize` works from the projection :meth:`finalize_columns` names. Default:
        True for a stage without a finalize of its own."""
        return type(self).finalize is RowStage.finalize

    def decides(self, config: Any) -> bool:
        """True when :meth:`finalize` may drop rows or add columns under ``config``; False
        when it only computes stats from what it is given. A streamed stage that does not
        decide writes its final parts in one pass, counts its stats part by part (a
        :class:`~thresher.tally.Tally` each), and hands ``finalize`` only the
        :meth:`finalize_columns` of its rows (:mod:`thresher.executors.stream`). Default: True
        when the stage has a finalize of its own."""
        return type(self).finalize is not RowStage.finalize

    def summarizes_parts(self, config: Any) -> bool:
        """True when a streamed run that does not decide (:meth:`decides` False) computes
        :meth:`finalize`'s stats with :meth:`summarize_parts` from the final kept parts, a
        part at a time, instead of holding the :meth:`finalize_columns` of every row."""
        return False

    def summarize_parts(self, kept: list[Path], context: StageContext) -> dict[str, Any]:
        """The stats :meth:`finalize` gives, read from the final kept part files ``kept``."""
        raise NotImplementedError

    def finalize_columns(self, config: Any, columns: list[str]) -> list[str]:
        """The columns (of ``columns``, a part's) :meth:`finalize` reads when the stage
        streams; :data:`ROW_INDEX`, ``category`` and the drop columns come anyway (``category``,
        ``drop_stage`` and ``drop_code`` as a Categorical, and no drop column that is null for
        every kept row of a part: :func:`thresher.executors.stream.compact`)."""
        return []


class GlobalStage(StageFacts):
    """A stage that needs the whole table at once (dedup, mix, select, train, eval, report)."""

    kind: ClassVar[str] = "global"

    def run_table(self, table: pl.DataFrame,
                  context: StageContext) -> tuple[pl.DataFrame, pl.DataFrame, dict[str, Any]]:
        """``(kept, dropped, stats)`` for the whole input table (``context.stage`` is the
        run folder, for extra artefacts)."""
        raise NotImplementedError

    # -- streaming (optional): decide from a projection, never holding the rows

    def streams(self, config: Any) -> bool:
        """True when the stage can decide from a projection of its rows (:meth:`project`,
        :meth:`run_projection`): the executor then streams it (:mod:`thresher.executors.stream`)."""
        return False

    def setup(self, config: Any, where: str = "", stage: StageFolder | None = None) -> StageContext:
        """The context :meth:`project` and :meth:`run_projection` share when streaming."""
        return StageContext(config, where, stage)

    def projection_columns(self, config: Any, columns: list[str]) -> list[str]:
        """The columns (of ``columns``, a batch's) :meth:`run_projection` reads as they are;
        :data:`ROW_INDEX`, ``id`` and ``category`` (a Categorical) come anyway."""
        return []

    def project(self, batch: pl.DataFrame, context: StageContext) -> pl.DataFrame | None:
        """Columns computed from a batch of rows for :meth:`run_projection` (a frame of the
        batch's height, e.g. a hash or a length), or None. Called once per batch, in input
        order; it may also feed state kept in ``context.state`` (an index)."""
        return None

    def run_projection(self, table: pl.DataFrame,
                       context: StageContext) -> tuple[pl.DataFrame, pl.DataFrame, dict[str, Any]]:
        """``(kept, dropped, stats)`` as projections: ``table`` is every row's projection (with
        :data:`ROW_INDEX`); return its rows split in two, dropped ones with the drop columns.
        A column of the returned frames that the rows do not have is added to them (joined
        back by :data:`ROW_INDEX`): drop scratch columns (hashes, lengths) before returning."""
        raise NotImplementedError

    def teardown(self, context: StageContext) -> None:
        """Release what :meth:`setup` built."""

    # -- on Ray (optional): decide by Ray tasks from per-part side tables, the driver holding no row

    def decides_on_ray(self, config: Any) -> bool:
        """True when, under ``--executor ray``, a streamed run decides by Ray tasks
        (:mod:`thresher.executors.global_ray`): :meth:`side_table` per part on the workers,
        then :meth:`decide_on_ray`. Requires :meth:`streams`."""
        return False

    def side_table(self, batch: pl.DataFrame, context: StageContext) -> pl.DataFrame:
        """On a worker: what :meth:`decide_on_ray` needs of a part's rows (``batch``, numbered
        in :data:`ROW_INDEX`), a frame written beside the part."""
        raise NotImplementedError

    def decide_on_ray(self, sides: list[Any], decided: Path, context: StageContext) -> dict[str, Any]:
        """On the driver, the work done by Ray tasks over ``sides`` (one
        :class:`~thresher.executors.global_ray.SidePart` per part, in order): for every part,
        write ``decided / parts.part_name(i)`` (:data:`ROW_INDEX`, the drop columns and the
        stage's added columns of the rows it drops; none may be dropped); return the stats."""
        raise NotImplementedError

    def run_parts(self, context: StageContext) -> WrittenParts | None:
        """For a stage that reads its inputs itself (``reads_rows = False``): stream them into
        ``kept.parquet`` / ``dropped.parquet`` parts under a work folder and return what was
        written, or None to be run by :meth:`run_table` (the default)."""
        return None


@dataclass
class WrittenParts:
    """What a stage that streamed its own rows wrote (:meth:`GlobalStage.run_parts`)."""

    folder: Path
    """Holds ``kept.parquet`` and ``dropped.parquet`` (files or folders of parts)."""
    kept: pl.DataFrame
    """A projection of the kept rows (``category``) the stats count."""
    dropped: pl.DataFrame
    """A projection of the dropped rows (``category`` and the drop columns)."""
    stats: dict[str, Any]
    rows_in: int | None = None


def with_read_rejects(dropped: pl.DataFrame, rejected: pl.DataFrame) -> pl.DataFrame:
    """``dropped`` after the rows rejected on read (``drop_stage = "read"``)."""
    if rejected.height == 0:
        return dropped
    return pl.concat([rejected, dropped], how="diagonal_relaxed")


def run_stage(impl: RowStage | GlobalStage, inputs: list[str | os.PathLike], out: str | os.PathLike,
              config: Any, *, force: bool = False, read: ReadOptions | dict | None = None,
              extra_inputs: list[Path] | None = None, table: pl.DataFrame | None = None) -> StageResult:
    """Run ``impl`` on ``inputs`` into the stage folder ``out`` (row-wise stages on the
    executor :func:`thresher.executors.pick` chooses).

    Same inputs, config and read options as a finished run: the result is reused. Otherwise
    the inputs are read (bad rows under ``on_bad_rows="skip"`` go to dropped.parquet as
    ``drop_stage = "read"``), processed, and the folder is written. ``table`` replaces reading
    (tests, callers that already hold the rows); ``extra_inputs`` are fingerprinted but not read.
    """
    stage, paths, opts = open_stage(impl, inputs, out, config, force=force, read=read,
                                    extra_inputs=extra_inputs)
    try:  # the folder's lock is released however the stage ends
        return _run_in(stage, impl, paths, config, opts, table)
    finally:
        stage.close()


def open_stage(impl: StageFacts, inputs: list[str | os.PathLike], out: str | os.PathLike, config: Any, *,
               force: bool = False, read: ReadOptions | dict | None = None,
               extra_inputs: list[Path] | None = None, quiet: bool = False) -> tuple[StageFolder, list[Path], ReadOptions]:
    """``(stage folder, resolved inputs, read options)``: the one place a stage's folder is
    opened and fingerprinted (inputs + ``impl.fingerprint_inputs`` + ``extra_inputs``, the
    config as ``impl.fingerprint_config`` gives it, the read options unless they are the
    defaults, so manifests of runs without read options stay reusable). :func:`run_stage`
    uses it; a stage that must hold its folder itself (train: checkpoints, ranks) calls it
    and then ``stage.done`` / ``stage.finish``."""
    opts = ReadOptions.coerce(read)
    paths = resolve_inputs(inputs)
    fp_inputs = impl.fingerprint_inputs(paths, config) + list(extra_inputs or [])
    read_fp = None if opts == ReadOptions() else opts.as_dict()  # defaults: same manifests as before
    stage = StageFolder(impl.name, out, inputs=fp_inputs, config=impl.fingerprint_config(config), force=force,
                  read_options=read_fp, quiet=quiet)
    return stage, paths, opts


def _local() -> bool:
    """True unless ``--executor ray`` is in force."""
    from thresher.executors.ray_session import current

    return current() != "ray"


def _run_in(stage: StageFolder, impl: RowStage | GlobalStage, paths: list[Path], config: Any,
            opts: ReadOptions, table: pl.DataFrame | None) -> StageResult:
    """:func:`run_stage` once its folder is open: reuse, or read, process and finish."""
    if stage.done:
        return stage.result()
    where = ", ".join(str(p) for p in paths)
    rejected = pl.DataFrame()
    if table is None and impl.kind == "row" and impl.reads_rows:
        from thresher.executors.stream import run_streaming, should_stream

        if should_stream(impl, config, paths, opts):  # type: ignore[arg-type]
            if _local():
                return run_streaming(stage, impl, paths, config, opts)  # type: ignore[arg-type]
            from thresher.executors.stream_ray import run_streaming_ray

            return run_streaming_ray(stage, impl, paths, config, opts)  # type: ignore[arg-type]  # workers hold the rows
    if table is None and impl.kind == "global" and impl.reads_rows:
        from thresher.executors.stream import ProjectedStage, run_streaming, should_stream

        if should_stream(impl, config, paths, opts):  # type: ignore[arg-type]
            if not _local() and impl.decides_on_ray(config):
                from thresher.executors.global_ray import run_global_ray

                return run_global_ray(stage, impl, paths, config, opts)  # the driver holds no row
            return run_streaming(stage, ProjectedStage(impl), paths, config, opts)  # type: ignore[arg-type]
    if table is None and impl.reads_rows:
        table, rejected = read_inputs(paths, opts)
    elif table is None:
        table = pl.DataFrame()
    if impl.kind == "row":
        impl.check(table, config, where)
        kept, dropped, stats, context = pick(table.height).run_rows(impl, config, table, stage, where)
    else:
        context = StageContext(config, where, stage, inputs=paths, read=opts, force=stage.force)
        written = impl.run_parts(context) if not impl.reads_rows else None
        if written is not None:  # the stage streamed its rows into parts itself
            from thresher.tally import Tally

            tally = Tally.of(stage.name, written.kept, written.dropped)
            return stage.finish_parts(written.folder, tally, written.stats, rows_in=written.rows_in,
                                      artefacts=context.artefacts)
        kept, dropped, stats = impl.run_table(table, context)
    n_in = impl.rows_in(table, context)
    if n_in is not None:
        n_in += rejected.height
    return stage.finish(kept, with_read_rejects(dropped, rejected), stats=stats, rows_in=n_in,
                        artefacts=context.artefacts)
