"""Score rules: thresholds, exact top fraction / top k (global and per category),
per-category normalisation and best-of-n with a margin."""

from __future__ import annotations

import random

import polars as pl
import pytest

from thresher.curate.filter.rules import best_of, keep_count, normalize, threshold, top


def test_threshold_reasons_name_rule_and_values():
    vals = [-3.1, -2.0, None, -2.5, float("nan")]
    got = threshold(vals, [True] * 5, "score_loglik", -2.5, "min")
    assert got == ["score_loglik=-3.1 < -2.5", None, "score_loglik=null (no score)", None,
                   "score_loglik=null (no score)"]
    assert threshold([0.9, 0.1], [True, True], "score_x", 0.5, "max") == ["score_x=0.9 > 0.5", None]
    assert threshold([-9.0], [False], "score_x", 0.0, "min") == [None]  # already dropped


@pytest.mark.parametrize("sizes, fraction", [((10, 20, 30), 0.3), ((7, 3, 1, 11), 0.5),
                                             ((1, 2, 9), 0.25), ((40,), 1.0)])
def test_per_category_top_fraction_is_exact(sizes, fraction):
    rng = random.Random(sum(sizes))
    groups, values = [], []
    for g, n in enumerate(sizes):
        for _ in range(n):
            groups.append(f"c{g}")
            values.append(round(rng.gauss(0, 1), 1))  # rounding makes ties
    order = list(range(len(values)))
    rng.shuffle(order)
    groups = [groups[i] for i in order]
    values = [values[i] for i in order]
    reasons = top(values, [True] * len(values), "score_r", fraction=fraction, groups=groups)
    for g, n in enumerate(sizes):
        idx = [i for i, x in enumerate(groups) if x == f"c{g}"]
        kept = [i for i in idx if reasons[i] is None]
        assert len(kept) == keep_count(n, fraction, None) == int(fraction * n + 0.5)
        dropped_max = max((values[i] for i in idx if reasons[i] is not None), default=None)
        if kept and dropped_max is not None:
            assert min(values[i] for i in kept) >= dropped_max  # the kept are the best
    dropped = [r for r in reasons if r is not None]
    assert len(dropped) == sum(n - int(fraction * n + 0.5) for n in sizes)
    assert all(r.startswith("top_fraction: score_r=") and "in category 'c" in r for r in dropped)


def test_global_top_k_and_nulls():
    vals = [0.1, None, 0.9, 0.5, 0.5, 0.3]
    reasons = top(vals, [True] * 6, "score_r", k=3)
    assert [r is None for r in reasons] == [False, False, True, True, True, False]
    assert reasons[1] == "score_r=null (no score)"
    assert reasons[0] == "top_k: score_r=0.1 ranks 5 of 5 (keeps 3)"
    # fewer rows than k: all kept
    assert top([1.0, 2.0], [True, True], "s", k=5) == [None, None]


def test_best_of_keeps_exactly_k_per_parent():
    rng = random.Random(3)
    parents, vals = [], []
    for p in range(30):
        for _ in range(rng.randint(1, 6)):
            parents.append(f"p{p}")
            vals.append(rng.choice([0.1, 0.2, 0.5, 0.7, 0.9]))  # many ties
    for k in (1, 2, 3):
        reasons = best_of(vals, [True] * len(vals), parents, "score_r", k=k)
        for p in set(parents):
            idx = [i for i, x in enumerate(parents) if x == p]
            kept = [i for i in idx if reasons[i] is None]
            assert len(kept) == min(k, len(idx))
            rest = [vals[i] for i in idx if reasons[i] is not None]
            if rest:
                assert min(vals[i] for i in kept) >= max(rest)
    r = best_of([0.2, 0.9, 0.4], [True] * 3, ["a", "a", "a"], "score_r", k=1)
    assert r == ["best_of: score_r=0.2 ranks 3 of 3 for parent 'a' (keeps 1)", None,
                 "best_of: score_r=0.4 ranks 2 of 3 for parent 'a' (keeps 1)"]


def test_best_of_margin_drops_ambiguous_groups():
    vals = [0.90, 0.85, 0.9, 0.5, 0.7]
    parents = ["a", "a", "b", "b", "c"]
    r = best_of(vals, [True] * 5, parents, "score_r", k=1, margin=0.1)
    assert r[0] == ("best_of_margin: score_r=0.9 beats runner-up 0.85 by 0.05 < 0.1 "
                    "for parent 'a'")
    assert r[1].startswith("best_of: score_r=0.85 ranks 2 of 2")
    assert r[2] is None and r[3] is not None  # clear winner in b
    assert r[4] is None  # a single sample has no runner-up


def test_best_of_ignores_rows_dropped_earlier_and_rows_without_parent():
    r = best_of([0.9, 0.5, 0.4, 0.3], [False, True, True, True], ["a", "a", None, None],
                "s", k=1)
    assert r == [None, None, None, None]  # row 0 was already dropped; no-parent rows stand alone


def test_normalize_zscore_and_rank_per_category():
    df = pl.DataFrame({
        "category": ["a", "a", "a", "b", "b", None],
        "score_r": [1.0, 2.0, 3.0, 10.0, 30.0, 5.0],
    })
    z = normalize(df, "score_r", "zscore")
    assert z.name == "score_r_z"
    assert z.to_list()[:5] == pytest.approx([-1.2247449, 0.0, 1.2247449, -1.0, 1.0])
    assert z[5] == 0.0  # one-row group
    rk = normalize(df, "score_r", "rank")
    assert rk.name == "score_r_rank" and rk.to_list() == [0.0, 0.5, 1.0, 0.0, 1.0, 1.0]
    with_null = pl.DataFrame({"category": ["a", "a", "a"], "score_r": [1.0, None, 3.0]})
    assert normalize(with_null, "score_r", "zscore").to_list() == [-1.0, None, 1.0]


def test_combined_is_the_row_mean_and_null_where_a_part_is_missing():
    from thresher.curate.filter.rules import combined

    df = pl.DataFrame({"a": [1.0, -3.0, None, float("nan")], "b": [3, -1, 2, 2], "c": [2.0, -2.0, 0.0, 0.0]})
    assert combined(df, "score_fit", ["a", "b"]).to_list() == [2.0, -2.0, None, None]
    assert combined(df, "score_fit", ["a", "b", "c"]).to_list() == [2.0, -2.0, None, None]
    assert combined(df, "score_fit", ["b", "c"]).name == "score_fit"
