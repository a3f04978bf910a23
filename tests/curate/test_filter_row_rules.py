"""The filter's row rules are one table (issue 23): a new rule is one entry, its drop code is
written there (never guessed from the reason), and the stage runs whatever the table holds."""

from __future__ import annotations

import dataclasses
import pickle
from dataclasses import dataclass

import polars as pl
import pytest

from thresher.curate.filter import row_rules
from thresher.curate.filter.rules import Reason
from thresher.curate.filter.stage import Config, drop_code, run
from thresher.schema import make_rows


def test_every_rule_names_a_config_field_and_a_distinct_code():
    fields = {f.name for f in dataclasses.fields(Config)}
    assert [r.name for r in row_rules.RULES if r.name not in fields] == []
    codes = [r.code for r in row_rules.RULES]
    assert len(codes) == len(set(codes))
    # the defaults turn on exactly the two default rules
    assert [r.name for r in row_rules.active(Config())] == ["drop_empty", "drop_truncated"]


def test_a_code_is_a_slug_and_a_reason_without_a_rule_has_no_code():
    with pytest.raises(ValueError, match="drop code 'Too Many' is not a slug"):
        row_rules.Rule("max_turns", "Too Many", lambda c: True, lambda row, c: None)
    with pytest.raises(ValueError, match="carries no drop code"):
        drop_code("turns=3 > 2")  # text alone: no guessing ("above-max" before issue 23)
    reason = pickle.loads(pickle.dumps(Reason("score_x=1 < 2", "below-min")))
    assert reason == "score_x=1 < 2" and drop_code(reason) == "below-min"


@dataclass(frozen=True)
class TurnsConfig(Config):
    max_turns: int | None = None
    """Drop conversations with more than this many messages."""


def _max_turns(row, c):
    n = len(row.messages)
    return f"turns={n} > {c.max_turns}" if n > c.max_turns else None


def test_a_new_rule_is_one_table_entry_and_its_code_reaches_dropped_parquet(tmp_path, monkeypatch):
    rule = row_rules.Rule("max_turns", "too-many-turns", lambda c: getattr(c, "max_turns", None) is not None,
                          _max_turns, problems=lambda c: ["max_turns: must be >= 1"]
                          if c.max_turns is not None and c.max_turns < 1 else [])
    monkeypatch.setattr(row_rules, "RULES", (*row_rules.RULES, rule))
    long = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello there."},
            {"role": "user", "content": "And?"}, {"role": "assistant", "content": "And more."}]
    src = tmp_path / "in.parquet"
    make_rows([
        {"id": "short", "messages": long[:2]},
        {"id": "long", "messages": long},
        {"id": "empty", "messages": [long[0], {"role": "assistant", "content": " "}]},
    ]).write_parquet(src)
    assert TurnsConfig(max_turns=0).check() == ["max_turns: must be >= 1"]
    result = run([src], tmp_path / "out", TurnsConfig(max_turns=2))
    kept = pl.read_parquet(result.kept_path)
    dropped = pl.read_parquet(result.dropped_path)
    assert kept["id"].to_list() == ["short"]
    got = {r["id"]: (r["drop_code"], r["drop_reason"]) for r in dropped.iter_rows(named=True)}
    assert got == {"long": ("too-many-turns", "turns=4 > 2"), "empty": ("empty", "empty: no response text")}
    assert result.stats["drop_codes"] == {"empty": 1, "too-many-turns": 1}
