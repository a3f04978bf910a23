"""``thresher curate decontam`` through click's CliRunner."""

from __future__ import annotations

import polars as pl
from click.testing import CliRunner

from thresher.cli.main import cli
from thresher.curate.decontam.benchmarks import load_humaneval
from thresher.io import write_table
from thresher.schema import make_rows


def _rows(tmp_path):
    prompt = load_humaneval().filter(pl.col("item") == "HumanEval/2")["text"][0]
    recs = [
        {
            "id": "leak",
            "messages": [
                {"role": "user", "content": prompt},
                {"role": "assistant", "content": "x"},
            ],
        },
        {
            "id": "ok",
            "messages": [
                {"role": "user", "content": "Tell me a joke."},
                {"role": "assistant", "content": "No."},
            ],
        },
    ]
    path = tmp_path / "rows.parquet"
    write_table(make_rows(recs), path)
    return path


def test_decontam_cli_drops_the_leak(tmp_path):
    out = tmp_path / "dc"
    res = CliRunner().invoke(
        cli,
        ["curate", "decontam", str(_rows(tmp_path)), "--against", "humaneval", "--out", str(out)],
    )
    assert res.exit_code == 0, res.output
    assert "decontam: 1 of 2 rows dropped" in res.output
    assert pl.read_parquet(out / "kept.parquet")["id"].to_list() == ["ok"]
    dropped = pl.read_parquet(out / "dropped.parquet")
    assert dropped.select("benchmark", "benchmark_item").rows() == [("humaneval", "HumanEval/2")]


def test_decontam_cli_bad_options_one_line_error(tmp_path):
    res = CliRunner().invoke(
        cli,
        [
            "curate",
            "decontam",
            str(_rows(tmp_path)),
            "--against",
            "gsm8k",
            "-n",
            "0",
            "--out",
            str(tmp_path / "o"),
        ],
    )
    assert res.exit_code == 1
    assert "Traceback" not in res.output
    errors = [ln for ln in res.output.splitlines() if ln.startswith("Error:")]
    assert len(errors) == 1
    assert (
        "against: 'gsm8k' is neither a built-in benchmark (humaneval, mmlu) nor an existing file"
        in errors[0]
    )
    assert "n: must be in [1, 64], got 0" in errors[0]


def test_decontam_cli_unreadable_benchmark_file(tmp_path):
    bench = tmp_path / "bench.jsonl"
    bench.write_text('{"text": "fine"}\n{not json\n')
    res = CliRunner().invoke(
        cli,
        [
            "curate",
            "decontam",
            str(_rows(tmp_path)),
            "--against",
            str(bench),
            "--out",
            str(tmp_path / "o"),
        ],
    )
    assert res.exit_code == 1
    assert f"Error: {bench}:2: malformed JSON (Expecting property name enclosed in double quotes at column 2)" in res.output
    assert "Traceback" not in res.output
