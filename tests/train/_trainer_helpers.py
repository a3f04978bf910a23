"""Shared helpers for the trainer tests: synthetic conversation rows and a tiny LoRA model."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

WORDS = ["the", "cat", "sat", "on", "a", "mat", "while", "dogs", "ran", "over", "green", "hills", "and", "blue", "rivers", "under", "bright", "skies", "every", "morning", "before", "small", "birds", "sang", "quiet", "songs"]


def make_rows(n: int, seed: int = 0, *, multi_turn: bool = True) -> list[dict]:
    """``n`` conversations with a system prompt; every third one has two assistant turns."""
    rng = random.Random(seed)

    def text(lo: int, hi: int) -> str:
        return " ".join(rng.choices(WORDS, k=rng.randint(lo, hi)))

    rows = []
    for i in range(n):
        msgs = [{"role": "system", "content": "Answer briefly."},
                {"role": "user", "content": text(3, 10)},
                {"role": "assistant", "content": text(3, 25)}]
        if multi_turn and i % 3 == 0:
            msgs += [{"role": "user", "content": text(2, 6)}, {"role": "assistant", "content": text(2, 12)}]
        rows.append({"id": f"row{i}", "messages": msgs, "category": "misc", "source": "test"})
    return rows


def write_rows(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def tiny_lora(model_dir: Path, *, dropout: float = 0.0, seed: int = 0, **cfg):
    """(peft model, tokenizer, TrainConfig) on the tiny Llama."""
    import torch

    from thresher.train.config import TrainConfig
    from thresher.train.data import load_tokenizer
    from thresher.train.model import add_adapter, load_base

    config = TrainConfig(base=str(model_dir), dropout=dropout, r=4, alpha=8, seed=seed, **cfg)
    torch.manual_seed(seed)
    model = add_adapter(load_base(config), config)
    return model, load_tokenizer(str(model_dir)), config


def encode(tok, rows: list[dict], max_length: int = 256):
    from thresher.train.data import Example, encode_conversation

    out = [encode_conversation(tok, r["messages"], max_length=max_length, row_id=r["id"]) for r in rows]
    assert all(isinstance(e, Example) for e in out)
    return out


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny models run fastest on one thread (and CI's cores are shared): import this fixture
    into a test module to apply it there."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
