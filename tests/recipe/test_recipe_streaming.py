"""A data recipe that streams (issue 24): inputs, filter, score, filter, dedup, decontam and
report on parts give what the whole-table run gives."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from tests.conftest import invoke
from thresher.executors.stream import MIN_BYTES_ENV, PART_ROWS_ENV
from thresher.io import parts

WORDS = "alpha beta gamma delta the sea is blue seven".split()
STAGES = ("00-inputs", "01-filter", "02-score", "03-filter", "04-dedup", "05-decontam")


def _inputs(tmp: Path) -> None:
    rng = random.Random(1)
    with open(tmp / "a.jsonl", "w") as fh:
        for i in range(300):
            q = " ".join(rng.choice(WORDS) for _ in range(rng.randint(1, 9)))
            a = " ".join(rng.choice(WORDS) for _ in range(rng.randint(0, 12)))
            fh.write(json.dumps({"id": f"a{i}", "messages": [{"role": "user", "content": f"{q} {i}?"},
                                                             {"role": "assistant", "content": a}],
                                 "category": rng.choice("xyz")}) + "\n")
        fh.write("{oops\n")
    with open(tmp / "b.jsonl", "w") as fh:  # ids a250..a299 repeat the first input's
        for i in range(250, 400):
            fh.write(json.dumps({"id": f"a{i}", "messages": [{"role": "user", "content": f"q {i}"},
                                                             {"role": "assistant", "content": f"some answer {i}."}]}) + "\n")


RECIPE = """name: streamtest
inputs:
  - path: {tmp}/a.jsonl
    on_bad_rows: skip
  - path: {tmp}/b.jsonl
    limit: 120
    source: bee
stages:
  - filter: {{min_chars: 12}}
  - score: {{scorers: [length]}}
  - filter: {{normalize: robust, min_scores: {{score_length_rz: -1.0}}}}
  - dedup: {{"on": prompt}}
  - decontam: {{against: [mmlu]}}
  - report: {{}}
"""


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("stream-recipe")
    _inputs(tmp)
    (tmp / "r.yaml").write_text(RECIPE.format(tmp=tmp))
    whole = invoke("run", str(tmp / "r.yaml"), "--out", str(tmp / "whole"))
    assert whole.exit_code == 0, whole.output
    streamed = invoke("run", str(tmp / "r.yaml"), "--out", str(tmp / "streamed"),
                      env={MIN_BYTES_ENV: "0", PART_ROWS_ENV: "40"})
    assert streamed.exit_code == 0, streamed.output
    return tmp / "whole", tmp / "streamed"


@pytest.mark.parametrize("stage", STAGES)
def test_every_stage_keeps_and_drops_the_same_rows(runs, stage):
    whole, streamed = runs
    for name in ("kept.parquet", "dropped.parquet"):
        a, b = parts.read(whole / stage / name), parts.read(streamed / stage / name)
        assert sorted(a["id"].drop_nulls()) == sorted(b["id"].drop_nulls()), (stage, name)
        assert a.height == b.height
    sa, sb = (json.loads((r / stage / "stats.json").read_text()) for r in runs)
    for key in ("rows_in", "rows_out", "rows_dropped", "drop_codes", "kept_by_category", "dropped_by_category"):
        assert sa[key] == sb[key], (stage, key)


def test_row_stages_and_the_inputs_wrote_folders_of_parts(runs):
    _, streamed = runs
    for stage in ("00-inputs", "01-filter", "02-score", "03-filter", "05-decontam"):
        assert parts.is_dataset(streamed / stage / "kept.parquet"), stage
        assert "streamed" in json.loads((streamed / stage / "stats.json").read_text())
    inputs = json.loads((streamed / "00-inputs" / "stats.json").read_text())
    assert inputs["repeated_ids"] == 50 and inputs["rows_rejected_on_read"] == 1


def test_the_report_and_why_read_the_parts(runs):
    _, streamed = runs
    assert "04-dedup" in (streamed / "report.md").read_text()
    dropped = parts.read(streamed / "01-filter" / "dropped.parquet")
    rid = dropped.filter(dropped["drop_stage"] == "filter")["id"][0]
    res = invoke("why", str(streamed), rid)
    assert res.exit_code == 0 and "filter" in res.output, res.output


def test_stages_that_decide_nothing_at_finalize_stream_in_one_pass(runs):
    whole, streamed = runs
    passes = {stage: json.loads((streamed / stage / "stats.json").read_text())["streamed"]["passes"]
              for stage in ("01-filter", "02-score", "03-filter", "05-decontam")}
    assert passes == {"01-filter": 1, "02-score": 1, "03-filter": 2, "05-decontam": 1}
    sa, sb = (json.loads((r / "02-score" / "stats.json").read_text()) for r in runs)
    summary = [{k: v for k, v in r["scorers"]["length"].items() if k != "cached"} for r in (sa, sb)]
    assert summary[0] == summary[1]  # summarised from the lean projection (the second run hits the cache)
    sa, sb = (json.loads((r / "01-filter" / "stats.json").read_text()) for r in runs)
    assert sa["drop_reasons"] == sb["drop_reasons"] and sa["dropped_by_rule"] == sb["dropped_by_rule"]
