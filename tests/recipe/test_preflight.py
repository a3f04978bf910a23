"""`recipe validate` and `run` find, before any stage runs, a model that is not there and a
stage that reads a column no earlier stage produces."""

from __future__ import annotations

import functools
import json

import pytest
from click.testing import CliRunner

from tests.conftest import ROW, one_error_line
from thresher.cli.main import cli


def _recipe(tmp_path, rows, stages: str):
    p = tmp_path / "r.yaml"
    p.write_text(f"name: pf\ninputs:\n  - path: {rows}\nstages:\n{stages}")
    return p


_error = functools.partial(one_error_line, status=1)


def test_missing_train_base_is_caught_before_any_stage(tmp_path, rows):
    recipe = _recipe(tmp_path, rows, "  - filter: {min_chars: 1}\n  - train: {base: /no/such/dir}\n")
    want = (f"Error: {recipe}: stages[1].train.base: model '/no/such/dir' not found (not a model folder, "
            "a .gguf file or a hub name 'org/name')")
    assert _error(CliRunner().invoke(cli, ["recipe", "validate", str(recipe)])) == want
    run = tmp_path / "run"
    assert _error(CliRunner().invoke(cli, ["run", str(recipe), "--out", str(run)])) == want
    assert not any(run.glob("01-*")), "a stage ran before the check"


@pytest.mark.parametrize("stage, option", [
    ("{scorers: ['loglik:/no/model']}", "scorers"),
    ("{teacher: ./nope, backend: transformers}", "teacher"),
])
def test_missing_scorer_or_teacher_model(tmp_path, rows, stage, option):
    name = "score" if option == "scorers" else "generate"
    recipe = _recipe(tmp_path, rows, f"  - {name}: {stage}\n")
    msg = _error(CliRunner().invoke(cli, ["recipe", "validate", str(recipe)]))
    assert msg.startswith(f"Error: {recipe}: stages[0].{name}.{option}: model ") and "not found" in msg


def test_hub_model_offline_is_an_error_for_run_and_a_warning_for_validate(tmp_path, rows, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    recipe = _recipe(tmp_path, rows, "  - train: {base: someorg/not-cached-model}\n")
    res = CliRunner().invoke(cli, ["recipe", "validate", str(recipe)])
    assert res.exit_code == 0 and "warning: stages[0].train.base: model 'someorg/not-cached-model' is not in the " \
        "local cache, and HF_HUB_OFFLINE is set" in res.output
    msg = _error(CliRunner().invoke(cli, ["run", str(recipe), "--out", str(tmp_path / "run")]))
    assert "stages[0].train.base: model 'someorg/not-cached-model' is not in the local cache" in msg


def test_column_read_before_the_stage_that_writes_it(tmp_path, rows):
    recipe = _recipe(tmp_path, rows, "  - filter: {best_of: 1, best_by: score_loglik}\n"
                                     "  - score: {scorers: [loglik]}\n")
    msg = _error(CliRunner().invoke(cli, ["recipe", "validate", str(recipe)]))
    assert ("stages[0].filter.best_by: reads column 'score_loglik', which only the later stage stages[1].score "
            "produces (move that stage before this one)") in msg
    assert "stages[0].filter.best_of: reads column 'parent_id', which neither the inputs nor an earlier stage produce" in msg


def test_columns_from_inputs_and_normalised_scores_are_fine(tmp_path):
    src = tmp_path / "scored.jsonl"
    src.write_text(json.dumps({**ROW, "score_reward": 1.0}) + "\n")
    recipe = _recipe(tmp_path, src, "  - filter: {min_scores: {score_reward: 0.5}}\n  - score: {scorers: [loglik]}\n"
                                    "  - filter: {normalize: zscore, min_scores: {score_loglik_z: -1}}\n"
                                    "  - dedup: {keep_by: score_loglik}\n")
    res = CliRunner().invoke(cli, ["recipe", "validate", str(recipe)])
    assert res.exit_code == 0, res.output


def test_shipped_recipes_still_validate():
    from pathlib import Path

    for r in sorted((Path(__file__).resolve().parents[2] / "recipes").glob("*.yaml")):
        res = CliRunner().invoke(cli, ["recipe", "validate", str(r)])
        assert res.exit_code == 0, (r.name, res.output)
