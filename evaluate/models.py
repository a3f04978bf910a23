"""The models an evaluation compares: ``NAME=MODEL`` specs and how each becomes something a
generation backend can load.

MODEL may be ``smollm2`` (the embedded default), a hub name, a plain model folder, a
merged-model folder, a LoRA adapter folder (merged into its base, once, into the eval
folder) or a ``train`` stage folder (its merged model, else its adapter).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from thresher.errors import ThresherError

_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_-]*$")


@dataclass(frozen=True)
class ModelSpec:
    """One compared model: the name it has in tables and the model it names."""

    name: str
    model: str


def parse_model(text: str, index: int = 0) -> ModelSpec:
    """``NAME=MODEL`` (or plain MODEL, named after its last path part); raises ThresherError."""
    raw = str(text).strip()
    if not raw:
        raise ThresherError(f"models[{index}]: empty model spec")
    if "=" in raw.split("/", 1)[0]:
        name, model = (s.strip() for s in raw.split("=", 1))
    else:
        name, model = re.sub(r"[^A-Za-z0-9_-]", "_", Path(raw).name or raw).lstrip("_-") or f"m{index}", raw
    if not _NAME.match(name):
        raise ThresherError(f"models[{index}]: name {name!r} must start with a letter (letters, digits, _ and -)")
    if not model:
        raise ThresherError(f"models[{index}]: {name}= names no model")
    return ModelSpec(name, model)


def parse_models(texts: tuple[str, ...] | list[str]) -> tuple[list[ModelSpec], list[str]]:
    """Every model spec parsed and the problems (bad specs, repeated names)."""
    out, problems, seen = [], [], set()
    for i, t in enumerate(texts):
        try:
            m = parse_model(t, i)
        except ThresherError as e:
            problems.append(str(e))
            continue
        if m.name in seen:
            problems.append(f"models[{i}]: two models named {m.name!r}")
        seen.add(m.name)
        out.append(m)
    return out, problems


def find_model_dirs(train_dir: Path) -> tuple[Path | None, Path | None]:
    """(adapter folder, merged model folder) of a train stage, as its manifest names them
    (None when absent)."""
    from thresher.stage import artefact

    return artefact(train_dir, "adapter"), artefact(train_dir, "merged")


def fingerprint_path(model: str) -> Path | None:
    """The file whose content identifies a local model for the stage manifest (None: a hub name)."""
    p = Path(model)
    if not p.exists():
        return None
    for name in ("manifest.json", "adapter_model.safetensors", "model.safetensors", "config.json"):
        if (p / name).is_file():
            return p / name
    return p


def _adapter_base(adapter: Path, base: str | None) -> str | None:
    try:
        cfg = json.loads((adapter / "adapter_config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        cfg = {}
    named = cfg.get("base_model_name_or_path")
    if base:
        return base
    return named if named and (Path(named).exists() or "/" in named) else None


def loadable(model: str, out: Path, *, base: str | None = None) -> str:
    """A model name or folder the backends load directly: adapters are merged into ``base``
    (or the base their adapter_config names) under ``out``, named by a hash of the weights."""
    p = Path(model)
    if not p.is_dir():
        return model
    adapter = p if (p / "adapter_config.json").exists() else None
    merged = None
    if adapter is None and not (p / "config.json").exists():
        adapter, merged = find_model_dirs(p)
        if adapter is None and merged is None:
            raise ThresherError(f"{model}: no model, adapter or train stage output in this folder")
    if merged is not None:
        return str(merged)
    if adapter is None:
        return str(p)
    return str(merge_adapter(adapter, out, _adapter_base(adapter, base)))


def merge_adapter(adapter: Path, out: Path, base: str | None) -> Path:
    """Merge a LoRA adapter into its base with peft (once; reused while the weights are unchanged)."""
    from thresher.stage import file_fingerprint

    dest = Path(out) / f"merged-{file_fingerprint(adapter)[:12]}"
    if dest.exists():
        return dest
    import torch

    from thresher.io import atomic_path
    from thresher.models import load_adapter, load_model, load_tokenizer, resolve_model

    base_dir = resolve_model(base)
    model = load_model(base_dir, dtype=torch.float32)
    model = load_adapter(model, adapter).merge_and_unload()
    tok_dir = adapter if (adapter / "tokenizer_config.json").exists() else base_dir
    tok = load_tokenizer(tok_dir)
    with atomic_path(dest, is_dir=True) as tmp:
        model.save_pretrained(str(tmp), safe_serialization=True)
        tok.save_pretrained(str(tmp))
        gen = Path(base_dir) / "generation_config.json"
        if gen.exists() and not (tmp / "generation_config.json").exists():
            (tmp / "generation_config.json").write_bytes(gen.read_bytes())
    return dest
