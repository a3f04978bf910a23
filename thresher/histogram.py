"""One histogram for every stage's stats (score summaries, token counts of generate)."""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

BINS = 20


def histogram(values: Iterable[Any], bins: int = BINS, *, digits: int | None = None) -> dict[str, list]:
    """Equal-width histogram of the finite values: ``{"edges": [...], "counts": [...]}``.

    ``bins`` equal bins from the smallest to the largest value (the last bin holds the
    largest); nulls, NaN and infinities are left out.
    ``digits`` rounds the edges. No values: empty lists; one distinct value: one bin.
    """
    vals = [float(v) for v in values if v is not None and math.isfinite(v)]
    if not vals:
        return {"edges": [], "counts": []}
    lo, hi = min(vals), max(vals)
    bins = max(1, bins)
    if hi == lo:
        edges, counts = [lo, hi], [len(vals)]
    else:
        width = (hi - lo) / bins
        counts = [0] * bins
        for v in vals:
            counts[min(int((v - lo) / width), bins - 1)] += 1
        edges = [lo + i * width for i in range(bins)] + [hi]
    if digits is not None:
        edges = [round(e, digits) for e in edges]
    return {"edges": edges, "counts": counts}
