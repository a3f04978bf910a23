"""Verify many answers at once: the code verifier runs its programs in parallel workers.

:func:`verify_all` is the one entry point the eval stage and the curate ``verify:`` scorer
use. Reference-based verifiers run in order in the calling thread (math-verify's timeouts
need the main thread); ``code`` runs :func:`thresher.evaluate.verifiers.code_passes` (the
sandbox) in a pool of workers, one program per worker at a time (the seam where the
sandbox's own batch entry point plugs in).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence

from thresher.evaluate.verifiers import Item


def default_workers() -> int:
    """Parallel code checks: the CPUs this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def verify_all(fn: Callable[[str, Item], float], answers: Sequence[str], items: Sequence[Item], *,
               parallel: bool = False, workers: int | None = None) -> list[float]:
    """``fn(answer, item)`` for every pair, in order; ``parallel`` runs them in a thread pool
    of ``workers`` (each call waits on its own subprocess, so threads suffice)."""
    if not parallel or len(answers) < 2:
        return [float(fn(a, it)) for a, it in zip(answers, items)]
    from concurrent.futures import ThreadPoolExecutor

    n = min(workers or default_workers(), len(answers))
    with ThreadPoolExecutor(max_workers=n, thread_name_prefix="thresher-verify") as pool:
        return [float(v) for v in pool.map(fn, answers, items)]
