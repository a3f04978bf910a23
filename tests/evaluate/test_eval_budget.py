"""eval's token budget and backend live on its Config: `thresher eval` and a recipe's eval stage
get the same default (96 tokens), never the teacher's generate options (issue 23)."""

from __future__ import annotations

from pathlib import Path

import pytest

from thresher.config import from_dict
from thresher.errors import ConfigError
from thresher.evaluate import answers as eval_answers
from thresher.evaluate.stage import Config


class _Captured(Exception):
    pass


def _answers_config(config: Config, monkeypatch, tmp_path: Path):
    """The generate Config the eval stage answers with (the generate stage itself not run)."""
    seen = {}

    def fake_run(inputs, out, cfg, force=False):
        seen["cfg"] = cfg
        raise _Captured

    gen_mod = eval_answers.stage_module("generate")
    monkeypatch.setattr(gen_mod, "run", fake_run)

    class _Folder:
        name = "eval"

        def path(self, name):
            return tmp_path / name

    with pytest.raises(_Captured):
        eval_answers.answers("m", "smollm2", tmp_path / "prompts.parquet", config, _Folder(), False)
    return seen["cfg"]


def test_cli_and_config_share_one_default():
    from thresher.evaluate.cli import eval_cmd

    params = {p.name: p for p in eval_cmd.params}
    assert Config().max_tokens == 96 and Config().backend == "auto"
    assert params["max_tokens"].default is None and "[default: 96]" in params["max_tokens"].help
    assert params["backend"].default is None


def test_recipe_eval_answers_with_its_own_budget_not_the_teachers(monkeypatch, tmp_path):
    from thresher.recipe.runner import _stage_inputs
    from thresher.recipe.spec import parse_recipe

    recipe = parse_recipe({"name": "r", "holdout": 2, "inputs": [{"path": "a.jsonl"}], "stages": [
        {"generate": {"max_tokens": 512, "backend": "transformers", "stop": ["END"]}},
        {"train": {"base": "smollm2"}}, {"eval": {}}]}, check_files=False)
    spec = recipe.stage("eval")
    fed = {s.index: tmp_path / f"{s.index}.parquet" for s in recipe.stages}
    _, config = _stage_inputs(spec, recipe, tmp_path, fed)
    assert config.max_tokens == 96 and config.backend == "auto"
    assert "max_tokens" not in config.generate and "backend" not in config.generate
    assert config.generate["stop"] == ["END"]  # the teacher's other options are still inherited
    cfg = _answers_config(config, monkeypatch, tmp_path)
    assert (cfg.max_tokens, cfg.backend, cfg.stop) == (96, "auto", ("END",))

    recipe = parse_recipe({"name": "r", "holdout": 2, "inputs": [{"path": "a.jsonl"}], "stages": [
        {"generate": {}}, {"train": {"base": "smollm2"}}, {"eval": {"max_tokens": 32, "backend": "transformers"}}]},
        check_files=False)
    _, config = _stage_inputs(recipe.stage("eval"), recipe, tmp_path, fed)
    cfg = _answers_config(config, monkeypatch, tmp_path)
    assert (cfg.max_tokens, cfg.backend) == (32, "transformers")


def test_generate_budget_or_backend_under_eval_is_refused():
    with pytest.raises(ConfigError) as e:
        from_dict(Config, {"generate": {"max_tokens": 32, "backend": "vllm"}, "max_tokens": 0}, "eval")
    assert e.value.problems == ["eval.max_tokens: must be >= 1 (got 0)",
                                "eval.generate.max_tokens: set eval's own max_tokens instead",
                                "eval.generate.backend: set eval's own backend instead"]
