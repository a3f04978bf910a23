"""One histogram for every stage's stats (score summaries, token counts of generate)."""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

BINS = 20
#: values a NumPy temporary holds at most (8 MB a float64 block), whatever the number of values
BLOCK = 1 << 20


def histogram(values: Iterable[Any], bins: int = BINS, *, digits: int | None = None) -> dict[str, list]:
    """Equal-width histogram of the finite values: ``{"edges": [...], "counts": [...]}``.

    ``bins`` equal bins from the smallest to the largest value (the last bin holds the
    largest); nulls, NaN and infinities are left out.
    ``digits`` rounds the edges. No values: empty lists; one distinct value: one bin.
    """
    import numpy as np

    if isinstance(values, np.ndarray) and values.dtype.kind == "f":
        finite = np.isfinite(values)
        vals = values if finite.all() else values[finite]
    else:
        vals = np.asarray([float(v) for v in values if v is not None and math.isfinite(v)], dtype=np.float64)
    if not vals.size:
        return {"edges": [], "counts": []}
    lo, hi = float(vals.min()), float(vals.max())
    bins = max(1, bins)
    if hi == lo:
        edges, counts = [lo, hi], [int(vals.size)]
    else:
        width = (hi - lo) / bins
        total = np.zeros(bins, dtype=np.int64)
        for i in range(0, vals.size, BLOCK):  # bounded temporaries on millions of values
            at = np.minimum(((vals[i:i + BLOCK] - lo) / width).astype(np.int64), bins - 1)
            total += np.bincount(at, minlength=bins)
        counts = total.tolist()
        edges = [lo + i * width for i in range(bins)] + [hi]
    if digits is not None:
        edges = [round(e, digits) for e in edges]
    return {"edges": edges, "counts": counts}
