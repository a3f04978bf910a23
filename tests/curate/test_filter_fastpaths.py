"""The filter's fast paths (junk pre-checks and word-verdict cache, ASCII word splitting, the
early-stopping repeated n-gram share) decide exactly as the plain regex formulations do."""

from __future__ import annotations

import random
import re

import pytest

from thresher.curate.filter import heuristics as H
from thresher.curate.filter import text_rules as T


def reference_mash(prose: str) -> str | None:
    """The keyboard-mash rule as first written: every word through the regexes."""
    words = [w for w in T._WORDS.findall(prose) if w.isalpha()]
    bad = {w for w in set(words) if T._CONSONANTS.search(w) or (len(w) >= 4 and not T._VOWEL.search(w))}
    mashed = [w for w in words if w in bad] if bad else []
    if words and len(mashed) >= 1 and len(mashed) / len(words) >= 0.34:
        return f"keyboard mash {mashed[0][:20]!r}"
    return None


def reference_junk(text: str) -> str | None:
    """:func:`T.junk` without its pre-checks."""
    t = text.strip()
    prose = T.strip_code(t)
    if len(t) >= 3 and not T._LETTER.search(t) and not re.search(r"\d", t):
        return "no letters or digits"
    if T._PLACEHOLDER_VALUE.match(t) and not re.match(r"^\W*(?:none|n/?a|test)\W*$", t, re.I):
        return f"placeholder value {t[:30]!r}"
    m = T._RUN.search(prose)
    if m and not re.fullmatch(r"[-=_*#~.`+]", m.group(1)):
        return f"character run {m.group(0)[:12]!r}"
    m = T._BLOB.search(prose)
    if m:
        return f"encoded blob {m.group(0)[:24]!r}"
    return reference_mash(prose)


PIECES = [
    "don't", "it's", "'quoted'", "a''b", "a'b'c", "bcdfg", "qwrt", "https", "HTML", "the",
    "strengths", "x2", "_", "'", "bcdf's", "o'bcdf", "12'34", "rock’n’roll", "ſtrngth",
    "\u212abcd", "straße", "бвгд", "aGVsbG8gd29ybGQgdGhpcyBpcyBiYXNlNjQ=", "------", "zzzzzz",
    "éééééé", "😀", "`x`", "```", "null",
]
SEPARATORS = [" ", "", "\n", ".", "'", "-", "_", "’", "—", "\u00a0", "  ", "\t"]


def samples(n: int, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        k = rng.choice([1, 2, 3, 5, 10, 40, 150])
        out.append("".join(rng.choice(PIECES) + rng.choice(SEPARATORS) for _ in range(k)))
    return out


@pytest.mark.parametrize("text", [
    "don't stop", "'quoted' words", "a''b", "a'b'c d", "x_y z9 9z", "it's 'bcdf' o'clock", "''", "'a'",
    "bcdf's bcdfg", "rhythm 4ever", "end'", "   ", "", "A1'b2 c", "bcdfg\x1cqwrt",
])
def test_ascii_words_match_the_regex(text):
    # the same words, a joining apostrophe turned into a digit (the word stays non-alphabetic)
    assert T._words(text) == [w.replace("'", "0") for w in T._WORDS.findall(text)]


@pytest.mark.parametrize("text", [
    "aaaaaa", "x!!!!!!y", "------", "      ", "\u00a0" * 6, "\x00" * 6, "éééééé", "😀" * 6,
    "long text " * 30 + "zzzzzz", "long text " * 30 + "\x00" * 6, "word " * 50 + "😀" * 6,
])
def test_run_precheck_never_hides_a_run(text):
    if T._RUN.search(text):
        assert T._may_run(text, text.encode("utf-8", "surrogatepass"))


@pytest.mark.parametrize("text", [
    "aGVsbG8gd29ybGQgdGhpcyBp", "aGVsbG8gd29ybGQgdGhpcyB", "see aGVsbG8gd29ybGQgdGhpcyBp.", "qwrt", "qwrt the",
    "qwrt the cat", "bcdfg", "Strengths and rhythms.", "LLMs, HTML and https links are fine here",
])
def test_junk_boundaries(text):
    assert T.junk(text) == reference_junk(text)


def test_junk_matches_the_plain_formulation():
    for text in samples(3000):
        assert T.junk(text) == reference_junk(text), text


def test_word_verdict_cache_starting_over(monkeypatch):
    monkeypatch.setattr(T, "_SEEN_MAX", 5)
    texts = samples(300, seed=1)
    for _ in range(2):  # cold, then warm (and cleared many times over)
        for text in texts:
            assert T.junk(text) == reference_junk(text), text


@pytest.mark.parametrize("text", ["Don't STOP", "a_b c-d", "Ça va, \u212aelvin?", "İstanbul", "x²", ""])
def test_words_match_the_regex(text):
    assert H.words(text) == re.findall(r"\w+", text.lower())


@pytest.mark.parametrize("n", [0, 1, 2, 3, 5])
@pytest.mark.parametrize("limit", [0, 0.2, 0.4, 0.5, 0.9, 1.0, 1.5, -0.1])
def test_repeated_ngram_ratio_above_matches_the_share(n, limit):
    rng = random.Random(n)
    texts = samples(200, seed=2) + [
        "I like it. " * 10, "the cat sat on the mat", "",
        " ".join(rng.choice("abcd") for _ in range(2000)),
        " ".join(str(rng.random()) for _ in range(1500)) + " loop" * 300,
    ] + [  # repeats spread evenly, shares close to every limit
        " ".join(f"w{i}" if rng.random() < keep / 100 else "x" for i in range(600)) for keep in range(20, 100)
    ]
    for text in texts:
        r = H.repeated_ngram_ratio(text, n)
        assert H.repeated_ngram_ratio_above(text, limit, n) == (r if r > limit else None), text
