"""Shingling: word or character n-grams of normalised text, hashed to 32-bit values.

Two hash modes:

- ``"fast"`` (default): numba kernels over UTF-32 code points (FNV-1a + fmix64), no Python
  loop per shingle.
- ``"sha1"``: each shingle's UTF-8 bytes through ``datasketch.hashfunc.sha1_hash32`` (the
  datasketch default), so signatures equal ``datasketch.MinHash().update_batch(shingles)``.

Words are maximal runs of non-whitespace as Python's ``str.split()`` defines it; a word
shingle's text is its words joined by one space. A document shorter than ``ngram`` words
(characters) yields one shingle; an empty document yields none.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Sequence

import numpy as np

HASHES = ("fast", "sha1")
UNITS = ("word", "char")


def to_codepoints(texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """Concatenate ``texts`` into one UTF-32 code point array plus document offsets."""
    lengths = np.fromiter((len(t) for t in texts), dtype=np.int64, count=len(texts))
    offsets = np.zeros(len(texts) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    cps = np.frombuffer("".join(texts).encode("utf-32-le"), dtype=np.uint32)
    return cps, offsets


def shingle_texts(text: str, ngram: int = 5, unit: str = "word") -> list[str]:
    """The shingles of one document as strings (the reference definition, used by sha1 mode)."""
    if unit == "char":
        if not text:
            return []
        if len(text) < ngram:
            return [text]
        return [text[i:i + ngram] for i in range(len(text) - ngram + 1)]
    words = text.split()
    if not words:
        return []
    if len(words) < ngram:
        return [" ".join(words)]
    return [" ".join(words[i:i + ngram]) for i in range(len(words) - ngram + 1)]


def _sha1_hash32(data: bytes) -> int:
    # Same as datasketch.hashfunc.sha1_hash32 (kept local: no datasketch import needed).
    return struct.unpack("<I", hashlib.sha1(data).digest()[:4])[0]


def shingle_hashes(texts: Sequence[str], ngram: int = 5, unit: str = "word",
                   hash: str = "fast") -> tuple[np.ndarray, np.ndarray]:
    """Hash every shingle of every text -> ``(hashes uint32, offsets int64[len(texts)+1])``.

    ``hashes[offsets[i]:offsets[i+1]]`` are document ``i``'s shingle hashes, in order.
    """
    if unit not in UNITS:
        raise ValueError(f"unit must be one of {UNITS}, got {unit!r}")
    if hash not in HASHES:
        raise ValueError(f"hash must be one of {HASHES}, got {hash!r}")
    if ngram < 1:
        raise ValueError("ngram must be >= 1")
    if hash == "sha1":
        values: list[int] = []
        offsets = np.zeros(len(texts) + 1, dtype=np.int64)
        for i, t in enumerate(texts):
            values.extend(_sha1_hash32(s.encode("utf-8")) for s in shingle_texts(t, ngram, unit))
            offsets[i + 1] = len(values)
        return np.array(values, dtype=np.uint32), offsets
    from thresher.curate.dedup import _kernels

    cps, doc_off = to_codepoints(texts)
    kernel = _kernels.word_shingle_hashes if unit == "word" else _kernels.char_shingle_hashes
    return kernel(cps, doc_off, ngram)
