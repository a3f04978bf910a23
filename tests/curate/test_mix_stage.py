"""The mix stage end to end: exact counts, repeats, shortfall, rank-by, replay, seeds."""

from __future__ import annotations

import json

import polars as pl
import pytest

from tests.curate._mix_data import origin, rows, write
from thresher.curate.mix.stage import Config, run
from thresher.errors import ConfigError, InputError, ThresherError

SIZES = {"code": 50, "math": 30, "chat": 20}


@pytest.fixture
def data(tmp_path):
    return write(rows(SIZES), tmp_path / "in.parquet")


def mix(inputs, out, spec, **kw):
    result = run(inputs if isinstance(inputs, list) else [inputs], out, Config(spec=spec, **kw))
    return pl.read_parquet(out / "kept.parquet"), result


def counts(df: pl.DataFrame) -> dict[str, int]:
    return dict(df.group_by("category").len().iter_rows())


def test_count_spec_gives_exact_counts(data, tmp_path):
    kept, result = mix(
        data,
        tmp_path / "out",
        {"categories": {"code": {"count": 17}, "math": {"count": 30}, "chat": {"count": 0}}},
    )
    assert counts(kept) == {"code": 17, "math": 30}
    assert kept["id"].n_unique() == kept.height == 47
    assert set(kept.columns) >= {"id", "messages", "category", "source", "mix_copy", "score_q"}
    table = {c["category"]: c for c in result.stats["mix"]["categories"]}
    assert (table["code"]["wanted"], table["code"]["available"], table["code"]["taken"]) == (
        17,
        50,
        17,
    )
    dropped = pl.read_parquet(tmp_path / "out" / "dropped.parquet")
    assert dropped.height == 100 - 47  # every input row is either kept or dropped with a reason
    assert dropped.filter(pl.col("category") == "code")["drop_reason"].unique().to_list() == [
        "not selected (category code: 17 of 50 rows taken)"
    ]


def test_weight_spec_gives_exact_counts_of_total(data, tmp_path):
    spec = {
        "total": 40,
        "categories": {"code": {"weight": 0.5}, "math": {"weight": 0.3}, "chat": {"weight": 0.2}},
    }
    kept, _ = mix(data, tmp_path / "out", spec)
    assert counts(kept) == {"code": 20, "math": 12, "chat": 8}


def test_weights_without_total_give_the_largest_mix_with_those_shares(data, tmp_path):
    # chat (20 rows) limits a 50% share to a total of 40
    spec = {
        "categories": {"code": {"weight": 0.25}, "math": {"weight": 0.25}, "chat": {"weight": 0.5}}
    }
    kept, _ = mix(data, tmp_path / "out", spec)
    assert counts(kept) == {"code": 10, "math": 10, "chat": 20}


def test_count_and_weight_together_share_the_total(data, tmp_path):
    spec = {
        "total": 50,
        "categories": {"code": {"count": 10}, "math": {"weight": 0.4}, "chat": {"weight": 0.4}},
    }
    kept, _ = mix(data, tmp_path / "out", spec)
    assert counts(kept) == {"code": 10, "math": 20, "chat": 20}


def test_max_repeats_is_never_exceeded_and_copies_spread_evenly(data, tmp_path):
    spec = {
        "max_repeats": 3,
        "on_shortfall": "keep",
        "categories": {"chat": {"count": 50}, "math": {"count": 200}},
    }
    kept, result = mix(data, tmp_path / "out", spec)
    per_row = kept.group_by(origin(kept["id"]).alias("orig")).len()
    assert per_row["len"].max() <= 3
    chat = kept.filter(pl.col("category") == "chat")
    assert chat.height == 50  # 20 rows: every row twice, 10 of them three times
    chat_copies = chat.group_by(origin(chat["id"])).len()["len"].value_counts().sort("len")
    assert chat_copies.rows() == [(2, 10), (3, 10)]
    assert counts(kept)["math"] == 90  # capped at 30 rows x 3: a shortfall, kept short
    assert kept["id"].n_unique() == kept.height  # copies get id#2, id#3
    assert sorted(kept["mix_copy"].unique().to_list()) == [1, 2, 3]
    assert result.stats["mix"]["shortfall"] == ["math"]


def test_default_max_repeats_is_one(data, tmp_path):
    kept, _ = mix(
        data, tmp_path / "out", {"on_shortfall": "keep", "categories": {"chat": {"count": 35}}}
    )
    assert kept.height == 20 and kept["mix_copy"].max() == 1


def test_shortfall_fail_reports_wanted_available_taken(data, tmp_path):
    spec = {
        "on_shortfall": "fail",
        "categories": {"chat": {"count": 35}, "math": {"count": 31}, "code": {"count": 5}},
    }
    with pytest.raises(ThresherError) as err:
        mix(data, tmp_path / "out", spec)
    msg = str(err.value)
    assert "chat (wanted 35, available 20, max_repeats 1, can take 20)" in msg
    assert "math (wanted 31, available 30, max_repeats 1, can take 30)" in msg
    assert "code" not in msg


def test_shortfall_keep_leaves_the_mix_short(data, tmp_path):
    spec = {
        "total": 60,
        "on_shortfall": "keep",
        "categories": {"chat": {"weight": 0.5}, "code": {"weight": 0.5}},
    }
    kept, result = mix(data, tmp_path / "out", spec)
    assert counts(kept) == {"chat": 20, "code": 30}
    chat = next(c for c in result.stats["mix"]["categories"] if c["category"] == "chat")
    assert (chat["wanted"], chat["available"], chat["taken"], chat["short"]) == (30, 20, 20, 10)


def test_shortfall_redistribute_keeps_the_total_and_spares_count_categories(data, tmp_path):
    spec = {
        "total": 80,
        "categories": {"chat": {"weight": 0.5}, "code": {"weight": 0.25}, "math": {"count": 20}},
    }
    kept, result = mix(data, tmp_path / "out", spec)
    # chat wants 40 of 20: its 20 missing rows go to code (the only weight category with room)
    assert counts(kept) == {"chat": 20, "code": 40, "math": 20}
    code = next(c for c in result.stats["mix"]["categories"] if c["category"] == "code")
    assert (code["wanted"], code["taken"], code["received"]) == (20, 40, 20)


def test_redistribute_shares_in_proportion_and_stops_when_nothing_has_room(tmp_path):
    data = write(rows({"a": 10, "b": 100, "c": 100}), tmp_path / "in.parquet")
    spec = {
        "total": 90,
        "categories": {"a": {"weight": 0.4}, "b": {"weight": 0.4}, "c": {"weight": 0.2}},
    }
    kept, _ = mix(data, tmp_path / "out", spec)
    # a is 26 short: b and c receive it 2:1 (b +17 or so, c +9 or so), total stays 90
    got = counts(kept)
    assert got["a"] == 10 and sum(got.values()) == 90
    assert (got["b"] - 36) == pytest.approx(2 * (got["c"] - 18), abs=1)
    kept, _ = mix(
        data,
        tmp_path / "out2",
        {"total": 300, "categories": {"a": {"weight": 0.5}, "b": {"weight": 0.5}}},
    )
    assert counts(kept) == {"a": 10, "b": 100}  # no room anywhere: as much as exists


def test_rank_by_keeps_the_top_scored_rows(data, tmp_path):
    kept, _ = mix(
        data,
        tmp_path / "out",
        {"categories": {"code": {"count": 10}, "math": {"count": 5}}},
        rank_by="score_q",
    )
    code_ids = set(kept.filter(pl.col("category") == "code")["id"])
    assert code_ids == {f"code-{i}" for i in range(40, 50)}
    assert set(kept.filter(pl.col("category") == "math")["id"]) == {
        f"math-{i}" for i in range(25, 30)
    }


def test_rank_by_with_upsampling_repeats_the_best_rows(data, tmp_path):
    kept, _ = mix(
        data,
        tmp_path / "out",
        {"max_repeats": 2, "categories": {"chat": {"count": 25}}},
        rank_by="score_q",
    )
    twice = set(kept.filter(pl.col("mix_copy") == 2)["id"].str.replace("#2", ""))
    assert twice == {f"chat-{i}" for i in range(15, 20)}


def test_min_score_drops_low_rows_with_a_reason(data, tmp_path):
    spec = {"on_shortfall": "keep", "categories": {"code": {"count": 50, "min_score": 0.5}}}
    kept, _ = mix(data, tmp_path / "out", spec, rank_by="score_q")
    assert kept.height == 25 and kept["score_q"].min() >= 0.5
    dropped = pl.read_parquet(tmp_path / "out" / "dropped.parquet")
    low = dropped.filter(pl.col("id") == "code-3")
    assert low["drop_reason"].item() == "below min_score: score_q < 0.5"
    assert (
        dropped.filter(pl.col("id") == "chat-0")["drop_reason"].item()
        == "category not in spec: chat"
    )


def test_unscored_selection_is_a_seeded_random_sample(data, tmp_path):
    a, _ = mix(data, tmp_path / "a", {"categories": {"code": {"count": 10}}}, seed=1)
    b, _ = mix(data, tmp_path / "b", {"categories": {"code": {"count": 10}}}, seed=1)
    c, _ = mix(data, tmp_path / "c", {"categories": {"code": {"count": 10}}}, seed=2)
    assert a["id"].to_list() == b["id"].to_list()
    assert set(a["id"]) != set(c["id"])
    assert set(a["id"]) != {f"code-{i}" for i in range(10)}  # not simply the first rows


def test_seeds_reproduce_ids_and_order_and_the_output_is_shuffled(data, tmp_path):
    spec = {
        "total": 60,
        "max_repeats": 2,
        "categories": {"code": {"weight": 0.5}, "chat": {"weight": 0.5}},
    }
    a, _ = mix(data, tmp_path / "a", spec, seed=7, rank_by="score_q")
    b, _ = mix(data, tmp_path / "b", spec, seed=7, rank_by="score_q")
    c, _ = mix(data, tmp_path / "c", spec, seed=8, rank_by="score_q")
    assert a["id"].to_list() == b["id"].to_list()
    assert a["id"].to_list() != c["id"].to_list()
    assert set(a["id"]) == set(c["id"])  # ranked: same rows, other order
    assert a["category"].to_list() != sorted(a["category"].to_list())  # categories interleaved


def test_replay_fraction_is_exact_and_marked_by_source(data, tmp_path):
    replay = write(
        rows({"general": 500}, prefix="r-", source="chitchat"), tmp_path / "replay.parquet"
    )
    spec = {"categories": {"code": {"count": 45}, "math": {"count": 27}}}  # 72 rows
    kept, result = mix(data, tmp_path / "out", spec, replay=str(replay), replay_fraction=0.1)
    replayed = kept.filter(pl.col("source") == "replay")
    assert replayed.height == 8 and kept.height == 80  # 8 / 80 = 0.1 exactly
    assert replayed["id"].str.starts_with("r-").all()
    assert kept.filter(pl.col("source") != "replay")["id"].str.starts_with("r-").sum() == 0
    assert result.stats["mix"]["replay"]["taken"] == 8
    kept2, _ = mix(data, tmp_path / "out2", spec, replay=str(replay), replay_fraction=0.25)
    assert kept2.filter(pl.col("source") == "replay").height == 24  # 24 / 96 = 0.25


def test_temperature_sampling_flattens_natural_sizes(tmp_path):
    data = write(rows({"big": 400, "small": 100}), tmp_path / "in.parquet")
    kept, _ = mix(data, tmp_path / "out", {"temperature": 2.0, "total": 90, "categories": {}})
    # p ~ n ** (1/2): sqrt(400)=20, sqrt(100)=10 -> 60 / 30
    assert counts(kept) == {"big": 60, "small": 30}
    kept, _ = mix(data, tmp_path / "out1", {"temperature": 1.0, "categories": {}})
    assert counts(kept) == {"big": 400, "small": 100}  # T=1 keeps natural proportions


def test_categories_from_rules_with_fallback(tmp_path):
    df = rows({"x": 6}, scores=False)
    texts = [
        "def f(x): return x",
        "solve the integral of x",
        "hello there",
        "INTEGRAL please",
        "def g(): pass",
        "hi",
    ]
    df = df.with_columns(
        pl.Series(
            "messages",
            [
                [{"role": "user", "content": t}, {"role": "assistant", "content": "ok"}]
                for t in texts
            ],
        ),
        pl.Series("source", ["gh", "gh", "chitchat", "web", "web", "chitchat"]),
    )
    data = write(df, tmp_path / "in.parquet")
    spec = {
        "rules": [
            {"category": "code", "regex": r"\bdef \w+\(", "source": "gh"},
            {"category": "math", "keywords": ["integral"]},
            {"category": "chat", "source": ["chitchat"]},
        ],
        "fallback": "other",
        "categories": {
            "code": {"count": 1},
            "math": {"count": 2},
            "chat": {"count": 2},
            "other": {"count": 1},
        },
    }
    kept, _ = mix(data, tmp_path / "out", spec)
    got = dict(zip(kept["id"], kept["category"]))
    assert got == {
        "x-0": "code",
        "x-1": "math",
        "x-2": "chat",
        "x-3": "math",
        "x-4": "other",
        "x-5": "chat",
    }


def test_several_inputs_and_jsonl_are_mixed_and_duplicate_ids_dropped(tmp_path):
    a = write(rows({"code": 10}), tmp_path / "a.parquet")
    b_df = pl.concat([rows({"math": 10}), rows({"code": 2})])  # code-0, code-1 repeat a's ids
    b = write(b_df, tmp_path / "b.jsonl")
    kept, result = mix(
        [a, b], tmp_path / "out", {"categories": {"code": {"count": 10}, "math": {"count": 10}}}
    )
    assert counts(kept) == {"code": 10, "math": 10}
    dropped = pl.read_parquet(tmp_path / "out" / "dropped.parquet")
    assert (
        dropped["drop_reason"].to_list()
        == ["duplicate id (already in an earlier row or input)"] * 2
    )
    assert result.stats["rows_in"] == 22


def test_unknown_category_in_spec_is_reported_with_the_other_problems(data, tmp_path):
    spec = {
        "categories": {"code": {"weight": 0.5}, "poetry": {"weight": 0.2}, "chat": {"count": -1}},
        "colour": 1,
    }
    with pytest.raises(ConfigError) as err:
        mix(data, tmp_path / "out", spec)
    msg = str(err.value)
    assert (
        "spec.categories.poetry: unknown category (not in the data; known: chat, code, math)" in msg
    )
    assert "spec.categories.chat.count: must be >= 0, got -1" in msg
    assert "spec.colour: unknown key (did you mean 'column'?)" in msg
    assert (
        "spec.total: required when both counts and weights are given" not in msg
    )  # chat's count is invalid


def test_missing_rank_by_column_names_the_file(data, tmp_path):
    with pytest.raises(InputError, match=r"in\.parquet: rank_by column score_x not found"):
        mix(data, tmp_path / "out", {"categories": {"code": {"count": 1}}}, rank_by="score_x")


def test_rerun_is_reused_and_stats_are_written(data, tmp_path):
    spec = {"categories": {"code": {"count": 3}}}
    _, first = mix(data, tmp_path / "out", spec)
    _, second = mix(data, tmp_path / "out", spec)
    assert not first.reused and second.reused
    stats = json.loads((tmp_path / "out" / "stats.json").read_text())
    assert stats["rows_out"] == 3 and stats["kept_by_category"] == {"code": 3}


def test_categories_from_another_column_with_fallback_for_nulls(tmp_path):
    df = rows({"x": 6}).with_columns(pl.Series("topic", ["a", "a", "b", None, "b", None]))
    data = write(df, tmp_path / "in.parquet")
    spec = {
        "column": "topic",
        "fallback": "misc",
        "categories": {"a": {"count": 2}, "misc": {"count": 2}},
    }
    kept, _ = mix(data, tmp_path / "out", spec)
    assert dict(zip(kept["id"], kept["category"], strict=True)) == {
        "x-0": "a",
        "x-1": "a",
        "x-3": "misc",
        "x-5": "misc",
    }
    dropped = pl.read_parquet(tmp_path / "out" / "dropped.parquet")
    assert dropped["drop_reason"].to_list() == ["category not in spec: b"] * 2
    # without a fallback, rows with no category cannot take part
    kept, _ = mix(data, tmp_path / "out2", {"column": "topic", "categories": {"a": {"count": 2}}})
    dropped = pl.read_parquet(tmp_path / "out2" / "dropped.parquet")
    assert dropped.filter(pl.col("id") == "x-3")["drop_reason"].item() == "no category"


def test_temperature_shares_what_counts_leave_of_the_total(tmp_path):
    data = write(rows({"big": 400, "small": 100, "fixed": 100}), tmp_path / "in.parquet")
    spec = {"temperature": 2.0, "total": 100, "categories": {"fixed": {"count": 10}}}
    kept, result = mix(data, tmp_path / "out", spec)
    assert counts(kept) == {"fixed": 10, "big": 60, "small": 30}
    kinds = {c["category"]: c["target"] for c in result.stats["mix"]["categories"]}
    assert kinds == {"big": "temperature", "fixed": "count", "small": "temperature"}
