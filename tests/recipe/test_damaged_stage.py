"""A damaged finished stage (issue 15): report names it; ``thresher run`` recomputes it."""

from __future__ import annotations

import json

from click.testing import CliRunner

from tests.recipe.conftest import fake_recipe
from thresher.cli.main import cli


def test_truncated_kept_parquet_is_named_by_report_and_recomputed_by_run(fake_stages, write_recipe, tmp_path):
    recipe = write_recipe(fake_recipe())
    out = tmp_path / "run"
    assert CliRunner().invoke(cli, ["run", str(recipe), "--out", str(out)]).exit_code == 0
    kept = out / "03-filter" / "kept.parquet"
    size = kept.stat().st_size
    kept.write_bytes(kept.read_bytes()[:100])
    res = CliRunner().invoke(cli, ["report", str(out), "--out", str(tmp_path / "rep")])
    assert res.exit_code == 1 and "Traceback" not in res.output
    assert res.output == (f"Error: stage 03-filter of {out} is damaged: kept.parquet is damaged (100 bytes, "
                          f"the manifest says {size}); rerun the stage (thresher run recomputes it)\n")
    res = CliRunner().invoke(cli, ["run", str(recipe), "--out", str(out)])
    assert res.exit_code == 0, res.output
    status = {r["folder"]: r["status"] for r in json.loads((out / "summary.json").read_text())["stages"]}
    assert status["03-filter"] == "ran" and status["02-score"] == "reused"
    assert kept.stat().st_size == size
    assert CliRunner().invoke(cli, ["report", str(out), "--out", str(tmp_path / "rep")]).exit_code == 0


def test_run_into_another_recipes_run_folder_is_refused(fake_stages, write_recipe, tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    (out / "recipe.yaml").write_text("name: someone-else\n")
    res = CliRunner().invoke(cli, ["run", str(write_recipe(fake_recipe())), "--out", str(out)])
    assert res.exit_code == 1
    assert res.output.startswith(f"Error: {out}: is the run folder of recipe 'someone-else', not ")
