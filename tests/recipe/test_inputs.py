"""The inputs step: chatterbot reader, files with source/category, repeated ids, held-out split."""

from __future__ import annotations

import json

import polars as pl
import pytest

from thresher.errors import ThresherError
from thresher.recipe import inputs_step as step
from thresher.recipe.spec import InputSpec


def test_chatterbot_prompts_are_unique_and_interleaved():
    recs = step.read_chatterbot("english", ("food", "science"))
    cats = [r["category"] for r in recs]
    assert cats[:4] == ["food", "science", "food", "science"]
    prompts = [(r["category"], r["messages"][0]["content"]) for r in recs]
    assert len(prompts) == len(set(prompts)) and all(len(r["messages"]) == 1 for r in recs)
    pairs = step.read_chatterbot("english", ("food",), responses=True)
    assert all([m["role"] for m in r["messages"]][:2] == ["user", "assistant"] for r in pairs)
    assert len(pairs) > len([c for c in cats if c == "food"])  # repeated questions with other answers
    with pytest.raises(ThresherError, match="unknown categories nope"):
        step.read_chatterbot("english", ("nope",))


def test_inputs_step_concats_fills_and_holds_out(tmp_path):
    f = tmp_path / "mine.jsonl"
    rows = [{"messages": [{"role": "user", "content": f"question {i}"}, {"role": "assistant", "content": "a"}]}
            for i in range(6)]
    rows.append(rows[0])  # a repeated id
    f.write_text("\n".join(json.dumps(r) for r in rows[:6]) + "\n")
    g = tmp_path / "again.jsonl"
    g.write_text(json.dumps(rows[0]) + "\n")
    cfg = step.Config(inputs=(InputSpec("chatterbot", "english", categories=("food", "science"), limit=10),
                              InputSpec("path", str(f), source="mine", category="misc"),
                              InputSpec("path", str(g))), holdout=4, seed=5)
    res = step.run(step.stage_inputs(cfg), tmp_path / "00-inputs", cfg)
    kept = pl.read_parquet(tmp_path / "00-inputs/kept.parquet")
    held = pl.read_parquet(tmp_path / "00-inputs/heldout.parquet")
    dropped = pl.read_parquet(tmp_path / "00-inputs/dropped.parquet")
    assert held.height == 4 and kept.height == 10 + 6 - 4
    assert set(held["category"]) == {"food", "science", "misc"}  # spread over categories
    assert not set(held["id"]) & set(kept["id"])
    mine = kept.filter(pl.col("category") == "misc")
    assert set(mine["source"]) == {"mine"}
    assert dropped["drop_reason"].to_list().count("repeated id from an earlier input") == 1
    assert res.stats["heldout"] == 4 and res.stats["repeated_ids"] == 1
    # same inputs and config: reused; another seed: another held-out set
    assert step.run(step.stage_inputs(cfg), tmp_path / "00-inputs", cfg).reused
    cfg2 = step.Config(inputs=cfg.inputs, holdout=4, seed=6)
    step.run(step.stage_inputs(cfg2), tmp_path / "b", cfg2)
    assert set(pl.read_parquet(tmp_path / "b/heldout.parquet")["id"]) != set(held["id"])


def test_holdout_larger_than_data(tmp_path):
    cfg = step.Config(inputs=(InputSpec("chatterbot", "english", categories=("humor",)),), holdout=50)
    with pytest.raises(ThresherError, match="holdout: 50 held-out prompts asked for but the inputs have only"):
        step.run(step.stage_inputs(cfg), tmp_path / "x", cfg)
