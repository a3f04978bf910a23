"""Pass rate per prompt and the filters on it (issue 21, section 3), on planted rows: prompts
whose 8 samples are 0/8, 3/8 and 8/8 correct."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl

from tests.conftest import invoke as _cli

PLANTED = {"none": 0, "some": 3, "all": 8}  # prompt -> correct samples out of 8


def _planted(path: Path, counts: dict[str, int] = PLANTED, n: int = 8) -> Path:
    """Generated-looking rows: 8 samples per prompt, parent_id, a reference of 7."""
    with open(path, "w", encoding="utf-8") as f:
        for pid, right in counts.items():
            for s in range(n):
                answer = "The answer is 7." if s < right else f"The answer is {10 + s}."
                f.write(json.dumps({"id": f"{pid}-{s}", "parent_id": pid, "sample_index": s, "reference": "7",
                                    "finish_reason": "stop", "messages": [
                                        {"role": "user", "content": f"Question {pid}?"},
                                        {"role": "assistant", "content": answer}]}) + "\n")
    return path


def test_passrate_on_every_sample_and_the_range_filter(tmp_path):
    rows = _planted(tmp_path / "gen.jsonl")
    r = _cli("curate", "score", rows, "--out", tmp_path / "score", "-s", "m=verify:math", "-s", "passrate:m")
    assert r.exit_code == 0, r.output
    assert "score_passrate: 24 scored, 0 without score; mean 0.4583, min 0, max 1" in r.output
    df = pl.read_parquet(tmp_path / "score" / "kept.parquet")
    rate = dict(zip(df["parent_id"], df["score_passrate"]))
    assert rate == {"none": 0.0, "some": 0.375, "all": 1.0}
    assert df.group_by("parent_id").agg(pl.col("score_passrate").n_unique())["score_passrate"].to_list() == [1, 1, 1]
    stats = json.loads((tmp_path / "score" / "stats.json").read_text())["scorers"]["passrate"]["per_prompt"]
    assert (stats["prompts"], stats["none_pass"], stats["all_pass"]) == (3, 1, 1)

    # hard but solvable: 0 < pass rate < 1 keeps exactly the 3/8 prompt, all 8 samples
    r = _cli("curate", "filter", tmp_path / "score", "--out", tmp_path / "hard",
             "--min-passrate", "0.1", "--max-passrate", "0.9")
    assert r.exit_code == 0, r.output
    kept = pl.read_parquet(tmp_path / "hard" / "kept.parquet")
    assert set(kept["parent_id"]) == {"some"} and kept.height == 8
    dropped = pl.read_parquet(tmp_path / "hard" / "dropped.parquet")
    assert dropped.group_by("drop_code").len().sort("drop_code").rows() == [
        ("passrate-above-max", 8), ("passrate-below-min", 8)]
    assert "passrate: score_passrate=0 < 0.1" in dropped["drop_reason"].to_list()

    # at least one correct: the passing samples of the prompts that have one (3 + 8)
    r = _cli("curate", "filter", tmp_path / "score", "--out", tmp_path / "pass", "--only-passing", "score_m")
    kept = pl.read_parquet(tmp_path / "pass" / "kept.parquet")
    assert kept.group_by("parent_id").len().sort("parent_id").rows() == [("all", 8), ("some", 3)]
    assert set(pl.read_parquet(tmp_path / "pass" / "dropped.parquet")["drop_code"]) == {"not-passing"}

    # best-of-n among the passing samples: one per solvable prompt
    r = _cli("curate", "filter", tmp_path / "score", "--out", tmp_path / "best", "--only-passing", "score_m",
             "--best-of", "1", "--best-by", "score_m")
    kept = pl.read_parquet(tmp_path / "best" / "kept.parquet")
    assert sorted(kept["parent_id"]) == ["all", "some"] and kept["score_m"].to_list() == [1.0, 1.0]


def test_inline_verifier_and_student_pass_rate_joined_by_parent_id(tmp_path):
    teacher = _planted(tmp_path / "teacher.jsonl")
    # the student solves "none" 0/4, "some" 4/4 (it already solves it), and never saw "all"
    student = _planted(tmp_path / "student.jsonl", {"none": 0, "some": 4}, n=4)
    r = _cli("curate", "score", teacher, "--out", tmp_path / "s", "-s", "m=verify:math", "-s", "passrate:verify:math",
             "-s", "student=passrate:m", "--passrate-from", f"student={student}")
    assert r.exit_code == 0, r.output
    df = pl.read_parquet(tmp_path / "s" / "kept.parquet")
    assert dict(zip(df["parent_id"], df["score_passrate"])) == {"none": 0.0, "some": 0.375, "all": 1.0}
    assert dict(zip(df["parent_id"], df["score_student"])) == {"none": 0.0, "some": 1.0, "all": None}
    assert df.filter(pl.col("parent_id") == "all")["student_error"][0] == f"prompt all has no samples in {student}"
    # drop the prompts the student already solves (a prompt it never answered has no rate: dropped too)
    r = _cli("curate", "filter", tmp_path / "s", "--out", tmp_path / "f", "--max-passrate", "0.5",
             "--passrate-by", "score_student")
    assert r.exit_code == 0, r.output
    assert set(pl.read_parquet(tmp_path / "f" / "kept.parquet")["parent_id"]) == {"none"}


def test_passrate_errors(tmp_path):
    rows = _planted(tmp_path / "gen.jsonl")
    r = _cli("curate", "score", rows, "--out", tmp_path / "o", "-s", "passrate:m")
    assert r.exit_code == 1
    assert r.output == (f"Error: {rows}: scorer passrate (passrate:m): no verify scorer or column 'm' "
                        "(score columns: none)\n")
    r = _cli("curate", "score", rows, "--out", tmp_path / "o", "-s", "passrate")
    assert r.exit_code == 1 and "passrate needs what passes, e.g. passrate:m" in r.output
    r = _cli("curate", "score", rows, "--out", tmp_path / "o", "-s", "m=verify:math", "--passrate-from", "m=x.jsonl")
    assert r.exit_code == 1 and "passrate_from.m: not a passrate scorer (give --scorer m=passrate:...)" in r.output
    r = _cli("curate", "score", rows, "--out", tmp_path / "o", "-s", "s=passrate:verify:math",
             "--passrate-from", f"s={tmp_path / 'nope.jsonl'}")
    assert r.exit_code == 1 and r.output == f"Error: passrate_from.s: no such file or folder: {tmp_path / 'nope.jsonl'}\n"
    r = _cli("curate", "filter", rows, "--out", tmp_path / "f", "--min-passrate", "0.8", "--max-passrate", "0.2")
    assert r.exit_code == 1 and "min_passrate, max_passrate: the range is empty (0.8 > 0.2)" in r.output
