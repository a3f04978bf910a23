"""Mix and decontam on real, noisy, categorised data: the chatterbot-corpus conversations."""

from __future__ import annotations

import polars as pl
import pytest
from click.testing import CliRunner

from tests.curate._mix_data import origin
from thresher.cli.main import cli
from thresher.io import write_table
from thresher.schema import make_rows


@pytest.fixture(scope="module")
def chatterbot(tmp_path_factory):
    from thresher.recipe.inputs_step import read_chatterbot

    recs = read_chatterbot("english", responses=True)
    path = tmp_path_factory.mktemp("chatterbot") / "chatterbot.jsonl"
    rows = make_rows(recs, source="chatterbot").unique("id", keep="first", maintain_order=True)
    write_table(rows, path)  # exact repeats removed, as the dedup stage would
    return path


def test_mix_chatterbot_categories_to_exact_shares(chatterbot, tmp_path):
    spec = tmp_path / "mix.yaml"
    spec.write_text(
        "total: 300\n"
        "max_repeats: 2\n"
        "categories:\n"
        "  trivia: {weight: 0.4}\n"
        "  ai: {weight: 0.2}\n"
        "  coding: {weight: 0.1}\n"
        "  psychology: {count: 40}\n"
        "  science: {count: 50}\n"  # 28 rows: upsampled, each row at most twice
    )
    out = tmp_path / "mix"
    res = CliRunner().invoke(
        cli, ["curate", "mix", str(chatterbot), "--spec", str(spec), "--out", str(out)]
    )
    assert res.exit_code == 0, res.output
    kept = pl.read_parquet(out / "kept.parquet")
    got = dict(kept.group_by("category").len().iter_rows())
    assert got == {"trivia": 120, "ai": 60, "coding": 30, "psychology": 40, "science": 50}
    assert kept.group_by(origin(kept["id"])).len()["len"].max() == 2
    assert (kept["source"] == "chatterbot").all()


def test_chatterbot_leaks_found_against_mmlu_and_humaneval(chatterbot, tmp_path):
    """Two real leaks in chatterbot-corpus: a trivia question that is verbatim MMLU
    (miscellaneous) and a prime checker sharing HumanEval/94's solution loop."""
    out = tmp_path / "dc"
    res = CliRunner().invoke(cli, ["curate", "decontam", str(chatterbot), "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert "decontam: 2 of 898 rows dropped" in res.output
    dropped = pl.read_parquet(out / "dropped.parquet").sort("benchmark")
    assert dropped.select("category", "benchmark").rows() == [
        ("coding", "humaneval"),
        ("trivia", "mmlu"),
    ]
    trivia = dropped.row(1, named=True)
    assert trivia["messages"][0]["content"].startswith("What is the only metal that is a liquid")
    assert trivia["matched_ngram"].startswith("what is the only metal that is a liquid")
    assert dropped["benchmark_item"][0] == "HumanEval/94"
    assert pl.read_parquet(out / "kept.parquet").height == 896
