"""Verified scoring on the Ray executor equals the local one: verifiers per batch in the
workers, pass rates over every batch on the driver, rows without a reference dropped."""

from __future__ import annotations

import json

import polars as pl
import pytest
from click.testing import CliRunner

from tests.curate.test_passrate import _planted
from thresher.cli.main import cli


@pytest.mark.slow
def test_verify_and_passrate_match_local_under_ray(tmp_path, ray_cluster):
    src = _planted(tmp_path / "rows.jsonl", {f"p{i}": i for i in range(9)}, n=8)
    with open(src, "a") as f:
        f.write(json.dumps({"id": "no-ref", "parent_id": "p0", "messages": [
            {"role": "user", "content": "Question p0?"}, {"role": "assistant", "content": "7"}]}) + "\n")
    score = ["curate", "score", str(src), "-s", "m=verify:math", "-s", "passrate:m", "--on-bad-rows", "skip"]
    r = CliRunner().invoke(cli, [*score, "--out", str(tmp_path / "local")])
    assert r.exit_code == 0, r.output
    r = CliRunner().invoke(cli, [*score, "--out", str(tmp_path / "ray"), "--executor", "ray"])
    assert r.exit_code == 0, r.output
    a, b = (pl.read_parquet(tmp_path / d / "kept.parquet") for d in ("local", "ray"))
    cols = ["id", "score_m", "score_passrate"]
    assert a.select(cols).equals(b.select(cols)) and a.height == 72
    assert dict(zip(a["parent_id"], a["score_passrate"])) == {f"p{i}": i / 8 for i in range(9)}
    for d in ("local", "ray"):
        dropped = pl.read_parquet(tmp_path / d / "dropped.parquet")
        assert dropped["id"].to_list() == ["no-ref"] and dropped["drop_code"].to_list() == ["no-reference"]
