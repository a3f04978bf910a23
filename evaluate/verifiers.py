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
from dataclasses import dataclass
from typing import Any

_NUMBER = re.compile(r"[-+]?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?:[eE][-+]?\d+)?")
# a sentence ends at . ! ? (one or more, maybe followed by a closing quote/bracket) then space or end
# a run of sentence-ending marks and closers; it ends a sentence when followed by a space or the end
# (matched as whole runs, then tested: no lookahead, no backtracking, linear in the text)
_END_RUN = re.compile(r"[.!?]+[\"')\]]*")
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


#: the ``regex`` judge's match time limit per row, in seconds: a match running past it is a fail
REGEX_TIMEOUT = 0.1
#: ``regex:{reference}``: the row's reference is the pattern (plain ``regex``: it is a literal)
REFERENCE_PATTERN = "{reference}"


def regex_match(answer: str, item: Item, pattern: str | None = None, timeout: float = REGEX_TIMEOUT) -> float:
    """1.0 when ``pattern`` matches the answer (``regex`` module, ``re`` syntax, dot matches
    newlines, at most ``timeout`` seconds of matching per row: past it, a fail).

    Without a pattern the row's reference is a *literal* the answer must contain; the pattern
    ``{reference}`` reads the row's reference as the pattern (time-limited like any other)."""
    import regex

    text = answer or ""
    if pattern is None:
        return float((item.reference or "") in text)
    if pattern == REFERENCE_PATTERN:
        pattern = item.reference or ""
    try:
        return float(regex.search(pattern, text, flags=regex.S, timeout=timeout) is not None)
    except (TimeoutError, regex.error):
        return 0.0


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
    except (ValueError, RecursionError):  # RecursionError: nesting deeper than the parser goes
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
    n, last, size = 0, 0, len(t)
    for m in _END_RUN.finditer(t):
        end = m.end()
        if end == size or t[end].isspace():
            n, last = n + 1, end
    return n + (1 if t[last:].strip() else 0)


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


def _program(answer: str, item: Item) -> str:
    """The candidate's code: the answer's code block, after the HumanEval prompt when the
    answer only completes the prompt's function body."""
    code = extract_code(answer)
    if item.prompt and item.entry_point and f"def {item.entry_point}" not in code:
        code = item.prompt + code
    return code


def code_passes(answer: str, item: Item, timeout: float = 10.0, sandbox: str | None = None) -> float:
    """1.0 when the answer's code passes the prompt's tests (HumanEval style: ``tests``
    defines ``check(candidate)``, called with ``entry_point``; without one, plain asserts).

    It runs in :mod:`thresher.sandbox` (the strongest isolation level this machine allows, or
    the container command ``sandbox``) and passes only with the completion proof: the tests
    ran to their end (an early ``sys.exit(0)``, ``os._exit(0)`` or ``atexit`` is a fail)."""
    return code_passes_many([answer], [item], timeout=timeout, sandbox=sandbox, workers=1)[0]


def code_passes_many(answers: list[str], items: list[Item], timeout: float = 10.0, sandbox: str | None = None,
                     workers: int | None = None) -> list[float]:
    """:func:`code_passes` over many answers with ``workers`` parallel sandboxes (default:
    the CPU count); an item without tests fails."""
    from thresher.sandbox import Limits, verify_many

    todo = [i for i, it in enumerate(items) if it.tests]
    outcomes = verify_many([(_program(answers[i], items[i]), items[i].tests, items[i].entry_point) for i in todo],
                           workers=workers, limits=Limits(timeout=timeout), sandbox=sandbox)
    out = [0.0] * len(items)
    for i, o in zip(todo, outcomes):
        out[i] = float(o.passed)
    return out


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


#: an answer that stops on an operator or an equals sign has not stated its result
_UNFINISHED = re.compile(r"(?:=|[+\-*/×÷^]|\\(?:times|cdot|div))\s*\$*\s*$")


def math_equal(answer: str, item: Item) -> float:
    """1.0 when the answer's final answer (after any reasoning block) is mathematically
    equivalent to the reference, as HF's math-verify judges it (fractions, roots, intervals,
    sets, percent, thousands separators, units)."""
    from math_verify import verify

    gold = parse_math((item.reference or "").strip(), gold=True)
    if not gold:
        return 0.0
    final = after_reasoning(answer)
    if _UNFINISHED.search(final):  # "Therefore, 30 - 2 =": math-verify would evaluate it; no answer was given
        return 0.0
    pred = parse_math(final)
    if not pred:
        return 0.0
    return float(bool(verify(gold, pred, timeout_seconds=_math_timeout())))
