"""Streaming on Ray (issue 24, section 4): the workers read the rows and write the parts, the
driver gets projections; same kept and dropped rows and stats as the local streaming run; a
stage's own parts read without conversion; resume per part after a failed or killed driver."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest

from tests.core.test_streaming import CONFIG, ONE_PASS, _jsonl, _rows, _same
from thresher.curate.filter.stage import Config, run
from thresher.executor import RowStage, run_stage
from thresher.executors.ray_session import using
from thresher.executors.stream import MIN_BYTES_ENV, PART_ROWS_ENV
from thresher.io import parts
from thresher.io.inputs import read_inputs
from thresher.stage_folder import PARTS_WORK, damage, read_manifest

STATS = ("rows_in", "rows_out", "rows_dropped", "drop_codes", "kept_by_category", "dropped_by_rule", "thresholds")


@pytest.fixture
def stream(monkeypatch):
    """Stream every input, in parts of 40 rows."""
    monkeypatch.setenv(MIN_BYTES_ENV, "0")
    monkeypatch.setenv(PART_ROWS_ENV, "40")


def _filter(src: Path, out: Path, executor: str = "local", **kw) -> dict:
    with using(executor):
        return run([src], out, Config(**{**CONFIG, **kw}), read={"on_bad_rows": "skip"}).stats


def _same_stats(a: dict, b: dict) -> None:
    for key in STATS:
        assert a[key] == b[key], key
    assert {k: v for k, v in a["streamed"].items() if k != "inputs"} == b["streamed"]


def test_a_filter_on_ray_streams_what_the_local_run_streams(tmp_path, stream, ray_cluster):
    src = _jsonl(tmp_path / "in.jsonl", _rows(200))
    local = _filter(src, tmp_path / "local")
    ray_run = _filter(src, tmp_path / "ray", "ray")
    _same(tmp_path / "ray", tmp_path / "local")
    _same_stats(ray_run, local)
    assert ray_run["executor"] == "ray" and ray_run["streamed"]["inputs"] == "converted"
    assert ray_run["streamed"]["parts"] == 6 and ray_run["dropped_by_rule"]["min:score_q_rz"] > 0
    assert len(parts.files(tmp_path / "ray" / "kept.parquet")) == 6
    assert parts.read(tmp_path / "ray" / "dropped.parquet")["drop_stage"].to_list().count("read") == 1
    assert damage(tmp_path / "ray") is None and not (tmp_path / "ray" / PARTS_WORK).exists()
    assert not (tmp_path / "ray" / "ray-shards").exists()  # not the whole-table Ray path


def test_the_next_stage_reads_the_parts_on_the_workers(tmp_path, stream, ray_cluster, monkeypatch):
    import thresher.executors.stream_ray as stream_ray

    src = _jsonl(tmp_path / "in.jsonl", _rows(200))
    _filter(src, tmp_path / "a", "ray")
    _filter(tmp_path / "a", tmp_path / "b-local", min_chars=20)

    def no_conversion(*args, **kw):
        raise AssertionError("the driver converted a stage's own parts")

    monkeypatch.setattr(stream_ray, "_convert", no_conversion)
    stats = _filter(tmp_path / "a", tmp_path / "b", "ray", min_chars=20)
    assert stats["streamed"]["inputs"] == "parts" and stats["streamed"]["parts"] > 1
    assert stats["rows_in"] == parts.count(tmp_path / "a" / "kept.parquet")
    _same(tmp_path / "b", tmp_path / "b-local")
    assert parts.read(tmp_path / "b" / "kept.parquet")["id"].to_list() == \
        parts.read(tmp_path / "b-local" / "kept.parquet")["id"].to_list()  # in input order


def test_large_rows_cut_the_same_parts_on_the_workers(tmp_path, stream, ray_cluster, monkeypatch):
    from thresher.io.stream import PART_BYTES_ENV

    src = _jsonl(tmp_path / "in.jsonl", _rows(200))
    _filter(src, tmp_path / "a")
    monkeypatch.setenv(PART_BYTES_ENV, "3000")  # the driver's setting; the workers never see it
    local = _filter(tmp_path / "a", tmp_path / "b-local", min_chars=20)
    on_ray = _filter(tmp_path / "a", tmp_path / "b", "ray", min_chars=20)
    assert on_ray["streamed"]["inputs"] == "parts" and on_ray["streamed"]["parts"] == local["streamed"]["parts"] > 6
    _same(tmp_path / "b", tmp_path / "b-local")


def test_a_failed_driver_reuses_the_finished_parts(tmp_path, stream, ray_cluster, monkeypatch):
    import thresher.executors.stream_ray as stream_ray

    src = _jsonl(tmp_path / "in.jsonl", _rows(200))
    _filter(src, tmp_path / "local")

    def stop(point):
        raise RuntimeError(f"stopped at {point}")

    monkeypatch.setattr(stream_ray, "kill_point", stop)
    with pytest.raises(RuntimeError, match="stopped at part-"):
        _filter(src, tmp_path / "ray", "ray")
    monkeypatch.undo()
    monkeypatch.setenv(MIN_BYTES_ENV, "0")
    monkeypatch.setenv(PART_ROWS_ENV, "40")
    assert read_manifest(tmp_path / "ray")["status"] == "running"
    finished = list((tmp_path / "ray" / PARTS_WORK / "pass1").glob("part-*.json"))
    assert finished
    again = _filter(src, tmp_path / "ray", "ray")
    assert len(finished) <= again["streamed"]["parts_reused"] <= again["streamed"]["parts"]
    _same(tmp_path / "ray", tmp_path / "local")
    _same_stats({**again, "streamed": {**again["streamed"], "parts_reused": 0}}, _filter(src, tmp_path / "l2"))


def test_a_one_pass_stage_on_ray_writes_its_parts_on_the_workers(tmp_path, stream, ray_cluster, monkeypatch):
    import thresher.executors.stream_ray as stream_ray

    src = _jsonl(tmp_path / "in.jsonl", _rows(200))
    heuristics = {"normalize": "none", "min_scores": {}, **ONE_PASS}
    local = _filter(src, tmp_path / "local", **heuristics)

    def stop(point):
        raise RuntimeError(f"stopped at {point}")

    monkeypatch.setattr(stream_ray, "kill_point", stop)
    with pytest.raises(RuntimeError, match="stopped at part-"):
        _filter(src, tmp_path / "ray", "ray", **heuristics)
    monkeypatch.undo()
    monkeypatch.setenv(MIN_BYTES_ENV, "0")
    monkeypatch.setenv(PART_ROWS_ENV, "40")
    finished = list((tmp_path / "ray" / PARTS_WORK / "pass1").glob("part-*.json"))
    assert finished and (tmp_path / "ray" / PARTS_WORK / "final" / "kept.parquet").is_dir()
    again = _filter(src, tmp_path / "ray", "ray", **heuristics)
    assert again["streamed"]["passes"] == local["streamed"]["passes"] == 1
    assert len(finished) <= again["streamed"]["parts_reused"] <= again["streamed"]["parts"] == 6
    _same(tmp_path / "ray", tmp_path / "local")
    for key in (*STATS, "drop_reasons", "dropped_by_category", "rows_rejected_on_read"):
        assert again[key] == local[key], key


def _ray_filter_proc(src: Path, out: Path, address: str, kill_at: str | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "THRESHER_PROGRESS": "0", MIN_BYTES_ENV: "0", PART_ROWS_ENV: "40"}
    env.pop("THRESHER_TEST_KILL_AT", None)
    if kill_at:
        env["THRESHER_TEST_KILL_AT"] = kill_at
    code = ("import sys, json; from pathlib import Path; from thresher.curate.filter.stage import Config, run; "
            "from thresher.executors.ray_session import using\n"
            "with using('ray', sys.argv[3]):\n"
            f"    r = run([Path(sys.argv[1])], Path(sys.argv[2]), Config(**{CONFIG!r}), read={{'on_bad_rows': 'skip'}})\n"
            "print(json.dumps(r.stats['streamed']))")
    return subprocess.run([sys.executable, "-c", code, str(src), str(out), address], env=env,
                          capture_output=True, text=True, timeout=300)


@pytest.mark.slow
def test_a_killed_driver_then_rerun_redoes_only_the_unfinished_parts(tmp_path, ray_cluster):
    src = _jsonl(tmp_path / "in.jsonl", _rows(200))
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(MIN_BYTES_ENV, "0")
        mp.setenv(PART_ROWS_ENV, "40")
        _filter(src, tmp_path / "local")
    killed = _ray_filter_proc(src, tmp_path / "ray", ray_cluster, kill_at="part-3")
    assert killed.returncode == -9, killed.stderr[-2000:]
    assert read_manifest(tmp_path / "ray")["status"] == "running"
    markers = {p.name: p.stat().st_mtime_ns for p in (tmp_path / "ray" / PARTS_WORK / "pass1").glob("part-*.json")}
    assert "part-00003.json" in markers
    again = _ray_filter_proc(src, tmp_path / "ray", ray_cluster)
    assert again.returncode == 0, again.stderr[-2000:]
    streamed = json.loads(again.stdout.strip().splitlines()[-1])
    assert streamed["parts"] >= streamed["parts_reused"] >= len(markers)  # parts finished before the kill
    _same(tmp_path / "ray", tmp_path / "local")
    assert damage(tmp_path / "ray") is None


class Tagger(RowStage):
    """A toy model stage: ``setup`` 'loads a model' (notes its process), rows kept with it."""

    name = "tagger"
    loads_model = True

    def setup(self, config, where="", stage=None):
        context = super().setup(config, where, stage)
        context.state["pid"] = os.getpid()
        return context

    def streams(self, config):
        return True

    def process_batch(self, table, context):
        context.count("rows", table.height)
        return table.with_columns(pl.lit(context.state["pid"]).alias("loaded_in")), table.clear()

    def finalize(self, kept, dropped, context):
        return kept, dropped, {"counted": context.counters.get("rows", 0)}


def test_a_model_stage_runs_in_actors_loading_once_each(tmp_path, stream, ray_cluster):
    import ray.cloudpickle

    src = _jsonl(tmp_path / "in.jsonl", _rows(200), bad_line=False)
    module = sys.modules[__name__]
    ray.cloudpickle.register_pickle_by_value(module)
    try:
        with using("ray"):
            res = run_stage(Tagger(), [src], tmp_path / "ray", None)
    finally:
        ray.cloudpickle.unregister_pickle_by_value(module)
    kept = parts.read(tmp_path / "ray" / "kept.parquet")
    assert res.stats["counted"] == 200 == kept.height and res.stats["streamed"]["parts"] == 5
    assert kept["loaded_in"].n_unique() == 1 and kept["loaded_in"][0] != os.getpid()  # one actor, not the driver
    whole, _ = read_inputs([src])
    assert kept["id"].to_list() == whole["id"].to_list()


def test_a_worker_error_is_the_local_one_line(tmp_path, stream, ray_cluster):
    from thresher.errors import ThresherError

    src = _jsonl(tmp_path / "in.jsonl", _rows(50), bad_line=False)
    errors = []
    for executor in ("local", "ray"):
        with using(executor), pytest.raises(ThresherError) as caught:
            run([src], tmp_path / executor, Config(min_scores={"score_nope": 0.5}))
        errors.append(str(caught.value))
    assert errors[1] == errors[0] and "no column 'score_nope' to filter on" in errors[0]
