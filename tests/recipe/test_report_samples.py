"""The report's sample rows (kept and dropped, per stage, collapsible) and what a reader
tripped over in report.html: literal backticks, an empty overview header row (issue 14)."""

from __future__ import annotations

import re

import polars as pl
import pytest
import yaml
from click.testing import CliRunner

from tests.recipe.conftest import fake_recipe
from thresher.cli.main import cli


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """One fake-stage recipe run for the whole module (the fake stages patched in meanwhile)."""
    from tests.recipe import fakes
    from tests.recipe.conftest import FAKES
    from thresher import registry

    tmp = tmp_path_factory.mktemp("fake-run")
    recipe = tmp / "recipe.yaml"
    recipe.write_text(yaml.safe_dump(fake_recipe(), sort_keys=False))
    out = tmp / "run"
    with pytest.MonkeyPatch.context() as mp:
        for name in FAKES:
            mp.setitem(registry.OVERRIDES, name, f"tests.recipe.fakes.{name}")
        fakes.CALLS.clear()
        res = CliRunner().invoke(cli, ["run", str(recipe), "--out", str(out)])
    assert res.exit_code == 0, res.output
    return out


def test_sample_rows_per_stage_collapsible(run_dir):
    page = (run_dir / "report.html").read_text()
    assert "<h2>Sample rows</h2>" in page
    summaries = re.findall(r"<details><summary>([^<]+)</summary>", page)
    assert "03-filter: 3 kept, 3 dropped" in summaries and "04-dedup: 3 kept, 3 dropped" in summaries
    filt = next(run_dir.glob("*-filter"))
    dropped = pl.read_parquet(filt / "dropped.parquet")
    block = page.split("<summary>03-filter: 3 kept, 3 dropped</summary>")[1].split("</details>")[0]
    assert block.count("<td>dropped</td>") == 3 and block.count("<td>kept</td>") == 3
    shown = re.findall(r"<tr><td>dropped</td><td>([0-9a-f]+)</td>", block)
    reasons = dict(zip(dropped["id"].to_list(), dropped["drop_reason"].to_list()))
    for rid in shown:
        assert f"<td>{reasons[rid]}</td>" in block  # each dropped row with its own reason
    assert "fake=0, len=" in block  # and its scores
    md = (run_dir / "report.md").read_text()
    assert "<details><summary>03-filter: 3 kept, 3 dropped</summary>" in md
    assert "| status | id | category | prompt | response | scores | drop reason |" in md


def test_no_literal_backticks_and_no_empty_header(run_dir):
    page = (run_dir / "report.html").read_text()
    reproduce = page.split("<h2>How to reproduce</h2>")[1]
    assert "<code>thresher run " in reproduce and "`" not in reproduce.split("</p>")[0]
    overview = page.split("<h2>Overview</h2>")[1].split("</table>")[0]
    assert "<tr><th>item</th><th>value</th></tr>" in overview
    assert "<th></th><th></th>" not in page
