"""select as a streaming global stage (issue 24): top-k (and k-center on a ready embedding
column) decide from a projection; the rows are written part by part, as the whole-table run
writes them."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from thresher.curate.select.stage import Config, SelectStage, run
from thresher.errors import InputError
from thresher.executors.stream import MIN_BYTES_ENV, PART_ROWS_ENV
from thresher.io import parts
from thresher.stage_folder import PARTS_WORK


@pytest.fixture
def stream(monkeypatch):
    """Stream every input, in parts of 7 rows."""
    monkeypatch.setenv(MIN_BYTES_ENV, "0")
    monkeypatch.setenv(PART_ROWS_ENV, "7")


def _jsonl(path: Path, n: int = 60, bad_line: bool = True) -> Path:
    rng = np.random.default_rng(0)
    with open(path, "w", encoding="utf-8") as fh:
        for i in range(n):
            row = {"id": f"r{i}", "messages": [{"role": "user", "content": f"question {i}?"},
                                                {"role": "assistant", "content": f"answer {i}."}],
                   "category": ["a", "b", "c"][i % 3], "score_q": float(rng.integers(0, 20)),
                   "emb": rng.normal(size=4).tolist()}
            if i % 11 == 5:
                row["score_q"] = None  # missing scores rank last
            if i >= n // 2:
                row["note"] = f"n{i}"  # a column the first batches do not have
            fh.write(json.dumps(row) + "\n")
            if bad_line and i == n // 3:
                fh.write("{not json\n")
    return path


def _both(monkeypatch, src: Path, tmp: Path, **config) -> tuple:
    """Select streaming (the whole-table read forbidden), then whole; both results."""
    import thresher.executor as executor

    with monkeypatch.context() as m:
        m.setattr(executor, "read_inputs", lambda *a, **k: pytest.fail("the streaming select read a whole table"))
        streamed = run([src], tmp / "s", Config(**config), read={"on_bad_rows": "skip"})
    monkeypatch.setenv(MIN_BYTES_ENV, str(1 << 40))
    whole = run([src], tmp / "w", Config(**config), read={"on_bad_rows": "skip"})
    monkeypatch.setenv(MIN_BYTES_ENV, "0")
    assert "streamed" in streamed.stats and "streamed" not in whole.stats
    return streamed, whole


def _same(streamed, whole) -> None:
    kept_s, kept_w = parts.read(streamed.out / "kept.parquet"), parts.read(whole.out / "kept.parquet")
    assert kept_s.schema == kept_w.schema and kept_s.equals(kept_w, null_equal=True)  # same rows, same order
    drop_s, drop_w = parts.read(streamed.out / "dropped.parquet"), parts.read(whole.out / "dropped.parquet")
    assert sorted(drop_s.columns) == sorted(drop_w.columns)
    cols = sorted(drop_s.columns)
    assert drop_s.select(cols).sort("id", nulls_last=True).equals(drop_w.select(cols).sort("id", nulls_last=True),
                                                                  null_equal=True)
    for key, value in whole.stats.items():
        if key != "seconds":
            assert streamed.stats[key] == value, key
    assert not (streamed.out / PARTS_WORK).exists()


@pytest.mark.parametrize("options", [
    {"by": "score_q", "k": 10},
    {"by": "score_q", "fraction": 0.3, "descending": False},
    {"method": "diversity", "k": 5, "embedding_column": "emb"},
    {"method": "score-then-diversity", "by": "score_q", "k": 6, "embedding_column": "emb", "max_similarity": 0.5},
])
def test_the_streamed_select_is_the_whole_table_select(tmp_path, stream, monkeypatch, options):
    src = _jsonl(tmp_path / "in.jsonl")
    streamed, whole = _both(monkeypatch, src, tmp_path, **options)
    _same(streamed, whole)
    assert parts.is_dataset(streamed.out / "kept.parquet") and streamed.stats["streamed"]["parts"] == 9
    assert streamed.stats["rows_rejected_on_read"] == 1


def test_only_methods_without_a_model_stream():
    stage = SelectStage()
    assert stage.streams(Config(by="s", k=1)) and stage.streams(Config(method="diversity", k=1, embedding_column="e"))
    assert not stage.streams(Config(method="diversity", k=1))
    assert not stage.streams(Config(method="score-then-diversity", by="s", k=1))


def test_a_missing_score_column_names_the_input_and_its_columns(tmp_path, stream):
    src = _jsonl(tmp_path / "in.jsonl", bad_line=False)
    with pytest.raises(InputError) as err:
        run([src], tmp_path / "s", Config(by="score_x", k=2))
    assert str(err.value) == f"{src}: no score column 'score_x' (columns: id, messages, category, source, score_q, emb, note)"
    with pytest.raises(InputError, match="score column category is not numeric"):
        run([src], tmp_path / "s", Config(by="category", k=2))


def test_a_parquet_input_is_checked_on_its_first_batch(tmp_path, stream, capsys):
    src = tmp_path / "in.parquet"
    pl.read_ndjson(_jsonl(tmp_path / "in.jsonl", bad_line=False)).write_parquet(src, row_group_size=7)
    capsys.readouterr()
    with pytest.raises(InputError) as err:
        run([src], tmp_path / "s", Config(by="score_x", k=2))
    assert str(err.value).startswith(f"{src}: no score column 'score_x' (columns: id, messages, category,")
    assert "part 2 done" not in capsys.readouterr().err  # before reading further


def test_the_next_stage_reads_the_parts(tmp_path, stream):
    src = _jsonl(tmp_path / "in.jsonl", bad_line=False)
    first = run([src], tmp_path / "a", Config(by="score_q", k=30))
    second = run([tmp_path / "a"], tmp_path / "b", Config(by="score_q", k=5))
    assert second.stats["rows_in"] == first.stats["rows_out"] == 30 and "streamed" in second.stats
    top = pl.read_ndjson(src).sort("score_q", descending=True, nulls_last=True, maintain_order=True).head(5)
    assert sorted(parts.read(tmp_path / "b" / "kept.parquet")["id"]) == sorted(top["id"])
