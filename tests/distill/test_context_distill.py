"""Context distillation: the system prompt steers the teacher but stays out of the rows;
repeated prompts (one question, several reference answers) are answered once."""

from __future__ import annotations

import polars as pl

from thresher.io import read_table, write_table
from thresher.schema import make_rows

SYSTEM = "Answer in one sentence."


def _prompts(tmp_path):
    recs = [{"messages": [{"role": "user", "content": q}, {"role": "assistant", "content": a}]}
            for q, a in [("What is AI?", "A field of study."), ("What is AI?", "Machines that think."),
                         ("Who wrote Emma?", "Jane Austen.")]]
    path = tmp_path / "p.parquet"
    write_table(make_rows(recs), path)
    return path


def test_system_prompt_not_in_rows(cli_run, tmp_path, tiny_lm_dir):
    src = _prompts(tmp_path)
    common = ("--teacher", str(tiny_lm_dir), "--max-tokens", "4", "--system", SYSTEM)
    r = cli_run("distill", "generate", src, "--out", tmp_path / "cd", *common, "--system-not-in-rows")
    assert r.exit_code == 0, r.output
    cd = read_table(tmp_path / "cd" / "kept.parquet")
    assert cd.height == 2 and cd["id"].n_unique() == 2  # the repeated question is answered once
    assert [m["role"] for m in cd["messages"][0]] == ["user", "assistant"]
    r = cli_run("distill", "generate", src, "--out", tmp_path / "plain", *common)
    assert r.exit_code == 0, r.output
    plain = read_table(tmp_path / "plain" / "kept.parquet")
    assert plain["messages"][0][0] == {"role": "system", "content": SYSTEM}
    # the same samples (same teacher input) either way
    a = cd.select(pl.col("messages").list.last().struct.field("content"))
    b = plain.select(pl.col("messages").list.last().struct.field("content"))
    assert a.equals(b)
