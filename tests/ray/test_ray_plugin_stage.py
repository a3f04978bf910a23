"""A plug-in stage (the CONTRIBUTING.md example, installed as a package outside thresher)
runs on Ray with the local result; its module reaches the workers by value (a real plug-in
is installed on the cluster)."""

from __future__ import annotations

import polars as pl
import pytest
from click.testing import CliRunner

from tests.core.test_plugin_stage import write_rows
from tests.plugin_stage import turns_plugin  # noqa: F401 - a fixture
from thresher.cli.main import cli

pytestmark = pytest.mark.usefixtures("turns_plugin")  # the example stage, installed as a plug-in


def test_the_plugin_stage_runs_on_ray_with_the_local_result(ray_cluster, tmp_path):
    import ray.cloudpickle
    import turns_stage

    src = write_rows(tmp_path / "rows.jsonl")
    ray.cloudpickle.register_pickle_by_value(turns_stage)
    try:
        runs = {}
        for executor in ("local", "ray"):
            out = tmp_path / executor
            res = CliRunner().invoke(cli, ["turns", str(src), "--max-turns", "2", "--out", str(out),
                                           "--executor", executor])
            assert res.exit_code == 0, res.output
            runs[executor] = (pl.read_parquet(out / "kept.parquet"), pl.read_parquet(out / "dropped.parquet"))
    finally:
        ray.cloudpickle.unregister_pickle_by_value(turns_stage)
    assert (tmp_path / "ray" / "ray-shards").is_dir()
    (lk, ld), (rk, rd) = runs["local"], runs["ray"]
    assert rk["id"].to_list() == lk["id"].to_list() == ["t1", "t2", "u1"]
    assert rk["n_turns"].to_list() == lk["n_turns"].to_list()
    assert sorted(zip(rd["id"], rd["drop_code"])) == sorted(zip(ld["id"], ld["drop_code"]))
