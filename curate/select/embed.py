"""Embeddings for diversity selection: mean-pooled last hidden states of a causal LM (the
student, SmolLM2 by default, which ships offline), over the rendered conversation."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def texts_for(messages: Sequence[Sequence[dict]], on: str) -> list[str]:
    """The text embedded for each row: its prompt, its response or the whole conversation."""
    from thresher.schema import conversation_text, prompt_text, response_text

    fn = {"prompt": prompt_text, "response": response_text, "conversation": conversation_text}[on]
    return [fn(m) for m in messages]


def mean_pooled(texts: Sequence[str], model: str | None = None, *, max_length: int = 256, batch_size: int = 16,
                device: str = "auto") -> np.ndarray:
    """``len(texts) x hidden`` float32 array: the mask-weighted mean of the last hidden layer."""
    import torch

    from thresher.models import load_model, load_tokenizer, resolve_model

    path = str(resolve_model(model))
    dev = ("cuda" if torch.cuda.is_available() else "cpu") if device == "auto" else device
    tok = load_tokenizer(path)
    if tok.pad_token_id is None:
        tok.pad_token = tok.eos_token
    tok.padding_side = "right"
    lm = load_model(path, kind="base", dtype=torch.float32).to(dev).eval()
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    out = np.zeros((len(texts), lm.config.hidden_size), dtype=np.float32)
    with torch.inference_mode():
        for start in range(0, len(order), batch_size):
            idx = order[start:start + batch_size]
            enc = tok([texts[i] or " " for i in idx], return_tensors="pt", padding=True, truncation=True,
                      max_length=max_length).to(dev)
            hidden = lm(**enc).last_hidden_state
            mask = enc["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1)
            out[idx] = pooled.float().cpu().numpy()
    return out
