"""Dedup streamed on Ray (issue 24, section 4): the workers write side tables, every decision is
a Ray task over them, the driver holds no row; the result is the local streamed run's."""

from __future__ import annotations

import json
import os
import subprocess
import sys
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
from thresher.stage_folder import KILL_ENV, PARTS_WORK, damage, read_manifest

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


def test_the_driver_builds_no_projection(tmp_path, stream, ray_cluster, monkeypatch):
    from thresher.executors import stream as local_stream

    def refuse(*args, **kwargs):
        raise AssertionError("the driver streamed the rows itself")

    monkeypatch.setattr(local_stream, "run_streaming", refuse)
    monkeypatch.setattr(local_stream.ProjectedStage, "finalize", refuse)
    rows, _ = corpus()
    stats = _run(write_jsonl(tmp_path / "in.jsonl", rows), tmp_path / "ray", "ray", keep_by="score")
    assert stats["executor"] == "ray" and stats["near_duplicates"] > 0


def test_a_stage_folder_is_read_by_the_workers(tmp_path, stream, ray_cluster):
    rows, _ = corpus(3)
    src = write_jsonl(tmp_path / "in.jsonl", rows)
    _run(src, tmp_path / "first", "local", threshold=1.0, on="prompt")  # a stage folder of parts
    first = tmp_path / "first" / "kept.parquet"
    assert len(parts.files(first)) > 5
    local = _run(first, tmp_path / "local", "local", keep_by="score")
    on_ray = _run(first, tmp_path / "ray", "ray", keep_by="score")
    assert on_ray["streamed"]["inputs"] == "parts" and on_ray["near_duplicates"] == local["near_duplicates"]
    _assert_same(tmp_path / "ray", tmp_path / "local")


def test_a_missing_keep_by_column_is_the_same_one_line_error(tmp_path, stream, ray_cluster):
    from thresher.errors import ThresherError

    rows, _ = corpus()
    src = write_jsonl(tmp_path / "in.jsonl", rows)
    messages = []
    for executor in ("local", "ray"):
        with pytest.raises(ThresherError) as e:
            _run(src, tmp_path / executor, executor, keep_by="quality")
        messages.append(str(e.value))
    assert messages[0] == messages[1]
    assert messages[1].startswith(f"{src}: keep_by column 'quality' not found (columns: id, messages")


@pytest.mark.parametrize("options", [{"cluster": "star", "keep_by": "score"}, {"verify": "exact"}],
                         ids=["star", "verify-exact"])
def test_other_minhash_configs_stream_on_the_driver_under_ray(tmp_path, stream, ray_cluster, options):
    rows, _ = corpus()
    src = write_jsonl(tmp_path / "in.jsonl", rows)
    local = _run(src, tmp_path / "local", "local", **options)
    on_ray = _run(src, tmp_path / "ray", "ray", **options)
    assert "partitions" not in on_ray and on_ray["streamed"]["parts"] == local["streamed"]["parts"]
    _assert_same(tmp_path / "ray", tmp_path / "local")


def _ray_dedup_proc(src: Path, out: Path, address: str, kill_at: str | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "THRESHER_PROGRESS": "0", MIN_BYTES_ENV: "0", PART_ROWS_ENV: str(PART)}
    env.pop(KILL_ENV, None)
    if kill_at:
        env[KILL_ENV] = kill_at
    code = ("import sys, json; from pathlib import Path; from thresher.curate.dedup.stage import Config, run; "
            "from thresher.executors.ray_session import using\n"
            "with using('ray', sys.argv[3]):\n"
            "    r = run([Path(sys.argv[1])], Path(sys.argv[2]), Config(keep_by='score'))\n"
            "print(json.dumps(r.stats['streamed']))")
    return subprocess.run([sys.executable, "-c", code, str(src), str(out), address], env=env,
                          capture_output=True, text=True, timeout=300)


@pytest.mark.slow
@pytest.mark.parametrize("kill_at", ["part-2", "part-6", "decided"])
def test_a_killed_driver_then_rerun_gives_the_same_rows(tmp_path, ray_cluster, monkeypatch, kill_at):
    rows, _ = corpus()
    src = write_jsonl(tmp_path / "in.jsonl", rows)
    monkeypatch.setenv(MIN_BYTES_ENV, "0")
    monkeypatch.setenv(PART_ROWS_ENV, str(PART))
    _run(src, tmp_path / "local", "local", keep_by="score")
    killed = _ray_dedup_proc(src, tmp_path / "ray", ray_cluster, kill_at=kill_at)
    assert killed.returncode == -9, killed.stderr[-2000:]
    assert read_manifest(tmp_path / "ray")["status"] == "running"
    markers = list((tmp_path / "ray" / PARTS_WORK / "pass1").glob("part-*.json"))
    again = _ray_dedup_proc(src, tmp_path / "ray", ray_cluster)
    assert again.returncode == 0, again.stderr[-2000:]
    streamed = json.loads(again.stdout.strip().splitlines()[-1])
    assert streamed["parts_reused"] >= len(markers) > 0  # the parts finished before the kill
    if kill_at == "decided":
        assert streamed["parts_reused"] == streamed["parts"]
    _assert_same(tmp_path / "ray", tmp_path / "local")
    assert damage(tmp_path / "ray") is None


def test_an_input_of_bad_rows_only_gives_an_empty_result(tmp_path, stream, ray_cluster):
    src = tmp_path / "bad.jsonl"
    src.write_text("not json\n{\"messages\": 3}\n")
    stats = []
    for executor in ("local", "ray"):
        with using(executor):
            stats.append(run([src], tmp_path / executor, Config(), read={"on_bad_rows": "skip"}).stats)
    assert stats[1]["rows_in"] == stats[0]["rows_in"] == 2 and stats[1]["rows_out"] == 0
    assert stats[1]["clusters"] == 0 and stats[1]["executor"] == "ray"
    assert parts.read(tmp_path / "ray" / "dropped.parquet")["drop_stage"].to_list() == ["read", "read"]
    assert pl.read_parquet(tmp_path / "ray" / "clusters.parquet").height == 0
