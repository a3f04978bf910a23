"""The LM head and cross-entropy of the trained positions, in chunks (no vocabulary-wide buffers).

A step's loss needs logits only where a token is trained. Projecting all of them at once makes
``[n, vocab]`` buffers several times over (bf16 logits, their fp32 copy, log-softmax, its
gradient: about 10 bytes x n x vocab, 230 MB for 480 tokens of a 49k vocabulary), which on a CPU
costs more in page faults and memory traffic than the matmul itself. :func:`head_loss_sum`
instead runs the head and the cross-entropy on ``CHUNK`` positions at a time, so no buffer is
larger than one chunk's logits. The backward pass needs each chunk's fp32 log-probabilities;
while all of them fit in ``SAVE_BUDGET`` bytes they are kept (measured 1.5x faster than
recomputing), beyond it every chunk runs under activation checkpointing, so only its hidden
states are kept and its logits are recomputed: memory stays bounded whatever the batch.

This needs the decoder's hidden states and the head separately, which :func:`split_head` finds
for plain causal LMs whose logits are exactly ``lm_head(hidden)`` (no soft-capping or scaling:
the :data:`PLAIN_HEAD` model types), unwrapped by DDP or FSDP (they must see the whole forward).
Anything else keeps the model's own forward.
"""

from __future__ import annotations

from typing import Any

import torch

#: trained positions per head/cross-entropy chunk
CHUNK = 128
#: bytes of fp32 log-probabilities kept for the backward pass before chunks are checkpointed
SAVE_BUDGET = 256 << 20
#: model types whose causal-LM logits are exactly ``lm_head(final hidden state)``
PLAIN_HEAD = frozenset({"llama", "mistral", "qwen2", "qwen3", "smollm3", "phi3", "olmo", "olmo2"})


def split_head(model: Any) -> tuple[Any, Any] | None:
    """(decoder, lm_head) of a plain (peft-wrapped) causal LM, or None to use its forward."""
    if hasattr(model, "module"):  # DDP
        return None
    try:
        from torch.distributed.fsdp import FSDPModule
    except ImportError:  # pragma: no cover - old torch
        FSDPModule = ()  # type: ignore[assignment,misc]
    if isinstance(model, FSDPModule):
        return None
    inner = model.get_base_model() if hasattr(model, "get_base_model") else model
    if getattr(getattr(inner, "config", None), "model_type", None) not in PLAIN_HEAD:
        return None
    decoder, head = getattr(inner, "model", None), getattr(inner, "lm_head", None)
    if decoder is None or head is None:
        return None
    return decoder, head


def _chunk_loss(head: Any, hidden: Any, targets: Any) -> Any:
    return torch.nn.functional.cross_entropy(head(hidden).float(), targets, reduction="sum")


def _out_features(head: Any) -> int | None:
    weight = getattr(getattr(head, "base_layer", head), "weight", None)  # peft-wrapped head too
    return int(weight.shape[0]) if weight is not None and weight.dim() == 2 else None


def head_loss_sum(head: Any, hidden: Any, targets: Any, chunk: int = CHUNK) -> Any:
    """Sum of the cross-entropy of ``head(hidden)`` ``[n, H]`` against ``targets`` ``[n]``, in
    fp32, ``chunk`` rows at a time (checkpointed when their saved log-probabilities would
    exceed :data:`SAVE_BUDGET`)."""
    from torch.utils.checkpoint import checkpoint

    total = hidden.new_zeros((), dtype=torch.float32)
    vocab = _out_features(head)
    grad = (torch.is_grad_enabled() and hidden.requires_grad
            and (vocab is None or hidden.shape[0] * vocab * 4 > SAVE_BUDGET))
    for i in range(0, hidden.shape[0], chunk):
        h, t = hidden[i:i + chunk], targets[i:i + chunk]
        part = checkpoint(_chunk_loss, head, h, t, use_reentrant=False) if grad else _chunk_loss(head, h, t)
        total = total + part
    return total
