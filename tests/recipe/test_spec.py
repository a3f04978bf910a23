"""Recipe parsing and validation: one error listing every problem, --set overrides."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from tests.recipe.conftest import fake_recipe
from thresher.cli.main import cli
from thresher.errors import ConfigError, ThresherError
from thresher.recipe.loading import apply_overrides, load_recipe
from thresher.recipe.spec import parse_recipe


def test_fake_recipe_parses_with_defaults_and_seed(fake_stages, write_recipe):
    rec = load_recipe(write_recipe(fake_recipe()))
    assert [s.name for s in rec.stages] == ["generate", "score", "filter", "dedup", "train", "evaluate", "report"]
    assert rec.stages[0].config.n == 3 and rec.stages[0].config.temperature == 0.7  # default filled
    assert rec.stages[0].config.seed == 3  # the recipe seed reaches stages with a seed option
    assert rec.stages[3].folder == "04-dedup" and rec.stages[3].where == "stages[3].dedup"
    resolved = rec.to_dict()
    assert resolved["stages"][0]["generate"]["max_new_tokens"] == 32
    assert resolved["inputs"][0] == {"chatterbot": "english", "categories": ["food", "science", "history"], "limit": 24}


def test_bad_recipe_lists_every_problem_in_one_error(fake_stages, write_recipe, tmp_path):
    data = fake_recipe(colour="red")
    data["inputs"].append({"path": str(tmp_path / "missing.jsonl")})
    data["stages"] = [
        {"generate": {"n": "four"}},  # wrong type
        {"score": {"scorerz": ["loglik"]}},  # unknown key
        {"dedupe": {}},  # unknown stage
        {"dedup": {"threshold": 1.5}},  # out of range
        {"train": {"max_steps": 2}},  # no base model
    ]
    path = write_recipe(data)
    with pytest.raises(ConfigError) as info:
        load_recipe(path)
    problems = info.value.problems
    expected = [
        "colour: unknown key",
        f"inputs[1].path: file not found: {tmp_path / 'missing.jsonl'}",
        "stages[0].generate.n: expected an integer, got 'four'",
        "stages[1].score.scorerz: unknown key (did you mean 'scorers'?)",
        "stages[2]: unknown stage 'dedupe' (did you mean 'dedup'?",
        "stages[3].dedup.threshold: must be in (0, 1]",
        "stages[4].train.base: required (the student's base model)",
    ]
    for e in expected:
        assert any(p.startswith(e) for p in problems), (e, problems)
    assert len(problems) == len(expected)
    # through the CLI: one line, exit 1, no traceback
    res = CliRunner().invoke(cli, ["recipe", "validate", str(path)])
    assert res.exit_code == 1
    assert res.output.startswith(f"Error: {path}: 7 problems: ")
    assert "Traceback" not in res.output and res.output.count("\n") == 1


def test_structural_problems(fake_stages, write_recipe):
    with pytest.raises(ConfigError) as info:
        parse_recipe({"seed": "x", "inputs": [], "stages": [{"generate": {}, "score": {}}, 7,
                                                             {"evaluate": {}}]})
    msg = str(info.value)
    for part in ("name: required", "seed: expected an integer, got 'x'", "inputs: expected a non-empty list",
                 "stages[0]: expected one stage name", "stages[1]: expected one stage name",
                 "stages[2].evaluate: needs a train stage before it (or models to compare)",
                 "stages[2].evaluate: needs held-out prompts"):
        assert part in msg, (part, msg)


def test_input_problems(fake_stages, tmp_path):
    data = fake_recipe(inputs=[{"chatterbot": "klingon"}, {"hub": "org/x", "path": "a"},
                               {"chatterbot": "english", "categories": ["food", "nope"], "limit": 0},
                               {"path": "x.jsonl", "sorce": "me"}])
    with pytest.raises(ConfigError) as info:
        parse_recipe(data)
    msg = str(info.value)
    assert "inputs[0].chatterbot: no language 'klingon' in chatterbot-corpus" in msg
    assert "inputs[1]: needs exactly one of path, hub, chatterbot (got path, hub)" in msg
    assert "inputs[2].limit: expected a positive integer, got 0" in msg
    assert "inputs[3].sorce: unknown key (did you mean 'source'?)" in msg


def test_set_overrides(fake_stages, write_recipe):
    path = write_recipe(fake_recipe())
    rec = load_recipe(path, ["dedup.threshold=0.5", "generate.n=2", "seed=9", "train.base=other",
                             "stages[2].min_len=0", "evaluate.train.max_steps=1", "inputs[0].limit=7"])
    assert rec.inputs[0].limit == 7
    assert rec.stage("dedup").config.threshold == 0.5
    assert rec.stage("generate").config.n == 2 and rec.seed == 9
    assert rec.stage("train").config.base == "other"
    assert rec.stage("filter").config.min_len == 0.0
    assert rec.stage("evaluate").config.train == {"max_steps": 1}
    # overridden values are validated like the file's
    with pytest.raises(ConfigError) as info:
        load_recipe(path, ["dedup.threshold=2", "generate.n=[1]"])
    assert info.value.problems == ["stages[0].generate.n: expected an integer, got [1]",
                                   "stages[3].dedup.threshold: must be in (0, 1]"]


def test_set_override_errors(fake_stages):
    data = fake_recipe(stages=[{"filter": {}}, {"filter": {}}])
    with pytest.raises(ConfigError) as info:
        apply_overrides(data, ["filter.min_len=3", "nothing.x=1", "colour=1", "novalue"])
    msg = str(info.value)
    assert "the recipe has 2 'filter' stages; say which with filter#1, filter#2" in msg
    assert "--set nothing.x=1: no stage 'nothing' in the recipe" in msg
    assert "--set colour=1: unknown top-level key 'colour'" in msg
    assert "--set novalue: expected KEY=VALUE" in msg
    out = apply_overrides(data, ["filter#2.min_len=3"])
    assert out["stages"] == [{"filter": {}}, {"filter": {"min_len": 3}}]
    assert data["stages"][1] == {"filter": {}}  # the input is not modified


def test_recipe_file_errors(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nstages: [\n")
    with pytest.raises(ThresherError, match=r"bad.yaml:\d+: invalid YAML"):
        load_recipe(bad)
    (tmp_path / "list.yaml").write_text("- a\n")
    with pytest.raises(ThresherError, match="a recipe must be a YAML mapping"):
        load_recipe(tmp_path / "list.yaml")
    with pytest.raises(ThresherError, match="recipe file not found"):
        load_recipe(tmp_path / "nope.yaml")


def test_validate_cli_ok_and_show(fake_stages, write_recipe):
    path = write_recipe(fake_recipe())
    res = CliRunner().invoke(cli, ["recipe", "validate", str(path), "--set", "generate.n=5"])
    assert res.exit_code == 0, res.output
    assert "ok: recipe 'fake'" in res.output and "7 stages" in res.output
    res = CliRunner().invoke(cli, ["recipe", "show", str(path), "--set", "generate.n=5"])
    assert res.exit_code == 0 and "n: 5" in res.output


SHIPPED = sorted((Path(__file__).resolve().parents[2] / "recipes").glob("*.yaml"))


@pytest.mark.parametrize("path", SHIPPED, ids=[p.name for p in SHIPPED])
def test_every_shipped_recipe_validates(path):
    text = path.read_text()
    assert text.startswith("#") and "thresher run" in text.split("\n\n")[0]  # header says how to run it
    rec = load_recipe(path, check_files=True)
    assert rec.stages and rec.stage("report") is not None
    res = CliRunner().invoke(cli, ["recipe", "validate", str(path)])
    assert res.exit_code == 0, res.output


def test_shipped_recipes_exist():
    assert {p.name for p in SHIPPED} >= {"quickstart.yaml", "filter-noisy.yaml", "distill-vllm.yaml"}


def test_shipped_recipe_by_name():
    res = CliRunner().invoke(cli, ["recipe", "validate", "quickstart"])
    assert res.exit_code == 0, res.output
    assert "ok: recipe 'quickstart'" in res.output


def test_bad_recipe_with_the_real_stages(write_recipe, tmp_path):
    data = {
        "name": "bad",
        "inputs": [{"path": str(tmp_path / "missing.jsonl")}],
        "stages": [
            {"generate": {"n": "four", "temprature": 0.5}},
            {"score": {"scorers": ["loglik"]}},
            {"dedupe": {}},
            {"dedup": {"threshold": 1.5}},
            {"train": {"max_steps": "ten"}},
            {"report": {}},
        ],
    }
    res = CliRunner().invoke(cli, ["recipe", "validate", str(write_recipe(data))])
    assert res.exit_code == 1 and res.output.count("\n") == 1 and "Traceback" not in res.output
    for part in ("inputs[0].path: file not found", "stages[0].generate.n: expected an integer, got 'four'",
                 "stages[0].generate.temprature: unknown key (did you mean 'temperature'?)",
                 "stages[2]: unknown stage 'dedupe'", "stages[3].dedup.threshold:",
                 "stages[4].train.base: required (the student's base model)",
                 "stages[4].train.max_steps: expected an integer, got 'ten'"):
        assert part in res.output, (part, res.output)


def test_recipe_top_level_problems_are_all_collected(fake_stages):
    with pytest.raises(ConfigError) as e:
        parse_recipe({"name": "", "seed": "x", "holdout": -1, "executor": "spark", "descripton": "d",
                      "inputs": [{"path": "a.jsonl"}], "stages": [{"generate": {"n": "four"}}]},
                     check_files=False)
    assert e.value.problems == [
        "descripton: unknown key (did you mean 'description'?)", "seed: expected an integer, got 'x'",
        "executor: must be one of 'local' | 'ray', got 'spark'",
        "name: expected a non-empty string, got ''", "holdout: expected a non-negative integer, got -1",
        "stages[0].generate.n: expected an integer, got 'four'",
    ]
