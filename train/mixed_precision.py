"""Training precision: bf16 compute with fp32 LoRA master weights, where the hardware has it.

With ``dtype`` bf16 (``auto`` picks it on a CUDA GPU with bf16 and on a CPU with AMX or
AVX-512 BF16, see :mod:`thresher.precision`):

- the frozen base model is loaded in bf16 (half the memory and memory traffic, and the
  matmuls run on the bf16 units);
- the adapter's parameters stay fp32: peft keeps them fp32 (``autocast_adapter_dtype``) and
  :func:`check_master_weights` makes sure; AdamW updates these fp32 masters;
- every forward pass runs under ``torch.autocast(bf16)``, so the adapter's small matmuls use
  bf16 copies of the fp32 masters too (gradients flow back into the fp32 masters);
- the loss itself is computed from fp32 logits (the loop's ``cross_entropy(logits.float())``).

Export and the merged-model check always load a fresh fp32 base, so the saved adapter and the
merged model are the same as after an fp32 run.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

from thresher.errors import ThresherError
from thresher.precision import Precision, resolve


def training_precision(dtype: str, device: Any, *, qlora: bool = False) -> Precision:
    """The precision of a training run (QLoRA keeps its own bf16 compute dtype on the GPU)."""
    if qlora:
        return Precision("bf16", "QLoRA compute dtype")
    return resolve(dtype, device)


def base_dtype(prec: Precision) -> Any:
    """The dtype to load the frozen base weights in."""
    return prec.torch_dtype


def autocast_factory(prec: Precision, device: Any) -> Callable[[], Any] | None:
    """A zero-argument context factory for the loop (``None`` for fp32)."""
    if not prec.bf16:
        return None
    import torch

    kind = getattr(device, "type", None) or str(device).split(":")[0]
    return lambda: torch.autocast(kind, dtype=torch.bfloat16)


def check_master_weights(model: Any) -> int:
    """Cast any non-fp32 trainable parameter to fp32 (the master copy); returns how many there are."""
    import torch

    n = 0
    for p in model.parameters():
        if p.requires_grad:
            if not p.is_floating_point():
                raise ThresherError("a trainable parameter is not floating point")
            if p.dtype != torch.float32:
                p.data = p.data.float()
            n += 1
    return n


@contextlib.contextmanager
def no_autocast() -> Any:
    """A context that does nothing (the fp32 path)."""
    yield


def skip_adapter_input_casts(model: Any) -> int:
    """Stop peft from casting each adapter layer's input to the fp32 master dtype.

    Under bf16 autocast that cast is a wasted copy of every activation: autocast casts it
    straight back to bf16 for the adapter's matmul, so the result is bit-identical without it
    (plain LoRA; not used for DoRA or QLoRA). Returns how many layers were changed."""
    from peft.tuners.tuners_utils import BaseTunerLayer

    n = 0
    for module in model.modules():
        if isinstance(module, BaseTunerLayer):
            module.cast_input_dtype_enabled = False
            n += 1
    return n
