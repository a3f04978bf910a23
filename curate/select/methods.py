"""Selection methods on plain arrays: top-k by score, k-center greedy diversity (Sener &
Savarese 2018; the embedding-diversity baseline of Ivison et al. 2025) and Deita's
score-first, diversity-filtered selection (Liu et al. 2024)."""

from __future__ import annotations

import numpy as np


def normalize_rows(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (zero rows stay zero)."""
    x = np.asarray(x, dtype=np.float32)
    norm = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.where(norm == 0, 1, norm)


def top(scores: np.ndarray, k: int, *, descending: bool = True) -> list[int]:
    """Indices of the ``k`` best scores (NaN last; ties keep input order)."""
    s = np.asarray(scores, dtype=float)
    key = np.where(np.isnan(s), np.inf, -s if descending else s)
    return [int(i) for i in np.argsort(key, kind="stable")[:k]]


def kcenter_greedy(x: np.ndarray, k: int, *, first: int | None = None) -> list[int]:
    """k-center greedy on cosine distance: start at ``first`` (default: the point farthest
    from the mean direction), then repeatedly take the point farthest from everything taken."""
    e = normalize_rows(x)
    n = e.shape[0]
    k = min(k, n)
    if k <= 0:
        return []
    if first is None:
        centre = normalize_rows(e.mean(axis=0, keepdims=True))[0]
        first = int(np.argmin(e @ centre))
    chosen = [first]
    dist = 1.0 - e @ e[first]
    dist[first] = -np.inf
    for _ in range(k - 1):
        nxt = int(np.argmax(dist))
        chosen.append(nxt)
        dist = np.minimum(dist, 1.0 - e @ e[nxt])
        dist[chosen] = -np.inf
    return chosen


def score_then_diversity(x: np.ndarray, scores: np.ndarray, k: int, *, max_similarity: float = 0.9,
                         descending: bool = True) -> tuple[list[int], int]:
    """Deita: walk rows from the best score down and take a row when its cosine similarity
    to every row taken so far is below ``max_similarity``, until ``k`` are taken. When too
    few pass, the best-scored of the rest fill up; returns (indices, how many filled up)."""
    e = normalize_rows(x)
    order = top(scores, len(scores), descending=descending)
    chosen: list[int] = []
    for i in order:
        if len(chosen) >= k:
            break
        if not chosen or float(np.max(e[chosen] @ e[i])) < max_similarity:
            chosen.append(i)
    filled = 0
    if len(chosen) < k:
        taken = set(chosen)
        for i in order:
            if len(chosen) >= k:
                break
            if i not in taken:
                chosen.append(i)
                filled += 1
    return chosen, filled
