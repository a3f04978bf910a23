"""Text normalisation and word n-gram hashing, shared by the benchmark index and the scan.

A text is normalised (Unicode NFKC, lower case, every run of characters that are not letters
or digits becomes one space) and split into words. A word n-gram is hashed as a 64-bit
polynomial combination of the per-word 64-bit hashes, so that hashing is vectorised over
a whole batch of texts at once (polars for the words, numpy for the n-grams) and costs a
few array passes, linear in the number of words.

Both sides (benchmark and data) go through exactly these functions, so the same words give
the same hashes within a process; hashes are never stored on disk.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

WORD_SEED = 0x7468726573686572  # "thresher"
_NONWORD = r"[^\p{L}\p{N}]+"

# Fixed odd 64-bit multipliers, one per position in the n-gram (n up to 64).
_MULTIPLIERS = np.random.default_rng(13).integers(1, 2**63, size=64, dtype=np.uint64) * np.uint64(
    2
) + np.uint64(1)
MAX_N = len(_MULTIPLIERS)


def normalized_words(expr: pl.Expr) -> pl.Expr:
    """A polars expression: the normalised word list of a string expression."""
    return (
        expr.fill_null("")
        .str.normalize("NFKC")
        .str.to_lowercase()
        .str.replace_all(_NONWORD, " ")
        .str.strip_chars()
        .str.split(" ")
    )


def normalize(text: str) -> list[str]:
    """The normalised words of one text (same rules as :func:`normalized_words`)."""
    words = pl.select(normalized_words(pl.lit(text, dtype=pl.String))).item()
    return [w for w in words if w]


@dataclass(frozen=True)
class Words:
    """Words of a batch of text segments, flattened.

    ``seg`` holds, for each word, the index of its segment (non-decreasing); ``hashes`` the
    64-bit word hashes; ``words`` the words themselves when kept (for the benchmark side).
    """

    seg: np.ndarray
    hashes: np.ndarray
    words: list[str] | None = None


def segment_words(texts: pl.Series, *, keep_words: bool = False) -> Words:
    """Normalise and split each text of ``texts``; empty words are removed."""
    frame = pl.DataFrame({"text": texts.cast(pl.String)}).with_row_index("seg")
    exploded = (
        frame.lazy()
        .select(pl.col("seg"), normalized_words(pl.col("text")).alias("w"))
        .explode("w")
        .filter(pl.col("w").is_not_null() & (pl.col("w") != ""))
        .with_columns(pl.col("w").hash(seed=WORD_SEED).alias("h"))
        .collect()
    )
    seg = exploded["seg"].to_numpy().astype(np.int64, copy=False)
    hashes = exploded["h"].to_numpy().astype(np.uint64, copy=False)
    words = exploded["w"].to_list() if keep_words else None
    return Words(seg, hashes, words)


def ngram_hashes(words: Words, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Hashes of every word n-gram inside a segment, and the position of its first word.

    Returns ``(hashes, starts)``: ``starts[k]`` indexes ``words`` (so the segment of n-gram k
    is ``words.seg[starts[k]]``). N-grams never cross a segment boundary; a segment shorter
    than ``n`` words has none.
    """
    if not 1 <= n <= MAX_N:
        raise ValueError(f"n must be in [1, {MAX_N}]")
    total = len(words.hashes)
    count = total - n + 1
    if count <= 0:
        return np.empty(0, np.uint64), np.empty(0, np.int64)
    h = words.hashes
    acc = h[:count] * _MULTIPLIERS[0]
    for i in range(1, n):
        acc += h[i : i + count] * _MULTIPLIERS[i]
    # final avalanche so that nearby n-grams spread over the whole 64-bit range
    acc ^= acc >> np.uint64(31)
    acc *= np.uint64(0x9E3779B97F4A7C15)
    acc ^= acc >> np.uint64(29)
    valid = words.seg[:count] == words.seg[n - 1 :]
    starts = np.flatnonzero(valid)
    return acc[valid], starts
