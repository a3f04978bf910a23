"""Scorers are a registry (issue 23): a new scorer is its module plus one ``SCORERS`` entry,
and model scorers share one options object whose defaults are the score Config's."""

from __future__ import annotations

import dataclasses

import polars as pl
import pytest

from thresher.curate.score import registry
from thresher.curate.score.base import ScoreResult, split_response
from thresher.curate.score.options import ModelOptions, model_options
from thresher.curate.score.registry import parse_spec
from thresher.curate.score.specs import SpecError
from thresher.curate.score.stage import Config, build_scorer, run
from thresher.schema import make_rows


def test_model_options_defaults_are_the_config_defaults():
    opts, config = ModelOptions.default(), Config()
    assert (opts.batch_size, opts.max_batch_tokens) == (config.batch_size, config.max_batch_tokens) == (16, 16384)
    assert (opts.max_length, opts.overflow, opts.device, opts.dtype) == \
        (config.max_length, config.overflow, config.device, config.dtype)
    assert opts.sort == config.sort_by_length
    assert opts.allow_special_in_content == config.allow_special_tokens_in_content
    assert model_options(None, {"batch_size": 4}) == dataclasses.replace(opts, batch_size=4)
    with pytest.raises(TypeError, match="unexpected scorer option"):
        model_options(None, {"batch": 4})


def test_a_scorer_built_directly_and_by_the_stage_agree(tiny_lm_dir):
    from thresher.curate.score.loglik import LoglikScorer

    direct = LoglikScorer(str(tiny_lm_dir), device="cpu")
    staged = build_scorer(parse_spec(f"loglik:{tiny_lm_dir}"), Config(device="cpu"))
    assert direct.options == staged.options
    assert (direct.batch_size, direct.max_batch_tokens) == (16, 16384)  # 8 / 8192 before issue 23
    gain = build_scorer(parse_spec(f"g=gain:{tiny_lm_dir}"), Config(device="cpu", batch_size=3, max_length=64))
    assert gain.name == "g" and (gain.inner.batch_size, gain.inner.max_length) == (3, 64)


def test_every_kind_parses_through_its_entry():
    assert list(registry.SCORERS)[:3] == ["loglik", "reward", "judge"]
    assert parse_spec("judge:transformers:smollm2").backend == "transformers"
    with pytest.raises(SpecError, match="verify needs a verifier"):
        parse_spec("verify")
    with pytest.raises(SpecError, match=r"unknown scorer 'nope' .*expected one of loglik, reward, judge"):
        parse_spec("nope")


class CharsScorer:
    """A toy scorer: characters in the answer."""

    kind = "chars"

    def __init__(self, name: str):
        self.name = name
        self.identity = "chars|v1"

    def score(self, conversations, on_batch=None):
        out = [ScoreResult(float(len(split_response(c)[1]["content"])), None) for c in conversations]
        if on_batch is not None:
            on_batch(list(range(len(out))), out)
        return out


def test_a_new_scorer_is_one_registry_entry(tmp_path, monkeypatch):
    monkeypatch.setitem(registry.SCORERS, "chars", registry.ScorerKind(
        registry.optional_model, lambda spec, config: CharsScorer(spec.name)))
    src = tmp_path / "in.parquet"
    make_rows([{"id": "a", "messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}]},
               {"id": "b", "messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hey"}]},
               ]).write_parquet(src)
    config = Config(scorers=("n=chars",), cache_dir=tmp_path / "cache")
    assert config.check() == []
    result = run([src], tmp_path / "out", config)
    assert pl.read_parquet(result.kept_path)["score_n"].to_list() == [5.0, 3.0]
    assert result.stats["scorers"]["n"]["identity"] == "chars|v1"
