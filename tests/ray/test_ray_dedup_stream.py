"""Dedup streamed on Ray (issue 24, section 4): the workers write side tables, every decision is
a Ray task over them, the driver holds no row; the result is the local streamed run's."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest

from tests.curate._dedup_data import write_jsonl
from tests.curate.test_dedup_streaming import PART, VOLATILE, _frame, corpus
from thresher.config import from_dict
from thresher.curate.dedup.stage import Config, run
from thresher.executors.ray_session import using
from thresher.executors.stream import MIN_BYTES_ENV, PART_ROWS_ENV
from thresher.io import parts
from thresher.stage_folder import PARTS_WORK, damage

#: stats only the Ray run has, or that say how it ran
RAY_ONLY = {"executor", "partitions", "label_rounds", "ray_seconds", "spilled"}


@pytest.fixture
def stream(monkeypatch):
    monkeypatch.setenv(MIN_BYTES_ENV, "0")
    monkeypatch.setenv(PART_ROWS_ENV, str(PART))


def _run(src: Path, out: Path, executor: str, **options) -> dict:
    with using(executor):
        return run([src], out, from_dict(Config, options)).stats


def _assert_same(ray_out: Path, local: Path) -> None:
    for name in ("kept.parquet", "dropped.parquet", "clusters.parquet"):
        a, b = _frame(ray_out, name), _frame(local, name)
        assert a.columns == b.columns, name
        assert a.equals(b, null_equal=True), name
    assert (parts.read(ray_out / "kept.parquet")["id"].to_list()
            == parts.read(local / "kept.parquet")["id"].to_list()), "kept rows in input order"
    assert (parts.read(ray_out / "dropped.parquet")["id"].to_list()
            == parts.read(local / "dropped.parquet")["id"].to_list()), "dropped rows in input order"
    clusters = [pl.read_parquet(f / "clusters.parquet") for f in (ray_out, local)]
    assert clusters[0].equals(clusters[1]), "clusters.parquet in the same order"
    sa = json.loads((ray_out / "stats.json").read_text())
    sb = json.loads((local / "stats.json").read_text())
    skip = VOLATILE | RAY_ONLY
    assert {k: v for k, v in sa.items() if k not in skip} == {k: v for k, v in sb.items() if k not in skip}


@pytest.mark.parametrize("options", [
    {},
    {"keep_by": "score"},
    {"on": "response", "shingle": "char", "ngram": 7},
], ids=["plain", "keep_by", "response-char"])
def test_dedup_on_ray_decides_in_tasks_what_the_local_stream_decides(tmp_path, stream, ray_cluster, options):
    rows, _ = corpus()
    src = write_jsonl(tmp_path / "in.jsonl", rows)
    local = _run(src, tmp_path / "local", "local", **options)
    on_ray = _run(src, tmp_path / "ray", "ray", **options)
    _assert_same(tmp_path / "ray", tmp_path / "local")
    assert on_ray["executor"] == "ray" and on_ray["streamed"]["parts"] == local["streamed"]["parts"] > 5
    if options.get("on") != "response":
        assert on_ray["exact_duplicates"] > 0 and on_ray["near_duplicates"] > 0
    assert damage(tmp_path / "ray") is None and not (tmp_path / "ray" / PARTS_WORK).exists()
