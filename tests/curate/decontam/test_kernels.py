"""The numba scan of :mod:`thresher.curate.decontam.ngrams` against plain references:
polars normalisation (:func:`normalize`), the numpy n-gram formula and ``np.isin``."""

from __future__ import annotations

import random

import numpy as np
import polars as pl
import pytest

from thresher.curate.decontam.ngrams import (
    _MULTIPLIERS,
    KeySet,
    ngram_hashes,
    normalize,
    scan_hits,
    segment_words,
)

PIECES = [
    "Hello", "WORLD", "it's", "x_y-z", "(2+2)", "a", "b", "c", "\n\t", "  ", "...", "42",
    "ﬁne", "Ｆｕｌｌ", "café", "NAÏVE", "İstanbul", "Straße", "ΣΊΣΥΦΟΣ", "東京", "x²", "½", "—",
    "“q”", "🙂", "\x00", "ǅ", "Ω", "\u00a0", "\u2028", "ΟΔΟΣ", "ΑΣ'Α", "Σ.", "e\u0301",
    "\u0301", "\u00a8", "\t", "\r\n", "\x0b", "ﾊﾟ", "ㄱㅏ", "Ⅻ",
]


def texts(k: int, seed: int = 0) -> list[str | None]:
    """Random texts from ASCII and non-ASCII pieces, some empty, one null."""
    rng = random.Random(seed)
    out: list[str | None] = [None, ""]
    for _ in range(k):
        pool = PIECES if rng.random() < 0.5 else [p for p in PIECES if p.isascii()]
        sep = rng.choice(["", " ", "-", "\t"])
        out.append(sep.join(rng.choices(pool, k=rng.randrange(0, 30))))
    return out


def numpy_ngram_hashes(
    hashes: np.ndarray, seg: np.ndarray, n: int
) -> tuple[np.ndarray, np.ndarray]:
    """The former vectorised numpy formula (the kernel must give the same hashes)."""
    count = len(hashes) - n + 1
    if count <= 0:
        return np.empty(0, np.uint64), np.empty(0, np.int64)
    acc = hashes[:count] * _MULTIPLIERS[0]
    for i in range(1, n):
        acc += hashes[i : i + count] * _MULTIPLIERS[i]
    acc ^= acc >> np.uint64(31)
    acc *= np.uint64(0x9E3779B97F4A7C15)
    acc ^= acc >> np.uint64(29)
    valid = seg[:count] == seg[n - 1 :]
    return acc[valid], np.flatnonzero(valid)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_words_equal_the_polars_normalisation_on_ascii_and_unicode_texts(seed):
    data = texts(300, seed)
    words = segment_words(pl.Series(data, dtype=pl.String), keep_words=True)
    got = [[] for _ in data]
    for s, w in zip(words.seg.tolist(), words.words.to_list()):
        got[s].append(w)
    assert got == [normalize(t or "") for t in data]


def test_a_word_hashes_the_same_in_ascii_and_unicode_texts():
    words = segment_words(pl.Series(["Hello world", "héllo HELLO World"]), keep_words=True)
    by_word: dict[str, set[int]] = {}
    for w, h in zip(words.words.to_list(), words.hashes.tolist()):
        by_word.setdefault(w, set()).add(h)
    assert by_word.keys() == {"hello", "world", "héllo"}
    assert all(len(h) == 1 for h in by_word.values())
    assert len({h for hs in by_word.values() for h in hs}) == 3


@pytest.mark.parametrize("n", [1, 2, 3, 13, 64])
def test_ngram_kernel_equals_the_numpy_formula(n):
    words = segment_words(pl.Series(texts(200, seed=n)))
    got = ngram_hashes(words, n)
    want = numpy_ngram_hashes(words.hashes, words.seg, n)
    assert np.array_equal(got[0], want[0]) and np.array_equal(got[1], want[1])


@pytest.mark.parametrize("n", [1, 2, 5])
def test_fused_scan_equals_ngrams_then_lookup(n):
    data = pl.Series(texts(400, seed=10 + n) + ["a"] * 50 + ["a b"] * 50, dtype=pl.String)
    words = segment_words(data)
    hashes, starts = ngram_hashes(words, n)
    keys = KeySet.build(hashes[::3])
    hit = np.isin(hashes, keys.keys)
    seg, found = scan_hits(data, n, keys)
    assert np.array_equal(found, hashes[hit])
    assert np.array_equal(seg, words.seg[starts[hit]])


def test_key_set_agrees_with_isin():
    rng = np.random.default_rng(0)
    for size in (0, 1, 7, 5000):
        keys = rng.integers(0, 2**63, size, dtype=np.uint64) * np.uint64(2)
        other = rng.integers(0, 2**63, 20000, dtype=np.uint64) * np.uint64(2)
        probe = np.concatenate([keys, other])
        ks = KeySet.build(np.concatenate([keys, keys[: size // 2]]))
        assert np.array_equal(ks.keys, np.unique(keys))
        assert np.array_equal(ks.contains(probe), np.isin(probe, keys))
