"""The relevance scorer: cosine of question and answer embeddings (unit cases on a fake
embedder, the real all-MiniLM-L6-v2 on hand cases, and the CLI's error for a bad embedder)."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
from click.testing import CliRunner

from thresher.cli.main import cli
from thresher.curate.score.registry import parse_spec
from thresher.curate.score.relevance import RelevanceScorer, pair_cosines, question_answer
from thresher.schema import make_rows


class BagOfWords:
    """A fake embedder: unit-norm counts over a fixed vocabulary; counts its encoded texts."""

    VOCAB = ("paris", "france", "capital", "red", "colour", "train", "trains", "like")

    def __init__(self):
        self.seen: list[str] = []

    def encode(self, texts):
        self.seen.extend(texts)
        out = np.zeros((len(texts), len(self.VOCAB) + 1), np.float32)
        for i, t in enumerate(texts):
            words = t.lower().replace("?", " ").replace(".", " ").split()
            out[i, :-1] = [words.count(v) for v in self.VOCAB]
            out[i, -1] = 0.1
        return out / np.linalg.norm(out, axis=1, keepdims=True)


def _conv(q, a):
    return [{"role": "user", "content": q}, {"role": "assistant", "content": a}]


def test_question_answer_takes_the_last_user_turn_and_the_final_answer():
    conv = [{"role": "system", "content": "Be brief."}, *_conv("first", "x"), *_conv("second", "y")]
    assert question_answer(conv) == ("second", "y")
    assert question_answer([{"role": "user", "content": "no answer"}]) is None
    assert question_answer([{"role": "assistant", "content": "no question"}]) is None


def test_on_topic_answer_scores_above_an_answer_to_another_question():
    scorer = RelevanceScorer(name="rel")
    scorer._embedder = fake = BagOfWords()
    res = scorer.score([_conv("What is the capital of France?", "Paris is the capital of France."),
                        _conv("What is the capital of France?", "I like trains."),
                        [{"role": "user", "content": "unanswered"}]])
    assert res[0].score > 0.8 > 0.2 > res[1].score  # right: high; wrong: low
    assert res[2] == (None, "no question and final answer to compare")
    # the question is embedded once for both rows
    assert fake.seen.count("What is the capital of France?") == 1


def test_pair_cosines_are_in_input_order():
    fake = BagOfWords()
    cos = pair_cosines(["red colour", "paris"], ["red", "trains"], fake)
    assert cos[0] > 0.5 and cos[1] < 0.1
    assert pair_cosines([], [], fake).shape == (0,)


def test_spec_parses_with_an_optional_embedder():
    assert parse_spec("relevance").kind == "relevance"
    spec = parse_spec("rel=relevance:/models/bge")
    assert (spec.name, spec.kind, spec.model, spec.column) == ("rel", "relevance", "/models/bge", "score_rel")


@pytest.mark.slow
def test_minilm_ranks_the_right_answer_above_a_swapped_one():
    pairs = [
        ("What is the capital of France?", "The capital of France is Paris."),
        ("How many legs does a spider have?", "Eight."),
        ("What is photosynthesis?", "The process plants use to turn light, water and CO2 into sugar."),
        ("Who wrote Hamlet?", "William Shakespeare"),
        ("Do you like music?", "I enjoy listening to jazz and classical pieces."),
        ("How do I reverse a list in Python?", "Use `xs[::-1]` or `xs.reverse()`."),
    ]
    scorer = RelevanceScorer()
    right = [r.score for r in scorer.score([_conv(q, a) for q, a in pairs])]
    swapped = [r.score for r in scorer.score([_conv(q, pairs[(i + 1) % len(pairs)][1])
                                              for i, (q, _a) in enumerate(pairs)])]
    assert all(r > s for r, s in zip(right, swapped)), (right, swapped)
    # an answer restating the question before answering is relevant, not penalised
    restated = scorer.score([_conv("What is the most popular sport in Japan?",
                                   "Baseball is the most popular sport in Japan.")])[0].score
    assert restated > max(swapped)


def test_cli_bad_embedder_is_a_one_line_error(tmp_path):
    rows = make_rows([{"messages": _conv("What is the capital of France?", "Paris."), "id": "a"}])
    path = tmp_path / "in.parquet"
    rows.write_parquet(path)
    res = CliRunner().invoke(cli, ["curate", "score", str(path), "-s", "relevance:/no/such/embedder",
                                   "--out", str(tmp_path / "run"), "--no-cache"])
    assert res.exit_code == 1
    assert res.output.strip() == ("Error: model '/no/such/embedder' not found (not a model folder, "
                                  "a .gguf file or a hub name 'org/name')")
    assert not (tmp_path / "run" / "kept.parquet").exists()
    assert pl.read_parquet(path).height == 1


@pytest.mark.slow
def test_cli_scores_relevance_with_the_shipped_embedder(tmp_path):
    rows = make_rows([{"messages": _conv("What is the capital of France?", "Paris is the capital of France."),
                       "id": "right"},
                      {"messages": _conv("What is the capital of France?", "I like trains."), "id": "wrong"}])
    path = tmp_path / "in.parquet"
    rows.write_parquet(path)
    res = CliRunner().invoke(cli, ["curate", "score", str(path), "-s", "relevance", "--out", str(tmp_path / "run"),
                                   "--no-cache"])
    assert res.exit_code == 0, res.output
    kept = pl.read_parquet(tmp_path / "run" / "kept.parquet")
    got = dict(zip(kept["id"], kept["score_relevance"]))
    assert got["right"] > 0.5 > got["wrong"]
