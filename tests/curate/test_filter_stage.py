"""Filter heuristics, the filter stage through the CLI (every dropped row explained), and clear
errors for bad input."""

from __future__ import annotations

import json

import polars as pl
import pytest
from click.testing import CliRunner

from thresher.cli.main import cli
from thresher.curate.filter import heuristics as H
from thresher.curate.filter.stage import Config, apply_rules
from thresher.schema import make_rows


def test_repeated_ngrams_and_echo():
    assert H.repeated_ngram_ratio("the cat sat on the mat") == 0.0
    loop = "I like it. " * 10
    assert H.repeated_ngram_ratio(loop) > 0.8
    assert H.echo_ratio("What is the capital of France?", "what is the capital of france") == 1.0
    assert H.echo_ratio("Paris is the capital and largest city of France.",
                        "What is the capital of France?") < 0.2
    assert H.echo_ratio("France", "capital of France?") == 1.0  # short: word overlap


def test_refusals_and_language():
    assert H.refusal_phrase("I\u2019m sorry, but I can\u2019t help.", H.DEFAULT_REFUSALS) == \
        "i'm sorry, but i can't"
    assert H.refusal_phrase("Here is the answer.", H.DEFAULT_REFUSALS) is None
    lid = H.LanguageId()
    assert lid("The weather is lovely today and the children are playing outside.")[0] == "en"
    assert lid("Le temps est magnifique aujourd'hui et les enfants jouent dehors.")[0] == "fr"


def test_language_check_spares_short_english_and_names():
    rows = make_rows([
        _row("Hi", "As soon as i get enough money for my robot body.", id="en"),
        _row("Who?", "The Hobbit was written by J.R.R. Tolkein.", id="name"),
        _row("Hi", "Ich schaue lieber Filme. Dort gibt es eine Haupthandlung.", id="de"),
        _row("Hi", "Bueno, tal vez, o tal vez no.", id="es_unsure"),
    ])
    _, reasons, _ = apply_rules(rows, Config(language="en", language_min_letters=12))
    got = dict(zip(rows["id"].to_list(), reasons))
    assert got["en"] is None and got["name"] is None
    assert got["de"].startswith("language=de (p=")
    assert got["es_unsure"] is None  # below the 0.5 probability floor: kept
    # with every language the model knows and no floor, the English row is misjudged
    _, loose, _ = apply_rules(rows, Config(language="en", language_min_letters=12,
                                           language_candidates=(), language_min_prob=0.0))
    assert loose[0] is not None and loose[0].startswith("language=")


def test_unknown_language_code_is_a_clear_error(tmp_path):
    path = tmp_path / "x.parquet"
    make_rows([_row("q", "A long enough English answer for the check.")]).write_parquet(path)
    res = _filter(path, "--language", "xx", "--out", tmp_path / "f")
    assert res.exit_code == 1 and "Traceback" not in res.output
    assert "language identification: Unknown language code(s): {'xx'}" in res.output


def test_token_counter_with_a_real_tokenizer(tiny_tokenizer_dir):
    count = H.make_token_counter(str(tiny_tokenizer_dir))
    assert count("hello world") >= 2
    assert H.make_token_counter(None)("Hello, world!") == 4


@pytest.mark.slow
def test_token_counter_resolves_the_default_model(smollm2_dir):
    # SmolLM2's BPE: Hello | world | , | how | are | you | ?
    assert H.make_token_counter("smollm2")("Hello world, how are you?") == 7


def _row(q, a, **extra):
    return {"messages": [{"role": "user", "content": q}, {"role": "assistant", "content": a}],
            **extra}


def test_each_heuristic_names_its_reason():
    rows = make_rows([
        _row("Hi", "Hello! How can I help you today?", id="ok"),
        _row("Hi", "x", id="short"),
        _row("Hi", "word " * 300, id="long"),
        _row("Tell me a story", "Once upon a time", id="trunc", finish_reason="length"),
        _row("Hi", "go go go go go go go go go go go go go go go", id="loop"),
        _row("How do I bake bread?", "As an AI language model, I cannot bake.", id="refuse"),
        _row("Hi", "Bonjour, je suis très content de vous parler aujourd'hui.", id="french"),
        _row("What is the boiling point of water at sea level?",
             "What is the boiling point of water at sea level?", id="echo"),
    ], validate=True)
    config = Config(min_chars=2, max_chars=500, max_repeat_ratio=0.5, drop_refusals=True,
                    language="en", max_echo_ratio=0.8)
    _, reasons, _ = apply_rules(rows, config)
    got = dict(zip(rows["id"].to_list(), reasons))
    assert got["ok"] is None
    assert got["short"] == "too_short_chars=1 < 2"
    assert got["long"] == "too_long_chars=1500 > 500"
    assert got["trunc"] == "truncated: finish_reason=length"
    assert got["loop"].startswith("repeated_3grams=0.92 > 0.5")
    assert got["refuse"] == "refusal: contains 'as an ai language model'"
    assert got["french"].startswith("language=fr (p=") and got["french"].endswith("expected en")
    assert got["echo"].startswith("echo=1.00 ")


def test_empty_response_and_token_limits():
    rows = make_rows([
        {"messages": [{"role": "user", "content": "Hi"}], "id": "noresp"},
        {"messages": [{"role": "user", "content": "Hi"},
                      {"role": "assistant", "content": "   "}], "id": "blank"},
        _row("Hi", "one two three four five six", id="six"),
    ], validate=False)
    _, reasons, _ = apply_rules(rows, Config(min_tokens=2, max_tokens=5))
    assert reasons == ["empty: no response text", "empty: no response text",
                       "too_long_tokens=6 > 5"]
    _, reasons, _ = apply_rules(rows, Config(drop_empty=False, min_tokens=1))
    assert reasons[0] == "too_short_tokens=0 < 1"


@pytest.fixture
def scored(tmp_path):
    """Three prompts with three scored samples each, in two categories."""
    recs = []
    scores = {"p0": [0.9, 0.2, 0.5], "p1": [0.3, 0.31, 0.1], "p2": [0.8, 0.6, 0.7]}
    for p, vals in scores.items():
        for j, v in enumerate(vals):
            recs.append(_row(f"Question {p}?", f"Answer {j} to {p}, with enough words here.",
                             id=f"{p}s{j}", parent_id=p, category="a" if p != "p2" else "b",
                             score_reward=v, score_loglik=-1.0 - v * 3))
    path = tmp_path / "scored.parquet"
    make_rows(recs).write_parquet(path)
    return path


def _filter(*args):
    return CliRunner().invoke(cli, ["curate", "filter", *map(str, args)])


def test_cli_threshold_and_best_of(scored, tmp_path):
    out = tmp_path / "f"
    res = _filter(scored, "--max", "score_loglik=-1.5", "--best-of", "1",
                  "--best-by", "score_reward", "--margin", "0.05", "--out", out)
    assert res.exit_code == 0, res.output
    kept = pl.read_parquet(out / "kept.parquet")
    dropped = pl.read_parquet(out / "dropped.parquet")
    assert kept.height + dropped.height == 9
    reasons = dict(zip(dropped["id"], dropped["drop_reason"]))
    # loglik -1.0 - 0.1*3 = -1.3 > -1.5
    assert reasons["p1s2"] == "score_loglik=-1.3 > -1.5"
    # p0: 0.9 beats 0.5 by 0.4 -> kept; p1: 0.31 beats 0.3 by 0.01 < 0.05 -> ambiguous
    assert kept["id"].to_list() == ["p0s0", "p2s0"]
    assert reasons["p1s1"].startswith("best_of_margin: score_reward=0.31 beats runner-up 0.3")
    assert reasons["p0s2"] == "best_of: score_reward=0.5 ranks 2 of 3 for parent 'p0' (keeps 1)"
    assert set(dropped["drop_stage"]) == {"filter"}
    stats = json.loads((out / "stats.json").read_text())
    assert stats["drop_reasons"] == {"best_of": 5, "best_of_margin": 1, "score_loglik": 1}
    assert "kept 2 of 9 rows" in res.output


def test_cli_normalised_per_category_top_fraction(scored, tmp_path):
    out = tmp_path / "f"
    res = _filter(scored, "--normalize", "rank", "--min", "score_reward_rank=0.5",
                  "--top-fraction", "0.5", "--top-by", "score_reward", "--per-category",
                  "--out", out)
    assert res.exit_code == 0, res.output
    kept = pl.read_parquet(out / "kept.parquet")
    assert "score_reward_rank" in kept.columns
    # category a: 6 rows, rank >= 0.5 keeps 3 (0.9, 0.5, 0.31), top half of those: 2
    # category b: 3 rows, rank >= 0.5 keeps 0.8, 0.7; top half of 2: 1
    assert sorted(kept["id"]) == ["p0s0", "p0s2", "p2s0"]
    dropped = pl.read_parquet(out / "dropped.parquet")
    r = dict(zip(dropped["id"], dropped["drop_reason"]))
    assert r["p0s1"] == "score_reward_rank=0.2 < 0.5"
    assert r["p1s1"] == "top_fraction: score_reward=0.31 ranks 3 of 3 in category 'a' (keeps 2)"


def test_missing_score_column_is_a_clear_error(scored, tmp_path):
    res = _filter(scored, "--min", "score_judge=5", "--out", tmp_path / "f")
    assert res.exit_code == 1 and "Traceback" not in res.output
    assert "no column 'score_judge' to filter on (score columns: score_loglik, score_reward)" \
        in res.output
    res = _filter(scored, "--min", "score_reward_z=0", "--out", tmp_path / "f")
    assert res.exit_code == 1 and "normalised columns need normalize: zscore, rank or robust" in res.output


def test_non_numeric_thresholds_and_bad_options(scored, tmp_path):
    res = _filter(scored, "--min", "score_reward=high", "--max", "score_loglik=", "--top-k", "0",
                  "--out", tmp_path / "f")
    assert res.exit_code == 1
    assert "min_scores.score_reward: threshold 'high' is not a number" in res.output
    assert "max_scores.score_loglik: threshold '' is not a number" in res.output
    assert "top_k: must be >= 1" in res.output and "top_by: needed" in res.output
    res = _filter(scored, "--min", "score_reward", "--out", tmp_path / "f")
    assert res.exit_code == 2 and "expected COLUMN=VALUE" in res.output
    res = _filter(scored, "--top-fraction", "half", "--out", tmp_path / "f")
    assert res.exit_code == 2 and "'half' is not a valid float" in res.output


def test_best_of_needs_parent_id(tmp_path):
    path = tmp_path / "x.parquet"
    make_rows([_row("q", "a", score_reward=1.0)]).write_parquet(path)
    res = _filter(path, "--best-of", "1", "--best-by", "score_reward", "--out", tmp_path / "f")
    assert res.exit_code == 1 and "best_of needs a parent_id column" in res.output


def test_recipe_style_config_rejects_unknown_keys():
    from thresher.config import from_dict
    from thresher.errors import ConfigError

    with pytest.raises(ConfigError) as e:
        from_dict(Config, {"min_score": {"score_x": 1}, "top_fraction": 2.0})
    msg = str(e.value)
    assert "min_score: unknown key (did you mean 'min_scores'?)" in msg
    assert "top_fraction: must be in (0, 1]" in msg
    assert "top_by: needed with top_fraction / top_k" in msg


def test_combine_cuts_on_the_mean_of_two_scores():
    # low on one signal only: kept; low on both: dropped; a missing score is no score
    rows = make_rows([_row("q", "An answer.", id=i, score_a=a, score_b=b) for i, a, b in [
        ("fine", 0.0, 0.0), ("low_a", -2.0, 0.0), ("low_b", 0.0, -2.0), ("low_both", -1.2, -1.2),
        ("no_a", None, 1.0)]])
    config = Config(combine={"score_fit": ("score_a", "score_b")}, min_scores={"score_fit": -1.0})
    df, reasons, stats = apply_rules(rows, config)
    assert df["score_fit"].to_list() == [0.0, -1.0, -1.0, -1.2, None]
    assert reasons == [None, None, None, "score_fit=-1.2 < -1", "score_fit=null (no score)"]
    assert stats["dropped_by_rule"]["min:score_fit"] == 2
    # the same cut on either column alone drops a row that is low on that one only
    _, alone, _ = apply_rules(rows, Config(min_scores={"score_a": -1.0}))
    assert alone[1] == "score_a=-2 < -1"


def test_combine_reads_normalised_columns():
    # per category robust z: category x scores are 10x category y's, the z-scores match
    recs = []
    for cat, scale in (("x", 10.0), ("y", 1.0)):
        for j, v in enumerate([0.0, 1.0, 2.0, 3.0, 4.0, -6.0]):
            recs.append(_row("q", "An answer.", id=f"{cat}{j}", category=cat, score_a=v * scale, score_b=v))
    config = Config(normalize="robust", shrink=0.0, combine={"score_fit": ("score_a_rz", "score_b_rz")},
                    min_scores={"score_fit": -2.0})
    df, reasons, _ = apply_rules(make_rows(recs), config)
    assert df["score_fit"].to_list() == pytest.approx(df["score_b_rz"].to_list())
    assert [i for i, r in zip(df["id"], reasons) if r] == ["x5", "y5"]


def test_combine_config_problems():
    from thresher.config import from_dict
    from thresher.errors import ConfigError

    with pytest.raises(ConfigError) as e:
        from_dict(Config, {"combine": {"fit": ["score_a", "score_b"], "score_one": ["score_a", "score_a"],
                                       "score_s": "score_a", "score_n": ["score_a", "score_one"]}})
    msg = str(e.value)
    assert "combine.fit: the name must start with score_" in msg
    assert "combine.score_one: needs two or more different columns, got ['score_a', 'score_a']" in msg
    assert "combine.score_s: expected a list of score columns, got 'score_a'" in msg
    assert "combine.score_n: 'score_one' is itself a combined column" in msg
    assert from_dict(Config, {"combine": {"score_fit": ["score_a", "score_b"]}}).check() == []


def test_combine_will_not_overwrite_a_column():
    from thresher.curate.filter.stage import FilterStage
    from thresher.errors import ThresherError

    rows = make_rows([_row("q", "An answer.", score_a=1.0, score_b=2.0, score_fit=0.5)])
    config = Config(combine={"score_fit": ("score_a", "score_b")}, min_scores={"score_fit": 0.0})
    with pytest.raises(ThresherError, match="x.parquet: combine: the table already has a column 'score_fit'"):
        FilterStage().check(rows, config, "x.parquet")
    FilterStage().check(rows.drop("score_fit"), config, "x.parquet")  # no clash: fine


def test_combine_reads_its_sources_and_writes_its_name():
    from thresher.curate.filter.stage import FilterStage

    config = Config(normalize="robust", combine={"score_fit": ("score_relevance_rz", "score_gain_rz")},
                    min_scores={"score_fit": -1.5, "score_ending_rz": -5.5})
    assert sorted(FilterStage().reads(config)) == [
        ("combine.score_fit", "score_gain"), ("combine.score_fit", "score_relevance"),
        ("min_scores.score_ending_rz", "score_ending")]
    assert FilterStage().writes(config) == {"score_fit"}


def test_cli_combine(scored, tmp_path):
    out = tmp_path / "f"
    # score_loglik = -1 - 3 * reward, so the mean is -0.5 - reward: rewards above 0.4 go
    res = _filter(scored, "--combine", "score_fit=score_reward,score_loglik", "--min", "score_fit=-0.9",
                  "--out", out)
    assert res.exit_code == 0, res.output
    kept = pl.read_parquet(out / "kept.parquet")
    assert sorted(kept["id"]) == ["p0s1", "p1s0", "p1s1", "p1s2"]
    assert kept["score_fit"].to_list() == pytest.approx([-0.7, -0.8, -0.81, -0.6])
    r = dict(zip(*pl.read_parquet(out / "dropped.parquet").select("id", "drop_reason")))
    assert r["p0s0"] == "score_fit=-1.4 < -0.9"
    res = _filter(scored, "--combine", "score_fit=score_reward,score_judge", "--min", "score_fit=0",
                  "--out", tmp_path / "g")
    assert res.exit_code == 1 and "Traceback" not in res.output
    assert "combine: no column 'score_judge' to combine (score columns: score_loglik, score_reward)" in res.output
    res = _filter(scored, "--combine", "score_reward=score_reward,score_loglik", "--out", tmp_path / "h")
    assert res.exit_code == 1 and "combine.score_reward: a combined column cannot average itself" in res.output
    res = _filter(scored, "--combine", "score_reward", "--out", tmp_path / "h")
    assert res.exit_code == 2 and "expected NAME=COL,COL" in res.output
