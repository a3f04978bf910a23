"""``thresher curate dedup`` through click's CliRunner."""

from __future__ import annotations

import polars as pl
import pytest
from click.testing import CliRunner

from thresher.cli.main import cli

from ._dedup_data import planted_rows, write_jsonl


@pytest.fixture()
def corpus(tmp_path):
    rows, truth = planted_rows(30)
    return write_jsonl(tmp_path / "in.jsonl", rows), truth


def test_cli_dedups_and_prints_a_summary(tmp_path, corpus):
    src, truth = corpus
    out = tmp_path / "run"
    r = CliRunner().invoke(cli, ["curate", "dedup", str(src), "--out", str(out), "--threshold", "0.8"])
    assert r.exit_code == 0, r.output
    assert "45 rows in, 30 kept (5 exact, 10 near-duplicates, 0 matching the reference)" in r.output
    for name in ("kept.parquet", "dropped.parquet", "clusters.parquet", "stats.json", "manifest.json"):
        assert (out / name).exists(), name
    assert set(pl.read_parquet(out / "dropped.parquet")["id"]) == set(truth)


def test_cli_against_and_switches(tmp_path, corpus):
    src, _ = corpus
    ref = write_jsonl(tmp_path / "ref.jsonl", planted_rows(30)[0][:3])
    out = tmp_path / "run"
    r = CliRunner().invoke(cli, ["curate", "dedup", str(src), "-o", str(out), "--against", str(ref),
                                 "--on", "response", "--no-punctuation", "--hash", "sha1"])
    assert r.exit_code == 0, r.output
    d = pl.read_parquet(out / "dropped.parquet")
    reasons = dict(zip(d["id"], d["drop_reason"]))
    assert reasons["p0"] == "exact duplicate of p0 in ref.jsonl"


@pytest.mark.parametrize("args,message", [
    (["--threshold", "1.5"], "threshold: must be in (0, 1], got 1.5"),
    (["--threshold", "0"], "threshold: must be in (0, 1], got 0.0"),
    (["--num-perm", "1"], "num_perm: must be >= 2, got 1"),
    (["--keep-by", "reward"], "keep_by column 'reward' not found"),
    (["--bands", "3"], "bands, rows: give both or neither"),
    (["--memory", "plenty"], "memory: not a size: 'plenty'"),
])
def test_cli_bad_options_give_one_line_errors(tmp_path, corpus, args, message):
    src, _ = corpus
    r = CliRunner().invoke(cli, ["curate", "dedup", str(src), "--out", str(tmp_path / "o"), *args])
    assert r.exit_code == 1, r.output
    assert "Error: " in r.output and message in r.output
    assert "Traceback" not in r.output
    assert len(r.output.strip().splitlines()) == 1


def test_cli_missing_input_is_a_usage_error(tmp_path):
    r = CliRunner().invoke(cli, ["curate", "dedup", str(tmp_path / "nope.jsonl"), "--out", str(tmp_path / "o")])
    assert r.exit_code == 1 and r.output == f"Error: {tmp_path / 'nope.jsonl'}: no such file or folder\n"
