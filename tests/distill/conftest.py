"""Fixtures of the distill tests: prompt files, a CLI runner, tiny models for vLLM."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

PROMPTS = [
    "What is the capital of France?",
    "Name a prime number.",
    "Write one sentence about the sea.",
    "What colour is the sky on a clear day?",
    "Give a synonym of happy.",
    "How many legs does a spider have?",
    "Say hello in Spanish.",
    "What is two plus three?",
]


def write_prompts(path: Path, prompts: list[str] | None = None, *, category: str = "general") -> Path:
    """A JSONL file of single-turn user prompts in the messages shape."""
    prompts = PROMPTS if prompts is None else prompts
    with open(path, "w") as f:
        f.writelines(json.dumps({"messages": [{"role": "user", "content": p}],
                                "category": category if i % 2 == 0 else "other"}) + "\n" for i, p in enumerate(prompts))
    return path


@pytest.fixture
def prompts_file(tmp_path: Path) -> Path:
    return write_prompts(tmp_path / "prompts.jsonl")


@pytest.fixture
def cli_run():
    """Invoke the root CLI; returns click's Result (:func:`tests.conftest.invoke`)."""
    from tests.conftest import invoke

    def run(*args: str, env: dict | None = None):
        return invoke(*args, env=env)

    return run


@pytest.fixture(autouse=True, scope="package")
def _one_torch_thread():
    """Tiny models on a shared 2-core machine: one thread avoids OpenMP spin-waiting
    (measured 10x faster under load); restored for the other packages' tests."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def tiny_vllm_dir(tmp_path_factory, tiny_tokenizer_dir) -> Path:
    """A tiny random Llama whose head size (64) vLLM's CPU attention supports."""
    from tests.conftest import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("tiny_vllm"), tiny_tokenizer_dir, hidden_size=128,
                            intermediate_size=256, num_attention_heads=2, num_key_value_heads=1)
