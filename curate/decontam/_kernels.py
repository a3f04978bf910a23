"""Numba kernels behind the decontam scan (compiled on first use, cached on disk).

Text arrives as UTF-8 bytes of all segments concatenated (``uint8``), with ``offsets``
(``int64``, length ``n_segments + 1``) marking segment boundaries. All hash arithmetic is
explicit ``uint64`` so that it wraps exactly like numpy's.
"""

from __future__ import annotations

import numpy as np
from numba import njit

_FNV_OFFSET = np.uint64(0xCBF29CE484222325)
_FNV_PRIME = np.uint64(0x100000001B3)
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)


@njit(cache=True, nogil=True, inline="always")
def _is_ascii_space(c):
    return c == 32 or 9 <= c <= 13


@njit(cache=True, nogil=True)
def non_ascii_tokens(buf, offsets):
    """Byte ranges ``(starts, ends)`` of the tokens (maximal runs of bytes other than ASCII
    whitespace, inside one segment) that hold a non-ASCII byte; sorted, disjoint."""
    starts = np.empty(buf.shape[0] // 3 + offsets.shape[0], np.int64)  # >= 2 bytes + a space
    ends = np.empty_like(starts)
    k = 0
    for s in range(offsets.shape[0] - 1):
        i, end = offsets[s], offsets[s + 1]
        while i < end:
            if buf[i] < 0x80:
                i += 1
                continue
            a = i  # a non-ASCII byte: widen to its token
            while a > offsets[s] and not _is_ascii_space(buf[a - 1]):
                a -= 1
            while i < end and not _is_ascii_space(buf[i]):
                i += 1
            starts[k], ends[k] = a, i
            k += 1
    return starts[:k].copy(), ends[:k].copy()


@njit(cache=True, nogil=True)
def splice(buf, starts, ends, repl, repl_offsets):
    """``buf`` with each byte range ``starts[k]:ends[k]`` (sorted, disjoint) replaced by
    ``repl[repl_offsets[k]:repl_offsets[k + 1]]``."""
    size = buf.shape[0]
    for k in range(starts.shape[0]):
        size += repl_offsets[k + 1] - repl_offsets[k] - (ends[k] - starts[k])
    out = np.empty(size, np.uint8)
    src = dst = 0
    for k in range(starts.shape[0]):
        m = starts[k] - src
        out[dst : dst + m] = buf[src : starts[k]]
        r = repl_offsets[k + 1] - repl_offsets[k]
        out[dst + m : dst + m + r] = repl[repl_offsets[k] : repl_offsets[k + 1]]
        dst += m + r
        src = ends[k]
    out[dst:] = buf[src:]
    return out


@njit(cache=True, nogil=True)
def _count_words(buf, offsets, table):
    count = 0
    for s in range(offsets.shape[0] - 1):
        inside = False
        for i in range(offsets[s], offsets[s + 1]):
            word = table[buf[i]] != 0
            if word and not inside:
                count += 1
            inside = word
    return count


@njit(cache=True, nogil=True, inline="always")
def _fmix64(h):
    h = np.uint64(h ^ (h >> np.uint64(33)))
    h = np.uint64(h * np.uint64(0xFF51AFD7ED558CCD))
    h = np.uint64(h ^ (h >> np.uint64(33)))
    h = np.uint64(h * np.uint64(0xC4CEB9FE1A85EC53))
    return np.uint64(h ^ (h >> np.uint64(33)))


@njit(cache=True, nogil=True, inline="always")
def _word(buf, i, end, table, seed):
    """The word that starts at byte ``i`` (a word byte): ``(hash, first byte after it)``."""
    h = np.uint64(_FNV_OFFSET ^ seed)
    while i < end and table[buf[i]] != 0:
        h = np.uint64((h ^ np.uint64(table[buf[i]])) * _FNV_PRIME)
        i += 1
    return _fmix64(h), i


@njit(cache=True, nogil=True)
def split_words(buf, offsets, table, seed):
    """Cut every segment into words and hash them -> ``(seg, hashes, starts, ends)``.

    A word is a maximal run of bytes whose ``table`` entry is not 0; its bytes are mapped
    through ``table`` (lower-casing) before hashing (FNV-1a 64 from ``seed``, then fmix64).
    ``starts``/``ends`` are the word's byte range in ``buf``.
    """
    total = _count_words(buf, offsets, table)
    seg = np.empty(total, np.int64)
    hashes = np.empty(total, np.uint64)
    starts = np.empty(total, np.int64)
    ends = np.empty(total, np.int64)
    k = 0
    for s in range(offsets.shape[0] - 1):
        i, end = offsets[s], offsets[s + 1]
        while i < end:
            if table[buf[i]] == 0:
                i += 1
                continue
            hashes[k], ends[k] = _word(buf, i, end, table, seed)
            seg[k], starts[k] = s, i
            i = ends[k]
            k += 1
    return seg, hashes, starts, ends


@njit(cache=True, nogil=True)
def gather(buf, starts, ends, table):
    """The byte ranges ``starts[k]:ends[k]`` of ``buf`` (mapped through ``table``) back to
    back, and their offsets."""
    offsets = np.zeros(starts.shape[0] + 1, np.int64)
    for k in range(starts.shape[0]):
        offsets[k + 1] = offsets[k] + ends[k] - starts[k]
    data = np.empty(offsets[-1], np.uint8)
    for k in range(starts.shape[0]):
        o = offsets[k]
        for i in range(starts[k], ends[k]):
            data[o + i - starts[k]] = table[buf[i]]
    return data, offsets


@njit(cache=True, nogil=True, inline="always")
def _ngram_hash(words, j, n, multipliers):
    acc = np.uint64(0)
    for i in range(n):
        acc = np.uint64(acc + words[j + i] * multipliers[i])
    # final avalanche so that nearby n-grams spread over the whole 64-bit range
    acc = np.uint64(acc ^ (acc >> np.uint64(31)))
    acc = np.uint64(acc * _GOLDEN)
    return np.uint64(acc ^ (acc >> np.uint64(29)))


@njit(cache=True, nogil=True)
def ngrams(words, seg, n, multipliers):
    """Every n-gram inside a segment -> ``(hashes, starts)`` (``starts``: first word)."""
    count = max(words.shape[0] - n + 1, 0)
    hashes = np.empty(count, np.uint64)
    starts = np.empty(count, np.int64)
    k = 0
    for j in range(count):
        if seg[j] == seg[j + n - 1]:
            hashes[k] = _ngram_hash(words, j, n, multipliers)
            starts[k] = j
            k += 1
    return hashes[:k].copy(), starts[:k].copy()


@njit(cache=True, nogil=True, inline="always")
def _member(h, keys, bitmap, bitmap_shift, buckets, bucket_shift):
    """Whether ``h`` is in the sorted array ``keys`` (``KeySet`` in :mod:`.ngrams`): first
    its bit in ``bitmap``, then the keys of its bucket."""
    b = h >> bitmap_shift
    if (bitmap[b >> np.uint64(6)] >> (b & np.uint64(63))) & np.uint64(1) == 0:
        return False
    j = h >> bucket_shift
    for pos in range(buckets[j], buckets[j + 1]):
        if keys[pos] == h:
            return True
    return False


@njit(cache=True, nogil=True)
def member_mask(hashes, keys, bitmap, bitmap_shift, buckets, bucket_shift):
    """Boolean mask: which of ``hashes`` are in ``keys`` (see :func:`_member`)."""
    out = np.empty(hashes.shape[0], np.bool_)
    for k in range(hashes.shape[0]):
        out[k] = _member(hashes[k], keys, bitmap, bitmap_shift, buckets, bucket_shift)
    return out


@njit(cache=True, nogil=True)
def scan_hits(
    buf, offsets, table, seed, n, multipliers, keys, bitmap, bitmap_shift, buckets, bucket_shift
):
    """The n-grams of every segment whose hash is in ``keys`` (see :func:`_member` for the
    other arguments after ``multipliers``) -> ``(seg, hashes)``.

    The words and n-grams are those of :func:`split_words` then :func:`ngrams`, in one pass
    that keeps only the last ``n`` word hashes (twice over in ``ring``, so that the window
    ``ring[p:p + n]`` is always contiguous, oldest word first).
    """
    # a segment of L bytes has at most (L + 1) // 2 words, so this bounds the n-grams; the
    # pages never written cost no memory (growing the arrays in the loop slows it 2x)
    bound = buf.shape[0] // 2 + offsets.shape[0]
    found_seg = np.empty(bound, np.int64)
    found = np.empty(bound, np.uint64)
    ring = np.empty(2 * n, np.uint64)
    k = 0
    for s in range(offsets.shape[0] - 1):
        i, end = offsets[s], offsets[s + 1]
        p = seen = 0
        while i < end:
            if table[buf[i]] == 0:
                i += 1
                continue
            h, i = _word(buf, i, end, table, seed)
            ring[p] = ring[p + n] = h
            p = p + 1 if p + 1 < n else 0
            seen += 1
            if seen >= n:
                g = _ngram_hash(ring, p, n, multipliers)
                if _member(g, keys, bitmap, bitmap_shift, buckets, bucket_shift):
                    found_seg[k], found[k] = s, g
                    k += 1
    return found_seg[:k].copy(), found[:k].copy()
