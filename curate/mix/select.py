"""Row selection for the mix, in polars, on narrow columns only.

The selection works on a frame of row numbers, categories and (optionally) scores; the
conversations themselves are gathered afterwards for the selected rows only.

Within a category, rows are ordered best first: by the rank-by score (descending, missing
scores last) when one is given, then by a seeded random key, so that ties and unscored
selection are a stable random sample. A category whose ``taken`` exceeds its available rows
``a`` gives every row ``taken // a`` copies and the first ``taken % a`` rows one more: no row
ever appears more than ``max_repeats`` times, since ``taken <= a x max_repeats``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np
import polars as pl

from thresher.curate.mix.plan import CategoryPlan
from thresher.curate.mix.spec import MixSpec, Rule

ROW = "__row"
CAT = "__cat"
SCORE = "__score"
KEY = "__key"
COPY = "__copy"


def user_text() -> pl.Expr:
    """The user turns of ``messages`` joined by newlines (what category rules look at)."""
    return (
        pl.col("messages")
        .list.eval(
            pl.element().filter(pl.element().struct.field("role") == "user").struct.field("content")
        )
        .list.join("\n")
    )


def _rule_expr(rule: Rule) -> pl.Expr:
    conds: list[pl.Expr] = []
    if rule.regex is not None:
        conds.append(pl.col("__text").str.contains(rule.regex))
    if rule.keywords:
        words = "|".join(re.escape(k.strip()) for k in rule.keywords)
        conds.append(pl.col("__text").str.contains(rf"(?i)\b(?:{words})\b"))
    if rule.sources:
        conds.append(pl.col("source").is_in(list(rule.sources)))
    if not conds:  # a rule without a condition matches nothing (the spec check reports it)
        return pl.lit(False)
    expr = conds[0]
    for c in conds[1:]:
        expr = expr & c
    return expr.fill_null(False)


def category_expr(spec: MixSpec) -> pl.Expr:
    """The category of each row: the first matching rule, else ``fallback``; or, without
    rules, the spec's column with nulls set to ``fallback``.

    With rules, the frame needs a ``__text`` column (see :func:`user_text`) and ``source``.
    """
    fallback = pl.lit(spec.fallback, dtype=pl.String)
    if not spec.rules:
        return pl.col(spec.column).cast(pl.String).fill_null(fallback)
    expr = pl.when(_rule_expr(spec.rules[0])).then(pl.lit(spec.rules[0].category))
    for rule in spec.rules[1:]:
        expr = expr.when(_rule_expr(rule)).then(pl.lit(rule.category))
    return expr.otherwise(fallback)


def random_keys(n: int, seed: int, stream: int = 0) -> pl.Series:
    """``n`` seeded uniform keys (numpy PCG64: the same on every platform and version)."""
    rng = np.random.default_rng([seed, stream])
    return pl.Series(KEY, rng.random(n))


def eligible(frame: pl.DataFrame, spec: MixSpec, names: Sequence[str]) -> pl.DataFrame:
    """Rows of the categories ``names`` that pass their ``min_score`` (on ``__score``)."""
    mins = {c.name: c.min_score for c in spec.categories if c.min_score is not None}
    keep = pl.col(CAT).is_in(list(names))
    if mins:
        low = pl.col(CAT).replace_strict(
            list(mins), list(mins.values()), default=None, return_dtype=pl.Float64
        )
        # a NaN score is a missing score (polars orders NaN above every number)
        score = pl.col(SCORE).fill_nan(None)
        keep = keep & (low.is_null() | (score >= low).fill_null(False))
    return frame.filter(keep)


def select(frame: pl.DataFrame, plan: Sequence[CategoryPlan], *, ranked: bool) -> pl.DataFrame:
    """Pick ``taken`` rows per category from ``frame`` (columns ``__row``, ``__cat``,
    ``__key`` and, when ``ranked``, ``__score``), best first.

    Returns ``__row``, ``__cat`` and ``__copy`` (1-based copy number), one line per output
    row, in a canonical order (by rank, then category, then copy).
    """
    active = [p for p in plan if p.taken > 0]
    names = [p.name for p in active]
    take = np.array([p.taken for p in active], dtype=np.int64)
    avail = np.array([max(p.available, 1) for p in active], dtype=np.int64)
    code = (
        pl.col(CAT)
        .replace_strict(names, list(range(len(names))), default=None, return_dtype=pl.Int64)
        .alias("__code")
    )
    cols = [pl.col(ROW), code, pl.col(KEY)]
    if ranked:
        # missing scores become -inf so that they sort last without the (slow) nulls_last
        cols.append(
            pl.col(SCORE).cast(pl.Float64).fill_nan(None).fill_null(float("-inf")).alias(SCORE)
        )
    coded = frame.select(cols).filter(pl.col("__code").is_not_null())
    # Eager on purpose: sorting on one or two float keys and then numbering rows within each
    # category in that order is several times faster than a sort led by the category, and
    # than the same plan run lazily (measured with polars 2.1).
    by = [SCORE, KEY] if ranked else [KEY]
    order = coded.select(pl.arg_sort_by(by, descending=[True, False][: len(by)])).to_series()
    ordered = coded.select(ROW, "__code")[order]
    rank = (
        ordered.select(pl.int_range(pl.len(), dtype=pl.Int64).over("__code")).to_series().to_numpy()
    )
    codes = ordered["__code"].to_numpy()
    copies = take[codes] // avail[codes] + (rank < take[codes] % avail[codes])
    picked = copies > 0
    label = pl.Series(names, dtype=pl.String)
    chosen = pl.DataFrame(
        {
            ROW: ordered[ROW].to_numpy()[picked],
            CAT: label.gather(codes[picked]) if len(names) else pl.Series([], dtype=pl.String),
            "__copies": copies[picked],
        }
    )
    return chosen.select(
        ROW, CAT, pl.int_ranges(1, pl.col("__copies") + 1, dtype=pl.Int64).alias(COPY)
    ).explode(COPY)


def shuffle_order(n: int, seed: int, stream: int = 1) -> np.ndarray:
    """A seeded random permutation of ``range(n)`` (the output order)."""
    return np.random.default_rng([seed, stream]).permutation(n)


def shuffle(df: pl.DataFrame, seed: int, stream: int = 1) -> pl.DataFrame:
    """``df`` in a seeded random order."""
    return df[shuffle_order(df.height, seed, stream)]
