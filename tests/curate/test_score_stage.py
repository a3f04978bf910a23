"""The score stage and CLI: columns, stats, the per-row cache (re-runs, crashes, a second
scorer) and clear errors for bad input."""

from __future__ import annotations

import json

import polars as pl
import pytest

from tests.conftest import invoke
from thresher.schema import make_rows

QA = [
    ("What is the capital of France?", "Paris.", "geo"),
    ("Name a primary colour.", "Red is a primary colour.", "art"),
    ("What is 3 times 3?", "3 times 3 is 9.", "math"),
    ("Say hello in Spanish.", "Hola.", "lang"),
    ("Give me a long answer about rivers.", "Rivers flow downhill to the sea. " * 12, "geo"),
    ("What is 3 times 3?", "3 times 3 is 9.", "math"),  # duplicate content: scored once
]


@pytest.fixture
def data(tmp_path):
    rows = make_rows(
        {"messages": [{"role": "user", "content": q}, {"role": "assistant", "content": a}],
         "category": c, "id": f"r{i}"}
        for i, (q, a, c) in enumerate(QA)
    )
    path = tmp_path / "in.parquet"
    rows.write_parquet(path)
    return path


def _invoke(*args):
    return invoke("curate", "score", *args)


def test_cli_adds_score_columns_and_stats(data, tmp_path, tiny_reward_dir, tiny_lm_dir):
    out = tmp_path / "run"
    res = _invoke(data, "-s", f"rm=reward:{tiny_reward_dir}", "-s", f"loglik:{tiny_lm_dir}",
                  "--out", out, "--cache-dir", tmp_path / "cache")
    assert res.exit_code == 0, res.output
    assert "score_rm: 6 scored, 0 without score" in res.output
    kept = pl.read_parquet(out / "kept.parquet")
    assert kept.height == len(QA) and kept["id"].to_list() == [f"r{i}" for i in range(len(QA))]
    for col in ("score_rm", "rm_error", "score_loglik", "loglik_error"):
        assert col in kept.columns
    assert kept["score_rm"].null_count() == 0 and kept["score_loglik"].null_count() == 0
    assert kept["score_rm"][2] == kept["score_rm"][5]  # same conversation, same score
    stats = json.loads((out / "stats.json").read_text())
    h = stats["scorers"]["rm"]["histogram"]
    assert sum(h["counts"]) == len(QA) and len(h["edges"]) == len(h["counts"]) + 1
    assert stats["scorers"]["loglik"]["max"] < 0
    assert pl.read_parquet(out / "dropped.parquet").height == 0


def test_cache_second_scorer_and_rerun_do_no_finished_work(data, tmp_path, tiny_reward_dir,
                                                           tiny_lm_dir):
    from thresher.curate.score.stage import Config, run

    cache = tmp_path / "cache"
    first = run([data], tmp_path / "a", Config(scorers=(f"reward:{tiny_reward_dir}",),
                                               cache_dir=cache))
    assert first.stats["scorers"]["reward"]["cached"] == 0
    both = run([data], tmp_path / "b", Config(
        scorers=(f"reward:{tiny_reward_dir}", f"loglik:{tiny_lm_dir}"), cache_dir=cache))
    assert both.stats["scorers"]["reward"]["cached"] == len(QA)
    assert both.stats["scorers"]["loglik"]["cached"] == 0
    a = pl.read_parquet(tmp_path / "a" / "kept.parquet")["score_reward"]
    b = pl.read_parquet(tmp_path / "b" / "kept.parquet")["score_reward"]
    assert a.to_list() == b.to_list()
    # a scorer option that changes scores is a different cache identity
    other = run([data], tmp_path / "c", Config(scorers=(f"reward:{tiny_reward_dir}",),
                                               cache_dir=cache, max_length=16))
    assert other.stats["scorers"]["reward"]["cached"] == 0


def test_finished_stage_is_reused_unless_scores_would_change(data, tmp_path, tiny_reward_dir):
    from thresher.curate.score.stage import Config, run

    spec = (f"reward:{tiny_reward_dir}",)
    out = tmp_path / "run"
    assert not run([data], out, Config(scorers=spec, cache=False, batch_size=2)).reused
    # batching and cache options do not change scores: the finished stage is reused
    assert run([data], out, Config(scorers=spec, cache=False, batch_size=32,
                                   sort_by_length=False)).reused
    # max_length does
    assert not run([data], out, Config(scorers=spec, cache=False, max_length=16)).reused


def test_crash_midway_keeps_finished_rows(tmp_path, tiny_reward_dir):
    from thresher.curate.score.cache import ScoreCache
    from thresher.curate.score.reward import RewardScorer
    from thresher.curate.score.stage import score_rows

    convs = [[{"role": "user", "content": f"q{i} " * (i + 1)},
              {"role": "assistant", "content": f"a{i}"}] for i in range(10)]
    real = RewardScorer(str(tiny_reward_dir), batch_size=2, device="cpu")

    class Crashing:
        """The real scorer, killed after its second batch."""

        name, identity = real.name, real.identity

        def __init__(self):
            self.seen = []

        def score(self, conversations, on_batch=None):
            batches = 0

            def cb(idx, out):
                nonlocal batches
                on_batch(idx, out)
                batches += 1
                if batches == 2:
                    raise KeyboardInterrupt

            self.seen.append(len(conversations))
            return real.score(conversations, on_batch=cb)

    crashing = Crashing()
    with pytest.raises(KeyboardInterrupt):
        score_rows(convs, crashing, cache_root=tmp_path)
    assert len(ScoreCache(tmp_path, real.identity)) == 4  # two batches of two reached disk
    resumed = Crashing()
    resumed.score = lambda conversations, on_batch=None: (
        resumed.seen.append(len(conversations)) or real.score(conversations, on_batch=on_batch))
    results, cached = score_rows(convs, resumed, cache_root=tmp_path)
    assert cached == 4 and resumed.seen == [6]
    fresh = real.score(convs)
    assert [r.score for r in results] == pytest.approx([r.score for r in fresh], abs=1e-5)


def test_overflow_skip_leaves_null_with_reason(data, tmp_path, tiny_reward_dir):
    out = tmp_path / "run"
    res = _invoke(data, "-s", f"reward:{tiny_reward_dir}", "--max-length", "40",
                  "--overflow", "skip", "--out", out, "--no-cache")
    assert res.exit_code == 0, res.output
    kept = pl.read_parquet(out / "kept.parquet")
    long_row = kept.filter(pl.col("id") == "r4")
    assert long_row["score_reward"][0] is None
    assert long_row["reward_error"][0].startswith("skipped: ")
    assert kept["score_reward"].null_count() == 1


def test_unknown_scorer_is_a_clear_error(data, tmp_path):
    res = _invoke(data, "-s", "bleu", "--out", tmp_path / "run", "--no-cache")
    assert res.exit_code == 1
    assert "Error: scorers[0]: unknown scorer 'bleu'" in res.output
    assert "Traceback" not in res.output
    res = _invoke(data, "-s", "reward", "-s", "loglik", "-s", "loglik", "--out", tmp_path / "r")
    assert res.exit_code == 1
    assert "reward needs a model" in res.output and "two scorers named 'loglik'" in res.output


@pytest.fixture(scope="module")
def multi_label_rm(tmp_path_factory, tiny_reward_dir):
    import shutil

    from transformers import AutoConfig, AutoModelForSequenceClassification

    out = tmp_path_factory.mktemp("rm3")
    for f in tiny_reward_dir.iterdir():
        if not f.name.startswith(("config", "model")):
            shutil.copy(f, out / f.name)
    cfg = AutoConfig.from_pretrained(tiny_reward_dir)
    cfg.num_labels = 3
    cfg.id2label = {0: "helpful", 1: "honest", 2: "harmless"}
    cfg.label2id = {v: k for k, v in cfg.id2label.items()}
    AutoModelForSequenceClassification.from_config(cfg).save_pretrained(out)
    return out


def test_multi_label_reward_needs_label(data, tmp_path, multi_label_rm):
    res = _invoke(data, "-s", f"reward:{multi_label_rm}", "--out", tmp_path / "run", "--no-cache")
    assert res.exit_code == 1
    assert "has 3 labels (0=helpful, 1=honest, 2=harmless); choose one with --label" in res.output
    res = _invoke(data, "-s", f"reward:{multi_label_rm}", "--label", "toxic",
                  "--out", tmp_path / "run", "--no-cache")
    assert res.exit_code == 1 and "--label 'toxic': not a label" in res.output
    res = _invoke(data, "-s", f"reward:{multi_label_rm}", "--label", "honest",
                  "--out", tmp_path / "ok", "--no-cache")
    assert res.exit_code == 0, res.output
    by_name = pl.read_parquet(tmp_path / "ok" / "kept.parquet")["score_reward"]
    res = _invoke(data, "-s", f"reward:{multi_label_rm}", "--label", "1",
                  "--out", tmp_path / "ok1", "--no-cache")
    assert res.exit_code == 0, res.output
    assert pl.read_parquet(tmp_path / "ok1" / "kept.parquet")["score_reward"].to_list() == \
        by_name.to_list()


def test_bad_options_listed_together(data, tmp_path):
    res = _invoke(data, "--batch-size", "0", "--max-length", "2", "--judge-retries", "-1",
                  "--out", tmp_path / "run", "--no-cache")
    assert res.exit_code == 1
    for part in ("batch_size: must be >= 1", "max_length: must be >= 8",
                 "judge_retries: must be >= 0"):
        assert part in res.output


def test_causal_lm_is_not_a_reward_model(data, tmp_path, tiny_lm_dir):
    res = _invoke(data, "-s", f"reward:{tiny_lm_dir}", "--out", tmp_path / "run", "--no-cache")
    assert res.exit_code == 1
    assert "LlamaForCausalLM is not a sequence classifier" in res.output


def test_missing_reward_model_folder(data, tmp_path):
    res = _invoke(data, "-s", f"reward:{tmp_path / 'nope'}", "--out", tmp_path / "run",
                  "--no-cache")
    assert res.exit_code == 1 and "Traceback" not in res.output
    assert f"Error: model '{tmp_path / 'nope'}' not found" in res.output


@pytest.mark.slow
def test_judge_scorer_through_stage(data, tmp_path, tiny_lm_dir):
    """The judge through the core's generator adapter and the real transformers backend."""
    res = _invoke(data, "-s", f"judge:transformers:{tiny_lm_dir}", "--judge-max-tokens", "8",
                  "--judge-retries", "0", "--out", tmp_path / "run", "--no-cache")
    assert res.exit_code == 0, res.output
    kept = pl.read_parquet(tmp_path / "run" / "kept.parquet")
    for score, err in zip(kept["score_judge"], kept["judge_error"]):
        assert (score is None) != (err is None)
        if err is not None:
            assert err.startswith("judge_error: unreadable answer after 1 tries")
