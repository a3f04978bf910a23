"""Streaming row-wise stages (issue 24): inputs read in batches, each batch a Parquet part,
``finalize`` from a projection, a second pass, resume per part after a kill."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from thresher.curate.filter.stage import Config, run
from thresher.executor import ROW_INDEX, GlobalStage, run_stage
from thresher.executors.stream import MIN_BYTES_ENV, PART_ROWS_ENV
from thresher.io import parts
from thresher.io.stream import iter_inputs, streamable
from thresher.stage import dropped_frame
from thresher.stage_folder import PARTS_WORK, damage, read_manifest

WORDS = ["alpha", "beta", "gamma", "delta", "the", "sea", "is", "blue", "seven"]


def _rows(n: int, seed: int = 0) -> list[dict]:
    import random

    rng = random.Random(seed)
    out = []
    for i in range(n):
        q = " ".join(rng.choice(WORDS) for _ in range(rng.randint(1, 8)))
        a = " ".join(rng.choice(WORDS) for _ in range(rng.randint(0, 10)))
        row = {"messages": [{"role": "user", "content": f"{q} {i}?"}, {"role": "assistant", "content": a}],
               "category": rng.choice(["x", "y", "z"]), "score_q": rng.random()}
        if i >= n // 2:
            row["note"] = f"n{i}"  # a column the first batches do not have
        out.append(row)
    return out


def _jsonl(path: Path, rows: list[dict], bad_line: bool = True) -> Path:
    with open(path, "w", encoding="utf-8") as fh:
        for i, r in enumerate(rows):
            fh.write(json.dumps(r) + "\n")
            if bad_line and i == len(rows) // 3:
                fh.write("{not json\n")
    return path


@pytest.fixture
def stream(monkeypatch):
    """Stream every input, in parts of 40 rows."""
    monkeypatch.setenv(MIN_BYTES_ENV, "0")
    monkeypatch.setenv(PART_ROWS_ENV, "40")


CONFIG = dict(min_chars=12, normalize="robust", min_scores={"score_q_rz": -1.0})


def _run(src: Path, out: Path, **kw) -> dict:
    res = run([src], out, Config(**{**CONFIG, **kw}), read={"on_bad_rows": "skip"})
    return res.stats


def _same(a: Path, b: Path) -> None:
    for name in ("kept.parquet", "dropped.parquet"):
        x, y = parts.read(a / name), parts.read(b / name)
        assert sorted(x.columns) == sorted(y.columns), name
        assert x.select(sorted(x.columns)).sort("id").equals(y.select(sorted(y.columns)).sort("id"), null_equal=True), name


def test_batches_give_the_rows_and_rejects_of_the_whole_read(tmp_path):
    from thresher.io.inputs import read_inputs

    src = _jsonl(tmp_path / "in.jsonl", _rows(100))
    assert streamable([src])
    got = list(iter_inputs([src], {"on_bad_rows": "skip"}, rows=30))
    assert [b.height for b, _ in got] == [30, 29, 30, 11]  # 30 lines a batch, one bad and sum(r.height for _, r in got) == 1
    whole, rejected = read_inputs([src], {"on_bad_rows": "skip"})
    assert pl.concat([b for b, _ in got], how="diagonal_relaxed")["id"].to_list() == whole["id"].to_list()
    assert rejected["drop_reason"].to_list() == pl.concat([r for _, r in got])["drop_reason"].to_list()


def _sized_rows(sizes: list[int]) -> list[dict]:
    return [{"id": f"r{i}", "messages": [{"role": "user", "content": f"q{i}"}, {"role": "assistant", "content": "x" * n}]}
            for i, n in enumerate(sizes)]


def test_a_batch_ends_once_its_lines_pass_the_byte_cap(tmp_path):
    sizes = [100] * 10 + [5000, 5000, 5000] + [100] * 20  # three "reasoning traces" in the middle
    src = _jsonl(tmp_path / "in.jsonl", _sized_rows(sizes), bad_line=False)
    lines = [len(x) + 1 for x in src.read_text().splitlines()]
    got = [b for b, _ in iter_inputs([src], rows=8, max_bytes=6000)]
    heights = [b.height for b in got]
    assert sum(heights) == 33 and max(heights) <= 8
    first = 0
    for h in heights[:-1]:  # every batch but the last: full, or past the cap with its last line only
        size = sum(lines[first:first + h])
        assert h == 8 or (size >= 6000 and size - lines[first + h - 1] < 6000), (first, h)
        first += h
    assert heights[:3] == [8, 4, 6]  # 8 short lines; 2 short and 2 traces; the third trace and a few short
    assert pl.concat(got)["id"].to_list() == [f"r{i}" for i in range(33)]
    again = [b.height for b, _ in iter_inputs([src], rows=8, max_bytes=6000)]
    assert again == heights  # the same data cuts the same batches


def _taken(data: bytes, rows: int, size: int) -> list[bytes]:
    """Batches of ``data``'s lines taken one line object at a time (the reader before
    :func:`~thresher.io.compress.line_batches`)."""
    source, out = iter(io.BytesIO(data)), []
    while True:
        batch, total = [], 0
        for line in source:
            batch.append(line)
            total += len(line)
            if len(batch) >= rows or total >= size:
                break
        if not batch:
            return out
        out.append(b"".join(batch))


@settings(max_examples=200, deadline=None)
@given(st.lists(st.binary(max_size=12).map(lambda b: b.replace(b"\n", b"")), max_size=40),
       st.booleans(), st.integers(1, 6), st.integers(1, 60), st.sampled_from([1, 3, 7, 1 << 20]))
def test_line_batches_cut_where_taking_lines_one_by_one_cuts(tmp_path_factory, lines, tail, rows, size, read):
    import thresher.io.compress as compress

    data = b"\n".join(lines) + (b"\n" if tail and lines else b"")
    path = tmp_path_factory.mktemp("lines") / "in.jsonl"
    path.write_bytes(data)
    old, compress.READ_BYTES = compress.READ_BYTES, read  # blocks that cut lines anywhere
    try:
        got = list(compress.line_batches(path, "in.jsonl", rows, size))
    finally:
        compress.READ_BYTES = old
    assert got == _taken(data, rows, size)
    assert [line for b in got for line in compress.split_lines(b)] == list(io.BytesIO(data))


def test_line_batches_of_a_compressed_file_are_those_of_the_plain_one(tmp_path):
    import gzip

    from thresher.io.compress import line_batches

    data = b"".join(b'{"i": %d, "pad": "%s"}\n' % (i, b"x" * (i % 50)) for i in range(3000))
    (tmp_path / "a.jsonl").write_bytes(data)
    (tmp_path / "a.jsonl.gz").write_bytes(gzip.compress(data))
    plain = list(line_batches(tmp_path / "a.jsonl", "a.jsonl", 700, 20_000))
    assert list(line_batches(tmp_path / "a.jsonl.gz", "a.jsonl.gz", 700, 20_000)) == plain
    assert b"".join(plain) == data and len(plain) > 3


def test_the_byte_cap_holds_for_csv_and_parquet(tmp_path):
    import pyarrow.parquet as pq

    from thresher.io.parts import batch_rows

    rows = [{"id": f"r{i}", "prompt": f"q{i}", "response": "y" * 1000} for i in range(40)]
    csv = tmp_path / "in.csv"
    pl.DataFrame(rows).write_csv(csv)
    assert [b.height for b, _ in iter_inputs([csv], rows=100, max_bytes=4500)] == [5] * 8
    pq_file = tmp_path / "in.parquet"
    pl.DataFrame(_sized_rows([1000] * 40)).write_parquet(pq_file, row_group_size=40, compression="uncompressed")
    per_batch = batch_rows(pq.ParquetFile(pq_file).metadata, 100, 4500)
    assert 2 <= per_batch <= 5
    got = [b.height for b, _ in iter_inputs([pq_file], rows=100, max_bytes=4500)]
    assert sum(got) == 40 and max(got) == per_batch
    assert batch_rows(pq.ParquetFile(pq_file).metadata, 3, 1 << 20) == 3  # the row count binds first


def test_large_rows_make_more_parts_with_the_same_result(tmp_path, stream, monkeypatch):
    from thresher.io.stream import PART_BYTES_ENV

    src = _jsonl(tmp_path / "in.jsonl", _rows(200))
    monkeypatch.setenv(PART_BYTES_ENV, "2000")
    res = _run(src, tmp_path / "s")
    monkeypatch.setenv(MIN_BYTES_ENV, str(1 << 40))
    _run(src, tmp_path / "w")
    assert res["streamed"]["parts"] > 6 and res["streamed"]["part_bytes"] == 2000
    _same(tmp_path / "s", tmp_path / "w")


def test_a_duplicate_id_in_a_later_batch_names_the_first_row(tmp_path):
    rows = [{"id": f"r{i}", "messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]}
            for i in range(10)]
    rows.append(dict(rows[2]))
    src = tmp_path / "in.parquet"
    pl.DataFrame(rows).write_parquet(src, row_group_size=4)
    from thresher.errors import InputError

    with pytest.raises(InputError, match=r"in.parquet:row 11: duplicate id 'r2' \(first seen at row 3\)"):
        list(iter_inputs([src], rows=4))


def test_json_arrays_and_batch_files_read_whole(tmp_path):
    arr = tmp_path / "a.json"
    arr.write_text(json.dumps([{"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]}]))
    batch = tmp_path / "b.jsonl"
    batch.write_text(json.dumps({"custom_id": "x", "response": {}}) + "\n")
    assert not streamable([arr]) and not streamable([batch])


def test_a_streamed_stage_writes_what_the_whole_table_run_writes(tmp_path, stream, monkeypatch):
    src = _jsonl(tmp_path / "in.jsonl", _rows(200))
    streamed = _run(src, tmp_path / "s")
    monkeypatch.setenv(MIN_BYTES_ENV, str(1 << 40))  # now read whole
    whole = _run(src, tmp_path / "w")
    assert parts.is_dataset(tmp_path / "s" / "kept.parquet") and len(parts.files(tmp_path / "s" / "kept.parquet")) == 6  # 201 lines
    assert (tmp_path / "w" / "kept.parquet").is_file()
    _same(tmp_path / "s", tmp_path / "w")
    assert streamed["streamed"] == {"parts": 6, "part_rows": 40, "part_bytes": 32 << 20, "parts_reused": 0, "passes": 2}
    for key in ("rows_in", "rows_out", "rows_dropped", "drop_codes", "kept_by_category", "dropped_by_rule"):
        assert streamed[key] == whole[key], key
    assert streamed["dropped_by_rule"]["min:score_q_rz"] > 0  # the global rule ran on the projection
    m = read_manifest(tmp_path / "s")
    rows = sum(r["rows"] for k, r in m["files"].items() if k.startswith("kept.parquet/"))
    assert rows == streamed["rows_out"] and damage(tmp_path / "s") is None
    assert not (tmp_path / "s" / PARTS_WORK).exists()


def test_every_part_has_the_same_columns(tmp_path, stream):
    src = _jsonl(tmp_path / "in.jsonl", _rows(200))
    _run(src, tmp_path / "s")
    for name in ("kept.parquet", "dropped.parquet"):
        schemas = {tuple(pl.read_parquet_schema(f).items()) for f in parts.files(tmp_path / "s" / name)}
        assert len(schemas) == 1, name
    assert "note" in parts.schema(tmp_path / "s" / "kept.parquet")


def test_a_small_output_stays_one_file(tmp_path, stream):
    src = _jsonl(tmp_path / "in.jsonl", _rows(30), bad_line=False)
    _run(src, tmp_path / "s")
    assert (tmp_path / "s" / "kept.parquet").is_file() and (tmp_path / "s" / "dropped.parquet").is_file()


def test_the_next_stage_streams_from_the_parts(tmp_path, stream):
    src = _jsonl(tmp_path / "in.jsonl", _rows(200))
    _run(src, tmp_path / "a")
    res = run([tmp_path / "a"], tmp_path / "b", Config(min_chars=20))
    kept_a = parts.read(tmp_path / "a" / "kept.parquet")
    assert res.stats["rows_in"] == kept_a.height and res.stats["streamed"]["parts"] > 1
    rerun = run([tmp_path / "a"], tmp_path / "b", Config(min_chars=20))
    assert rerun.reused


def _filter_proc(src: Path, out: Path, kill_at: str | None = None, config: dict = CONFIG) -> subprocess.CompletedProcess:
    env = {**os.environ, "THRESHER_PROGRESS": "0", MIN_BYTES_ENV: "0", PART_ROWS_ENV: "40"}
    env.pop("THRESHER_TEST_KILL_AT", None)
    if kill_at:
        env["THRESHER_TEST_KILL_AT"] = kill_at
    code = ("import sys, json; from pathlib import Path; from thresher.curate.filter.stage import Config, run; "
            f"r = run([Path(sys.argv[1])], Path(sys.argv[2]), Config(**{config!r}), read={{'on_bad_rows': 'skip'}}); "
            "print(json.dumps(r.stats, default=str))")
    return subprocess.run([sys.executable, "-c", code, str(src), str(out)], env=env, capture_output=True, text=True)


#: a filter with heuristics only: its finalize decides nothing, so it streams in one pass
ONE_PASS = dict(min_chars=12, max_repeat_ratio=0.3)


@pytest.mark.slow
@pytest.mark.parametrize(("point", "done", "config"), [
    ("part-0", 1, CONFIG), ("part-2", 3, CONFIG), ("kept", 6, CONFIG),
    ("part-0", 1, ONE_PASS), ("part-3", 4, ONE_PASS), ("stats", 0, ONE_PASS)])
def test_a_kill_mid_stream_redoes_only_the_unfinished_parts(point, done, config, tmp_path):
    src = _jsonl(tmp_path / "in.jsonl", _rows(200))
    whole = _filter_proc(src, tmp_path / "whole", config=config)
    assert whole.returncode == 0
    killed = _filter_proc(src, tmp_path / "s", kill_at=point, config=config)
    assert killed.returncode == -9, killed.stderr
    assert read_manifest(tmp_path / "s")["status"] == "running"
    again = _filter_proc(src, tmp_path / "s", config=config)
    assert again.returncode == 0, again.stderr
    stats, first = (json.loads(p.stdout.strip().splitlines()[-1]) for p in (again, whole))
    assert stats["streamed"]["parts_reused"] == done
    for key in ("rows_out", "rows_dropped", "drop_codes", "drop_reasons", "kept_by_category", "dropped_by_rule"):
        assert stats[key] == first[key], key
    _same(tmp_path / "s", tmp_path / "whole")
    assert damage(tmp_path / "s") is None


def test_a_stage_that_decides_nothing_writes_its_parts_in_one_pass(tmp_path, stream, monkeypatch):
    from thresher.executors import stream as S

    def no_second_pass(*args, **kwargs):
        raise AssertionError("a one-pass run rewrote a part")

    src = _jsonl(tmp_path / "in.jsonl", _rows(200))
    monkeypatch.setattr(S, "rewrite_part", no_second_pass)
    streamed = _run(src, tmp_path / "s", **{"normalize": "none", "min_scores": {}, **ONE_PASS})
    monkeypatch.setenv(MIN_BYTES_ENV, str(1 << 40))
    whole = _run(src, tmp_path / "w", **{"normalize": "none", "min_scores": {}, **ONE_PASS})
    _same(tmp_path / "s", tmp_path / "w")
    assert streamed["streamed"]["passes"] == 1 and len(parts.files(tmp_path / "s" / "kept.parquet")) == 6
    for key in ("rows_in", "rows_out", "rows_dropped", "rows_rejected_on_read", "drop_codes", "drop_reasons",
                "kept_by_category", "dropped_by_category", "dropped_by_rule", "thresholds"):
        assert streamed[key] == whole[key], key
    assert streamed["rows_rejected_on_read"] == 1 and streamed["dropped_by_rule"]["heuristics"] > 0


def test_a_lean_projection_holds_only_what_finalize_reads():
    from thresher.curate.filter.stage import FilterStage
    from thresher.curate.score.stage import Config as ScoreConfig
    from thresher.curate.score.stage import ScoreStage
    from thresher.executors.stream import lean

    rows = pl.DataFrame({"id": ["a", "b"], "category": ["x", "y"], "score_length": [3.0, None],
                         "length_error": [None, None], "drop_reason": [None, None]},
                        schema_overrides={"length_error": pl.String, "drop_reason": pl.String})
    class FromProjections(ScoreStage):
        def summarizes_parts(self, config):
            return False

    got = lean(rows, FromProjections(), ScoreConfig(scorers=["length"]))
    assert got.columns == [ROW_INDEX, "score_length", "length_error"] and got.height == 2
    assert got.schema[ROW_INDEX] == pl.Null and got.schema["length_error"] == pl.Null
    assert got.estimated_size() == rows["score_length"].estimated_size()  # the scores, nothing else
    summarized = lean(rows, ScoreStage(), ScoreConfig(scorers=["length"]))  # stats from the final parts
    assert summarized.columns == [ROW_INDEX] and summarized.estimated_size() == 0
    heuristics = lean(rows, FilterStage(), Config(min_chars=3))
    assert heuristics.columns == [ROW_INDEX] and heuristics.height == 2 and heuristics.estimated_size() == 0


def test_a_changed_config_starts_the_parts_afresh(tmp_path, stream, monkeypatch):
    src = _jsonl(tmp_path / "in.jsonl", _rows(200))
    work = tmp_path / "s" / PARTS_WORK
    (work / "pass1").mkdir(parents=True)
    (work / "key.json").write_text("{}")  # another run's parts
    (work / "pass1" / "part-00000.json").write_text("{}")
    stats = _run(src, tmp_path / "s")
    assert stats["streamed"]["parts_reused"] == 0


class Longest(GlobalStage):
    """A toy global stage: per category, only the row with the longest answer survives."""

    name = "longest"

    def streams(self, config):
        return True

    def project(self, batch, context):
        context.count("batches")
        return batch.select(pl.col("messages").list.last().struct.field("content").str.len_chars().alias("_len"))

    def run_projection(self, table, context):
        best = pl.col("_len") == pl.col("_len").max().over("category")
        first = pl.int_range(pl.len()).over("category", best) == 0
        keep = table.filter(best & first).drop("_len").with_columns(pl.lit(True).alias("longest"))
        drop = table.filter(~(best & first)).drop("_len")
        return keep, dropped_frame(drop, self.name, "shorter", "shorter"), {"batches": context.counters["batches"]}

    def run_table(self, table, context):
        table = table.with_row_index(ROW_INDEX)
        proj = table.select(ROW_INDEX, "id", "category").with_columns(self.project(table, context))
        keep, drop, stats = self.run_projection(proj, context)
        kept = table.join(keep, on=[ROW_INDEX, "id", "category"], how="inner", maintain_order="left")
        dropped = table.join(drop, on=[ROW_INDEX, "id", "category"], how="inner", maintain_order="left")
        return kept.drop(ROW_INDEX), dropped.drop(ROW_INDEX), stats


def test_a_global_stage_streams_from_its_projection(tmp_path, stream, monkeypatch):
    src = _jsonl(tmp_path / "in.jsonl", _rows(200), bad_line=False)
    res = run_stage(Longest(), [src], tmp_path / "s", None)
    assert res.stats["streamed"]["parts"] == 5 and res.stats["batches"] == 5
    monkeypatch.setenv(MIN_BYTES_ENV, str(1 << 40))
    whole = run_stage(Longest(), [src], tmp_path / "w", None)
    assert "streamed" not in whole.stats
    _same(tmp_path / "s", tmp_path / "w")
    kept = parts.read(tmp_path / "s" / "kept.parquet")
    assert kept.height == 3 and kept["longest"].to_list() == [True] * 3 and "_len" not in kept.columns


def _parquet_with_drop_columns(path: Path, n: int) -> Path:
    """Rows (a category, a score) that carry null drop columns, as a dropped.parquet does."""
    from thresher.schema import DROP_COLUMNS

    rows = [{k: v for k, v in r.items() if k != "note"} for r in _rows(n)]
    df = pl.DataFrame(rows).with_columns([pl.lit(None, dtype=pl.String).alias(c) for c in DROP_COLUMNS])
    df.write_parquet(path)
    return path


def test_a_projection_holds_categories_and_no_null_drop_columns():
    from thresher.curate.filter.stage import FilterStage
    from thresher.executors.stream import as_written, project

    rows = pl.DataFrame({ROW_INDEX: [0, 1], "id": ["a", "b"], "category": ["x", None], "score_q": [0.5, 0.1],
                         "drop_stage": [None, None], "drop_code": [None, None], "drop_reason": [None, None]},
                        schema_overrides={c: pl.String for c in ("drop_stage", "drop_code", "drop_reason")})
    kept = project(rows, FilterStage(), Config(**CONFIG), kept=True)
    assert kept.columns == [ROW_INDEX, "category", "score_q"]
    assert isinstance(kept.schema["category"], pl.Categorical) and kept["category"].to_list() == ["x", None]
    dropped = project(rows.with_columns(pl.lit("filter").alias("drop_stage")), FilterStage(), Config(**CONFIG))
    assert dropped.columns == [ROW_INDEX, "category", "drop_stage", "drop_code", "drop_reason", "score_q"]
    assert [str(t) for t in dropped.dtypes[1:5]] == ["Categorical", "Categorical", "Categorical", "String"]
    back = as_written(dropped, rows)
    assert back.schema["category"] == pl.String and back.schema["drop_code"] == pl.String
    assert back.equals(dropped.with_columns(pl.col("category", "drop_stage", "drop_code").cast(pl.String)))
    assert as_written(dropped, rows.with_columns(pl.col("category").cast(pl.Categorical))).schema["category"] \
        == pl.Categorical  # rows that hold a Categorical keep it


def test_compact_projections_change_no_result(tmp_path, stream, monkeypatch):
    import thresher.executors.stream as streaming

    src = _parquet_with_drop_columns(tmp_path / "in.parquet", 200)
    config = dict(top_by="score_q", top_fraction=0.8, per_category=True)  # the category groups a rule
    held: list[pl.DataFrame] = []
    finalize_parts = streaming.finalize_parts

    def spy(impl, context, done, work=None):
        held.extend(p.kept for p in done)
        return finalize_parts(impl, context, done, work)

    monkeypatch.setenv(PART_ROWS_ENV, "40")
    monkeypatch.setattr(streaming, "finalize_parts", spy)
    new = _run(src, tmp_path / "new", **config)
    assert len(held) == 5 and all(p.columns == [ROW_INDEX, "category", "score_q"] for p in held)
    assert all(isinstance(p.schema["category"], pl.Categorical) for p in held)
    monkeypatch.setattr(streaming, "compact", lambda projection, kept=False: projection)  # the old projections
    old = _run(src, tmp_path / "old", **config)
    monkeypatch.setenv(MIN_BYTES_ENV, str(1 << 40))
    whole = _run(src, tmp_path / "whole", **config)
    assert {k: v for k, v in new.items() if k != "seconds"} == {k: v for k, v in old.items() if k != "seconds"}
    assert new["dropped_by_rule"]["top"] > 0 and new["kept_by_category"] == whole["kept_by_category"]
    for key in ("rows_in", "rows_out", "rows_dropped", "drop_codes", "dropped_by_category", "dropped_by_rule"):
        assert new[key] == whole[key], key
    for name in ("kept.parquet", "dropped.parquet"):
        files = parts.files(tmp_path / "new" / name)
        assert [pl.read_parquet_schema(f) for f in files] == [pl.read_parquet_schema(f) for f in parts.files(tmp_path / "old" / name)]
        assert parts.read(tmp_path / "new" / name).equals(parts.read(tmp_path / "old" / name), null_equal=True), name
        assert parts.schema(tmp_path / "new" / name)["category"] == pl.String
    _same(tmp_path / "new", tmp_path / "whole")
