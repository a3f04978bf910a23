"""A recipe stage may be fed by another stage's rows (``input``) and name other stages' rows
in its options (score's ``passrate_from``): the verified-distillation branches (issue 21)."""

from __future__ import annotations

import polars as pl
import pytest

from tests.curate.test_passrate import _planted
from thresher.errors import ConfigError
from thresher.recipe.loading import load_recipe
from thresher.recipe.runner import lineage_generate, run_recipe
from thresher.recipe.spec import parse_recipe


def _recipe(stages: list, path: str = "rows.jsonl") -> dict:
    return {"name": "refs", "inputs": [{"path": path}], "stages": stages}


def test_stage_refs_are_validated(tmp_path):
    rows = _planted(tmp_path / "rows.jsonl")
    data = _recipe([
        {"score": {"scorers": ["m=verify:math"]}},
        {"score": {"input": "score", "scorers": ["s=passrate:m"], "passrate_from": {"s": "filter#1"}}},
        {"filter": {"input": "stages[3]"}},
        {"train": {"base": "smollm2"}},
        {"filter": {"input": "train"}},
        {"filter": {"input": ""}},
    ], str(rows))
    with pytest.raises(ConfigError) as e:
        parse_recipe(data)
    assert e.value.problems == [
        "stages[5].filter.input: expected a stage such as inputs, generate#1 or stages[0], got ''",
        "stages[1].score.input: 'score': the recipe has 2 score stages; say which with score#1 ... "
        "(expected inputs, NAME, NAME#N or stages[I])",
        "stages[1].score.passrate_from.s: 'filter#1': names stages[2], which does not run before this stage",
        "stages[2].filter.input: 'stages[3]': names stages[3], which does not run before this stage "
        "(expected inputs, NAME, NAME#N or stages[I])",
        "stages[4].filter.input: 'train': stages[3] (train) writes no rows (data stages: inputs, generate, "
        "score, filter, dedup, decontam, mix, select) (expected inputs, NAME, NAME#N or stages[I])",
    ]


def test_input_and_passrate_from_name_other_stages(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    _planted(tmp_path / "rows.jsonl")
    _planted(tmp_path / "student.jsonl", {"none": 0, "some": 4}, n=4)
    recipe = parse_recipe(_recipe([
        {"score": {"scorers": ["m=verify:math", "passrate:m"]}},                      # 01: every sample
        {"filter": {"only_passing": "score_m", "drop_truncated": False}},             # 02: the right ones
        {"score": {"input": "score#1", "scorers": ["m=verify:math", "again=passrate:m", "student=passrate:m"],
                   "passrate_from": {"again": "score#1", "student": "student.jsonl"}}},  # 03: fed by 01
        {"filter": {"max_passrate": 0.5, "passrate_by": "score_student"}},
    ]))
    summary = run_recipe(recipe, tmp_path / "run")
    assert [s["rows_in"] for s in summary["stages"]] == [24, 24, 24, 24, 24]
    df = pl.read_parquet(tmp_path / "run" / "03-score" / "kept.parquet")
    assert df.height == 24 and df["score_again"].to_list() == df["score_passrate"].to_list()
    assert dict(zip(df["parent_id"], df["score_student"])) == {"none": 0.0, "some": 1.0, "all": None}
    assert set(pl.read_parquet(summary["dataset"])["parent_id"]) == {"none"}
    again = load_recipe(tmp_path / "run" / "recipe.yaml")  # the resolved recipe keeps the references
    assert again.stages[2].input == "score#1" and again.stages[2].config.passrate_from["again"] == "score#1"
    # why follows the final dataset's lineage: 02-filter is a side branch
    from thresher.report.why import why

    assert why(str(tmp_path / "run"), "some-3").splitlines()[:4] == [
        "row some-3 was dropped by stage 04-filter: passrate: score_student=1 > 0.5",
        "  prompt:   'Question some?'", "  response: 'The answer is 13.'", "  reference: '7'"]
    # export keeps the reference with the rows
    from click.testing import CliRunner

    from thresher.cli.main import cli

    r = CliRunner().invoke(cli, ["export", str(tmp_path / "run"), "--to", str(tmp_path / "exp")])
    assert r.exit_code == 0, r.output
    train = pl.read_parquet(next((tmp_path / "exp" / "data").glob("train-*.parquet")))
    assert train["reference"].to_list() == ["7"] * 8 and "score_student" in train.columns


def test_eval_baseline_follows_the_train_stage_lineage(tmp_path):
    """With a student side branch (a second generate stage), the random-subset baseline and the
    answers' options come from the generate stage the train stage descends from."""
    (tmp_path / "p.jsonl").write_text('{"prompt": "q"}\n')
    recipe = parse_recipe(_recipe([
        {"generate": {"n": 4, "temperature": 0.9}},                                   # teacher
        {"generate": {"input": "inputs", "n": 2}},                                    # student
        {"score": {"input": "generate#1", "scorers": ["length"]}},
        {"train": {"base": "smollm2"}},
    ], str(tmp_path / "p.jsonl")))
    assert lineage_generate(recipe.stages[3], recipe).index == 0
