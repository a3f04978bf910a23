"""Executors: where a row-wise stage's rows run.

Each executor is an object with one seam, ``run_rows(impl, config, table, stage, where) ->
(kept, dropped, stats, context)``: :class:`~thresher.executors.local.LocalExecutor` (this
process, batch after batch) and :class:`~thresher.executors.ray.RayExecutor` (``map_batches``
on a Ray cluster, resumable shards). :func:`thresher.executor.run_stage` asks :func:`pick`
for one; the choice itself (``--executor``) is :mod:`thresher.executors.ray_session`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

from thresher.executors.local import LocalExecutor
from thresher.executors.ray import RayExecutor
from thresher.executors.ray_session import current

if TYPE_CHECKING:
    import polars as pl

    from thresher.executor import RowStage, StageContext
    from thresher.stage import StageFolder

__all__ = ["Executor", "LocalExecutor", "RayExecutor", "pick"]


class Executor(Protocol):
    """What :func:`thresher.executor.run_stage` needs of an executor."""

    name: str

    def run_rows(self, impl: RowStage, config: Any, table: pl.DataFrame, stage: StageFolder | None,
                 where: str) -> tuple[pl.DataFrame, pl.DataFrame, dict[str, Any], StageContext]:
        """``(kept, dropped, stats, context)`` of a row-wise stage over ``table``, in input order."""
        ...


def pick(rows: int) -> Executor:
    """The executor for a row-wise stage over ``rows`` rows: Ray under ``--executor ray``
    (an empty table stays local), else local."""
    if rows and current() == "ray":
        return RayExecutor()
    return LocalExecutor()
