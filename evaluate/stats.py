"""Statistics for comparing models on the same prompts: bootstrap confidence intervals of a
mean, paired win/tie/loss counts, the sign test and the paired bootstrap.

All functions take plain sequences of floats (NaN = no value for that prompt) and are
seeded, so an evaluation gives the same numbers every run.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

DEFAULT_RESAMPLES = 2000


def _finite(values: Sequence[float]) -> np.ndarray:
    a = np.asarray(values, dtype=float)
    return a[np.isfinite(a)]


def bootstrap_ci(values: Sequence[float], *, level: float = 0.95, resamples: int = DEFAULT_RESAMPLES,
                 seed: int = 0) -> tuple[float, float, float]:
    """``(mean, low, high)``: the mean and its percentile-bootstrap confidence interval
    (NaNs ignored; NaN everywhere when no value is left)."""
    a = _finite(values)
    if a.size == 0:
        return math.nan, math.nan, math.nan
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, a.size, size=(resamples, a.size))
    means = a[idx].mean(axis=1)
    alpha = (1 - level) / 2
    return float(a.mean()), float(np.quantile(means, alpha)), float(np.quantile(means, 1 - alpha))


def paired(a: Sequence[float], b: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    """The two value arrays restricted to prompts where both have a value."""
    x, y = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    ok = np.isfinite(x) & np.isfinite(y)
    return x[ok], y[ok]


def win_tie_loss(a: Sequence[float], b: Sequence[float], *, higher_is_better: bool = True,
                 tol: float = 1e-9) -> tuple[int, int, int]:
    """Per-prompt wins, ties and losses of ``a`` against ``b``."""
    x, y = paired(a, b)
    d = (x - y) if higher_is_better else (y - x)
    return int((d > tol).sum()), int((abs(d) <= tol).sum()), int((d < -tol).sum())


def sign_test(wins: int, losses: int) -> float:
    """Exact two-sided sign-test p-value (ties left out); 1.0 with no untied prompt."""
    n = wins + losses
    if n == 0:
        return 1.0
    k = min(wins, losses)
    tail = sum(math.comb(n, i) for i in range(k + 1)) / 2**n
    return float(min(1.0, 2 * tail))


def paired_bootstrap(a: Sequence[float], b: Sequence[float], *, resamples: int = DEFAULT_RESAMPLES,
                     seed: int = 0, level: float = 0.95) -> dict[str, float]:
    """The mean difference ``a - b`` over shared prompts, its bootstrap CI and a two-sided
    paired-bootstrap p-value (twice the share of resampled differences on the other side of 0)."""
    x, y = paired(a, b)
    if x.size == 0:
        return {"diff": math.nan, "low": math.nan, "high": math.nan, "p": 1.0}
    d = x - y
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, d.size, size=(resamples, d.size))
    means = d[idx].mean(axis=1)
    alpha = (1 - level) / 2
    if d.mean() == 0 or np.all(d == 0):
        p = 1.0
    else:
        other = (means <= 0).mean() if d.mean() > 0 else (means >= 0).mean()
        p = float(min(1.0, 2 * max(other, 1 / resamples)))
    return {"diff": float(d.mean()), "low": float(np.quantile(means, alpha)),
            "high": float(np.quantile(means, 1 - alpha)), "p": p}


def compare(a: Sequence[float], b: Sequence[float], *, higher_is_better: bool = True,
            resamples: int = DEFAULT_RESAMPLES, seed: int = 0) -> dict[str, Any]:
    """Everything the report shows for one metric and one pair of models: win/tie/loss,
    the mean difference with its CI, the sign-test and paired-bootstrap p-values, and
    ``p`` (the sign test's, the one the verdict uses)."""
    w, t, l_ = win_tie_loss(a, b, higher_is_better=higher_is_better)
    boot = paired_bootstrap(a, b, resamples=resamples, seed=seed)
    p_sign = sign_test(w, l_)
    return {"wins": w, "ties": t, "losses": l_, "diff": boot["diff"], "diff_low": boot["low"],
            "diff_high": boot["high"], "p_sign": p_sign, "p_bootstrap": boot["p"], "p": p_sign,
            "n": w + t + l_}
