"""Numba kernels for the hot loops of dedup (compiled on first use, cached on disk).

All arithmetic is done in explicit ``uint64``/``uint32`` so the results are bit-exact with
numpy's wrapping arithmetic (and therefore with ``datasketch``). Numba promotes small integer
types to 64 bits, so every 32-bit step is truncated explicitly with ``np.uint32(...)``.

Text arrives as UTF-32 code points (``uint32``) of all documents concatenated, with
``offsets`` (``int64``, length ``n_docs + 1``) marking document boundaries.
"""

from __future__ import annotations

import numpy as np
from numba import njit

_M32 = np.uint64(0xFFFFFFFF)
_FNV_OFFSET = np.uint64(0xCBF29CE484222325)
_FNV_PRIME = np.uint64(0x100000001B3)
_MIX = np.uint64(0x9E3779B97F4A7C15)
_EMPTY32 = np.uint32(0xFFFFFFFF)


@njit(cache=True, nogil=True, inline="always")
def _fmix64(h):
    h = np.uint64(h ^ (h >> np.uint64(33)))
    h = np.uint64(h * np.uint64(0xFF51AFD7ED558CCD))
    h = np.uint64(h ^ (h >> np.uint64(33)))
    h = np.uint64(h * np.uint64(0xC4CEB9FE1A85EC53))
    return np.uint64(h ^ (h >> np.uint64(33)))


@njit(cache=True, nogil=True, inline="always")
def _fmix32(x):
    x = np.uint32(x ^ (x >> np.uint32(16)))
    x = np.uint32(x * np.uint32(0x85EBCA6B))
    x = np.uint32(x ^ (x >> np.uint32(13)))
    x = np.uint32(x * np.uint32(0xC2B2AE35))
    return np.uint32(x ^ (x >> np.uint32(16)))


@njit(cache=True, nogil=True, inline="always")
def _is_space(c):
    # Exactly the code points for which Python's str.isspace() is true, so that
    # str.split() and this kernel cut the same words.
    if c == 32 or (9 <= c <= 13) or (28 <= c <= 31):
        return True
    if c < 0x85:
        return False
    return (c == 0x85 or c == 0xA0 or c == 0x1680 or (0x2000 <= c <= 0x200A) or c == 0x2028
            or c == 0x2029 or c == 0x202F or c == 0x205F or c == 0x3000)


@njit(cache=True, nogil=True)
def _count_words(cps, start, end):
    n = 0
    prev_space = True
    for i in range(start, end):
        sp = _is_space(cps[i])
        if not sp and prev_space:
            n += 1
        prev_space = sp
    return n


@njit(cache=True, nogil=True)
def word_shingle_hashes(cps, offsets, ngram):
    """32-bit hashes of word n-gram shingles per document -> (hashes, shingle_offsets).

    A document with fewer than ``ngram`` words (but at least one) has one shingle (all its
    words); an empty document has none. Word hash: FNV-1a 64 over code points, then fmix64;
    shingle hash: a multiply-xor chain over its word hashes, fmix64, low 32 bits.
    """
    ndoc = offsets.shape[0] - 1
    counts = np.zeros(ndoc, np.int64)
    maxw = 0
    for d in range(ndoc):
        w = _count_words(cps, offsets[d], offsets[d + 1])
        maxw = max(maxw, w)
        if w >= ngram:
            counts[d] = w - ngram + 1
        elif w > 0:
            counts[d] = 1
    out_off = np.zeros(ndoc + 1, np.int64)
    for d in range(ndoc):
        out_off[d + 1] = out_off[d] + counts[d]
    out = np.empty(out_off[ndoc], np.uint32)
    wh = np.empty(max(maxw, 1), np.uint64)
    for d in range(ndoc):
        w = 0
        h = _FNV_OFFSET
        in_word = False
        for i in range(offsets[d], offsets[d + 1]):
            c = cps[i]
            if _is_space(c):
                if in_word:
                    wh[w] = _fmix64(h)
                    w += 1
                    in_word = False
            else:
                if not in_word:
                    h = _FNV_OFFSET
                    in_word = True
                h = np.uint64((h ^ np.uint64(c)) * _FNV_PRIME)
        if in_word:
            wh[w] = _fmix64(h)
            w += 1
        k = out_off[d]
        span = min(ngram, w)
        for s in range(counts[d]):
            g = np.uint64(ngram)
            for j in range(span):
                g = np.uint64((g ^ wh[s + j]) * _MIX)
            out[k + s] = np.uint32(_fmix64(g) & _M32)
    return out, out_off


@njit(cache=True, nogil=True)
def char_shingle_hashes(cps, offsets, ngram):
    """32-bit hashes of character n-gram shingles per document -> (hashes, shingle_offsets).

    A document shorter than ``ngram`` code points (but not empty) has one shingle.
    """
    ndoc = offsets.shape[0] - 1
    out_off = np.zeros(ndoc + 1, np.int64)
    for d in range(ndoc):
        L = offsets[d + 1] - offsets[d]
        cnt = L - ngram + 1 if L >= ngram else (1 if L > 0 else 0)
        out_off[d + 1] = out_off[d] + cnt
    out = np.empty(out_off[ndoc], np.uint32)
    for d in range(ndoc):
        start = offsets[d]
        L = offsets[d + 1] - start
        span = min(ngram, L)
        k = out_off[d]
        for s in range(out_off[d + 1] - k):
            h = _FNV_OFFSET
            for j in range(span):
                h = np.uint64((h ^ np.uint64(cps[start + s + j])) * _FNV_PRIME)
            out[k + s] = np.uint32(_fmix64(h) & _M32)
    return out, out_off


@njit(cache=True, nogil=True)
def signatures_affine32(hashes, offsets, a, b, out):
    """MinHash signatures, datasketch "affine32" scheme, written into ``out`` (n_docs, P).

    For each shingle hash ``h``: ``x = fmix32(h)``; permutation k gives ``a[k]*x + b[k] mod 2^32``;
    the signature is the per-permutation minimum (``0xFFFFFFFF`` for an empty document).
    """
    P = a.shape[0]
    for d in range(offsets.shape[0] - 1):
        row = out[d]
        for k in range(P):
            row[k] = _EMPTY32
        for i in range(offsets[d], offsets[d + 1]):
            x = _fmix32(hashes[i])
            for k in range(P):
                v = np.uint32(a[k] * x + b[k])
                row[k] = min(row[k], v)


@njit(cache=True, nogil=True)
def band_keys(sig, bands, rows, out):
    """64-bit key of each (document, band): a hash of the band's ``rows`` signature values."""
    for d in range(sig.shape[0]):
        for k in range(bands):
            h = np.uint64(k + 1)
            base = k * rows
            for j in range(rows):
                h = np.uint64((h ^ np.uint64(sig[d, base + j])) * _MIX)
                h = np.uint64(h ^ (h >> np.uint64(29)))
            out[d, k] = _fmix64(h)


@njit(cache=True, nogil=True)
def count_equal(sig_a, sig_b, ia, ib, out):
    """``out[p]`` = number of equal signature positions between ``sig_a[ia[p]]`` and ``sig_b[ib[p]]``."""
    P = sig_a.shape[1]
    for p in range(ia.shape[0]):
        x = sig_a[ia[p]]
        y = sig_b[ib[p]]
        c = 0
        for k in range(P):
            if x[k] == y[k]:
                c += 1
        out[p] = c


@njit(cache=True, nogil=True)
def _find(parent, x):
    while parent[x] != x:
        parent[x] = parent[parent[x]]
        x = parent[x]
    return x


@njit(cache=True, nogil=True)
def connected_components(n, ia, ib):
    """Union-find over edges (ia[p], ib[p]); returns the root (smallest member) of each node."""
    parent = np.arange(n, dtype=np.int64)
    for p in range(ia.shape[0]):
        ra = _find(parent, ia[p])
        rb = _find(parent, ib[p])
        if ra != rb:
            if ra < rb:
                parent[rb] = ra
            else:
                parent[ra] = rb
    for x in range(n):
        parent[x] = _find(parent, x)
    return parent


@njit(cache=True, nogil=True)
def star_survivors(n, order, ia, ib):
    """Greedy star clustering over verified edges ``(ia, ib)``.

    Visits nodes in ``order`` (best first); an undecided node survives and claims every
    undecided neighbour. Returns ``target`` (-1 for survivors and untouched nodes, else the
    survivor the node is a direct near-duplicate of).
    """
    deg = np.zeros(n + 1, np.int64)
    for p in range(ia.shape[0]):
        deg[ia[p] + 1] += 1
        deg[ib[p] + 1] += 1
    for i in range(n):
        deg[i + 1] += deg[i]
    fill = deg[:n].copy()
    nbr = np.empty(deg[n], np.int64)
    for p in range(ia.shape[0]):
        nbr[fill[ia[p]]] = ib[p]
        fill[ia[p]] += 1
        nbr[fill[ib[p]]] = ia[p]
        fill[ib[p]] += 1
    state = np.zeros(n, np.int8)  # 0 undecided, 1 kept, 2 dropped
    target = np.full(n, -1, np.int64)
    for k in range(order.shape[0]):
        v = order[k]
        if state[v] != 0:
            continue
        state[v] = 1
        for q in range(deg[v], deg[v + 1]):
            u = nbr[q]
            if state[u] == 0:
                state[u] = 2
                target[u] = v
    return target


@njit(cache=True, nogil=True)
def sort_segments(values, offsets):
    """Sort each document's segment ``values[offsets[i]:offsets[i+1]]`` in place."""
    for i in range(len(offsets) - 1):
        values[offsets[i]:offsets[i + 1]].sort()


@njit(cache=True, nogil=True)
def set_jaccard(values, offsets, pa, pb, out):
    """Jaccard of the shingle sets of documents ``pa[p]`` and ``pb[p]`` (positions into
    ``offsets``; segments sorted by :func:`sort_segments`, repeated values counted once)."""
    for p in range(len(pa)):
        i, iend = offsets[pa[p]], offsets[pa[p] + 1]
        j, jend = offsets[pb[p]], offsets[pb[p] + 1]
        inter = 0
        union = 0
        while i < iend or j < jend:
            if j >= jend or (i < iend and values[i] < values[j]):
                v = values[i]
            elif i >= iend or values[j] < values[i]:
                v = values[j]
            else:
                v = values[i]
                inter += 1
            union += 1
            while i < iend and values[i] == v:
                i += 1
            while j < jend and values[j] == v:
                j += 1
        out[p] = inter / union if union else 1.0


@njit(cache=True, nogil=True)
def edit_similarity(cps, offsets, pa, pb, floor, out):
    """``1 - d / max(len)`` of documents ``pa[p]`` and ``pb[p]`` (code point segments of
    ``cps`` delimited by ``offsets``), where ``d`` is the optimal string alignment distance
    (insertions, deletions, substitutions and adjacent transpositions, each costing 1).

    Only distances up to ``k = (1 - floor) * max(len)`` are computed (a band of ``2k + 1``
    diagonals, stopping once a whole row exceeds ``k``); a pair below ``floor`` gets an upper
    bound of its similarity, still below ``floor``. ``floor = 0`` computes every value exactly.
    """
    width = 0
    for q in range(len(offsets) - 1):
        width = max(width, offsets[q + 1] - offsets[q])
    prev2 = np.zeros(width + 2, dtype=np.int64)
    prev = np.zeros(width + 2, dtype=np.int64)
    cur = np.zeros(width + 2, dtype=np.int64)
    for p in range(len(pa)):
        a0, n = offsets[pa[p]], offsets[pa[p] + 1] - offsets[pa[p]]
        b0, m = offsets[pb[p]], offsets[pb[p] + 1] - offsets[pb[p]]
        longest = max(n, m)
        if longest == 0:
            out[p] = 1.0
            continue
        k = int((1.0 - floor) * longest + 1e-9)
        if abs(n - m) > k:
            out[p] = 1.0 - abs(n - m) / longest
            continue
        big = k + 1
        for j in range(m + 2):
            prev[j] = j if j <= k else big
        over = False
        for i in range(1, n + 1):
            lo = max(1, i - k)
            hi = min(m, i + k)
            cur[lo - 1] = i if lo == 1 else big
            rowmin = cur[lo - 1]
            ca = cps[a0 + i - 1]
            for j in range(lo, hi + 1):
                cb = cps[b0 + j - 1]
                v = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (0 if ca == cb else 1))
                if i > 1 and j > 1 and ca == cps[b0 + j - 2] and cps[a0 + i - 2] == cb:
                    v = min(v, prev2[j - 2] + 1)
                v = min(v, big)
                cur[j] = v
                rowmin = min(rowmin, v)
            if hi < m:
                cur[hi + 1] = big
            prev2, prev, cur = prev, cur, prev2
            if rowmin > k:
                over = True
                break
        d = big if over else prev[m]
        out[p] = 1.0 - min(d, big) / longest
