"""``verify: exact``: candidates checked by the true Jaccard of their shingle sets."""

from __future__ import annotations

import random

import numpy as np
import polars as pl
import pytest
from click.testing import CliRunner

from thresher.cli.main import cli
from thresher.config import from_dict
from thresher.curate.dedup.engine import deduplicate
from thresher.curate.dedup.exact import ShingleSets
from thresher.curate.dedup.lsh import verify
from thresher.curate.dedup.shingles import shingle_texts
from thresher.curate.dedup.stage import Config

from ._dedup_data import paragraphs


def _words(n: int, prefix: str = "w") -> list[str]:
    return [f"{prefix}{i}" for i in range(n)]


def _sets(texts: list[str], cfg: Config) -> ShingleSets:
    return ShingleSets(np.arange(len(texts)), lambda idx: [texts[i] for i in idx], cfg)


def _true_j(x: str, y: str, n: int = 5) -> float:
    a, b = set(shingle_texts(x, n)), set(shingle_texts(y, n))
    return len(a & b) / len(a | b)


def test_exact_overrules_the_estimate_both_ways():
    cfg = Config()
    base = _words(100)
    far = " ".join(base[:70] + _words(30, "x"))      # true J well below 0.8
    near = " ".join(base[:50] + ["edit"] + base[51:])  # true J about 0.90
    texts = [" ".join(base), far, near]
    sets = _sets(texts, cfg)
    assert sets.jaccard(np.array([0, 0]), np.array([1, 2])) == pytest.approx(
        [_true_j(texts[0], far), _true_j(texts[0], near)], abs=1e-6)
    # signatures that lie: row 1 identical to row 0 (estimate 1.0), row 2 disjoint (estimate 0.0)
    sig = np.zeros((3, 16), dtype=np.uint32)
    sig[2] = 1
    pairs = pl.DataFrame({"a": [0, 0], "b": [1, 2]}, schema={"a": pl.UInt32, "b": pl.UInt32})
    est = verify(sig, pairs, 0.8)
    assert est["b"].to_list() == [1]                  # estimate keeps the false pair, misses the true
    ex = verify(sig, pairs, 0.8, sets)
    assert ex["b"].to_list() == [2]                   # exact: the other way round
    assert ex["j"][0] == pytest.approx(_true_j(texts[0], near), abs=1e-6)


def test_repeated_shingles_count_once_and_empty_sets():
    cfg = Config(ngram=1)
    sets = _sets(["a a a b", "a b b c", ""], cfg)
    assert sets.jaccard(np.array([0, 2]), np.array([1, 2])).tolist() == pytest.approx([2 / 3, 1.0])


def _near_threshold_rows(k: int = 30) -> tuple[pl.DataFrame, list[tuple[int, int, float]]]:
    """Paragraph pairs edited to a true Jaccard around 0.8 (both sides of it)."""
    rng = random.Random(3)
    texts, pairs = [], []
    for p in paragraphs()[:k]:
        words = p.split()
        copy = list(words)
        for _ in range(rng.randint(1, 4)):
            copy[rng.randrange(len(copy))] = f"zz{rng.randint(0, 999)}"
        texts += [p, " ".join(copy)]
        pairs.append((len(texts) - 2, len(texts) - 1, _true_j(texts[-2], texts[-1])))
    df = pl.DataFrame({"id": [str(i) for i in range(len(texts))],
                       "messages": [[{"role": "user", "content": t}] for t in texts]})
    return df, pairs


def _normalised_j(df: pl.DataFrame, a: int, b: int) -> float:
    from thresher.curate.dedup.normalize import normalize_text

    t = [normalize_text(df["messages"][i][0]["content"]) for i in (a, b)]
    return _true_j(*t)


def test_engine_exact_matches_the_truth_and_reasons_carry_true_j(tmp_path):
    df, pairs = _near_threshold_rows()
    # 32 bands of 1 row: every pair sharing one minimum is a candidate, so only verify decides
    opts = {"on": "prompt", "num_perm": 32, "bands": 32, "rows": 1, "threshold": 0.8}
    est = deduplicate(df, from_dict(Config, {**opts}), spill_dir=tmp_path / "e")
    ex = deduplicate(df, from_dict(Config, {**opts, "verify": "exact"}), spill_dir=tmp_path / "x")
    truth = {b for a, b, _ in pairs if _normalised_j(df, a, b) >= 0.8}
    assert 0 < len(truth) < len(pairs)
    assert set(np.flatnonzero(~ex.keep)) == truth
    assert set(np.flatnonzero(~est.keep)) != truth      # the 32-slot estimate gets some wrong
    for a, b, _ in pairs:
        if b in truth:
            j = _normalised_j(df, a, b)
            assert ex.reasons[b] == f"near-duplicate of {a} (J={j:.2f})"
            assert ex.jaccard[b] == pytest.approx(j, abs=1e-6)
    assert ex.stats["verify"] == "exact"


def test_exact_verify_against_a_reference(tmp_path):
    df, pairs = _near_threshold_rows(10)
    ref = df.filter(pl.int_range(pl.len()) % 2 == 0).with_columns(pl.format("ref{}", "id").alias("id"))
    mine = df.filter(pl.int_range(pl.len()) % 2 == 1)
    cfg = from_dict(Config, {"on": "prompt", "num_perm": 32, "bands": 32, "rows": 1, "verify": "exact"})
    res = deduplicate(mine, cfg, ref=ref, ref_label="ref.jsonl", spill_dir=tmp_path)
    truth = {b // 2 for a, b, _ in pairs if _normalised_j(df, a, b) >= 0.8}
    assert set(np.flatnonzero(~res.keep)) == truth
    assert all(res.reasons[i].endswith(")") and " in ref.jsonl (J=" in res.reasons[i] for i in truth)


def test_verify_is_validated():
    assert Config().verify == "estimate"
    assert Config(verify="fuzzy").check() == ["verify: must be one of 'estimate' | 'exact' | 'edit', got 'fuzzy'"]


def test_cli_has_the_verify_option():
    r = CliRunner().invoke(cli, ["curate", "dedup", "--help"])
    assert r.exit_code == 0 and "--verify" in r.output and "exact" in r.output
