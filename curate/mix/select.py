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
            pl.element()
            .filter(pl.element().struct.field("role") == "user")
            .struct.field("content")
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
    lf = frame.filter(pl.col(CAT).is_in(list(names)))
    if mins:
        table = pl.DataFrame(
            {CAT: list(mins), "__min": list(mins.values())},
            schema={CAT: pl.String, "__min": pl.Float64},
        )
        lf = (
            lf.join(table, on=CAT, how="left", maintain_order="left")
            .filter(pl.col("__min").is_null() | (pl.col(SCORE) >= pl.col("__min")).fill_null(False))
            .drop("__min")
        )
    return lf


def select(frame: pl.DataFrame, plan: Sequence[CategoryPlan], *, ranked: bool) -> pl.DataFrame:
    """Pick ``taken`` rows per category from ``frame`` (columns ``__row``, ``__cat``,
    ``__key`` and, when ``ranked``, ``__score``), best first.

    Returns ``__row``, ``__cat`` and ``__copy`` (1-based copy number), one line per output
    row, in a canonical order (by rank, then category, then copy).
    """
    names = [p.name for p in plan if p.taken > 0]
    targets = pl.DataFrame(
        {
            CAT: names,
            "__take": [p.taken for p in plan if p.taken > 0],
            "__avail": [p.available for p in plan if p.taken > 0],
        },
        schema={CAT: pl.String, "__take": pl.Int64, "__avail": pl.Int64},
    ).with_row_index("__code")
    # Eager on purpose: sorting on one or two float keys and then numbering rows within each
    # category in that order is several times faster than a sort led by the category, and
    # much faster than the same plan run lazily (measured with polars 2.1). Missing scores
    # become -inf so that they sort last without the (slow) nulls_last option.
    cols = [ROW, "__code", "__take", "__avail", KEY]
    if ranked:
        cols.append(pl.col(SCORE).cast(pl.Float64).fill_nan(None).fill_null(float("-inf")).alias(SCORE))
    joined = frame.join(targets, on=CAT, how="inner").select(cols)
    by = [SCORE, KEY] if ranked else [KEY]
    order = joined.select(pl.arg_sort_by(by, descending=[True, False][: len(by)])).to_series()
    ordered = joined[order]
    full = pl.col("__take") // pl.col("__avail")
    extra = (pl.col("__rank") < (pl.col("__take") % pl.col("__avail"))).cast(pl.Int64)
    chosen = (
        ordered.with_columns(pl.int_range(pl.len(), dtype=pl.Int64).over("__code").alias("__rank"))
        .with_columns((full + extra).alias("__copies"))
        .filter(pl.col("__copies") > 0)
        .select(
            ROW,
            pl.col("__code").replace_strict(list(range(len(names))), names, return_dtype=pl.String).alias(CAT),
            pl.int_ranges(1, pl.col("__copies") + 1, dtype=pl.Int64).alias(COPY),
        )
        .explode(COPY)
    )
    return chosen


def shuffle(df: pl.DataFrame, seed: int, stream: int = 1) -> pl.DataFrame:
    """``df`` in a seeded random order."""
    rng = np.random.default_rng([seed, stream])
    return df[rng.permutation(df.height)]
