"""The streaming mix on Ray (issue 24, "the driver holds no rows"): the workers read, decide and
write; the result is the local streaming mix's, row for row, part for part."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pytest

from tests.curate._mix_data import rows, write
from thresher.curate.mix.stage import Config, run
from thresher.errors import InputError
from thresher.executors.ray_session import using
from thresher.executors.stream import MIN_BYTES_ENV, PART_ROWS_ENV
from thresher.io import parts
from thresher.stage_folder import PARTS_WORK

SIZES = {"code": 150, "math": 90, "chat": 60, "misc": 30}


@pytest.fixture
def stream(monkeypatch):
    """Stream every input, in parts of 40 rows."""
    monkeypatch.setenv(MIN_BYTES_ENV, "0")
    monkeypatch.setenv(PART_ROWS_ENV, "40")


def _mix(inputs: list[Path], out: Path, executor: str, read: dict | None = None, **config):
    with using(executor):
        return run(inputs, out, Config(**config), read=read)


def _same(ray_run, local) -> None:
    """Identical kept and dropped rows (ids, order, columns, types, parts) and stats."""
    for name in ("kept.parquet", "dropped.parquet"):
        a, b = parts.read(ray_run.out / name), parts.read(local.out / name)
        assert a.schema == b.schema, name
        assert a.equals(b, null_equal=True), name
        assert [parts.read(f).height for f in parts.files(ray_run.out / name)] == \
            [parts.read(f).height for f in parts.files(local.out / name)], name
    r = {k: v for k, v in ray_run.stats.items() if k not in ("seconds", "executor")}
    w = {k: v for k, v in local.stats.items() if k != "seconds"}
    assert r.keys() == w.keys()
    for key in r:
        if key == "mix":
            assert r[key]["seconds"].keys() == w[key]["seconds"].keys()
            assert {**r[key], "seconds": 0} == {**w[key], "seconds": 0}
        else:
            assert r[key] == w[key], key
    assert ray_run.stats["executor"] == "ray" and "streamed" in local.stats
    assert not (ray_run.out / PARTS_WORK).exists()


def _both(inputs: list[Path], tmp: Path, read: dict | None = None, **config) -> tuple:
    local = _mix(inputs, tmp / "local", "local", read, **config)
    ray_run = _mix(inputs, tmp / "ray", "ray", read, **config)
    _same(ray_run, local)
    return ray_run, local


def _tied(sizes: dict[str, int]) -> pl.DataFrame:
    """Rows whose scores repeat (ties broken by the seeded keys), some missing, one NaN."""
    df = rows(sizes)
    score = [round((i * 7) % 10 / 10, 1) for i in range(df.height)]
    score[3], score[5], score[11] = None, float("nan"), -0.0
    return df.with_columns(pl.Series("score_q", score, dtype=pl.Float64))


SPECS = [
    ({"categories": {"code": {"count": 47}, "math": {"count": 30}, "chat": {"count": 0}}}, {}),
    ({"max_repeats": 3, "on_shortfall": "keep", "categories": {"chat": {"count": 130}, "math": {"count": 200}}},
     {"seed": 4}),
    ({"total": 160, "max_repeats": 2, "categories": {"code": {"weight": 0.5}, "misc": {"weight": 0.5}}},
     {"seed": 7, "rank_by": "score_q"}),
    ({"on_shortfall": "keep", "categories": {"code": {"count": 90, "min_score": 0.5}, "math": {"count": 33}}},
     {"rank_by": "score_q"}),
    ({"temperature": 2.0, "total": 140, "categories": {}}, {"seed": 9}),
]


@pytest.mark.parametrize("spec,options", SPECS)
def test_the_ray_mix_is_the_local_streaming_mix(tmp_path, stream, ray_cluster, spec, options):
    data = write(_tied(SIZES), tmp_path / "in.parquet")
    ray_run, _ = _both([data], tmp_path, spec=spec, **options)
    assert parts.is_dataset(ray_run.out / "kept.parquet") or ray_run.stats["rows_out"] <= 40


def test_many_rows_per_cut_take_several_rounds(tmp_path, stream, ray_cluster, monkeypatch):
    import thresher.curate.mix.ray_stream as ray_stream

    monkeypatch.setattr(ray_stream, "GATHER", 8)  # the driver only narrows until 8 rows are left
    narrowed = []
    narrow = ray_stream.Cut.narrow
    monkeypatch.setattr(ray_stream.Cut, "narrow", lambda self, *a: (narrowed.append(self.level), narrow(self, *a)))
    df = _tied({"code": 300, "math": 200})
    df = df.with_columns(pl.Series("score_q", np.random.default_rng(1).random(500)))
    data = write(df, tmp_path / "in.parquet")
    spec = {"max_repeats": 2, "categories": {"code": {"count": 451}, "math": {"count": 77}}}
    _both([data], tmp_path / "ranked", spec=spec, rank_by="score_q", seed=5)
    _both([data], tmp_path / "random", spec=spec, seed=5)
    _both([write(_tied({"code": 300, "math": 200}), tmp_path / "ties.parquet")], tmp_path / "ties",
          spec=spec, rank_by="score_q")
    assert 0 in narrowed and 1 in narrowed  # rounds on the scores, then on the keys of a tied score


def test_several_inputs_duplicates_replay_and_rejected_rows(tmp_path, stream, ray_cluster):
    a = write(rows({"code": 70, "math": 29}), tmp_path / "a.parquet")
    b_df = pl.concat([rows({"math": 50}), rows({"code": 2})]).with_columns(pl.lit("x").alias("note"))
    b = write(b_df, tmp_path / "b.jsonl")  # code-0, code-1, math-0.. repeat a's ids; a column a lacks
    lines = b.read_text().splitlines(keepends=True)
    b.write_text("".join(lines[:5]) + "{not json\n" + "".join(lines[5:]))
    replay_df = pl.concat([rows({"general": 80}, prefix="r-", source="chitchat"), rows({"code": 3})])
    replay = write(replay_df, tmp_path / "replay.jsonl")  # code-0..2 are in the main inputs
    spec = {"max_repeats": 2, "categories": {"code": {"count": 85}, "math": {"count": 40}}}
    ray_run, _ = _both([a, b], tmp_path, read={"on_bad_rows": "skip"}, spec=spec, replay=str(replay),
                       replay_fraction=0.2, seed=3)
    dropped = parts.read(ray_run.out / "dropped.parquet")
    assert dropped["drop_stage"][0] == "read" and dropped["drop_reason"].str.contains("duplicate id").sum() > 0
    kept = parts.read(ray_run.out / "kept.parquet")
    assert kept.filter(pl.col("source") == "replay").height == ray_run.stats["mix"]["replay"]["taken"] > 0
    assert ray_run.stats["mix"]["replay"]["available"] == 80


def test_a_stage_folder_of_parts_is_read_by_the_workers(tmp_path, stream, ray_cluster):
    data = write(_tied(SIZES), tmp_path / "in.parquet")
    first = _mix([data], tmp_path / "a", "local", spec={"categories": {"code": {"count": 120}, "math": {"count": 80},
                                                                       "chat": {"count": 60}}})
    assert len(parts.files(tmp_path / "a" / "kept.parquet")) > 3
    spec = {"max_repeats": 2, "categories": {"code": {"count": 150}, "chat": {"count": 35}}}
    ray_run, _ = _both([tmp_path / "a"], tmp_path, spec=spec, rank_by="score_q")
    assert ray_run.stats["rows_in"] == first.stats["rows_out"] == 260


def test_an_empty_mix_on_ray(tmp_path, stream, ray_cluster):
    data = write(rows(SIZES), tmp_path / "in.parquet")
    ray_run, _ = _both([data], tmp_path, spec={"categories": {"code": {"count": 0}}})
    assert ray_run.stats["rows_out"] == 0 and (ray_run.out / "kept.parquet").is_file()


def test_user_errors_are_the_local_ones(tmp_path, stream, ray_cluster):
    data = write(rows(SIZES), tmp_path / "in.parquet")
    spec = {"categories": {"code": {"count": 1}}}
    for executor in ("local", "ray"):
        with pytest.raises(InputError, match=r"in\.parquet: rank_by column score_x not found") as err:
            _mix([data], tmp_path / executor, executor, spec=spec, rank_by="score_x")
        assert len(str(err.value).splitlines()) == 1
    jsonl = write(rows(SIZES, scores=False), tmp_path / "in.jsonl")
    messages = []
    for executor in ("local", "ray"):
        with pytest.raises(InputError) as err:
            _mix([jsonl], tmp_path / f"j-{executor}", executor, spec=spec, rank_by="score_q")
        messages.append(str(err.value))
    assert messages[0] == messages[1] and "rank_by column score_q not found" in messages[0]


def test_the_driver_does_not_decide_from_rows(tmp_path, stream, ray_cluster, monkeypatch):
    import thresher.curate.mix.stream as mix_stream

    def boom(*_a, **_k):
        raise AssertionError("the driver projected or decided from rows")

    data = write(_tied(SIZES), tmp_path / "in.parquet")
    spec = {"max_repeats": 2, "categories": {"code": {"count": 170}, "math": {"count": 20}}}
    local = _mix([data], tmp_path / "local", "local", spec=spec, rank_by="score_q")
    for name in ("_projection", "decide", "replay_projection", "project"):
        monkeypatch.setattr(mix_stream, name, boom)  # the workers' own imports are untouched
    ray_run = _mix([data], tmp_path / "ray", "ray", spec=spec, rank_by="score_q")
    _same(ray_run, local)
