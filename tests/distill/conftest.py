"""Fixtures of the distill tests: prompt files, a CLI runner, tiny models for vLLM."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

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
        for i, p in enumerate(prompts):
            f.write(json.dumps({"messages": [{"role": "user", "content": p}],
                                "category": category if i % 2 == 0 else "other"}) + "\n")
    return path


@pytest.fixture
def prompts_file(tmp_path: Path) -> Path:
    return write_prompts(tmp_path / "prompts.jsonl")


@pytest.fixture
def cli_run():
    """Invoke the root CLI; returns click's Result."""
    from thresher.cli.main import cli

    def run(*args: str, env: dict | None = None):
        return CliRunner().invoke(cli, [str(a) for a in args], env=env, catch_exceptions=True)

    return run
