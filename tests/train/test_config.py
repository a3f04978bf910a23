"""TrainConfig's choices are Literals: one place for the values, the recipe error and the CLI
choice (issue 23)."""

from __future__ import annotations

import pytest

from tests.conftest import invoke
from thresher.config import from_dict
from thresher.errors import ConfigError
from thresher.train import config as train_config
from thresher.train.config import TrainConfig


def test_choices_are_checked_by_the_literal_with_every_problem_at_once():
    with pytest.raises(ConfigError) as e:
        from_dict(TrainConfig, {"schedule": "cos", "dtype": "fp16", "overlong": "cut", "train_on": "first",
                                "distributed": "zero"}, "train")
    assert e.value.problems == [
        "train.schedule: must be one of 'cosine' | 'linear' | 'constant', got 'cos'",
        "train.dtype: must be one of 'auto' | 'fp32' | 'bf16', got 'fp16'",
        "train.overlong: must be one of 'drop' | 'truncate', got 'cut'",
        "train.train_on: must be one of 'all' | 'last', got 'first'",
        "train.distributed: must be one of 'ddp' | 'fsdp', got 'zero'",
    ]


def test_the_cli_offers_the_same_choices(tmp_path):
    res = invoke("train", "lora", tmp_path / "x.jsonl", "--out", tmp_path / "o", "--schedule", "cos")
    assert res.exit_code == 2
    assert res.output.strip().splitlines()[-1] == \
        "Error: Invalid value for '--schedule': 'cos' is not one of 'cosine', 'linear', 'constant'."
    res = invoke("train", "lint-masks", tmp_path / "x.jsonl", "--overlong", "cut")
    assert res.output.strip().splitlines()[-1] == \
        "Error: Invalid value for '--overlong': 'cut' is not one of 'drop', 'truncate'."
    help_text = invoke("train", "lora", "--help").output
    assert "--dtype [auto|fp32|bf16]" in help_text and "--distributed [ddp|fsdp]" in help_text


def test_one_config_to_dict_and_one_dtype_list():
    from thresher.precision import DTYPES

    assert not hasattr(train_config, "to_plain")  # thresher.config.to_dict is the one helper
    assert not hasattr(train_config, "DTYPES") and DTYPES == ("auto", "fp32", "bf16")


def test_a_config_built_directly_checks_its_choices_the_same_way():
    from thresher.distill.stage import Config as GenerateConfig

    assert TrainConfig(schedule="cos").check() == ["schedule: must be one of 'cosine' | 'linear' | 'constant', got 'cos'"]
    assert GenerateConfig(backend="magic").check() == [
        "backend: must be one of 'auto' | 'transformers' | 'vllm' | 'openai' | 'openai-batch', got 'magic'"]
