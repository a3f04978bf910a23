"""Tokenizer facts every stage needs the same way (one copy for distill, curate and train)."""

from __future__ import annotations

from typing import Any

#: end-of-turn markers of common chat formats (ChatML, Llama 3, Phi, Gemma, GPT-2 style, Llama 2)
KNOWN_END_MARKERS = ("<|im_end|>", "<|eot_id|>", "<|end|>", "<end_of_turn>", "<|endoftext|>", "</s>")

_PROBE_ANSWER = "Probe answer."
_PROBE = [{"role": "user", "content": "Probe question?"}, {"role": "assistant", "content": _PROBE_ANSWER}]


def special_ids(tokenizer: Any) -> frozenset[int]:
    """Ids of the tokenizer's special and added tokens (and EOS)."""
    ids = set(getattr(tokenizer, "all_special_ids", []) or [])
    ids.update(int(i) for i in getattr(tokenizer, "added_tokens_decoder", {}) or {})
    eos = getattr(tokenizer, "eos_token_id", None)
    if isinstance(eos, int):
        ids.add(eos)
    return frozenset(ids)


def _template_end_ids(tokenizer: Any) -> list[int]:
    """The special tokens the chat template writes after an assistant message."""
    if not getattr(tokenizer, "chat_template", None):
        return []
    try:
        text = tokenizer.apply_chat_template(_PROBE, tokenize=False)
    except Exception:  # noqa: BLE001 - a template that rejects the probe: fall back to EOS/markers
        return []
    at = text.rfind(_PROBE_ANSWER)
    if at < 0:
        return []
    special = special_ids(tokenizer)
    tail = tokenizer(text[at + len(_PROBE_ANSWER):], add_special_tokens=False)["input_ids"]
    return [int(t) for t in tail if t in special]


def end_of_turn_ids(tokenizer: Any) -> list[int]:
    """Token ids that end an assistant turn, most specific first.

    The special tokens the chat template puts after an assistant message (``<|im_end|>``,
    ``<|eot_id|>``, ``</s>`` ...), then EOS, then the known end-of-turn markers the vocabulary
    has. Used as generation stop tokens (distill) and in the exported generation config (train).
    """
    ids: list[int] = []

    def add(t: Any) -> None:
        if isinstance(t, int) and t not in ids:
            ids.append(t)

    for t in _template_end_ids(tokenizer):
        add(t)
    eos = getattr(tokenizer, "eos_token_id", None)
    for t in eos if isinstance(eos, (list, tuple)) else [eos]:
        add(int(t) if t is not None else None)
    vocab, special = tokenizer.get_vocab(), special_ids(tokenizer)
    for marker in KNOWN_END_MARKERS:  # only as special tokens: plain text "</s>" stops nothing
        if vocab.get(marker) in special:
            add(vocab[marker])
    return ids
