"""Exact verification (``verify: exact``): the true Jaccard of two rows' shingle sets;
edit verification (``verify: edit``): the character edit similarity of two rows' texts.

Only the rows that appear in candidate pairs are re-shingled (chunk by chunk, the same
normalisation, shingles and shingle hash as their signatures), so memory grows with the
candidate rows, never with all rows. A shingle set is the set of its 32-bit shingle hashes
(two distinct shingles of one pair colliding is vanishingly rare at a few hundred shingles).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np


class ShingleSets:
    """Sorted shingle hashes of the rows ``rows`` (global indices), for :meth:`jaccard`.

    ``texts_of(idx)`` returns the normalised texts of global rows ``idx`` (an int64 array).
    """

    def __init__(self, rows: np.ndarray, texts_of: Callable[[np.ndarray], list[str]], cfg: Any):
        from thresher.curate.dedup import _kernels
        from thresher.curate.dedup.shingles import shingle_hashes

        self.rows = np.unique(np.asarray(rows, dtype=np.int64))
        values: list[np.ndarray] = []
        sizes: list[np.ndarray] = []
        for s in range(0, len(self.rows), cfg.chunk_rows):
            h, off = shingle_hashes(texts_of(self.rows[s:s + cfg.chunk_rows]), ngram=cfg.ngram,
                                    unit=cfg.shingle, hash=cfg.hash)
            values.append(h)
            sizes.append(np.diff(off))
        self.values = np.concatenate(values) if values else np.zeros(0, np.uint32)
        self.offsets = np.zeros(len(self.rows) + 1, dtype=np.int64)
        if sizes:
            np.cumsum(np.concatenate(sizes), out=self.offsets[1:])
        _kernels.sort_segments(self.values, self.offsets)

    def jaccard(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """True Jaccard (float32) of each pair of global rows ``(a[p], b[p])`` (all in ``rows``)."""
        from thresher.curate.dedup import _kernels

        pa = np.searchsorted(self.rows, np.asarray(a, dtype=np.int64))
        pb = np.searchsorted(self.rows, np.asarray(b, dtype=np.int64))
        out = np.empty(len(pa), dtype=np.float32)
        if len(pa):
            _kernels.set_jaccard(self.values, self.offsets, pa, pb, out)
        return out


class EditTexts:
    """Normalised texts of the rows ``rows`` (global indices), for :meth:`jaccard`, which here
    is the edit similarity ``1 - d / max(len)`` (``d``: optimal string alignment distance over
    code points). It tells one typo (similarity near 1) from a changed word far better than
    a Jaccard of short texts does; it costs ``len(a) * len(b)`` per pair (meant for short fields).
    """

    def __init__(self, rows: np.ndarray, texts_of: Callable[[np.ndarray], list[str]], cfg: Any):
        from thresher.curate.dedup.shingles import to_codepoints

        #: similarities below this are only bounded (:func:`~._kernels.edit_similarity`)
        self.floor = float(cfg.threshold)

        self.rows = np.unique(np.asarray(rows, dtype=np.int64))
        texts: list[str] = []
        for s in range(0, len(self.rows), cfg.chunk_rows):
            texts.extend(texts_of(self.rows[s:s + cfg.chunk_rows]))
        self.cps, self.offsets = to_codepoints(texts)

    def jaccard(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """Edit similarity (float32) of each pair of global rows ``(a[p], b[p])`` (exact at or
        above the threshold; below it an upper bound, so it stays below)."""
        from thresher.curate.dedup import _kernels

        pa = np.searchsorted(self.rows, np.asarray(a, dtype=np.int64))
        pb = np.searchsorted(self.rows, np.asarray(b, dtype=np.int64))
        out = np.empty(len(pa), dtype=np.float32)
        if len(pa):
            _kernels.edit_similarity(self.cps, self.offsets, pa, pb, self.floor, out)
        return out


def pair_verifier(rows: np.ndarray, texts_of: Callable[[np.ndarray], list[str]], cfg: Any) -> Any:
    """The verifier of ``cfg.verify`` (``exact``: :class:`ShingleSets`, ``edit``: :class:`EditTexts`)."""
    return (EditTexts if cfg.verify == "edit" else ShingleSets)(rows, texts_of, cfg)


def table_texts(tables: list[Any], cfg: Any) -> Callable[[np.ndarray], list[str]]:
    """``texts_of`` over tables stacked in order (input rows, then reference rows)."""
    import polars as pl

    from thresher.curate.dedup.normalize import normalize, options_of, text_column

    norm = options_of(cfg)
    starts = np.cumsum([0] + [t.height for t in tables])

    def texts_of(idx: np.ndarray) -> list[str]:
        parts = []
        for k, t in enumerate(tables):
            sel = idx[(idx >= starts[k]) & (idx < starts[k + 1])] - starts[k]
            if len(sel):
                parts.append(text_column(t[pl.Series(sel)], cfg.on, norm.chatter))
        if not parts:
            return []
        return normalize(pl.concat(parts), norm).to_list()

    return texts_of
