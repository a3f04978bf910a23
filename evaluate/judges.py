"""Judge specs of ``thresher eval``: ``[NAME=]KIND[:ARGS]``, each giving one metric per
prompt and model.

Verifiers (programmatic, 1 = pass, 0 = fail):

- ``math``: the answer's final answer (``\\boxed{}``, "the answer is", else its last
  expression) is equivalent to the reference, by HF's math-verify (fractions, roots,
  intervals, sets, percent);
- ``exact``: the answer equals the reference (case, spaces and end punctuation ignored);
- ``regex:PATTERN``: the answer matches PATTERN (time-limited per row); plain ``regex``: the
  answer contains the reference, read as a literal; ``regex:{reference}``: the reference is the pattern;
- ``numeric`` or ``numeric:TOL``: the answer's last number equals the reference's;
- ``json`` or ``json:SCHEMA.json``: the answer (or its first fenced block) parses as JSON and
  validates against the schema file;
- ``ends``: the answer ended by itself (end-of-turn) within the token budget (max_tokens);
- ``sentences:LO-HI`` (or ``sentences:HI``): the answer has LO to HI sentences;
- ``words:LO-HI`` (or ``words:HI``): the answer has LO to HI words;
- ``lang:CODE``: py3langid says the answer is in language CODE (``en``, ``fr`` ...);
- ``code`` or ``code:TIMEOUT_S``: the answer's code passes the prompt's tests (HumanEval
  ``check(entry_point)``), run to their end in :mod:`thresher.sandbox` (eval's ``sandbox``
  option gives a container command).

Model-based (never the training signal unless you name it):

- ``refnll``: mean token negative log-likelihood of the held-out human reference answer
  under each model (lower is better; it measures knowledge kept or lost);
- ``reward:MODEL``: a reward model's score of each answer (the curate score code);
- ``judge:BACKEND[:MODEL]``: an LLM judge's pointwise 1-10 rating (the curate score code);
- ``pairwise:BACKEND[:MODEL]``: an LLM judge picks the better of two models' answers, asked
  in both orders (a win needs both orders to agree; disagreement is a tie).

When two or more verifiers are named, ``all`` (every verifier passes) is added. Every
verifier but ``ends`` judges the answer after its reasoning block (``<think>...</think>``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from thresher.evaluate import verifiers as v
from thresher.named_spec import split_named_spec

VERIFIERS = ("exact", "regex", "numeric", "math", "json", "ends", "sentences", "words", "lang", "code")
MODEL_JUDGES = ("refnll", "reward", "judge", "pairwise")
KINDS = VERIFIERS + MODEL_JUDGES
#: verifiers that compare with the reference answer
NEEDS_REFERENCE = ("exact", "numeric", "math")
_RANGE = re.compile(r"^\s*(\d+)?\s*(?:-\s*(\d+)?)?\s*$")


class JudgeSpecError(ValueError):
    """A malformed judge spec (the message is one user-facing line)."""


@dataclass(frozen=True)
class Judge:
    """A parsed judge spec: its metric name, kind and arguments."""

    name: str
    kind: str
    arg: str | None = None
    options: dict[str, Any] = field(default_factory=dict, hash=False, compare=False)

    @property
    def is_verifier(self) -> bool:
        return self.kind in VERIFIERS

    @property
    def higher_is_better(self) -> bool:
        return self.kind != "refnll"

    @property
    def needs_reference(self) -> bool:
        return self.kind in NEEDS_REFERENCE or self.kind == "refnll" or (
            self.kind == "regex" and self.arg in (None, v.REFERENCE_PATTERN))

    @property
    def needs_tests(self) -> bool:
        return self.kind == "code"

    @property
    def needs_finish_reason(self) -> bool:
        return self.kind == "ends"

    def verifier(self):
        """``(answer, item) -> float`` for a verifier judge; every verifier but ``ends``
        judges the answer after its reasoning block."""
        fn = self._verifier()
        return fn if self.kind == "ends" else partial(_after_reasoning, fn)

    def _verifier(self):
        fn = {"exact": v.exact_match, "ends": v.ends_in_budget, "math": v.math_equal}.get(self.kind)
        if fn is not None:
            return fn
        o = self.options
        table = {
            "regex": partial(v.regex_match, pattern=self.arg),
            "numeric": partial(v.numeric_match, tol=o.get("tol", 1e-6)),
            "json": partial(v.json_valid, schema=o.get("schema")),
            "sentences": partial(v.sentence_limit, lo=o.get("lo"), hi=o.get("hi")),
            "words": partial(v.word_limit, lo=o.get("lo"), hi=o.get("hi")),
            "lang": partial(v.language_is, lang=self.arg or "en"),
            "code": partial(v.code_passes, timeout=o.get("timeout", 10.0)),
        }
        return table[self.kind]


def _after_reasoning(fn, answer: str, item: v.Item) -> float:
    return fn(v.after_reasoning(answer), item)


def _range(text: str, spec: str) -> dict[str, int | None]:
    m = _RANGE.match(text or "")
    if not text or m is None or (m.group(1) is None and m.group(2) is None):
        raise JudgeSpecError(f"judge {spec!r}: expected a range like 1-2, 3 or 10- after ':'")
    lo, hi = m.group(1), m.group(2)
    if "-" not in text:  # a single number is a maximum
        return {"lo": 1, "hi": int(lo)}
    out = {"lo": int(lo) if lo else None, "hi": int(hi) if hi else None}
    if out["lo"] is not None and out["hi"] is not None and out["lo"] > out["hi"]:
        raise JudgeSpecError(f"judge {spec!r}: the range's low end is above its high end")
    return out


def _options(kind: str, arg: str | None, spec: str) -> dict[str, Any]:
    if kind in ("sentences", "words"):
        return _range(arg or "", spec)
    if kind in ("numeric", "code") and arg:
        try:
            value = float(arg)
        except ValueError:
            raise JudgeSpecError(f"judge {spec!r}: {'tolerance' if kind == 'numeric' else 'timeout'} "
                                 f"must be a number, got {arg!r}") from None
        return {"tol": value} if kind == "numeric" else {"timeout": value}
    if kind == "json" and arg:
        import json

        p = Path(arg)
        if not p.is_file():
            raise JudgeSpecError(f"judge {spec!r}: schema file not found: {arg}")
        try:
            return {"schema": json.loads(p.read_text(encoding="utf-8"))}
        except ValueError as e:
            raise JudgeSpecError(f"judge {spec!r}: {arg} is not JSON ({e})") from None
    if kind == "regex" and arg and arg != v.REFERENCE_PATTERN:
        import regex

        try:
            regex.compile(arg)
        except regex.error as e:
            raise JudgeSpecError(f"judge {spec!r}: bad regular expression ({e})") from None
    if kind in ("reward",) and not arg:
        raise JudgeSpecError(f"judge {spec!r}: reward needs a model, e.g. reward:PATH_OR_HUB_NAME")
    if kind in ("judge", "pairwise") and not arg:
        raise JudgeSpecError(f"judge {spec!r}: {kind} needs a backend, e.g. {kind}:transformers:smollm2")
    if kind in ("exact", "ends", "refnll", "math") and arg:
        raise JudgeSpecError(f"judge {spec!r}: {kind} takes no argument")
    return {}


def parse_judge(spec: str) -> Judge:
    """Parse one judge spec (see the module docstring); raise JudgeSpecError."""
    name, kind, arg, sep = split_named_spec(spec, "judge", KINDS, JudgeSpecError)
    arg = arg if sep else None
    return Judge(name or kind, kind, arg or None, _options(kind, arg or None, str(spec)))


def parse_judges(specs: tuple[str, ...] | list[str]) -> tuple[list[Judge], list[str]]:
    """Every judge parsed, and the problems (one string each, duplicate names included)."""
    judges, problems, seen = [], [], set()
    for i, s in enumerate(specs):
        try:
            j = parse_judge(s)
        except JudgeSpecError as e:
            problems.append(f"judges[{i}]: {e}")
            continue
        if j.name in seen or j.name == "all":
            problems.append(f"judges[{i}]: two judges named {j.name!r}; name one, e.g. {j.name}2={s}")
        seen.add(j.name)
        judges.append(j)
    return judges, problems
