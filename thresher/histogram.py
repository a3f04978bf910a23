"""One histogram for every stage's stats (score summaries, token counts of generate)."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator
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
        vals = values
    else:
        vals = np.asarray([float(v) for v in values if v is not None and math.isfinite(v)], dtype=np.float64)
    return histogram_of_blocks(lambda: (vals[i:i + BLOCK] for i in range(0, vals.size, BLOCK)), bins, digits=digits)


def histogram_of_blocks(blocks: Callable[[], Iterator[Any]], bins: int = BINS, *,
                        digits: int | None = None) -> dict[str, list]:
    """:func:`histogram` of values given as float64 NumPy blocks: ``blocks()`` gives them
    anew for each of the two passes (the range, then the counts), so no pass holds them all."""
    import numpy as np

    lo, hi, n = math.inf, -math.inf, 0
    for block in blocks():
        finite = block[np.isfinite(block)]
        if finite.size:
            lo, hi, n = min(lo, float(finite.min())), max(hi, float(finite.max())), n + int(finite.size)
    if not n:
        return {"edges": [], "counts": []}
    bins = max(1, bins)
    if hi == lo:
        edges, counts = [lo, hi], [n]
    else:
        # a range wider than the largest float is binned at half scale (no inf, no NaN)
        half = 1.0 if math.isfinite(hi - lo) else 0.5
        width = (hi * half - lo * half) / bins
        total = np.zeros(bins, dtype=np.int64)
        for block in blocks():
            finite = block[np.isfinite(block)]
            at = ((finite * half - lo * half) / width).astype(np.int64)
            total += np.bincount(np.clip(at, 0, bins - 1), minlength=bins)
        counts = total.tolist()
        edges = [(lo * half + i * width) / half for i in range(bins)] + [hi]
    if digits is not None:
        edges = [round(e, digits) for e in edges]
    return {"edges": edges, "counts": counts}
