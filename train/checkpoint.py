"""Atomic, resumable checkpoints: adapter, optimiser, scheduler, RNG states and data position.

Layout under the run's ``checkpoints/`` folder::

    step-00000040/   adapter.safetensors  resume.safetensors  resume.json  state.json
    latest           the name of the newest complete checkpoint folder
    best/            adapter.safetensors + state.json of the best validation loss so far

No pickle is written or read: the optimiser, scheduler and RNG states are stored as JSON
(``resume.json``) whose tensors live in ``resume.safetensors`` (:func:`encode_state`). On
resume ``state.json`` is read and its fingerprint checked first; a folder holding any ``.pt``
file (an old checkpoint, or a planted pickle, which unpickling would run) is refused with one
line, never loaded.

A checkpoint folder is written under a temporary name and renamed when complete, and
``latest`` is replaced atomically afterwards, so a process killed at any moment leaves either
the previous or the new checkpoint, never a half-written one. The data position is the
optimiser step (see ``loop``: the order is a pure function of seed, epoch and step).
"""

from __future__ import annotations

import json
import random
import shutil
from pathlib import Path
from typing import Any

from thresher.errors import ThresherError
from thresher.io.atomic import atomic_path, write_text_atomic

LATEST = "latest"
BEST = "best"
RESUME_JSON = "resume.json"
RESUME_TENSORS = "resume.safetensors"


def rng_state() -> dict[str, Any]:
    """This process's RNG states (python, numpy, torch CPU and CUDA)."""
    import numpy as np
    import torch

    st: dict[str, Any] = {"python": random.getstate(), "numpy": np.random.get_state(),
                          "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        st["cuda"] = torch.cuda.get_rng_state_all()
    return st


def set_rng_state(st: dict[str, Any]) -> None:
    """Restore states saved by :func:`rng_state`."""
    import numpy as np
    import torch

    random.setstate(st["python"])
    np.random.set_state(st["numpy"])
    torch.set_rng_state(st["torch"])
    if "cuda" in st and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(st["cuda"])


def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch (all devices)."""
    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


def save(ckdir: Path, *, step: int, adapter: dict[str, Any], optimizer: Any, scheduler: Any,
         rngs: list[dict[str, Any]], state: dict[str, Any], keep: int = 2, extra: Any = None) -> Path:
    """Write ``step-<step>/`` atomically, point ``latest`` at it and prune older checkpoints.

    ``optimizer`` is an optimiser or its (full) state dict; ``rngs`` holds one RNG state per
    process (index = rank); ``state`` is JSON (loop state,
    config fingerprint, world size). ``extra(folder, adapter)`` adds files to the folder before
    it is published (the peft ``adapter_config.json`` + ``adapter_model.safetensors``).
    """
    from safetensors.torch import save_file

    ckdir.mkdir(parents=True, exist_ok=True)
    name = f"step-{step:08d}"
    with atomic_path(ckdir / name, is_dir=True) as tmp:
        tmp.mkdir(parents=True)
        save_file({k: v.contiguous() for k, v in adapter.items()}, str(tmp / "adapter.safetensors"))
        opt_state = optimizer.state_dict() if hasattr(optimizer, "state_dict") else optimizer
        tensors: dict[str, Any] = {}
        doc = encode_state({"optimizer": opt_state, "scheduler": scheduler.state_dict(), "rng": rngs}, tensors)
        save_file(tensors, str(tmp / RESUME_TENSORS))
        (tmp / RESUME_JSON).write_text(json.dumps(doc), encoding="utf-8")
        (tmp / "state.json").write_text(json.dumps(state, default=_json_default), encoding="utf-8")
        if extra is not None:
            extra(tmp, adapter)
    write_text_atomic(ckdir / LATEST, name)
    old = sorted(p for p in ckdir.glob("step-*") if p.is_dir() and p.name != name)
    for p in old[: max(0, len(old) - (keep - 1))]:
        shutil.rmtree(p, ignore_errors=True)
    return ckdir / name


def latest(ckdir: Path) -> Path | None:
    """The newest complete checkpoint folder, or None.

    ``latest`` names it; a step folder newer than that pointer is complete too (folders are
    renamed into place whole), which happens when a run is killed between the two renames.
    """
    complete = sorted(p for p in ckdir.glob("step-*") if (p / "state.json").exists())
    try:
        name = (ckdir / LATEST).read_text(encoding="utf-8").strip()
    except (FileNotFoundError, NotADirectoryError):
        name = ""
    path = ckdir / name if name else None
    if path is not None and (path / "state.json").exists():
        if not complete or complete[-1].name <= path.name:
            return path
    return complete[-1] if complete else None


def read_state(path: Path) -> dict[str, Any]:
    """``state.json`` of a checkpoint (JSON only: nothing else is read). Refuses a folder that
    holds pickle files (``*.pt``: an old checkpoint or a planted one) without opening them."""
    pickles = sorted(p.name for p in path.glob("*.pt"))
    if pickles:
        raise ThresherError(
            f"{path}: checkpoint holds pickle files ({', '.join(pickles)}), which thresher never loads "
            "(unpickling can run code); delete the folder or use --force to start over")
    try:
        state = json.loads((path / "state.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ThresherError(f"{path}: unreadable checkpoint ({exc}); delete it or use --force") from None
    if not isinstance(state, dict):
        raise ThresherError(f"{path}: unreadable checkpoint (state.json is not an object); delete it or use --force")
    return state


def load(path: Path, *, rank: int = 0, state: dict[str, Any] | None = None) -> dict[str, Any]:
    """Read a checkpoint: ``adapter``, ``optimizer``, ``scheduler``, ``rng`` (this rank's), ``state``.

    Call :func:`read_state` and :func:`check_compatible` first (pass the state read there).
    Only safetensors and JSON are read."""
    from safetensors.torch import load_file

    if state is None:
        state = read_state(path)
    try:
        tensors = load_file(str(path / RESUME_TENSORS))
        doc = decode_state(json.loads((path / RESUME_JSON).read_text(encoding="utf-8")), tensors)
        rngs = doc["rng"]
        return {
            "adapter": load_file(str(path / "adapter.safetensors")),
            "optimizer": doc["optimizer"],
            "scheduler": doc["scheduler"],
            "rng": rngs[rank] if rank < len(rngs) else None,
            "state": state,
        }
    except (OSError, ValueError, KeyError, TypeError, RuntimeError, json.JSONDecodeError) as exc:
        raise ThresherError(f"{path}: unreadable checkpoint ({exc}); delete it or use --force") from None


def check_compatible(state: dict[str, Any], *, fingerprint: str, world_size: int, path: Path) -> None:
    """Refuse to resume a checkpoint written with other training options or process count."""
    if state.get("fingerprint") != fingerprint:
        raise ThresherError(
            f"{path}: checkpoint was written with different training options or data; "
            "use --force to start over")
    if int(state.get("world_size", 1)) != world_size:
        raise ThresherError(
            f"{path}: checkpoint was written by {state.get('world_size')} processes, "
            f"now {world_size}; rerun with the same --nproc-per-node or use --force")


def save_best(ckdir: Path, adapter: dict[str, Any], info: dict[str, Any], extra: Any = None) -> None:
    """Keep the adapter with the best validation loss so far (atomically); ``extra`` as in :func:`save`."""
    from safetensors.torch import save_file

    with atomic_path(ckdir / BEST, is_dir=True) as tmp:
        tmp.mkdir(parents=True)
        save_file({k: v.contiguous() for k, v in adapter.items()}, str(tmp / "adapter.safetensors"))
        (tmp / "state.json").write_text(json.dumps(info, default=_json_default), encoding="utf-8")
        if extra is not None:
            extra(tmp, adapter)


def load_best(ckdir: Path) -> dict[str, Any] | None:
    """The best adapter tensors, or None when no evaluation has run."""
    from safetensors.torch import load_file

    f = ckdir / BEST / "adapter.safetensors"
    return load_file(str(f)) if f.exists() else None


def clear(ckdir: Path) -> None:
    """Remove every checkpoint (``--force`` starts over)."""
    shutil.rmtree(ckdir, ignore_errors=True)


def _json_default(o: Any) -> Any:
    if isinstance(o, float):
        return o
    if hasattr(o, "item"):
        return o.item()
    return str(o)


# --------------------------------------------------------------------------------------------
# pickle-free state: JSON with tensors in safetensors
# --------------------------------------------------------------------------------------------

def encode_state(obj: Any, tensors: dict[str, Any]) -> Any:
    """``obj`` (nested dicts, lists, tuples, tensors, numpy arrays and scalars) as plain JSON;
    its tensors are added to ``tensors`` (for safetensors) and referenced by key. Dicts with
    non-string keys and tuples are tagged so that :func:`decode_state` rebuilds them exactly."""
    import numpy as np
    import torch

    if isinstance(obj, torch.Tensor):
        key = f"t{len(tensors)}"
        tensors[key] = obj.detach().cpu().contiguous().clone()
        return {"$tensor": key}
    if isinstance(obj, np.ndarray):
        return {"$ndarray": obj.tolist(), "dtype": str(obj.dtype), "shape": list(obj.shape)}
    if isinstance(obj, np.generic):
        return obj.item()
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    if isinstance(obj, tuple):
        return {"$tuple": [encode_state(v, tensors) for v in obj]}
    if isinstance(obj, list):
        return [encode_state(v, tensors) for v in obj]
    if isinstance(obj, dict):
        if all(isinstance(k, str) and not k.startswith("$") for k in obj):
            return {k: encode_state(v, tensors) for k, v in obj.items()}
        return {"$items": [[encode_state(k, tensors), encode_state(v, tensors)] for k, v in obj.items()]}
    raise TypeError(f"cannot store a {type(obj).__name__} in a checkpoint")


def decode_state(doc: Any, tensors: dict[str, Any]) -> Any:
    """The object :func:`encode_state` encoded (no code runs: only data is rebuilt)."""
    if isinstance(doc, list):
        return [decode_state(v, tensors) for v in doc]
    if not isinstance(doc, dict):
        return doc
    if "$tensor" in doc:
        return tensors[doc["$tensor"]]
    if "$ndarray" in doc:
        import numpy as np

        return np.array(doc["$ndarray"], dtype=np.dtype(doc["dtype"])).reshape(doc["shape"])
    if "$tuple" in doc:
        return tuple(decode_state(v, tensors) for v in doc["$tuple"])
    if "$items" in doc:
        return {decode_state(k, tensors): decode_state(v, tensors) for k, v in doc["$items"]}
    return {k: decode_state(v, tensors) for k, v in doc.items()}
