"""The executor objects (``thresher.executors``): one ``run_rows`` seam, chosen by ``pick``."""

from __future__ import annotations

import polars as pl
import pytest

import thresher.executors as executors
from thresher.executor import ROW_INDEX, RowStage, run_stage
from thresher.executors import LocalExecutor, RayExecutor, pick
from thresher.stage import dropped_frame


class Odd(RowStage):
    """Drops odd numbers; batches of 3 rows; records every hook it ran."""

    name = "odd"
    batch_rows = 3

    def __init__(self, fail_at: int | None = None):
        self.calls: list[str] = []
        self.fail_at = fail_at

    def setup(self, config, where="", stage=None):
        self.calls.append("setup")
        return super().setup(config, where, stage)

    def process_batch(self, table, context):
        if self.fail_at is not None and self.fail_at in table["n"].to_list():
            raise RuntimeError("planted")
        context.count("batches")
        odd = pl.col("n") % 2 == 1
        return table.filter(~odd), dropped_frame(table.filter(odd), self.name, "odd", "odd")

    def finalize(self, kept, dropped, context):
        self.calls.append("finalize")
        assert kept[ROW_INDEX].to_list() == sorted(kept[ROW_INDEX].to_list())  # input order, numbered
        return kept, dropped, {"batches": context.counters["batches"]}

    def teardown(self, context):
        self.calls.append("teardown")


def _table(n: int = 8) -> pl.DataFrame:
    return pl.DataFrame({"id": [f"r{i}" for i in range(n)], "n": list(range(n))})


def test_local_run_rows_keeps_input_order_and_runs_every_hook_once():
    impl = Odd()
    kept, dropped, stats, context = LocalExecutor().run_rows(impl, None, _table(), None, "x.jsonl")
    assert kept["n"].to_list() == [0, 2, 4, 6]
    assert dropped["n"].to_list() == [1, 3, 5, 7]
    assert ROW_INDEX not in kept.columns and ROW_INDEX not in dropped.columns
    assert stats == {"batches": 3}  # 8 rows in batches of 3
    assert impl.calls == ["setup", "finalize", "teardown"]
    assert context.where == "x.jsonl"


def test_local_run_rows_tears_down_when_a_batch_fails():
    impl = Odd(fail_at=4)
    with pytest.raises(RuntimeError, match="planted"):
        LocalExecutor().run_rows(impl, None, _table(), None, "")
    assert impl.calls == ["setup", "teardown"]


def test_pick_is_local_unless_ray_was_chosen_and_there_are_rows(monkeypatch):
    assert isinstance(pick(10), LocalExecutor)
    monkeypatch.setattr(executors, "current", lambda: "ray")
    assert isinstance(pick(10), RayExecutor)
    assert isinstance(pick(0), LocalExecutor)  # an empty table never starts a cluster


def test_run_stage_goes_through_the_picked_executor(tmp_path, monkeypatch):
    seen = []

    class Spy(LocalExecutor):
        def run_rows(self, impl, config, table, stage, where):
            seen.append((impl.name, table.height, stage.out.name))
            return super().run_rows(impl, config, table, stage, where)

    monkeypatch.setattr("thresher.executor.pick", lambda rows: Spy())
    res = run_stage(Odd(), [], tmp_path / "out", {"k": 1}, table=_table(5))
    assert seen == [("odd", 5, "out")]
    assert pl.read_parquet(res.out / "kept.parquet")["n"].to_list() == [0, 2, 4]
