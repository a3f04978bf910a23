"""Programmatic verifiers: each turns one answer (and its reference) into a pass (1.0) or a
fail (0.0), independent of any model's preferences.

Every verifier is a plain function ``(answer, item) -> float`` where ``item`` is an
:class:`Item` holding the answer's reference, its finish reason and the prompt's tests. The
judge specs of ``thresher eval`` (see :mod:`thresher.evaluate.judges`) build them.
"""

from __future__ import annotations

import json
import math
import re
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

_NUMBER = re.compile(r"[-+]?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?:[eE][-+]?\d+)?")
# a sentence ends at . ! ? (one or more, maybe followed by a closing quote/bracket) then space or end
_SENTENCE_END = re.compile(r"[.!?]+[\"')\]]*(?=\s|$)")
_FENCE = re.compile(r"```(?:[A-Za-z0-9_+-]*)\n(.*?)```", re.S)


@dataclass(frozen=True)
class Item:
    """What a verifier may look at besides the answer."""

    reference: str | None = None
    finish_reason: str | None = None
    tests: str | None = None
    entry_point: str | None = None
    prompt: str | None = None


def normalize(text: str) -> str:
    """Lower-case, strip punctuation at the ends and collapse spaces (for exact match)."""
    t = re.sub(r"\s+", " ", (text or "").strip().lower())
    return t.strip(" .!?,;:\"'`")


def exact_match(answer: str, item: Item) -> float:
    """1.0 when the normalized answer equals the normalized reference."""
    return float(normalize(answer) == normalize(item.reference or ""))


def regex_match(answer: str, item: Item, pattern: str | None = None) -> float:
    """1.0 when ``pattern`` (or, without one, the reference read as a regex) matches the answer."""
    pat = pattern if pattern is not None else (item.reference or "")
    return float(re.search(pat, answer or "", flags=re.S) is not None)


def numbers(text: str) -> list[float]:
    """Every number in ``text`` (``1,234.5`` counts as one number)."""
    return [float(m.replace(",", "")) for m in _NUMBER.findall(text or "")]


def numeric_match(answer: str, item: Item, tol: float = 1e-6) -> float:
    """1.0 when the last number in the answer equals the reference's last number (within ``tol``)."""
    got, want = numbers(answer), numbers(item.reference or "")
    if not got or not want:
        return 0.0
    return float(math.isclose(got[-1], want[-1], rel_tol=tol, abs_tol=tol))


def _json_text(answer: str) -> str:
    m = _FENCE.search(answer or "")
    return (m.group(1) if m else answer or "").strip()


def json_valid(answer: str, item: Item, schema: dict[str, Any] | None = None) -> float:
    """1.0 when the answer (or its first fenced block) parses as JSON and, given a schema,
    validates against it (JSON Schema, via ``jsonschema``)."""
    try:
        value = json.loads(_json_text(answer))
    except ValueError:
        return 0.0
    if schema is None:
        return 1.0
    import jsonschema

    try:
        jsonschema.validate(value, schema)
    except jsonschema.ValidationError:
        return 0.0
    return 1.0


def ends_in_budget(answer: str, item: Item) -> float:
    """1.0 when generation stopped by itself (end-of-turn) before the token budget ran out."""
    return float(item.finish_reason == "stop" and bool((answer or "").strip()))


def count_sentences(text: str) -> int:
    """Sentences in ``text``: runs ended by ``.``, ``!`` or ``?`` (a trailing unended run counts)."""
    t = re.sub(_FENCE, " ", text or "").strip()
    if not t:
        return 0
    ends = list(_SENTENCE_END.finditer(t))
    n = len(ends)
    tail = t[ends[-1].end():] if ends else t
    return n + (1 if tail.strip() else 0)


def count_words(text: str) -> int:
    """Whitespace-separated words in ``text``."""
    return len((text or "").split())


def in_range(value: int, lo: int | None, hi: int | None) -> float:
    """1.0 when ``lo <= value <= hi`` (a missing bound is open)."""
    return float((lo is None or value >= lo) and (hi is None or value <= hi))


def sentence_limit(answer: str, item: Item, lo: int | None = 1, hi: int | None = None) -> float:
    """1.0 when the answer has between ``lo`` and ``hi`` sentences."""
    return in_range(count_sentences(answer), lo, hi)


def word_limit(answer: str, item: Item, lo: int | None = 1, hi: int | None = None) -> float:
    """1.0 when the answer has between ``lo`` and ``hi`` words."""
    return in_range(count_words(answer), lo, hi)


def language_is(answer: str, item: Item, lang: str = "en") -> float:
    """1.0 when py3langid identifies the answer's language as ``lang`` (ISO 639-1)."""
    if not (answer or "").strip():
        return 0.0
    import py3langid

    return float(py3langid.classify(answer)[0] == lang)


def extract_code(answer: str) -> str:
    """The first fenced code block of the answer, or the whole answer."""
    m = _FENCE.search(answer or "")
    return m.group(1) if m else (answer or "")


def code_passes(answer: str, item: Item, timeout: float = 10.0) -> float:
    """1.0 when the answer's code passes the prompt's tests (HumanEval style: ``tests``
    defines ``check(candidate)``, called with ``entry_point``), run in a fresh Python
    subprocess in an empty temporary folder with a timeout, no network (proxies pointed at
    nothing, sockets disabled) and no inherited environment."""
    if not item.tests:
        return 0.0
    code = extract_code(answer)
    if item.prompt and item.entry_point and f"def {item.entry_point}" not in code:
        code = item.prompt + code  # a completion of the HumanEval prompt's function body
    program = "\n".join([_NO_NETWORK, code, "", item.tests, ""])
    if item.entry_point:
        program += f"\ncheck({item.entry_point})\n"
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "check.py"
        path.write_text(program, encoding="utf-8")
        env = {"PATH": "/usr/bin:/bin", "HTTP_PROXY": "http://0.0.0.0:9", "HTTPS_PROXY": "http://0.0.0.0:9",
               "NO_PROXY": "", "PYTHONDONTWRITEBYTECODE": "1"}
        try:
            proc = subprocess.run([sys.executable, "-I", str(path)], cwd=tmp, env=env, timeout=timeout,
                                  stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        except subprocess.TimeoutExpired:
            return 0.0
    return float(proc.returncode == 0)


#: prepended to every checked program: no sockets, no network
_NO_NETWORK = """
import socket as _s
def _blocked(*a, **k):
    raise OSError("network disabled in thresher eval")
_s.socket = _blocked
_s.create_connection = _blocked
_s.getaddrinfo = _blocked
del _s, _blocked
"""


# ---------------------------------------------------------------- verified distillation

#: reasoning blocks: the answer a verifier judges is what follows the block
_REASONING_MARKERS = (("<think>", "</think>"), ("<thinking>", "</thinking>"))


def after_reasoning(text: str) -> str:
    """The answer part of ``text``: what follows a ``<think>...</think>`` block (or
    ``<thinking>``; a close marker alone counts everything before it as reasoning). An
    open block never closed (generation cut inside the reasoning) leaves only the text
    before it; without markers the text is unchanged."""
    text = text or ""
    for open_m, close_m in _REASONING_MARKERS:
        if close_m in text:
            head, _, answer = text.rpartition(close_m)
            before = head.partition(open_m)[0] if open_m in head else ""
            return (before + answer).strip()
        if open_m in text:
            return text.partition(open_m)[0].strip()
    return text


def _math_timeout() -> int | None:
    """math-verify's timeouts use signal.alarm, which works only in the main thread."""
    import threading

    return 5 if threading.current_thread() is threading.main_thread() else None


def parse_math(text: str, *, gold: bool = False) -> list:
    """``math_verify.parse`` of ``text`` (LaTeX or a plain expression; ``\\boxed{}``, "the
    answer is" and else the last expression of an answer). A reference (``gold``) that does
    not parse as it is is tried as inline math (``$...$``), then boxed."""
    from math_verify import parse

    timeout = _math_timeout()
    candidates = (text, f"${text}$", f"\\boxed{{{text}}}") if gold else (text,)
    for cand in candidates:
        parsed = parse(cand, parsing_timeout=timeout)
        if parsed:
            return parsed
    return []


def math_equal(answer: str, item: Item) -> float:
    """1.0 when the answer's final answer (after any reasoning block) is mathematically
    equivalent to the reference, as HF's math-verify judges it (fractions, roots, intervals,
    sets, percent, thousands separators, units)."""
    from math_verify import verify

    gold = parse_math((item.reference or "").strip(), gold=True)
    if not gold:
        return 0.0
    pred = parse_math(after_reasoning(answer))
    if not pred:
        return 0.0
    return float(bool(verify(gold, pred, timeout_seconds=_math_timeout())))
