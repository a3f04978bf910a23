"""The mix as a streaming pass (issue 24): the plan from a projection, the rows written part by
part, never the whole table in memory; the result is the whole-table path's, row for row."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest

from tests.curate._mix_data import rows, write
from thresher.curate.mix.stage import Config, run
from thresher.errors import InputError
from thresher.executors.stream import MIN_BYTES_ENV, PART_ROWS_ENV
from thresher.io import parts
from thresher.stage_folder import PARTS_WORK

SIZES = {"code": 50, "math": 30, "chat": 20}


@pytest.fixture
def stream(monkeypatch):
    """Stream every input, in parts of 7 rows."""
    monkeypatch.setenv(MIN_BYTES_ENV, "0")
    monkeypatch.setenv(PART_ROWS_ENV, "7")


def _whole_table_forbidden(monkeypatch) -> None:
    """Fail the test if anything reads an input whole."""
    import thresher.curate.mix.gather as gather
    import thresher.curate.mix.stage as stage
    import thresher.executor as executor
    import thresher.io.inputs as inputs
    import thresher.io.readers as readers

    def boom(*_a, **_k):
        raise AssertionError("the streaming mix read a whole table")

    for module in (inputs, executor):
        monkeypatch.setattr(module, "read_inputs", boom)
    for name in ("read_rows", "read_table", "read_tables"):
        monkeypatch.setattr(readers, name, boom)
    monkeypatch.setattr(gather, "open_input", boom)
    monkeypatch.setattr(gather, "narrow", boom)
    monkeypatch.setattr(stage, "open_input", boom)
    monkeypatch.setattr(stage, "read_table", boom)


def _both(monkeypatch, inputs: list[Path], tmp: Path, read: dict | None = None, **config) -> tuple:
    """Mix ``inputs`` streaming (whole-table reads forbidden), then whole; both results."""
    with monkeypatch.context() as m:
        _whole_table_forbidden(m)
        streamed = run(inputs, tmp / "s", Config(**config), read=read)
    monkeypatch.setenv(MIN_BYTES_ENV, str(1 << 40))
    whole = run(inputs, tmp / "w", Config(**config), read=read)
    monkeypatch.setenv(MIN_BYTES_ENV, "0")
    assert "streamed" in streamed.stats and "streamed" not in whole.stats
    return streamed, whole


def _same(streamed, whole) -> None:
    """Identical kept rows (ids, order, columns, types), dropped rows and stats."""
    for name in ("kept.parquet", "dropped.parquet"):
        a, b = parts.read(streamed.out / name), parts.read(whole.out / name)
        assert a.schema == b.schema, name
        assert a.equals(b, null_equal=True), name
    s = {k: v for k, v in streamed.stats.items() if k not in ("seconds", "streamed")}
    w = {k: v for k, v in whole.stats.items() if k != "seconds"}
    assert s.keys() == w.keys()
    for key in s:
        if key == "mix":
            assert s[key]["seconds"].keys() == w[key]["seconds"].keys()
            assert {**s[key], "seconds": 0} == {**w[key], "seconds": 0}
        else:
            assert s[key] == w[key], key
    assert not (streamed.out / PARTS_WORK).exists()


SPECS = [
    ({"categories": {"code": {"count": 17}, "math": {"count": 30}, "chat": {"count": 0}}}, {}),
    ({"max_repeats": 3, "on_shortfall": "keep", "categories": {"chat": {"count": 50}, "math": {"count": 200}}},
     {"seed": 4}),
    ({"total": 60, "max_repeats": 2, "categories": {"code": {"weight": 0.5}, "chat": {"weight": 0.5}}},
     {"seed": 7, "rank_by": "score_q"}),
    ({"on_shortfall": "keep", "categories": {"code": {"count": 50, "min_score": 0.5}}}, {"rank_by": "score_q"}),
    ({"temperature": 2.0, "total": 40, "categories": {}}, {}),
]


@pytest.mark.parametrize("spec,options", SPECS)
def test_the_streamed_mix_is_the_whole_table_mix(tmp_path, stream, monkeypatch, spec, options):
    data = write(rows(SIZES), tmp_path / "in.parquet")
    streamed, whole = _both(monkeypatch, [data], tmp_path, spec=spec, **options)
    _same(streamed, whole)
    kept = streamed.out / "kept.parquet"
    n = streamed.stats["rows_out"]
    assert parts.is_dataset(kept) and len(parts.files(kept)) == -(-n // 7)  # 7 rows a part
    assert streamed.stats["streamed"]["parts"] == len(parts.files(kept))


def test_several_inputs_replay_and_rows_rejected_on_read(tmp_path, stream, monkeypatch):
    a = write(rows({"code": 20, "math": 9}), tmp_path / "a.parquet")
    b_df = pl.concat([rows({"math": 10}), rows({"code": 2})]).with_columns(pl.lit("x").alias("note"))
    b = write(b_df, tmp_path / "b.jsonl")  # code-0, code-1 repeat a's ids; a column a lacks
    lines = b.read_text().splitlines(keepends=True)
    b.write_text("".join(lines[:5]) + "{not json\n" + "".join(lines[5:]))
    replay = write(rows({"general": 30}, prefix="r-", source="chitchat"), tmp_path / "replay.jsonl")
    spec = {"max_repeats": 2, "categories": {"code": {"count": 25}, "math": {"count": 12}}}
    streamed, whole = _both(monkeypatch, [a, b], tmp_path, read={"on_bad_rows": "skip"}, spec=spec,
                            replay=str(replay), replay_fraction=0.2, seed=3)
    _same(streamed, whole)
    dropped = parts.read(streamed.out / "dropped.parquet")
    assert dropped["drop_stage"][0] == "read" and dropped.height > 1  # rejected rows first
    kept = parts.read(streamed.out / "kept.parquet")
    assert kept.filter(pl.col("source") == "replay").height == streamed.stats["mix"]["replay"]["taken"] > 0
    assert "note" in kept.columns and streamed.stats["rows_rejected_on_read"] == 1


def test_categories_from_rules_and_from_a_column(tmp_path, stream, monkeypatch):
    texts = ["def f(x): return x", "solve the integral of x", "hello there", "INTEGRAL please", "def g(): pass", "hi"]
    df = rows({"x": 60}, scores=False).with_columns(
        pl.Series("messages", [[{"role": "user", "content": f"{texts[i % 6]} {i}"},
                                {"role": "assistant", "content": "ok"}] for i in range(60)]),
        pl.Series("source", ["gh", "gh", "chitchat", "web", "web", "chitchat"] * 10),
        pl.Series("topic", ["a", "b", None, "a", "c", None] * 10))
    data = write(df, tmp_path / "in.jsonl")
    rules = {"rules": [{"category": "code", "regex": r"\bdef \w+\(", "source": "gh"},
                       {"category": "math", "keywords": ["integral"]},
                       {"category": "chat", "source": ["chitchat"]}],
             "categories": {"code": {"count": 5}, "math": {"count": 12}, "chat": {"count": 9}}}
    _same(*_both(monkeypatch, [data], tmp_path / "rules", spec=rules, seed=2))
    column = {"column": "topic", "categories": {"a": {"count": 8}, "b": {"count": 3}}}
    _same(*_both(monkeypatch, [data], tmp_path / "column", spec=column))


def test_an_empty_mix_and_a_single_part(tmp_path, stream, monkeypatch):
    data = write(rows(SIZES), tmp_path / "in.parquet")
    streamed, whole = _both(monkeypatch, [data], tmp_path / "none", spec={"categories": {"code": {"count": 0}}})
    _same(streamed, whole)
    assert streamed.stats["rows_out"] == 0 and (streamed.out / "kept.parquet").is_file()
    streamed, whole = _both(monkeypatch, [data], tmp_path / "one", spec={"categories": {"code": {"count": 5}}})
    _same(streamed, whole)
    assert (streamed.out / "kept.parquet").is_file()  # one part: one file


def test_errors_are_the_whole_table_errors(tmp_path, stream):
    data = write(rows(SIZES), tmp_path / "in.parquet")
    with pytest.raises(InputError, match=r"in\.parquet: rank_by column score_x not found"):
        run([data], tmp_path / "o1", Config(spec={"categories": {"code": {"count": 1}}}, rank_by="score_x"))
    jsonl = write(rows(SIZES, scores=False), tmp_path / "in.jsonl")
    with pytest.raises(InputError, match=r"in\.jsonl: rank_by column score_q not found"):
        run([jsonl], tmp_path / "o2", Config(spec={"categories": {"code": {"count": 1}}}, rank_by="score_q"))
    bad = rows(SIZES).with_columns(
        pl.when(pl.col("id") == "code-3").then(pl.lit([], dtype=pl.List(pl.Struct({"role": pl.String,
                                                                                    "content": pl.String}))))
        .otherwise(pl.col("messages")).alias("messages"))
    lazy = write(bad, tmp_path / "bad.parquet")  # validated where written, as the whole-table path does
    ok = run([lazy], tmp_path / "o3", Config(spec={"categories": {"math": {"count": 3}}}))
    assert ok.stats["rows_out"] == 3
    with pytest.raises(InputError, match=r"bad\.parquet: row 4: empty conversation"):
        run([lazy], tmp_path / "o4", Config(spec={"categories": {"code": {"count": 50}}}))


def test_a_recipe_like_chain_streams_from_parts(tmp_path, stream, monkeypatch):
    data = write(rows(SIZES), tmp_path / "in.parquet")
    first = run([data], tmp_path / "a", Config(spec={"categories": {"code": {"count": 30}, "math": {"count": 20}}}))
    assert parts.is_dataset(tmp_path / "a" / "kept.parquet")
    spec = {"max_repeats": 2, "categories": {"code": {"count": 40}, "math": {"count": 10}}}
    streamed, whole = _both(monkeypatch, [tmp_path / "a"], tmp_path, spec=spec, rank_by="score_q")
    _same(streamed, whole)
    assert streamed.stats["rows_in"] == first.stats["rows_out"] == 50
    again = run([tmp_path / "a"], tmp_path / "s", Config(spec=spec, rank_by="score_q"))
    assert again.reused
    stats = json.loads((tmp_path / "s" / "stats.json").read_text())
    assert stats["rows_out"] == 50
