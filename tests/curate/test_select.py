"""The select step: top-k, k-center diversity picking one point per planted cluster,
score-then-diversity skipping near-duplicates, the stage and its CLI."""

from __future__ import annotations

import numpy as np
import polars as pl
from click.testing import CliRunner

from thresher.cli.main import cli
from thresher.curate.select import methods as M
from thresher.io import write_table
from thresher.schema import make_rows


def planted(n_clusters=6, per=20, dim=16, seed=0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(n_clusters, dim)) * 10
    x = np.concatenate([c + rng.normal(size=(per, dim)) * 0.3 for c in centres])
    labels = np.repeat(np.arange(n_clusters), per)
    perm = rng.permutation(len(x))
    return x[perm], labels[perm]


def test_kcenter_picks_one_point_per_planted_cluster():
    for seed in range(5):
        x, labels = planted(seed=seed)
        chosen = M.kcenter_greedy(x, 6)
        assert sorted(labels[chosen].tolist()) == list(range(6)), seed


def test_top_and_score_then_diversity():
    assert M.top(np.array([0.1, np.nan, 0.9, 0.5]), 2) == [2, 3]
    assert M.top(np.array([3.0, 1.0, 2.0]), 2, descending=False) == [1, 2]
    x, labels = planted(n_clusters=3, per=10)
    scores = np.arange(len(x), dtype=float)  # the best rows may all sit in one cluster
    chosen, filled = M.score_then_diversity(x, scores, 3, max_similarity=0.8)
    assert filled == 0 and sorted(labels[chosen].tolist()) == [0, 1, 2]
    assert chosen[0] == int(np.argmax(scores))
    chosen, filled = M.score_then_diversity(x, scores, 5, max_similarity=0.8)
    assert len(chosen) == 5 and filled == 2


def _rows(tmp_path):
    x, labels = planted(n_clusters=4, per=5)
    recs = [{"messages": [{"role": "user", "content": f"q{i}"}, {"role": "assistant", "content": f"a{i}"}],
             "category": f"c{labels[i]}"} for i in range(len(x))]
    df = make_rows(recs).with_columns(pl.Series("emb", x.tolist()), pl.Series("score_q", np.arange(len(x)) * 1.0))
    path = tmp_path / "rows.parquet"
    write_table(df, path)
    return path


def test_select_cli_diversity_with_an_embedding_column(tmp_path):
    src = _rows(tmp_path)
    res = CliRunner().invoke(cli, ["curate", "select", str(src), "--method", "diversity", "--k", "4",
                                   "--embedding-column", "emb", "--out", str(tmp_path / "sel")])
    assert res.exit_code == 0, res.output
    kept = pl.read_parquet(tmp_path / "sel/kept.parquet")
    assert sorted(kept["category"].to_list()) == ["c0", "c1", "c2", "c3"]
    dropped = pl.read_parquet(tmp_path / "sel/dropped.parquet")
    assert dropped.height == 16 and set(dropped["drop_reason"]) == {"not among the k-center picks"}


def test_select_cli_top_fraction_and_errors(tmp_path):
    src = _rows(tmp_path)
    res = CliRunner().invoke(cli, ["curate", "select", str(src), "--by", "score_q", "--fraction", "0.25",
                                   "--out", str(tmp_path / "top")])
    assert res.exit_code == 0, res.output
    assert sorted(pl.read_parquet(tmp_path / "top/kept.parquet")["score_q"].to_list()) == [15.0, 16.0, 17.0, 18.0, 19.0]
    res = CliRunner().invoke(cli, ["curate", "select", str(src), "--by", "score_x", "--k", "2",
                                   "--out", str(tmp_path / "bad")])
    assert res.exit_code == 1 and res.output.startswith(f"Error: {src}: no score column 'score_x'")
    res = CliRunner().invoke(cli, ["curate", "select", str(src), "--method", "top", "--out", str(tmp_path / "b2")])
    assert res.exit_code == 1
    assert res.output == ("Error: 2 problems: k / fraction: give exactly one of them; "
                          "by: needed with method top (a score column)\n")


def test_select_diversity_with_the_model_embeddings(tmp_path, tiny_lm_dir):
    from thresher.curate.select.embed import mean_pooled

    e = mean_pooled(["hello world", "a much longer sentence about the sea", "hello world"], str(tiny_lm_dir))
    assert e.shape == (3, 64) and np.allclose(e[0], e[2], atol=1e-5) and not np.allclose(e[0], e[1])


def test_select_takes_the_read_options_and_a_run_folder(tmp_path):
    """select reads like every stage: run folders, --on-bad-rows skip (the rejected row is a
    dropped row of stage "read"), and the read options are part of its fingerprint."""
    import json

    from tests.conftest import invoke

    rows = [{"id": f"r{i}", "messages": [{"role": "user", "content": f"question {i}?"},
                                          {"role": "assistant", "content": f"answer {i}."}], "score_q": float(i)}
            for i in range(6)]
    src = tmp_path / "rows.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in rows[:3]) + '{"oops\n'
                   + "".join(json.dumps(r) + "\n" for r in rows[3:]))
    out = tmp_path / "sel"
    res = invoke("curate", "select", src, "--by", "score_q", "--k", "2", "--out", out)
    assert res.exit_code == 1 and res.output.startswith(f"Error: {src}:4: malformed JSON")
    res = invoke("curate", "select", src, "--by", "score_q", "--k", "2", "--on-bad-rows", "skip", "--out", out)
    assert res.exit_code == 0, res.output
    assert pl.read_parquet(out / "kept.parquet")["id"].to_list() == ["r4", "r5"]
    dropped = pl.read_parquet(out / "dropped.parquet")
    assert dropped.filter(pl.col("drop_stage") == "read")["drop_code"].to_list() == ["malformed-json"]
    stats = json.loads((out / "stats.json").read_text())
    assert (stats["rows_in"], stats["rows_rejected_on_read"], stats["rows_out"]) == (7, 1, 2)
    again = invoke("curate", "select", out, "--by", "score_q", "--k", "1", "--out", tmp_path / "sel2")
    assert again.exit_code == 0, again.output  # a run folder stands for its kept.parquet
    assert pl.read_parquet(tmp_path / "sel2" / "kept.parquet")["id"].to_list() == ["r5"]
