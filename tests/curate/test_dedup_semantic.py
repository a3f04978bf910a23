"""mode: semantic -- paraphrases by the shipped all-MiniLM-L6-v2 embedder (real model, offline)."""

from __future__ import annotations

import json

import numpy as np
import polars as pl
import pytest
from click.testing import CliRunner

from tests.curate._paraphrases import DISTINCT, PAIRS
from thresher.cli.main import cli
from thresher.curate.dedup.stage import Config, run
from thresher.embed import cosine_pairs, nearest

pytestmark = pytest.mark.slow


def test_cosine_pairs_and_nearest_match_brute_force_across_blocks():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(37, 8)).astype(np.float32)
    a /= np.linalg.norm(a, axis=1, keepdims=True)
    a[5] = a[30]  # one exact pair across blocks
    sim = a @ a.T
    i, j, s = cosine_pairs(a, None, 0.5, block=8)
    want = {(x, y) for x in range(37) for y in range(x + 1, 37) if sim[x, y] >= 0.5 - 1e-6}
    assert set(zip(i.tolist(), j.tolist())) == want
    assert np.allclose(s, sim[i, j])
    b = a[::3]
    arg, best = nearest(a, b, block=5)
    assert np.array_equal(arg, (a @ b.T).argmax(1)) and np.allclose(best, (a @ b.T).max(1))


def _write(path, texts, scores=None):
    rows = [{"id": f"q{k}", "messages": [{"role": "user", "content": t},
                                        {"role": "assistant", "content": "An answer."}],
             **({"score_r": scores[k]} if scores else {})} for k, t in enumerate(texts)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_semantic_dedup_catches_paraphrase_pairs_and_keeps_distinct_questions(tmp_path):
    texts = [p[0] for p in PAIRS] + DISTINCT + [p[1] for p in PAIRS]
    n = len(PAIRS)
    scores = [0.0] * (n + len(DISTINCT)) + [1.0] * n  # the paraphrase scores higher: it survives
    src = _write(tmp_path / "q.jsonl", texts, scores)
    res = run([src], tmp_path / "run", Config(on="prompt", mode="semantic", keep_by="score_r", device="cpu"))
    dropped = pl.read_parquet(res.out / "dropped.parquet")
    kept_ids = set(pl.read_parquet(res.out / "kept.parquet")["id"])
    pair_of = {f"q{k}": f"q{n + len(DISTINCT) + k}" for k in range(n)}
    caught = [k for k in range(n) if f"q{k}" not in kept_ids]
    assert len(caught) >= 0.8 * n                                    # measured 24 of 30 at 0.85
    assert all(f"q{k}" in kept_ids for k in range(n, n + len(DISTINCT)))  # no distinct question lost
    assert all(f"q{k}" in kept_ids for k in range(n + len(DISTINCT), len(texts)))  # best-scored copy stays
    for row in dropped.iter_rows(named=True):
        assert row["duplicate_of"] == pair_of[row["id"]]
        assert row["drop_code"] == "near-duplicate" and "(cos=0." in row["drop_reason"]
    stats = json.loads((res.out / "stats.json").read_text())
    assert stats["mode"] == "semantic" and stats["near_duplicates"] == len(caught)


def test_semantic_against_reference_and_default_mode_misses_paraphrases(tmp_path):
    ref = _write(tmp_path / "ref.jsonl", [p[0] for p in PAIRS[:10]])
    src = _write(tmp_path / "in.jsonl", [p[1] for p in PAIRS[:10]] + DISTINCT[:10])
    res = run([src], tmp_path / "sem", Config(on="prompt", mode="semantic", against=str(ref), device="cpu"))
    dropped = pl.read_parquet(res.out / "dropped.parquet")
    assert dropped.height >= 8 and set(dropped["drop_code"]) == {"near-duplicate-of-reference"}
    assert set(dropped["id"]) <= {f"q{k}" for k in range(10)}
    plain = run([src], tmp_path / "minhash", Config(on="prompt", against=str(ref)))
    assert plain.stats["rows_dropped"] == 0


def test_cli_mode_semantic(tmp_path):
    src = _write(tmp_path / "q.jsonl", [PAIRS[0][0], PAIRS[0][1], DISTINCT[0]])
    r = CliRunner().invoke(cli, ["curate", "dedup", str(src), "--out", str(tmp_path / "o"), "--on", "prompt",
                                 "--mode", "semantic", "--cosine", "0.8", "--device", "cpu"])
    assert r.exit_code == 0, r.output
    assert "3 rows in, 2 kept" in r.output
    bad = CliRunner().invoke(cli, ["curate", "dedup", str(src), "--out", str(tmp_path / "p"), "--cosine", "2"])
    assert bad.exit_code != 0 and "cosine: must be in (0, 1], got 2.0" in bad.output


def test_a_folder_that_is_no_model_is_a_one_line_error(tmp_path):
    src = _write(tmp_path / "q.jsonl", [PAIRS[0][0], PAIRS[0][1]])
    r = CliRunner().invoke(cli, ["curate", "dedup", str(src), "--out", str(tmp_path / "o"), "--mode", "semantic",
                                 "--embedder", str(tmp_path)])
    assert r.exit_code == 1
    assert r.output.strip() == f"Error: embedder {tmp_path}: not a model folder (no config.json)"
