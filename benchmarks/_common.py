"""Shared by the benchmark scripts: the ``--json`` record shape, and the machine line.

``--json`` makes every script print one JSON list of records (and nothing else on stdout)::

    {"benchmark": "train/SmolLM2-135M/bf16", "contender": "thresher (packing)",
     "metric": "tokens_per_s", "value": 412.0, "unit": "tokens/s", "peer": false}

``peer`` is true for another tool's contender (TRL, datasketch, rensa, vLLM, a naive loop)
and false for thresher's own; a ratio record (``metric`` ending in ``_vs_...``) compares a
thresher contender with the peer it names.
"""

from __future__ import annotations

import json
import os
import platform
from typing import Any


def record(benchmark: str, contender: str, metric: str, value: Any, unit: str, peer: bool) -> dict[str, Any]:
    """One result in the shared shape (``value`` rounded to 4 significant digits when a float)."""
    if isinstance(value, float):
        value = float(f"{value:.4g}")
    return {"benchmark": benchmark, "contender": contender, "metric": metric, "value": value,
            "unit": unit, "peer": bool(peer)}


def print_json(records: list[dict[str, Any]]) -> None:
    """The ``--json`` output: the list of records, indented, on stdout."""
    print(json.dumps(records, indent=1))


def machine() -> str:
    """CPU model, core count and load, e.g. ``AMD EPYC, 2 cores (avx512_bf16), load 3.1``."""
    name = platform.processor() or platform.machine()
    try:
        for line in open("/proc/cpuinfo", encoding="utf-8", errors="replace"):
            if line.lower().startswith("model name"):
                name = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    from thresher.precision import cpu_bf16_flags

    flags = cpu_bf16_flags() or ()
    extra = f" ({', '.join(flags)})" if flags else ""
    return f"{name}, {os.cpu_count()} cores{extra}, load {os.getloadavg()[0]:.1f}"
