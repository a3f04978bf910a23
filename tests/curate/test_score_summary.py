"""Score summaries in blocks: the same answers as sorting the whole column, however it is chunked."""

from __future__ import annotations

import math

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import thresher.curate.score.summary as S
from thresher.curate.score.summary import QUANTILES, order_stats, summarize_column, summarize_files


def _reference(values: list) -> dict:
    """The whole column sorted at once (what the summaries computed before they streamed)."""
    vals = np.sort(np.array([v for v in values if v is not None], dtype=np.float64))
    n = vals.size
    if not n:
        return {}
    try:
        mean = math.fsum(vals.tolist()) / n
    except OverflowError:  # a partial sum past the largest float: no exact mean to compare
        mean = math.inf
    return {"min": float(vals[0]), "max": float(vals[-1]), "mean": mean,
            "quantiles": {str(q): float(vals[min(n - 1, int(q * n))]) for q in QUANTILES}}


def _chunked(values: list, cuts: int) -> pl.Series:
    s = pl.Series("v", values, dtype=pl.Float64)
    step = max(1, len(values) // max(cuts, 1))
    return pl.concat([s.slice(i, step) for i in range(0, len(values), step)], rechunk=False)


def _same(a: float, b: float) -> bool:
    return a == b or (math.isnan(a) and math.isnan(b))


finite = st.floats(allow_nan=False, allow_infinity=False, width=64)
column = st.lists(st.one_of(finite, st.none(), st.sampled_from([0.0, -0.0, 1.0, 1.0, 2.5])), min_size=1, max_size=80)


@settings(max_examples=200, deadline=None)
@given(column, st.integers(1, 5), st.booleans())
def test_summaries_match_the_sorted_column_in_any_chunking(values, cuts, tiny):
    old = S.BLOCK, S.GATHER
    if tiny:
        S.BLOCK, S.GATHER = 3, 2  # many blocks, and buckets refined to the last 16 bits
    try:
        got = summarize_column(_chunked(values, cuts), pl.Series("e", [None if v is not None else "why" for v in values]))
    finally:
        S.BLOCK, S.GATHER = old
    want = _reference(values)
    assert got["scored"] == sum(v is not None for v in values) and got["errors"] == len(values) - got["scored"]
    if not want:
        assert "mean" not in got
        return
    assert _same(got["min"], want["min"]) and _same(got["max"], want["max"])
    assert all(_same(got["quantiles"][q], want["quantiles"][q]) for q in want["quantiles"])
    if math.isfinite(want["mean"]):
        assert got["mean"] == want["mean"]  # an exact sum: the chunking cannot change it


def test_chunking_does_not_change_a_single_bit_of_the_summary():
    rng = np.random.default_rng(3)
    values = (rng.normal(size=5000) * 1e3).tolist()
    errors = pl.Series("e", [None] * len(values), dtype=pl.String)
    whole = summarize_column(pl.Series(values), errors)
    assert all(summarize_column(_chunked(values, cuts), errors) == whole for cuts in (2, 7, 50))


def test_nan_and_infinities_sort_as_numpy_does():
    values = [1.0, float("nan"), -float("inf"), 3.0, float("inf"), 2.0]
    got = summarize_column(pl.Series(values), pl.Series("e", [None] * 6, dtype=pl.String))
    assert got["min"] == -math.inf and math.isnan(got["max"]) and math.isnan(got["std"])
    assert got["histogram"]["counts"] == [1] + [0] * 9 + [1] + [0] * 8 + [1]  # the finite values only


@pytest.mark.parametrize("gather", [1 << 20, 4])
def test_order_statistics_of_many_equal_values(gather, monkeypatch):
    monkeypatch.setattr(S, "GATHER", gather)
    vals = np.concatenate([np.full(1000, 7.0), np.arange(10, dtype=np.float64)])
    got = order_stats(lambda: iter(np.array_split(vals, 4)), [0, 5, 500, 1009])
    assert got == [float(x) for x in np.sort(vals)[[0, 5, 500, 1009]]]


def test_no_block_holds_a_copy_of_the_column():
    values = pl.concat([pl.Series(np.arange(300_000, dtype=np.float64))] * 3, rechunk=False)
    blocks = list(S.blocks_of(values)())
    assert max(b.size for b in blocks) <= S.BLOCK
    assert all(not b.flags.owndata for b in blocks)  # views of the column's chunks


@settings(max_examples=60, deadline=None)
@given(column, st.integers(1, 5), st.booleans())
def test_a_summary_of_part_files_is_the_summary_of_the_column(tmp_path_factory, values, cuts, tiny):
    folder = tmp_path_factory.mktemp("parts")
    errors = pl.Series("e", [None if v is not None else ("" if i % 3 else f"why {i}") for i, v in enumerate(values)],
                       dtype=pl.String)
    frame = pl.DataFrame({"v": pl.Series(values, dtype=pl.Float64), "e": errors})
    step = max(1, len(values) // cuts)
    files = []
    for k, i in enumerate(range(0, len(values), step)):
        files.append(folder / f"part-{k:05d}.parquet")
        frame.slice(i, step).write_parquet(files[-1])
    old = S.BLOCK, S.GATHER
    if tiny:
        S.BLOCK, S.GATHER = 3, 2
    try:
        got = summarize_files(files, "v", "e")
        want = summarize_column(frame["v"], frame["e"])
    finally:
        S.BLOCK, S.GATHER = old
    assert got.keys() == want.keys()
    for key in want:
        assert got[key] == want[key] or (key in ("mean", "std") and math.isnan(got[key]) and math.isnan(want[key])), key
