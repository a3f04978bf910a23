"""Robust per-category normalisation (median/MAD, small categories shrunk toward the global),
the ``auto`` threshold (a two-component mixture), and their report sections."""

from __future__ import annotations

import json
import random

import polars as pl
import pytest
from click.testing import CliRunner

from thresher.cli.main import cli
from thresher.curate.filter.autocut import auto_threshold, fit_mixture
from thresher.curate.filter.rules import normalize


def test_robust_z_shrinks_small_categories_toward_the_global():
    rng = random.Random(0)
    big = [rng.gauss(0, 1) for _ in range(400)]
    df = pl.DataFrame({"score_x": big + [5.0, 5.1, 4.9], "category": ["big"] * 400 + ["tiny"] * 3})
    alone = normalize(df, "score_x", "robust", shrink=0).to_list()
    shrunk = normalize(df, "score_x", "robust", shrink=20).to_list()
    assert abs(alone[-3]) < 0.1  # a tiny category judged by itself looks normal
    assert shrunk[-3] > 2.5       # shrunk toward the whole table: 5 is far above it
    # an outlier does not move the robust statistics of its category
    df2 = df.with_columns(pl.when(pl.int_range(pl.len()) == 0).then(1e6).otherwise(pl.col("score_x")).alias("score_x"))
    assert normalize(df2, "score_x", "robust").to_list()[1:400] == pytest.approx(shrunk[1:400], abs=0.02)


def test_auto_threshold_splits_a_mixture_and_falls_back_without_one():
    rng = random.Random(1)
    good = [rng.gauss(2.0, 0.6) for _ in range(700)]
    bad = [rng.gauss(-1.0, 0.5) for _ in range(150)]
    got = auto_threshold(good + bad)
    assert got["method"] == "mixture" and 0.0 < got["threshold"] < 1.2
    fit = fit_mixture(good + bad)
    assert fit["weights"][0] == pytest.approx(150 / 850, abs=0.03)
    caught = sum(v < got["threshold"] for v in bad) / len(bad)
    kept = sum(v >= got["threshold"] for v in good) / len(good)
    assert caught > 0.95 and kept > 0.97
    one = auto_threshold([rng.gauss(0, 1) for _ in range(500)])
    assert one["method"] == "outlier" and -3.0 < one["threshold"] < -2.0
    high = auto_threshold([-v for v in good + bad], op="max")
    assert high["method"] == "mixture" and -1.2 < high["threshold"] < 0.0
    assert auto_threshold([1.0, 2.0])["threshold"] is None


def test_filter_auto_cut_through_the_cli_and_the_report(tmp_path):
    from thresher.report.report import write_report
    from thresher.schema import make_rows

    rng = random.Random(2)
    recs = []
    for i in range(300):
        bad = i % 5 == 0
        recs.append({"id": f"r{i}", "category": "big" if i % 7 else "small", "score_gain": rng.gauss(-1, 0.4) if bad else rng.gauss(2, 0.6),
                     "messages": [{"role": "user", "content": f"q{i}"}, {"role": "assistant", "content": f"Answer {i}."}]})
    path = tmp_path / "scored.parquet"
    make_rows(recs).write_parquet(path)
    run = tmp_path / "run"
    res = CliRunner().invoke(cli, ["curate", "filter", str(path), "--out", str(run / "01-filter"),
                                   "--normalize", "robust", "--min", "score_gain_rz=auto"])
    assert res.exit_code == 0, res.output
    stats = json.loads((run / "01-filter" / "stats.json").read_text())
    auto = stats["auto_thresholds"]["score_gain_rz"]
    assert auto["method"] == "mixture" and stats["thresholds"]["score_gain_rz"] == [auto["threshold"]]
    dropped = pl.read_parquet(run / "01-filter" / "dropped.parquet")
    assert set(dropped["drop_code"]) == {"below-min"}
    bad = sum(int(i[1:]) % 5 == 0 for i in dropped["id"])
    assert bad >= 55 and bad >= 0.95 * dropped.height
    md, html = write_report(run)
    text = md.read_text()
    assert "## Drops per rule" in text and "| 01-filter | below-min |" in text
    assert "## Automatic thresholds" in text and "auto cut" in html.read_text()


def test_auto_and_bad_limits_are_checked():
    res = CliRunner().invoke(cli, ["curate", "filter", "x.parquet", "--out", "o", "--min", "score_x=often"])
    assert res.exit_code == 1
    assert "min_scores.score_x: threshold 'often' is not a number (or auto)" in res.output
