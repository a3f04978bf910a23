"""Short texts: chatter stripping, character shingles and edit verification."""

from __future__ import annotations

import random

import numpy as np
import polars as pl
import pytest

from thresher.curate.dedup.engine import deduplicate, lsh_params
from thresher.curate.dedup.exact import EditTexts
from thresher.curate.dedup.normalize import normalize_text, strip_chatter_expr
from thresher.curate.dedup.stage import Config
from thresher.schema import MESSAGES_DTYPE

SHORT = dict(on="prompt", strip_chatter=True, shingle="char", ngram=3, verify="edit", threshold=0.9)


def strip(texts: list[str]) -> list[str]:
    return pl.select(strip_chatter_expr(pl.lit(pl.Series(texts, dtype=pl.String)))).to_series().to_list()


@pytest.mark.parametrize("raw,expected", [
    ("Hi, what is the capital of France?", "what is the capital of France?"),
    ("Hey there! Quick question: what is X? Thanks!", "what is X?"),
    ("Hello! Can you tell me what X is? Thank you in advance.", "what X is?"),
    ("What is X? Any help is appreciated!", "What is X?"),
    ("Good morning everyone! Is it raining?", "Is it raining?"),
    ("Sorry to bother you, where is the station? Thanks a lot for your help", "where is the station?"),
    # whole sentences of social words only, before or after the question
    ("Could anyone help me out? What is the boiling point of water?", "What is the boiling point of water?"),
    ("I need some advice. Should I learn Rust?", "Should I learn Rust?"),
    ("Where is Paris? Do you know?", "Where is Paris?"),
    ("What is X? Ideas, anyone?", "What is X?"),
    ("What is your name? Thanks so much in advance!", "What is your name?"),
])
def test_chatter_is_stripped(raw, expected):
    assert strip([raw]) == [expected]


@pytest.mark.parametrize("raw", [
    "Thank you!", "Hi!", "Hello world program in C?", "What is theta", "Tell me about Thanksgiving",
    "Hello. Thanks.", "hi",
    # a social-words-only message, a request with content, a leading sentence with a question word
    "Can you help?", "Can you help me with my homework?", "Is there anyone? Where is it?",
])
def test_content_and_chatter_only_messages_stay(raw):
    assert strip([raw]) == [raw]


def test_normalize_text_strips_chatter_only_when_asked():
    from thresher.curate.dedup.normalize import NormalizeOptions, normalized_texts

    df = pl.DataFrame({"messages": [[{"role": "user", "content": "Hi! What is X? Thanks!"}]]},
                      schema={"messages": MESSAGES_DTYPE})
    assert normalized_texts(df, "prompt", NormalizeOptions()) == ["hi what is x thanks"]
    assert normalized_texts(df, "prompt", NormalizeOptions(chatter=True)) == ["what is x"]
    assert normalize_text("Hi! What is X?") == "hi what is x"


def test_edit_similarity_counts_one_typo_as_one_edit():
    texts = ["what is the capital of france", "waht is the capital of france",
             "what is the capital of spain", "", "abc"]

    def texts_of(idx):
        return [texts[i] for i in idx]

    sims = EditTexts(np.arange(5), texts_of, Config(verify="edit")).jaccard(
        np.array([0, 0, 3, 3, 4]), np.array([1, 2, 3, 4, 4]))
    n = len(texts[0])
    assert sims.tolist() == pytest.approx([1 - 1 / n, 1 - 5 / n, 1.0, 0.0, 1.0])  # france -> spain: 5


def test_edit_lsh_threshold_defaults_low_and_can_be_set():
    assert lsh_params(Config(verify="edit")) == lsh_params(Config(lsh_threshold=0.4))
    assert lsh_params(Config()) == lsh_params(Config(lsh_threshold=0.8))
    assert Config(lsh_threshold=0).check() == ["lsh_threshold: must be in (0, 1], got 0"]


QUESTIONS = [
    "What is the capital of France?", "How do I boil an egg?", "Who wrote Pride and Prejudice?",
    "What is the speed of light in a vacuum?", "How many legs does a spider have?",
    "Why is the sky blue during the day?", "What is the boiling point of water?",
    "How do I reverse a list in Python?", "What causes the seasons on Earth?",
    "Who painted the Mona Lisa?", "What is photosynthesis?", "How far away is the Moon?",
    "What is the largest ocean on Earth?", "How do vaccines work?", "What is a black hole?",
    "What is the capital of Spain?", "How do I sort a list in Python?", "Who wrote Emma?",
]


def _rows(texts: list[str]) -> pl.DataFrame:
    return pl.DataFrame({"id": [f"r{i}" for i in range(len(texts))],
                         "messages": [[{"role": "user", "content": t}, {"role": "assistant", "content": "ok"}]
                                      for t in texts]}, schema_overrides={"messages": MESSAGES_DTYPE})


def _typo(text: str, rng: random.Random) -> str:
    words = text.split()
    i = max(range(len(words)), key=lambda k: len(words[k]))
    w = words[i]
    k = rng.randrange(1, len(w) - 2)
    words[i] = w[:k] + w[k + 1] + w[k] + w[k + 2:]
    return " ".join(words)


def test_short_settings_catch_prefix_suffix_and_typo_variants_and_keep_distinct_questions(tmp_path):
    rng = random.Random(0)
    base = QUESTIONS[:15]
    variants = ([f"Hi! Quick question: {q[0].lower() + q[1:]}" for q in base[:5]]
                + [f"{q} Thank you in advance." for q in base[5:10]]
                + [_typo(q, rng) for q in base[10:15]])
    df = _rows(QUESTIONS + variants)
    default = deduplicate(df, Config(on="prompt"), spill_dir=tmp_path / "a")
    assert default.keep[len(QUESTIONS):].sum() >= 12  # word 5-grams miss nearly all of them
    res = deduplicate(df, Config(**SHORT), spill_dir=tmp_path / "b")
    assert res.keep[:len(QUESTIONS)].all()            # distinct questions (France/Spain) all stay
    assert not res.keep[len(QUESTIONS):].any()        # every variant is dropped
    assert set(res.duplicate_of[len(QUESTIONS):]) == {f"r{i}" for i in range(15)}


def _osa(a: str, b: str) -> int:
    d = [[i + j if i * j == 0 else 0 for j in range(len(b) + 1)] for i in range(len(a) + 1)]
    for i in range(1, len(a) + 1):
        for j in range(1, len(b) + 1):
            v = min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + (a[i - 1] != b[j - 1]))
            if i > 1 and j > 1 and a[i - 1] == b[j - 2] and a[i - 2] == b[j - 1]:
                v = min(v, d[i - 2][j - 2] + 1)
            d[i][j] = v
    return d[-1][-1]


@pytest.mark.parametrize("floor", [0.0, 0.6, 0.9])
def test_banded_edit_similarity_is_exact_above_the_floor_and_bounded_below(floor):
    from thresher.curate.dedup import _kernels
    from thresher.curate.dedup.shingles import to_codepoints

    rng = random.Random(3)
    texts = ["".join(rng.choice("abc ") for _ in range(rng.randint(0, 25))) for _ in range(120)]
    cps, off = to_codepoints(texts)
    pa = np.array([rng.randrange(120) for _ in range(400)])
    pb = np.array([rng.randrange(120) for _ in range(400)])
    out = np.empty(400, np.float32)
    _kernels.edit_similarity(cps, off, pa, pb, floor, out)
    for p in range(400):
        a, b = texts[pa[p]], texts[pb[p]]
        true = 1 - _osa(a, b) / max(len(a), len(b)) if max(len(a), len(b)) else 1.0
        if true >= floor - 1e-6:
            assert out[p] == pytest.approx(true, abs=1e-6)
        else:
            assert true - 1e-6 <= out[p] < floor
