"""Export: the adapter (peft / vLLM LoRA format) and, with ``merge``, a checked merged model.

The adapter folder holds ``adapter_config.json`` + ``adapter_model.safetensors`` (what
``peft.PeftModel.from_pretrained`` and vLLM's LoRA support load) and the tokenizer with its
chat template. The merged folder is a plain transformers model (base weights + adapter,
dequantised first for QLoRA) with the tokenizer, chat template and a generation config whose
``eos_token_id`` lists the EOS and end-of-turn ids, so generation stops at the end of a turn.

The merged model is checked before it is published: it is reloaded from disk with plain
transformers and its logits on a few probe conversations must match the adapter model's
(base + adapter loaded from the exported folder) within ``atol``; otherwise the export fails
and no merged folder is left behind.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from thresher.errors import ThresherError
from thresher.tokens import end_of_turn_ids


def save_adapter(model: Any, tokenizer: Any, out: Path) -> Path:
    """Write the adapter and tokenizer to ``out`` (atomically)."""
    from thresher.io.atomic import atomic_path

    inner = getattr(model, "module", model)
    with atomic_path(out, is_dir=True) as tmp:
        inner.save_pretrained(str(tmp), safe_serialization=True)
        tokenizer.save_pretrained(str(tmp))
    return out


def probe_logits(model: Any, probes: Sequence[Sequence[int]]) -> list[Any]:
    """fp32 logits of ``model`` on each probe token sequence (one at a time, no padding)."""
    import torch

    model.eval()
    out = []
    with torch.no_grad():
        for ids in probes:
            x = torch.tensor([list(ids)], device=next(model.parameters()).device)
            out.append(model(input_ids=x).logits[0].float().cpu())
    return out


def check_logits(reference: Sequence[Any], candidate: Sequence[Any], atol: float) -> float:
    """Largest absolute logit difference; raises ThresherError when above ``atol``."""
    worst = 0.0
    for a, b in zip(reference, candidate, strict=True):
        if a.shape != b.shape:
            raise ThresherError(f"export check failed: merged logits have shape {tuple(b.shape)}, "
                                f"adapter logits {tuple(a.shape)}")
        worst = max(worst, float((a - b).abs().max()))
    if not worst <= atol:  # also catches NaN
        raise ThresherError(f"export check failed: merged model logits differ from the adapter model's "
                            f"by {worst:.3g} > {atol:g} on the probe prompts; merged model not written")
    return worst


def _load_reference(base_loader: Any, adapter_dir: Path) -> Any:
    from thresher.models import load_adapter

    return load_adapter(base_loader(), adapter_dir)


def merge_and_check(base_loader: Any, adapter_dir: Path, tokenizer: Any, out: Path,
                    probes: Sequence[Sequence[int]], *, atol: float = 1e-3,
                    dtype: Any = None) -> dict[str, Any]:
    """Merge the adapter in ``adapter_dir`` into a fresh full-precision base and publish ``out``.

    ``base_loader()`` returns the base model in full precision (for QLoRA: not quantised).
    ``dtype`` is the dtype the merged weights are saved in (the base model's own, e.g. bf16;
    None: fp32). The merge is checked in fp32 against the adapter model (``atol``), and the
    saved folder, reloaded from disk, against the merged model cast to ``dtype``.
    Returns ``{"max_logit_diff": ..., "eos_token_id": [...], "dtype": ...}``.
    """
    import torch
    from transformers import GenerationConfig

    from thresher.io.atomic import atomic_path
    from thresher.models import load_model

    reference = _load_reference(base_loader, adapter_dir)
    ref_logits = probe_logits(reference, probes)
    merged = reference.merge_and_unload()
    worst = check_logits(ref_logits, probe_logits(merged, probes), atol)  # the merge itself, fp32
    dtype = dtype or torch.float32
    if dtype != torch.float32:
        with torch.no_grad():  # parameters only: buffers (rotary inv_freq) stay fp32, as on a reload
            for prm in merged.parameters():
                prm.data = prm.data.to(dtype)
        merged.config.dtype = dtype
        ref_logits = probe_logits(merged, probes)  # what the saved folder must reproduce
    eos = end_of_turn_ids(tokenizer)
    with atomic_path(out, is_dir=True) as tmp:
        merged.save_pretrained(str(tmp), safe_serialization=True)
        tokenizer.save_pretrained(str(tmp))
        try:
            gen = GenerationConfig.from_pretrained(str(tmp))
        except OSError:
            gen = GenerationConfig()
        gen.eos_token_id = eos if len(eos) > 1 else (eos[0] if eos else None)
        if tokenizer.pad_token_id is not None:
            gen.pad_token_id = int(tokenizer.pad_token_id)
        if tokenizer.bos_token_id is not None:
            gen.bos_token_id = int(tokenizer.bos_token_id)
        gen.save_pretrained(str(tmp))
        reloaded = load_model(tmp, dtype=dtype)
        worst = max(worst, check_logits(ref_logits, probe_logits(reloaded, probes), atol))
        del reloaded
    del merged, reference
    return {"max_logit_diff": worst, "eos_token_id": eos, "dtype": str(dtype).replace("torch.", "")}


def probe_sequences(examples: Sequence[Any], n: int = 3, max_tokens: int = 96) -> list[list[int]]:
    """Token sequences of a few training examples (cut to ``max_tokens``) to probe the export."""
    return [list(ex.input_ids[:max_tokens]) for ex in list(examples)[:n] if len(ex.input_ids) > 0]
