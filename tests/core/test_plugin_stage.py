"""A new stage is its own folder plus one registry line (issue 23): the example stage of
CONTRIBUTING.md, installed as a plug-in package (a temporary folder with a dist-info, no file
of thresher edited), is a command, a recipe stage checked by preflight, runs, and is
reported by ``report`` and ``why``."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest
import yaml
from click.testing import CliRunner

from tests.plugin_stage import contributing_example, turns_plugin  # noqa: F401 - a fixture
from thresher.cli.main import cli

pytestmark = pytest.mark.usefixtures("turns_plugin")  # the example stage, installed as a plug-in


def _invoke(*args) -> object:
    return CliRunner().invoke(cli, [str(a) for a in args])


def _conv(rid: str, turns: int, category: str = "chat") -> dict:
    msgs = [{"role": "user", "content": f"Question {rid}?"}]
    for t in range(turns):
        msgs += [{"role": "assistant", "content": f"Answer {t} to {rid}."},
                 {"role": "user", "content": f"And then {t}?"}]
    if turns:
        msgs = msgs[:-1]
    return {"id": rid, "messages": msgs, "category": category}


def write_rows(path: Path) -> Path:
    """Rows with 0 (a bare prompt), 1, 2 and 3 assistant turns."""
    rows = [_conv("t1", 1), _conv("t0", 0), _conv("t2", 2), _conv("t3", 3), _conv("u1", 1)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_the_example_is_one_folder_and_one_registry_line():
    files, entries = contributing_example()
    assert sorted(files) == ["turns_stage/cli.py", "turns_stage/stage.py"]
    assert entries == {"turns": "turns_stage.stage:TurnsStage"}
    lines = sum(len(body.splitlines()) for body in files.values())
    assert 80 <= lines <= 130, lines


def test_the_plugin_stage_is_a_command():
    res = _invoke("--help")
    assert res.exit_code == 0, res.output
    assert "  turns " in res.output and "Count assistant turns; drop rows with too few or too many." in res.output
    res = _invoke("turns", "--help")
    assert res.exit_code == 0, res.output
    for opt in ("--max-turns", "--min-turns", "--on-bad-rows", "--out", "--executor"):
        assert opt in res.output


def test_the_plugin_stage_runs_from_its_command(tmp_path):
    src = write_rows(tmp_path / "rows.jsonl")
    res = _invoke("turns", src, "--max-turns", "2", "--out", tmp_path / "t")
    assert res.exit_code == 0, res.output
    assert "turns: 3 of 5 rows kept" in res.output
    kept = pl.read_parquet(tmp_path / "t" / "kept.parquet")
    assert kept["id"].to_list() == ["t1", "t2", "u1"]
    assert kept["n_turns"].to_list() == [1, 2, 1]
    dropped = pl.read_parquet(tmp_path / "t" / "dropped.parquet")
    assert dict(zip(dropped["id"], dropped["drop_code"])) == {"t0": "too-few-turns", "t3": "too-many-turns"}
    stats = json.loads((tmp_path / "t" / "stats.json").read_text())
    assert stats["turns"] == {"1": 2, "2": 1} and stats["drop_codes"] == {"too-few-turns": 1, "too-many-turns": 1}
    bad = _invoke("turns", src, "--min-turns", "3", "--max-turns", "2", "--out", tmp_path / "u")
    assert bad.exit_code == 1
    assert bad.output == "Error: max_turns: must be >= min_turns (3), got 2\n"


def _recipe(tmp_path: Path, stages: list) -> Path:
    src = write_rows(tmp_path / "rows.jsonl")
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump({"name": "plugin", "seed": 0, "inputs": [{"path": str(src)}],
                                    "stages": stages}, sort_keys=False))
    return path


def test_a_recipe_with_the_plugin_stage_is_checked_up_front(tmp_path):
    ok = _recipe(tmp_path, [{"turns": {"max_turns": 2}}, {"filter": {"top_by": "n_turns", "top_k": 2}}])
    res = _invoke("recipe", "validate", ok)
    assert res.exit_code == 0, res.output
    late = _recipe(tmp_path, [{"filter": {"top_by": "n_turns", "top_k": 2}}, {"turns": {"max_turns": 2}}])
    res = _invoke("recipe", "validate", late)
    assert res.exit_code == 1
    assert ("stages[0].filter.top_by: reads column 'n_turns', which only the later stage stages[1].turns "
            "produces (move that stage before this one)") in res.output
    typo = _recipe(tmp_path, [{"turns": {"max_turn": 2}}])
    res = _invoke("recipe", "validate", typo)
    assert res.exit_code == 1
    assert "stages[0].turns.max_turn: unknown key (did you mean 'max_turns'?)" in res.output


def test_a_recipe_runs_the_plugin_stage_and_report_and_why_show_it(tmp_path):
    recipe = _recipe(tmp_path, [{"turns": {"max_turns": 2}}, {"filter": {"top_by": "n_turns", "top_k": 2}},
                                {"report": {}}])
    run = tmp_path / "run"
    res = _invoke("run", recipe, "--out", run)
    assert res.exit_code == 0, res.output
    assert (run / "01-turns" / "kept.parquet").exists()
    summary = json.loads((run / "summary.json").read_text())
    assert summary["dataset"].endswith("02-filter/kept.parquet") and summary["dataset_rows"] == 2
    assert "01-turns" in (run / "report.md").read_text()
    res = _invoke("report", run)
    assert res.exit_code == 0, res.output
    assert "01-turns" in (run / "report.html").read_text()
    res = _invoke("why", run, "t3")
    assert res.exit_code == 0, res.output
    assert res.output.startswith("row t3 was dropped by stage 01-turns: 3 assistant turns (allowed 1-2)")
