"""Compute precision: bf16 where the hardware runs it fast, fp32 elsewhere.

One rule for training, generation and scoring: ``auto`` picks bf16 on a CUDA GPU that
supports it and on a CPU with native bf16 matrix instructions (x86 ``amx_bf16`` or
``avx512_bf16``, Arm ``bf16``), read from ``/proc/cpuinfo``; where that file says nothing
(other systems) a tiny timed matmul decides (bf16 must beat fp32 by 1.3x). Without such
hardware bf16 is emulated and slower than fp32, so ``auto`` stays at fp32 there.

``fp32`` and ``bf16`` force the choice; forced bf16 works everywhere (just slowly without the
hardware). ``THRESHER_DTYPE`` (``auto``/``fp32``/``bf16``) overrides ``auto`` for a whole
process, e.g. to get reference fp32 numbers.

Importing this module does not import torch.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, get_args

from thresher.errors import ThresherError

#: a compute precision choice (``--dtype`` of train and the model loaders)
Dtype = Literal["auto", "fp32", "bf16"]
#: the accepted ``--dtype`` values
DTYPES: tuple[str, ...] = get_args(Dtype)
#: every spelling :func:`normalize` reads, to its short name (fp16 only where a caller allows it)
_ALIASES = {"auto": "auto", "fp32": "fp32", "float32": "fp32", "float": "fp32", "bf16": "bf16",
            "bfloat16": "bf16", "fp16": "fp16", "float16": "fp16", "half": "fp16"}
_TORCH = {"fp32": "float32", "bf16": "bfloat16", "fp16": "float16"}
#: CPU flags that mean native bf16 matrix math (x86 AMX / AVX-512 BF16, Arm BF16)
BF16_FLAGS = ("amx_bf16", "avx512_bf16", "bf16")


@dataclass(frozen=True)
class Precision:
    """The compute dtype chosen for one model, and why.

    ``name``: ``"fp32"``, ``"bf16"`` (or ``"fp16"`` where a caller allows it). ``reason``: a short phrase for the start-up line
    (``"CPU has avx512_bf16"``, ``"forced"``...).
    """

    name: str
    reason: str

    @property
    def bf16(self) -> bool:
        """Whether the compute dtype is bf16."""
        return self.name == "bf16"

    @property
    def torch_dtype(self) -> Any:
        """The torch dtype (``torch.bfloat16``, ``torch.float32`` or ``torch.float16``)."""
        import torch

        return getattr(torch, _TORCH[self.name])

    def describe(self) -> str:
        """One line for the start-up log: ``precision: bf16 (CPU has avx512_bf16)``."""
        return f"precision: {self.name} ({self.reason})"


def normalize(choice: str | None, *, fp16: bool = False) -> str:
    """``auto``/``fp32``/``bf16`` (also ``float32``/``float``/``bfloat16``; with ``fp16``,
    ``fp16``/``float16``/``half`` too); a one-line error otherwise. The one dtype parser."""
    key = _ALIASES.get((choice or "auto").strip().lower())
    if key is None or (key == "fp16" and not fp16):
        allowed = (*DTYPES, "fp16") if fp16 else DTYPES
        raise ThresherError(f"dtype: must be one of {', '.join(allowed)}, got {choice!r}")
    return key


@functools.cache
def cpu_bf16_flags(cpuinfo: str = "/proc/cpuinfo") -> tuple[str, ...] | None:
    """The bf16 flags this CPU reports (``()`` if none); ``None`` when there is no cpuinfo."""
    try:
        text = Path(cpuinfo).read_text(errors="replace")
    except OSError:
        return None
    flags: set[str] = set()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip().lower() in ("flags", "features"):
            flags.update(value.split())
    return tuple(f for f in BF16_FLAGS if f in flags)


@functools.cache
def timed_bf16_speedup(n: int = 384, reps: int = 3) -> float:
    """fp32 time / bf16 time of an ``n x n`` matmul on this CPU (best of ``reps``)."""
    import time

    import torch

    def best(dtype: Any) -> float:
        a = torch.randn(n, n).to(dtype)
        b = torch.randn(n, n).to(dtype)
        a @ b
        times = []
        for _ in range(reps):
            t = time.perf_counter()
            a @ b
            times.append(time.perf_counter() - t)
        return min(times)

    return best(torch.float32) / max(best(torch.bfloat16), 1e-9)


def cpu_fast_bf16() -> tuple[bool, str]:
    """(whether this CPU runs bf16 matmuls natively, the reason in a few words)."""
    flags = cpu_bf16_flags()
    if flags:
        return True, f"CPU has {flags[0]}"
    if flags is not None:
        return False, "CPU has no bf16 instructions"
    speedup = timed_bf16_speedup()
    return speedup >= 1.3, f"bf16 matmul {speedup:.1f}x fp32 on this CPU"


def resolve(choice: str | None, device: Any = "cpu", *, fp16: bool = False) -> Precision:
    """The precision for ``choice`` (auto/fp32/bf16, and fp16 when ``fp16``) on ``device``
    (a str or torch.device)."""
    key = normalize(choice, fp16=fp16)
    if key == "auto":
        key = normalize(os.environ.get("THRESHER_DTYPE") or "auto")
        if key != "auto":
            return Precision(key, "THRESHER_DTYPE")
    else:
        return Precision(key, "forced")
    kind = getattr(device, "type", None) or str(device).split(":")[0]
    if kind == "cuda":
        import torch

        ok = torch.cuda.is_available() and torch.cuda.is_bf16_supported()
        return Precision("bf16" if ok else "fp32", "GPU supports bf16" if ok else "GPU lacks bf16")
    if kind != "cpu":
        return Precision("fp32", f"default on {kind}")
    ok, why = cpu_fast_bf16()
    return Precision("bf16" if ok else "fp32", why)


def torch_dtype(choice: str | None, device: Any = "cpu") -> Any:
    """The torch dtype a model loads in for ``choice`` (any spelling :func:`normalize` reads,
    fp16 included) on ``device``; ``auto`` as :func:`resolve` decides."""
    return resolve(choice, device, fp16=True).torch_dtype
