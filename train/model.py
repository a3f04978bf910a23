"""Load the student's base model and put a peft LoRA/DoRA adapter on it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from thresher.errors import ThresherError
from thresher.train.config import TrainConfig

_BLOCK_WORDS = ("attn", "attention", "mlp", "feed_forward", "ffn")


def base_folder(base: str | None) -> tuple[Path, str | None]:
    """(folder, gguf file or None) of ``base`` (a folder, a ``.gguf`` file or a known name)."""
    from thresher.train.data.templates import locate_base

    return locate_base(base)


def load_base(cfg: TrainConfig, *, device: Any = None, dtype: Any = None) -> Any:
    """The base causal LM in ``dtype`` (default fp32; 4-bit NF4 with ``qlora``), with the
    attention backend ``cfg.attention``."""
    import pickle

    import torch

    from thresher.models import load_model

    folder, gguf = base_folder(cfg.base)
    if cfg.attention == "thresher_segments":
        from thresher.train.attention import register

        register()
    kwargs: dict[str, Any] = {"dtype": dtype or torch.float32, "attn_implementation": cfg.attention}
    if gguf:
        kwargs["gguf_file"] = gguf
    if cfg.qlora:
        from transformers import BitsAndBytesConfig

        kwargs["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
            bnb_4bit_compute_dtype=torch.bfloat16)
        kwargs["device_map"] = {"": device if device is not None else 0}
    try:
        model = load_model(folder, trust_remote_code=cfg.trust_remote_code, **kwargs)
    except (OSError, ValueError, ImportError) as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
        raise ThresherError(f"cannot load base model {cfg.base or folder}: {first}") from None
    except pickle.UnpicklingError:  # torch's own text advises weights_only=False: never do that
        raise ThresherError(
            f"cannot load base model {cfg.base or folder}: its weights are a pickle file holding more "
            "than tensors, which thresher refuses to load (unpickling can run code); use a model "
            "saved as safetensors") from None
    if gguf:  # GGUF-loaded weights are plain fp32 once loaded
        model.hf_quantizer = None
        if dtype is not None and not cfg.qlora:
            model.to(dtype)
    if device is not None and not cfg.qlora:
        model.to(device)
    return model


def default_target_modules(model: Any) -> list[str]:
    """Names (last component) of every linear layer inside the attention and MLP blocks."""
    import torch

    names: set[str] = set()
    for full, mod in model.named_modules():
        if not isinstance(mod, torch.nn.Linear) and type(mod).__name__ not in ("Linear4bit", "Linear8bitLt"):
            continue
        parts = full.split(".")
        if any(w in p.lower() for p in parts[:-1] for w in _BLOCK_WORDS):
            names.add(parts[-1])
    if not names:
        raise ThresherError("found no linear layer in the attention/MLP blocks; pass --target-modules")
    return sorted(names)


def add_adapter(model: Any, cfg: TrainConfig) -> Any:
    """Wrap ``model`` in a peft LoRA (``dora``/``rslora`` variants) adapter; the base is frozen."""
    from peft import LoraConfig, get_peft_model

    targets = list(cfg.target_modules) if cfg.target_modules else default_target_modules(model)
    present = {n.split(".")[-1] for n, _ in model.named_modules()}
    missing = [t for t in targets if t not in present]
    if missing:
        raise ThresherError(f"target_modules: not in the model: {', '.join(missing)}")
    if cfg.qlora:
        from peft import prepare_model_for_kbit_training

        model = prepare_model_for_kbit_training(
            model, use_gradient_checkpointing=cfg.grad_checkpointing)
    elif cfg.grad_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        model.enable_input_require_grads()
    lora = LoraConfig(r=cfg.r, lora_alpha=cfg.alpha, lora_dropout=cfg.dropout, target_modules=targets,
                      use_dora=cfg.dora, use_rslora=cfg.rslora, bias="none", task_type="CAUSAL_LM")
    return get_peft_model(model, lora)


def trainable_state(model: Any) -> dict[str, Any]:
    """The trainable tensors (the adapter) by parameter name, detached on CPU."""
    inner = getattr(model, "module", model)
    return {n: p.detach().to("cpu").clone() for n, p in inner.named_parameters() if p.requires_grad}


def load_trainable_state(model: Any, state: dict[str, Any]) -> None:
    """Copy ``state`` (from :func:`trainable_state`) into the model's trainable tensors."""
    import torch

    inner = getattr(model, "module", model)
    params = dict(inner.named_parameters())
    missing = [n for n, p in params.items() if p.requires_grad and n not in state]
    if missing:
        raise ThresherError(f"checkpoint does not match the adapter (missing {missing[0]})")
    try:
        from torch.distributed.tensor import DTensor, distribute_tensor
    except ImportError:  # pragma: no cover - old torch
        DTensor = None  # type: ignore[assignment,misc]
    with torch.no_grad():
        for n, t in state.items():
            p = params[n]
            t = t.to(p.device if DTensor is None or not isinstance(p, DTensor) else "cpu", p.dtype)
            if DTensor is not None and isinstance(p, DTensor):  # FSDP: shard the full tensor like p
                t = distribute_tensor(t.to(p.device_mesh.device_type), p.device_mesh, p.placements)
            p.copy_(t)
