"""``thresher curate mix`` through click's CliRunner."""

from __future__ import annotations

import os
import subprocess
import sys

import polars as pl
import pytest
from click.testing import CliRunner

from tests.curate._mix_data import rows, write
from thresher.cli.main import cli


def test_mix_cli_writes_the_mix_and_reports(tmp_path):
    data = write(rows({"code": 50, "math": 30}), tmp_path / "in.parquet")
    replay = write(rows({"general": 40}, prefix="r-"), tmp_path / "replay.jsonl")
    spec = tmp_path / "mix.yaml"
    spec.write_text(
        "total: 40\non_shortfall: keep\ncategories:\n  code: {weight: 0.5}\n  math: {weight: 0.5, max_repeats: 1}\n"
    )
    out = tmp_path / "run" / "mix"
    res = CliRunner().invoke(
        cli,
        [
            "curate",
            "mix",
            str(data),
            "--spec",
            str(spec),
            "--out",
            str(out),
            "--rank-by",
            "score_q",
            "--seed",
            "3",
            "--replay",
            str(replay),
            "--replay-fraction",
            "0.2",
        ],
    )
    assert res.exit_code == 0, res.output
    assert "mix: 50 rows (40 from categories, 10 replay)" in res.output
    kept = pl.read_parquet(out / "kept.parquet")
    assert kept.height == 50
    assert kept.filter(pl.col("source") == "replay").height == 10


def test_mix_cli_bad_spec_lists_every_problem_without_traceback(tmp_path):
    data = write(rows({"code": 5, "math": 5}), tmp_path / "in.parquet")
    spec = tmp_path / "mix.yaml"
    spec.write_text(
        "shortfall: keep\n"
        "categories:\n"
        "  code: {weight: 0.6}\n"
        "  math: {weight: 0.6}\n"
        "  poetry: {count: -2}\n"
    )
    res = CliRunner().invoke(
        cli, ["curate", "mix", str(data), "--spec", str(spec), "--out", str(tmp_path / "o")]
    )
    assert res.exit_code == 1
    assert "Traceback" not in res.output
    line = [ln for ln in res.output.splitlines() if ln.startswith("Error:")]
    assert len(line) == 1
    msg = line[0]
    assert msg.startswith(f"Error: {spec}: 4 problems: ")
    assert "spec.shortfall: unknown key (did you mean 'on_shortfall'?)" in msg
    assert "spec.weights: must sum to 1 when no total is given, they sum to 1.2" in msg
    assert "spec.categories.poetry.count: must be >= 0, got -2" in msg
    assert "spec.categories.poetry: unknown category (not in the data; known: code, math)" in msg


def test_mix_cli_shortfall_fail_and_missing_input_exit_1(tmp_path):
    data = write(rows({"code": 5}), tmp_path / "in.parquet")
    spec = tmp_path / "mix.yaml"
    spec.write_text("on_shortfall: fail\ncategories:\n  code: {count: 9}\n")
    res = CliRunner().invoke(
        cli, ["curate", "mix", str(data), "--spec", str(spec), "--out", str(tmp_path / "o")]
    )
    assert res.exit_code == 1
    assert (
        "Error: mix: categories cannot fill their targets (on_shortfall: fail): code (wanted 9, available 5"
        in res.output
    )
    res = CliRunner().invoke(
        cli,
        [
            "curate",
            "mix",
            str(tmp_path / "nope.jsonl"),
            "--spec",
            str(spec),
            "--out",
            str(tmp_path / "o2"),
        ],
    )
    assert res.exit_code == 1 and "nope.jsonl: no such file or folder" in res.output
    assert "Traceback" not in res.output


@pytest.mark.slow
def test_same_seed_gives_the_same_ids_in_the_same_order_across_processes(tmp_path):
    data = write(rows({"code": 300, "math": 200, "chat": 100}), tmp_path / "in.parquet")
    spec = tmp_path / "mix.yaml"
    spec.write_text(
        "total: 400\nmax_repeats: 2\ncategories:\n  code: {weight: 0.25}\n  math: {weight: 0.25}\n  chat: {weight: 0.5}\n"
    )
    outs = []
    for k, seed in enumerate(["5", "5", "6"]):
        out = tmp_path / f"o{k}"
        cmd = [
            sys.executable,
            "-m",
            "thresher.cli.main",
            "curate",
            "mix",
            str(data),
            "--spec",
            str(spec),
            "--seed",
            seed,
            "--out",
            str(out),
        ]
        proc = subprocess.run(
            cmd,
            check=False,
            capture_output=True,
            text=True,
            env={**os.environ, "THRESHER_PROGRESS": "0"},
        )
        assert proc.returncode == 0, proc.stderr
        outs.append(pl.read_parquet(out / "kept.parquet")["id"].to_list())
    assert len(outs[0]) == 400
    assert outs[0] == outs[1]
    assert outs[0] != outs[2]
