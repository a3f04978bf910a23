"""The report's sample rows (kept and dropped, per stage, collapsible) and what a reader
tripped over in report.html: literal backticks, an empty overview header row (issue 14)."""

from __future__ import annotations

import re

import polars as pl


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
