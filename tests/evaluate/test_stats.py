"""Bootstrap CIs cover a known mean; the sign test and paired bootstrap on clear cases."""

from __future__ import annotations

import math

import numpy as np

from thresher.evaluate import stats as S


def test_bootstrap_ci_covers_the_true_mean_in_at_least_90_of_100_seeds():
    covered = 0
    for seed in range(100):
        rng = np.random.default_rng(1000 + seed)
        sample = rng.normal(loc=2.0, scale=1.5, size=60)
        _, lo, hi = S.bootstrap_ci(sample, resamples=1000, seed=seed)
        covered += lo <= 2.0 <= hi
    assert covered >= 90, covered


def test_bootstrap_ci_of_pass_rates_and_nans():
    mean, lo, hi = S.bootstrap_ci([1, 0, 1, 1, math.nan])
    assert mean == 0.75 and 0 <= lo <= mean <= hi <= 1
    assert all(math.isnan(x) for x in S.bootstrap_ci([math.nan]))


def test_sign_test_exact_values():
    assert S.sign_test(0, 0) == 1.0
    assert math.isclose(S.sign_test(10, 0), 2 / 2**10)
    assert math.isclose(S.sign_test(5, 5), 1.0)
    assert math.isclose(S.sign_test(8, 2), 2 * sum(math.comb(10, i) for i in range(3)) / 2**10)


def test_compare_counts_wins_ties_losses_and_direction():
    a, b = [1, 1, 1, 0, 1, 1, 1, 1, 1, 1], [0, 0, 0, 0, 1, 0, 0, 0, 0, 1]
    c = S.compare(a, b)
    assert (c["wins"], c["ties"], c["losses"]) == (7, 3, 0)
    assert c["p"] < 0.05 and c["p_bootstrap"] < 0.05 and c["diff"] == 0.7
    nll = S.compare([1.0, 1.0], [2.0, 2.0], higher_is_better=False)
    assert nll["wins"] == 2 and nll["diff"] == -1.0
    same = S.compare([1, 0, 1], [1, 0, 1])
    assert same["p"] == 1.0 and same["p_bootstrap"] == 1.0
