"""Benchmark: how well offline signals tell an answer to a different question from a good one.

On the noisy benchmark's planted set (``benchmarks/noisy.py``: chatterbot Q/A, answers moved
to other questions), each signal scores every row; printed per split: ROC AUC of mismatches
against good rows, and the share of mismatches caught when 2%, 3% or 5% of the good rows may
be lost (the recipe's whole good-row budget is 5%, shared by every rule).

Signals, all on the all-MiniLM-L6-v2 embeddings the ``relevance`` scorer uses:

- ``cosine``: cosine(question, answer), what the recipe cuts on (per category, robust z);
- ``margin``: that cosine minus the answer's best cosine to any other question of the set
  (an answer that fits another question better);
- ``rank``: how many other questions of the set fit the answer better than its own;
- ``pair model``: a logistic regression on (q * a, |q - a|, cosine) trained on the set's own
  pairs against random re-pairings of them (self-supervised, 5-fold: a row is scored by a
  model that did not see it);
- ``category fit``: the answer's cosine to its own category's mean answer (itself left out)
  minus its best cosine to another category's mean answer (an answer from another topic);
- ``cosine + category fit``: the sum of the two, each robust-z'd over the set.

Usage: ``python benchmarks/mismatch_signals.py [SEEDS]`` (the mean of SEEDS planted sets per
split, default 4; about 5 minutes on 2 cores).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))


def auc(pos: np.ndarray, neg: np.ndarray) -> float:
    """P(a mismatch scores below a good row), ties half."""
    return float(np.mean(pos[:, None] < neg[None, :]) + 0.5 * np.mean(pos[:, None] == neg[None, :]))


def caught_at(pos: np.ndarray, neg: np.ndarray, lost: float) -> float:
    """Share of ``pos`` below the cut that loses ``lost`` of ``neg``."""
    return float(np.mean(pos < np.quantile(neg, lost)))


def _pair_features(q: np.ndarray, a: np.ndarray) -> np.ndarray:
    return np.hstack([q * a, np.abs(q - a), (q * a).sum(1, keepdims=True)])


def pair_model(q: np.ndarray, a: np.ndarray, folds: int = 5, negatives: int = 5, seed: int = 0) -> np.ndarray:
    """Out-of-fold log-odds that (q, a) is one of the set's pairs rather than a re-pairing."""
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(seed)
    fold = rng.permutation(len(q)) % folds
    out = np.zeros(len(q))
    for f in range(folds):
        tr, te = np.where(fold != f)[0], np.where(fold == f)[0]
        pos = _pair_features(q[tr], a[tr])
        neg = np.vstack([_pair_features(q[tr], a[rng.permutation(tr)]) for _ in range(negatives)])
        model = LogisticRegression(C=0.1, max_iter=2000).fit(
            np.vstack([pos, neg]), np.r_[np.ones(len(pos)), np.zeros(len(neg))])
        out[te] = model.decision_function(_pair_features(q[te], a[te]))
    return out


def category_fit(a: np.ndarray, cats: list[str]) -> np.ndarray:
    """Cosine of each answer to its category's mean answer (itself left out) minus the best
    cosine to another category's mean answer."""
    names = sorted(set(cats))
    ci = np.array([names.index(c) for c in cats])
    sums = np.zeros((len(names), a.shape[1]))
    np.add.at(sums, ci, a)
    n = np.bincount(ci, minlength=len(names)).astype(float)
    means = sums / n[:, None]
    sims = a @ (means / np.linalg.norm(means, axis=1, keepdims=True)).T
    own = (sums[ci] - a) / np.maximum(n[ci] - 1, 1)[:, None]
    own_sim = (a * own).sum(1) / np.maximum(np.linalg.norm(own, axis=1), 1e-9)
    sims[np.arange(len(a)), ci] = -9.0
    return own_sim - sims.max(1)


def robust_z(s: np.ndarray) -> np.ndarray:
    """``s`` centred on its median, in units of its MAD (x 1.4826)."""
    med = np.median(s)
    return (s - med) / (1.4826 * np.median(np.abs(s - med)) or 1.0)


def signals(rows: list[dict], embedder) -> dict[str, np.ndarray]:
    """Every signal's score per row (lower: more likely a mismatch)."""
    qs, ans = [r["q"] for r in rows], [r["a"] for r in rows]
    texts = list(dict.fromkeys(qs + ans))
    at = {t: i for i, t in enumerate(texts)}
    emb = embedder.encode(texts)
    q, a = emb[[at[t] for t in qs]], emb[[at[t] for t in ans]]
    own = (q * a).sum(1)
    qid = np.array([at[t] for t in qs])
    others = np.where(qid[None, :] == qid[:, None], -9.0, a @ q.T)  # [i, j]: answer i, question j
    fit = category_fit(a, [r["category"] for r in rows])
    return {"cosine": own, "margin": own - others.max(1), "rank": -(others > own[:, None]).sum(1).astype(float),
            "pair model": pair_model(q, a), "category fit": fit, "cosine + category fit": robust_z(own) + robust_z(fit)}


def main(seeds: int = 4) -> None:
    """Every signal on each split, the mean of ``seeds`` planted sets (seeds 0, 1, ...)."""
    from noisy import build

    from thresher.embed import DEFAULT_EMBEDDER, load_embedder

    embedder = load_embedder(DEFAULT_EMBEDDER, device="cpu", batch_size=64)
    print(f"{'split':6s} {'signal':21s} {'AUC':>6s} {'@2%':>5s} {'@3%':>5s} {'@5%':>5s}")
    for split in ("dev", "eval"):
        table: dict[str, list[list[float]]] = {}
        for seed in range(seeds):
            rows = build(seed, split)
            kinds = np.array([r["kind"] for r in rows])
            good, bad = kinds == "good", kinds == "mismatch"
            for name, s in signals(rows, embedder).items():
                table.setdefault(name, []).append(
                    [auc(s[bad], s[good])] + [caught_at(s[bad], s[good], x) for x in (0.02, 0.03, 0.05)])
        for name, runs in table.items():
            m = np.mean(runs, axis=0)
            print(f"{split:6s} {name:21s} {m[0]:6.3f} " + " ".join(f"{x:5.2f}" for x in m[1:]), flush=True)

if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 4)
