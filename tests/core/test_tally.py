"""The counts behind every stage's common stats (thresher.tally): parts add up to the whole."""

from __future__ import annotations

import polars as pl

from thresher.stage import StageStats, dropped_frame
from thresher.tally import MAX_REASONS, NO_CATEGORY, Tally


def _tables() -> tuple[pl.DataFrame, pl.DataFrame]:
    kept = pl.DataFrame({"id": ["a", "b", "c", "d"], "category": ["x", None, "y", "x"]})
    rows = pl.DataFrame({"id": ["e", "f", "g", "h", "i"], "category": ["x", "y", "y", None, "x"]})
    dropped = dropped_frame(rows, "filter", pl.Series(["too short: 3 < 5", "too short: 1 < 5", "echo of prompt",
                                                       "keyboard mash 'xqzt'", "too short: 2 < 5"]),
                            pl.Series(["too-short", "too-short", "echo", "junk", "too-short"]))
    read = pl.DataFrame({"id": [None], "drop_stage": ["read"], "drop_code": ["bad-json"],
                         "drop_reason": ["in.jsonl:line 3: not JSON"]}, schema_overrides={"id": pl.String})
    return kept, pl.concat([read, dropped], how="diagonal_relaxed")


def test_a_tally_counts_rows_categories_codes_and_rules():
    kept, dropped = _tables()
    t = Tally.of("filter", kept, dropped)
    assert (t.kept, t.dropped, t.rejected_on_read) == (4, 6, 1)
    stats = t.stats()
    assert list(stats["kept_by_category"].items()) == [("x", 2), ("y", 1), (NO_CATEGORY, 1)]
    assert stats["drop_codes"] == {"too-short": 3, "echo": 1, "junk": 1, "read:bad-json": 1}
    assert list(stats["drop_reasons"].items())[0] == ("too short", 3)
    assert stats["drop_reasons"]["read: bad-json"] == 1


def test_parts_add_up_to_the_whole():
    kept, dropped = _tables()
    whole = Tally.of("filter", kept, dropped)
    summed = Tally.total([Tally.of("filter", kept.head(1), dropped.head(2)),
                          Tally.of("filter", kept.tail(3), dropped.tail(4))])
    assert summed.stats() == whole.stats()
    assert Tally.from_dict(summed.to_dict()) == summed
    assert StageStats.build("filter", kept, dropped, None, 0.0, {}) == StageStats.of_tally("filter", whole, None, 0.0, {})


def test_reasons_past_the_cap_keep_the_frequent_ones():
    t = Tally(reasons={f"r{i}": 1 for i in range(MAX_REASONS)})
    t.add(Tally(reasons={"common": 1000, "extra": 1}))
    assert len(t.reasons) <= MAX_REASONS and t.reasons["common"] == 1000
    assert list(t.stats()["drop_reasons"])[0] == "common"


def test_a_grouped_projection_counts_its_weights():
    from thresher.tally import WEIGHT

    kept, dropped = _tables()
    cols = ["category", "drop_stage", "drop_code", "drop_reason"]
    grouped = dropped.select(cols).group_by(cols).agg(pl.len().alias(WEIGHT))
    kept_grouped = kept.group_by("category").agg(pl.len().alias(WEIGHT))
    assert Tally.of("filter", kept_grouped, grouped) == Tally.of("filter", kept, dropped)
