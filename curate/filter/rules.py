"""Score rules: thresholds, top fraction / top k, per-category normalisation, best-of-n.

Every function takes the table, the ``alive`` mask (rows no earlier rule dropped; rules only
look at those) and returns a list with one drop reason (or None) per row. A reason is a
:class:`Reason`: the human text (``score_loglik=-3.1 < -2.5``, ``top_fraction: ...``,
``best_of: ...``) carrying its ``drop_code`` (``below-min``, ``top-fraction``, ``best-of`` ...),
written here with the text, never read back from it. Rows with a null score are dropped with
``<column>=null`` (code ``no-score``): a missing score is never treated as good or bad by a number.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable, Sequence

import polars as pl

NORMALIZE_SUFFIX = {"zscore": "_z", "rank": "_rank", "robust": "_rz"}
#: 1.4826 * MAD estimates the standard deviation of normal data
MAD_SCALE = 1.4826


class Reason(str):
    """A drop reason's text (it compares and prints as the text) with its ``drop_code``."""

    __slots__ = ("code",)

    def __new__(cls, text: str, code: str) -> Reason:
        obj = super().__new__(cls, text)
        obj.code = code
        return obj

    def __reduce__(self):  # pickles (a Ray worker, a process pool) with its code
        return Reason, (str(self), self.code)


#: drop_code of a row whose score column is null
NO_SCORE = "no-score"


def fmt(value: float) -> str:
    """Short, readable number for reasons (4 significant digits)."""
    return f"{value:.4g}"


def threshold(
    values: Sequence[float | None], alive: Sequence[bool], column: str, limit: float, op: str
) -> list[str | None]:
    """Drop rows whose value is below (``op="min"``) or above (``op="max"``) ``limit``."""
    out: list[str | None] = [None] * len(values)
    for i, v in enumerate(values):
        if not alive[i]:
            continue
        if v is None or (isinstance(v, float) and math.isnan(v)):
            out[i] = Reason(f"{column}=null (no score)", NO_SCORE)
        elif op == "min" and v < limit:
            out[i] = Reason(f"{column}={fmt(v)} < {fmt(limit)}", "below-min")
        elif op == "max" and v > limit:
            out[i] = Reason(f"{column}={fmt(v)} > {fmt(limit)}", "above-max")
    return out


def normalize(df: pl.DataFrame, column: str, method: str, by: str = "category", shrink: float = 20.0) -> pl.Series:
    """Per-group normalised copy of ``column``: z-score, robust z-score, or rank scaled to
    [0, 1] (1 = best).

    Z-scores use the group's population standard deviation (a constant group gives 0). The
    robust z-score is ``(x - median) / (1.4826 * MAD)`` with the group's median and MAD shrunk
    toward the global ones: each is ``(n * group + shrink * global) / (n + shrink)`` for a group
    of n scored rows, so a 3-row category is judged mostly by the whole table, a 500-row one by
    itself. Ranks average ties and a one-row group gets 1. Nulls stay null and do not count.
    """
    col = pl.col(column).cast(pl.Float64)
    group = pl.col(by).fill_null("\x00(none)") if by in df.columns else pl.lit("all")
    tmp = df.select(col.alias("v"), group.alias("g"))
    if method == "robust":
        return tmp.select(_robust(shrink).alias(column + NORMALIZE_SUFFIX[method]))[column + NORMALIZE_SUFFIX[method]]
    if method == "zscore":
        mean = pl.col("v").mean().over("g")
        std = pl.col("v").std(ddof=0).over("g")
        expr = pl.when(std > 0).then((pl.col("v") - mean) / std).otherwise(
            pl.when(pl.col("v").is_not_null()).then(0.0)
        )
    elif method == "rank":
        n = pl.col("v").count().over("g")
        rank = pl.col("v").rank("average").over("g")
        expr = pl.when(n > 1).then((rank - 1) / (n - 1)).otherwise(
            pl.when(pl.col("v").is_not_null()).then(1.0)
        )
    else:
        raise ValueError(f"unknown normalisation {method!r}")
    return tmp.select(expr.cast(pl.Float64).alias(column + NORMALIZE_SUFFIX[method]))[
        column + NORMALIZE_SUFFIX[method]
    ]


def combined(df: pl.DataFrame, name: str, columns: Sequence[str]) -> pl.Series:
    """Column ``name``: the row-wise mean of ``columns`` (null where any of them is null or NaN).

    Meant for normalised scores (``score_relevance_rz``, ``score_gain_rz``): two signals that
    each separate part of the bad rows, with partly independent errors, put a good row low on
    both less often than on either, so one cut on their mean loses fewer good rows per bad row
    caught than a cut on either alone.
    """
    vals = [pl.col(c).cast(pl.Float64) for c in columns]
    missing = pl.any_horizontal([v.is_null() | v.is_nan() for v in vals])
    mean = pl.sum_horizontal(vals) / len(vals)
    return df.select(pl.when(missing).then(None).otherwise(mean).alias(name))[name]


def _robust(shrink: float) -> pl.Expr:
    v = pl.col("v")
    n = v.count().over("g").cast(pl.Float64)
    g_med = v.median()
    g_mad = (v - g_med).abs().median()
    med = v.median().over("g")
    mad = (v - med).abs().median().over("g")
    s_med = (n * med + shrink * g_med) / (n + shrink)
    s_mad = (n * mad + shrink * g_mad) / (n + shrink)
    scale = MAD_SCALE * s_mad
    return pl.when(scale > 0).then((v - s_med) / scale).otherwise(pl.when(v.is_not_null()).then(0.0))


def keep_count(n: int, fraction: float | None, k: int | None) -> int:
    """Rows a group keeps: ``round(fraction * n)`` (halves up), or ``min(k, n)``."""
    if fraction is not None:
        return min(n, math.floor(fraction * n + 0.5))
    assert k is not None
    return min(n, k)


def _order(idx: list[int], values: Sequence[float | None]) -> list[int]:
    """Indices by descending value; ties keep input order (so counts are exact)."""
    return sorted(idx, key=lambda i: (-values[i], i))  # type: ignore[operator]


def _scored_groups(values: Sequence[float | None], alive: Sequence[bool], column: str,
                   key: Callable[[int], object]) -> tuple[list[str | None], dict[object, list[int]]]:
    """The rows still in play grouped by ``key(row)``; a row without a score gets its reason."""
    out: list[str | None] = [None] * len(values)
    groups: dict[object, list[int]] = defaultdict(list)
    for i in range(len(values)):
        if not alive[i]:
            continue
        if values[i] is None or math.isnan(values[i]):  # type: ignore[arg-type]
            out[i] = Reason(f"{column}=null (no score)", NO_SCORE)
            continue
        groups[key(i)].append(i)
    return out, groups


def top(
    values: Sequence[float | None],
    alive: Sequence[bool],
    column: str,
    *,
    fraction: float | None = None,
    k: int | None = None,
    groups: Sequence[object] | None = None,
) -> list[str | None]:
    """Keep the top ``fraction`` (or ``k``) rows by ``column``, globally or per group."""
    rule = "top_fraction" if fraction is not None else "top_k"
    out, buckets = _scored_groups(values, alive, column, lambda i: groups[i] if groups is not None else None)
    for g, idx in buckets.items():
        keep = keep_count(len(idx), fraction, k)
        where = f" in category {g!r}" if groups is not None else ""
        for rank, i in enumerate(_order(idx, values), start=1):
            if rank > keep:
                out[i] = Reason(
                    f"{rule}: {column}={fmt(values[i])} ranks {rank} of {len(idx)}{where} "  # type: ignore[arg-type]
                    f"(keeps {keep})", rule.replace("_", "-"))
    return out


def best_of(
    values: Sequence[float | None],
    alive: Sequence[bool],
    parents: Sequence[object],
    column: str,
    *,
    k: int = 1,
    margin: float = 0.0,
) -> list[str | None]:
    """Among rows sharing a parent, keep the top ``k`` by ``column``.

    With ``margin > 0`` the group keeps its top ``k`` only when the k-th beats the runner-up
    (the (k+1)-th) by at least ``margin``; otherwise the whole group is dropped as ambiguous.
    A row without a parent is its own group.
    """
    out, groups = _scored_groups(values, alive, column,
                                 lambda i: parents[i] if parents[i] is not None else ("\x00row", i))
    for parent, idx in groups.items():
        ranked = _order(idx, values)
        label = parent if not isinstance(parent, tuple) else "(none)"
        for rank, i in enumerate(ranked, start=1):
            if rank > k:
                out[i] = Reason(
                    f"best_of: {column}={fmt(values[i])} ranks {rank} of {len(ranked)} "  # type: ignore[arg-type]
                    f"for parent {label!r} (keeps {k})", "best-of")
        if margin > 0 and len(ranked) > k:
            kth, runner = values[ranked[k - 1]], values[ranked[k]]
            gap = kth - runner  # type: ignore[operator]
            if gap < margin:
                for i in ranked[:k]:
                    out[i] = Reason(
                        f"best_of_margin: {column}={fmt(values[i])} beats runner-up "  # type: ignore[arg-type]
                        f"{fmt(runner)} by {fmt(gap)} < {fmt(margin)} for parent {label!r}",  # type: ignore[arg-type]
                        "best-of-margin")
    return out
