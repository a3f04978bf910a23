"""What a stage's stats count of its rows, as a :class:`Tally` that adds up over parts.

``stats.json``'s common block (rows kept and dropped, by category, by drop code, by reason)
is a sum over rows, so a stage that streams counts each part as it writes it and adds the
tallies up: the stats need no second look at the rows and no per-row memory. A stage that
holds its whole table counts it in one go (:meth:`Tally.of`); both give the same figures.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import polars as pl

#: the key of rows without a category in ``kept_by_category`` / ``dropped_by_category``
NO_CATEGORY = "(none)"
#: ``drop_reasons`` in stats.json lists this many rules, the most frequent first
TOP_REASONS = 50
#: distinct reasons a tally holds at most; past it, the rarest are forgotten (reasons that
#: quote a value, e.g. ``keyboard mash 'xqzt'``, may be distinct per row): the top ones
#: stay exact in practice, a reason seen once per part may be undercounted
MAX_REASONS = 20_000
#: a projection's optional weight column: each line stands for this many rows (a projection
#: grouped on a worker, e.g. the Ray mix's, so that the driver holds no per-row frame)
WEIGHT = "__rows"


def _n(df: pl.DataFrame) -> pl.Expr:
    """The rows a group stands for: its lines, or the sum of their :data:`WEIGHT`."""
    return pl.col(WEIGHT).sum().alias("len") if WEIGHT in df.columns else pl.len()


def rows_of(df: pl.DataFrame) -> int:
    """The rows ``df`` stands for (its height, or the sum of its :data:`WEIGHT` column)."""
    return int(df[WEIGHT].sum()) if WEIGHT in df.columns else df.height


def _as_strings(counts: pl.DataFrame, *columns: str) -> pl.DataFrame:
    """``counts`` (a small grouped frame) with its Categorical ``columns`` as String: a
    streamed stage's projections hold them Categorical."""
    return counts.with_columns([pl.col(c).cast(pl.String) for c in columns
                                if isinstance(counts.schema[c], pl.Categorical)])


def category_counts(df: pl.DataFrame | None) -> dict[str, int]:
    """Rows of ``df`` by ``category`` (:data:`NO_CATEGORY` for null; empty without the column)."""
    if df is None or df.height == 0 or "category" not in df.columns:
        return {}
    counts = _as_strings(df.group_by("category").agg(_n(df)), "category")
    return {str(c) if c is not None else NO_CATEGORY: int(n) for c, n in counts.iter_rows()}


def reason_counts(dropped: pl.DataFrame) -> dict[str, int]:
    """Dropped rows by rule: the reason up to its first value, id or detail (rows rejected on
    read by their code, as their reason starts with the file name)."""
    if dropped.height == 0:
        return {}
    read = pl.col("drop_stage") == "read"
    distinct = dropped.group_by(pl.when(read).then(pl.format("read: {}", pl.col("drop_code")))
                                .otherwise(pl.col("drop_reason").cast(pl.String))
                                .fill_null("(no reason)").alias("drop_reason")).agg(_n(dropped))
    rules = (distinct.with_columns(pl.col("drop_reason")
                                   .str.replace(r"^(read: .*)$|\s+of\s.*$|[=<>:(\[].*$", "$1")
                                   .str.strip_chars())
             .group_by("drop_reason").agg(pl.col("len").sum()))
    return {str(r) or "(no reason)": int(n) for r, n in rules.iter_rows()}


def code_counts(dropped: pl.DataFrame, stage: str) -> dict[str, int]:
    """Dropped rows by ``drop_code`` (``read:<code>`` for rows another stage, e.g. the reader, dropped)."""
    if dropped.height == 0:
        return {}
    by = _as_strings(dropped.group_by(pl.col("drop_stage").fill_null(stage), pl.col("drop_code").fill_null("dropped"))
                     .agg(_n(dropped)), "drop_stage", "drop_code")
    return {code if st == stage else f"{st}:{code}": int(n) for st, code, n in by.iter_rows()}


def _add(into: dict[str, int], more: dict[str, int]) -> None:
    for k, n in more.items():
        into[k] = into.get(k, 0) + n


def _by_count(counts: dict[str, int], top: int | None = None) -> dict[str, int]:
    ordered = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    return dict(ordered[:top] if top is not None else ordered)


@dataclass
class Tally:
    """The counts behind a stage's common stats, for one part or a whole stage; parts add up
    (:meth:`add`) and travel as JSON (:meth:`to_dict`, in a part's marker)."""

    kept: int = 0
    """Rows kept."""
    dropped: int = 0
    """Rows dropped (rows rejected on read included)."""
    rejected_on_read: int = 0
    """Rows the reader dropped (``drop_stage = "read"``)."""
    kept_by_category: dict[str, int] = field(default_factory=dict)
    dropped_by_category: dict[str, int] = field(default_factory=dict)
    reasons: dict[str, int] = field(default_factory=dict)
    """Dropped rows by rule (:func:`reason_counts`), every rule (stats.json lists the top ones)."""
    codes: dict[str, int] = field(default_factory=dict)
    """Dropped rows by drop code (:func:`code_counts`)."""

    @classmethod
    def of(cls, stage: str, kept: pl.DataFrame, dropped: pl.DataFrame) -> Tally:
        """The tally of ``kept`` and ``dropped`` (the latter with the drop columns) of ``stage``;
        either may be grouped, with a :data:`WEIGHT` column counting the rows of each line."""
        n_read = rows_of(dropped.filter(pl.col("drop_stage") == "read")) if dropped.height else 0
        return cls(kept=rows_of(kept), dropped=rows_of(dropped), rejected_on_read=n_read,
                   kept_by_category=category_counts(kept), dropped_by_category=category_counts(dropped),
                   reasons=reason_counts(dropped), codes=code_counts(dropped, stage))

    def add(self, other: Tally) -> Tally:
        """Add ``other``'s counts to this tally (in place); returns it."""
        self.kept += other.kept
        self.dropped += other.dropped
        self.rejected_on_read += other.rejected_on_read
        for mine, theirs in ((self.kept_by_category, other.kept_by_category),
                             (self.dropped_by_category, other.dropped_by_category),
                             (self.reasons, other.reasons), (self.codes, other.codes)):
            _add(mine, theirs)
        if len(self.reasons) > MAX_REASONS:
            self.reasons = _by_count(self.reasons, MAX_REASONS // 2)
        return self

    @classmethod
    def total(cls, tallies: list[Tally]) -> Tally:
        """The sum of ``tallies``."""
        out = cls()
        for t in tallies:
            out.add(t)
        return out

    def stats(self) -> dict[str, Any]:
        """The common block of stats.json (rows_in aside): categories by name (no category
        last), reasons and codes most frequent first."""
        def by_name(counts: dict[str, int]) -> dict[str, int]:
            return dict(sorted(counts.items(), key=lambda kv: (kv[0] == NO_CATEGORY, kv[0])))

        return {"rows_out": self.kept, "rows_dropped": self.dropped,
                "rows_rejected_on_read": self.rejected_on_read,
                "kept_by_category": by_name(self.kept_by_category),
                "dropped_by_category": by_name(self.dropped_by_category),
                "drop_reasons": _by_count(self.reasons, TOP_REASONS), "drop_codes": _by_count(self.codes)}

    def to_dict(self) -> dict[str, Any]:
        """The tally as JSON-ready data (:meth:`from_dict` reads it back)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Tally:
        """Read back what :meth:`to_dict` wrote."""
        return cls(**{k: data[k] for k in cls.__dataclass_fields__ if k in data})
