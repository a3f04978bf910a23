"""Vectorised MinHash signatures, bit-identical to ``datasketch.MinHash`` (scheme "affine32").

datasketch (>= 2.0, default scheme "affine32") draws permutations from
``np.random.RandomState(seed)``: ``a = randint(0, 2**31, P, uint32) * 2 + 1`` then
``b = randint(0, 2**32, P, uint32)``; each input hash ``h`` is pre-mixed with the 32-bit
MurmurHash3 finalizer and permutation ``k`` maps it to ``a[k] * fmix32(h) + b[k] mod 2**32``;
the signature keeps the per-permutation minimum. :func:`signatures` does the same for many
documents at once in a numba kernel, so for the same shingle hash values and seed,
``signatures(...)[i]`` equals ``MinHash(num_perm=P, seed=seed).update_batch(...)`` 's
``hashvalues`` -- they can be handed to ``MinHash(hashvalues=..., seed=..., scheme="affine32")``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

EMPTY = np.uint32(0xFFFFFFFF)


def permutations(num_perm: int = 128, seed: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """The ``(a, b)`` uint32 permutation parameters datasketch uses for ``num_perm`` and ``seed``."""
    gen = np.random.RandomState(seed)
    a = gen.randint(0, 1 << 31, num_perm, dtype=np.uint32) * np.uint32(2) + np.uint32(1)
    b = gen.randint(0, 1 << 32, num_perm, dtype=np.uint32)
    return a, b


def signatures(hashes: np.ndarray, offsets: np.ndarray, num_perm: int = 128, seed: int = 1,
               out: np.ndarray | None = None) -> np.ndarray:
    """MinHash signatures ``(n_docs, num_perm)`` uint32 of documents given as shingle hashes.

    ``hashes`` are 32-bit shingle hashes, ``offsets`` (length ``n_docs + 1``) delimit each
    document's hashes. ``out`` may be a preallocated (e.g. memory-mapped) array to fill.
    """
    from thresher.curate.dedup import _kernels

    a, b = permutations(num_perm, seed)
    n = len(offsets) - 1
    if out is None:
        out = np.empty((n, num_perm), dtype=np.uint32)
    elif out.shape != (n, num_perm) or out.dtype != np.uint32:
        raise ValueError(f"out must be uint32 of shape {(n, num_perm)}, got {out.dtype} {out.shape}")
    hashes = np.ascontiguousarray(hashes, dtype=np.uint32)
    offsets = np.ascontiguousarray(offsets, dtype=np.int64)
    _kernels.signatures_affine32(hashes, offsets, a, b, out)
    return out


def text_signatures(texts: Sequence[str], num_perm: int = 128, seed: int = 1, ngram: int = 5,
                    unit: str = "word", hash: str = "fast") -> np.ndarray:
    """Shingle and sign already-normalised ``texts`` -> ``(len(texts), num_perm)`` uint32."""
    from thresher.curate.dedup.shingles import shingle_hashes

    h, off = shingle_hashes(texts, ngram=ngram, unit=unit, hash=hash)
    return signatures(h, off, num_perm=num_perm, seed=seed)


def jaccard(sig_a: np.ndarray, sig_b: np.ndarray) -> np.ndarray | float:
    """Estimated Jaccard (fraction of equal positions) of two signatures or row-aligned batches."""
    eq = np.asarray(sig_a) == np.asarray(sig_b)
    if eq.ndim == 1:
        return float(eq.mean())
    return eq.mean(axis=1)
