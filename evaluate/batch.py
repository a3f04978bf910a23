"""Verify many answers at once: the code verifier runs its programs in parallel workers.

:func:`verify_all` is the one entry point the eval stage and the curate ``verify:`` scorer
use. Reference-based verifiers run in order in the calling thread (math-verify's timeouts
need the main thread); ``code`` runs :func:`thresher.evaluate.verifiers.code_passes` (the
sandbox) through :func:`thresher.evaluate.verifiers.code_passes_many`: parallel sandboxes, each
program passing only with the sandbox's completion proof.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from thresher.evaluate.verifiers import Item


def verify_all(fn: Callable[[str, Item], float], answers: Sequence[str], items: Sequence[Item], *,
               parallel: bool = False, workers: int | None = None, sandbox: str | None = None) -> list[float]:
    """``fn(answer, item)`` for every pair, in order. ``parallel`` marks the code verifier
    (``fn`` a ``code_passes`` partial): its programs run in ``workers`` parallel sandboxes
    (``sandbox``: a container command; default: one per CPU), with ``fn``'s timeout."""
    if not parallel:
        return [float(fn(a, it)) for a, it in zip(answers, items)]
    from thresher.evaluate.verifiers import code_passes_many

    timeout = getattr(fn, "keywords", {}).get("timeout", 10.0)
    return code_passes_many(list(answers), list(items), timeout=timeout, sandbox=sandbox, workers=workers)
