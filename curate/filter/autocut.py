"""``auto`` thresholds: place a score cut from the score distribution itself.

A two-component Gaussian mixture is fitted to the scores (EM, numpy only). When the two
components are apart (Ashman's D = |m1 - m2| / sqrt((s1^2 + s2^2) / 2) >= 2) the cut is
where the low component (the high one for a ``max`` rule) becomes the less likely one; else
the scores show no second group and the cut falls back to a robust outlier rule,
``median - 2.5 * 1.4826 * MAD`` (``+`` for ``max``). The fit, the method and the cut go into
the filter stage's stats (``auto_thresholds``) and the report draws them.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

MIN_SEPARATION = 2.0  # Ashman's D: two groups are clearly apart above 2
OUTLIER_K = 2.5


def _pdf(x, mu: float, sd: float):
    import numpy as np

    return np.exp(-0.5 * ((x - mu) / sd) ** 2) / (sd * math.sqrt(2 * math.pi))


def fit_mixture(values: Sequence[float], iterations: int = 200) -> dict:
    """Two-component 1-D Gaussian mixture by EM: ``{weights, means, stds}`` (low mean first)."""
    import numpy as np

    x = np.asarray(values, dtype=float)
    lo, hi = np.quantile(x, [0.15, 0.7])
    mu = np.array([lo, hi if hi > lo else lo + 1e-3])
    floor = max(float(np.std(x)) * 0.02, 1e-6)
    sd = np.full(2, max(float(np.std(x)) / 2, floor))
    w = np.array([0.3, 0.7])
    for _ in range(iterations):
        dens = np.stack([w[k] * _pdf(x, mu[k], sd[k]) for k in range(2)]) + 1e-300
        resp = dens / dens.sum(axis=0)
        nk = resp.sum(axis=1) + 1e-12
        new_mu = (resp * x).sum(axis=1) / nk
        sd = np.maximum(np.sqrt((resp * (x - new_mu[:, None]) ** 2).sum(axis=1) / nk), floor)
        w = nk / nk.sum()
        if np.allclose(new_mu, mu, atol=1e-9):
            mu = new_mu
            break
        mu = new_mu
    order = np.argsort(mu)
    return {"weights": [float(w[i]) for i in order], "means": [float(mu[i]) for i in order],
            "stds": [float(sd[i]) for i in order]}


def auto_threshold(values: Sequence[float], op: str = "min") -> dict:
    """The cut for a ``min`` (drop below) or ``max`` (drop above) rule, with how it was found:
    ``{threshold, method: mixture | outlier, separation, weights, means, stds, n}``."""
    import numpy as np

    x = np.asarray([v for v in values if v is not None and not math.isnan(v)], dtype=float)
    if x.size < 8:
        return {"threshold": None, "method": "too few scores", "n": int(x.size)}
    fit = fit_mixture(x)
    (w1, w2), (m1, m2), (s1, s2) = fit["weights"], fit["means"], fit["stds"]
    sep = abs(m2 - m1) / math.sqrt((s1 ** 2 + s2 ** 2) / 2)
    out = dict(fit, n=int(x.size), separation=sep)
    grid = np.linspace(m1, m2, 2001)
    bad = 0 if op == "min" else 1
    dens = [fit["weights"][k] * _pdf(grid, fit["means"][k], fit["stds"][k]) for k in range(2)]
    flips = np.nonzero(dens[bad] < dens[1 - bad])[0]
    if sep >= MIN_SEPARATION and min(w1, w2) >= 0.02 and flips.size:
        cut = grid[flips[0]] if op == "min" else grid[flips[-1]]
        return dict(out, threshold=float(cut), method="mixture")
    med = float(np.median(x))
    mad = 1.4826 * float(np.median(np.abs(x - med))) or float(np.std(x))
    cut = med - OUTLIER_K * mad if op == "min" else med + OUTLIER_K * mad
    return dict(out, threshold=float(cut), method="outlier")
