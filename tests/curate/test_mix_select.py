"""Plan and selection invariants over many random specs (in memory, no files)."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from thresher.curate.mix import select as sel
from thresher.curate.mix.plan import largest_remainder, make_plan
from thresher.curate.mix.spec import load_spec


def test_largest_remainder_sums_exactly():
    got = largest_remainder({"a": 1 / 3 * 100, "b": 1 / 3 * 100, "c": 1 / 3 * 100}, 100)
    assert sum(got.values()) == 100 and sorted(got.values()) == [33, 33, 34]


def _frame(sizes: dict[str, int], rng: np.random.Generator) -> pl.DataFrame:
    cats = [c for c, n in sizes.items() for _ in range(n)]
    n = len(cats)
    return pl.DataFrame(
        {
            sel.ROW: np.arange(n, dtype=np.int64),
            sel.CAT: rng.permutation(np.array(cats, dtype=object)).tolist(),
            sel.SCORE: rng.random(n),
        }
    ).with_columns(sel.random_keys(n, 0))


@pytest.mark.parametrize("case", range(40))
def test_random_specs_respect_targets_and_max_repeats(case):
    rng = np.random.default_rng(case)
    names = [f"c{i}" for i in range(int(rng.integers(1, 6)))]
    sizes = {c: int(rng.integers(0, 60)) for c in names}
    repeats = int(rng.integers(1, 4))
    mode = ["redistribute", "keep"][case % 2]
    if case % 3 == 0:
        cats = {c: {"count": int(rng.integers(0, 120))} for c in names}
        total = None
    else:
        w = rng.dirichlet(np.ones(len(names)))
        cats = {c: {"weight": float(x)} for c, x in zip(names, w, strict=True)}
        cats[names[-1]]["weight"] = 1 - sum(v["weight"] for v in list(cats.values())[:-1])
        total = int(rng.integers(1, 200)) if case % 3 == 1 else None
    raw = {"max_repeats": repeats, "on_shortfall": mode, "categories": cats}
    if total:
        raw["total"] = total
    spec = load_spec(raw)
    frame = _frame(sizes, rng)
    available = dict(frame.group_by(sel.CAT).len().iter_rows())
    plan = make_plan(spec, available)
    chosen = sel.select(frame, plan, ranked=bool(case % 2))
    got = dict(chosen.group_by(sel.CAT).len().iter_rows())
    for p in plan:
        assert got.get(p.name, 0) == p.taken  # exactly what the plan says
        assert p.taken <= p.available * p.max_repeats
        if mode == "keep" or p.kind == "count":
            assert p.taken == min(p.wanted, p.capacity)
    if mode == "redistribute" and case % 3 != 0:
        # weights only: the shortfall goes wherever there is room, so the mix is as large
        # as wanted unless the categories that take part cannot hold it
        room = sum(p.capacity for p in plan if p.wanted > 0)
        assert sum(p.taken for p in plan) == min(sum(p.wanted for p in plan), room)
    copies = chosen.group_by(sel.ROW).agg(pl.len(), pl.col(sel.COPY).max().alias("top"))
    if copies.height:
        assert copies["len"].max() <= repeats  # max_repeats never exceeded
        assert (copies["len"] == copies["top"]).all()  # copies are numbered 1..k


def test_duplicate_ids_flags_every_later_occurrence_exactly():
    from thresher.curate.mix.stage import _duplicate_ids

    ids = pl.Series(["a", "b", "a", "c", "b", "a", "d"])
    assert _duplicate_ids(ids).to_list() == [False, False, True, False, True, True, False]
    assert not _duplicate_ids(pl.Series([str(i) for i in range(1000)])).any()


def test_missing_and_nan_scores_fail_min_score_and_rank_last():
    spec = load_spec({"categories": {"a": {"count": 3, "min_score": 0.1}}})
    frame = pl.DataFrame(
        {
            sel.ROW: [0, 1, 2, 3, 4],
            sel.CAT: ["a"] * 5,
            sel.SCORE: [0.5, None, float("nan"), 0.05, 0.2],
        }
    ).with_columns(sel.random_keys(5, 0))
    assert sel.eligible(frame, spec, ["a"])[sel.ROW].to_list() == [0, 4]
    spec = load_spec({"categories": {"a": {"count": 3}}})
    plan = make_plan(spec, {"a": 5})
    assert sel.select(frame, plan, ranked=True)[sel.ROW].to_list() == [0, 4, 3]
