"""LLM-judge scorer: a rubric prompt asking for a structured score, read strictly.

The judge model is reached through a ``generate`` callable (list of conversations -> list
of answer strings), so any distill backend works without this package importing distill:
the stage builds the callable with ``thresher.generation.make_generator``.

The answer must carry an explicit score inside the scale: a JSON object with a ``score``
key, a ``score: N`` (or ``N/10``-style) line, or a bare number. Anything else is retried
with a reminder of the format; after the retries the row gets no score and its
``<name>_error`` holds the raw answer. A number is never guessed from prose.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Callable, Sequence

from .base import BatchCallback, Conversation, ScoreResult

Generate = Callable[[list[list[dict]]], list[str]]

DEFAULT_RUBRIC = """You are a strict, fair judge of assistant responses.
Rate the final assistant response in the conversation for helpfulness, correctness,
relevance to the user's request, clarity and safety. A response that is wrong, off-topic,
empty, truncated, a needless refusal or that only repeats the question deserves a low
score; a correct, complete, clear answer deserves a high one."""

_FORMAT = (
    'Reply with only a JSON object: {{"score": <integer from {lo} to {hi}>, '
    '"reason": "<one short sentence>"}}'
)

_SCORE_LINE = re.compile(
    r"""["']?score["']?\s*[:=]\s*["']?(-?\d+(?:\.\d+)?)\s*(?:/\s*(\d+(?:\.\d+)?))?""",
    re.IGNORECASE,
)
_BARE = re.compile(r"^\s*(-?\d+(?:\.\d+)?)\s*(?:/\s*(\d+(?:\.\d+)?))?\s*\.?\s*$")


def _json_objects(text: str):
    """Yield every JSON object that parses from a '{' ... '}' span of ``text``."""
    starts = [i for i, c in enumerate(text) if c == "{"][:20]  # answers are short; stay bounded
    for s in starts:
        for e in range(len(text) - 1, s, -1):
            if text[e] != "}":
                continue
            try:
                obj = json.loads(text[s : e + 1])
            except ValueError:
                continue
            if isinstance(obj, dict):
                yield obj
                break


def parse_judge_answer(text: str | None, lo: float, hi: float) -> tuple[float | None, str | None]:
    """Read a score from a judge answer: (score, None) or (None, why it was rejected)."""
    if text is None or not str(text).strip():
        return None, "empty answer"
    text = str(text)
    value: float | None = None
    denominator: float | None = None
    for obj in _json_objects(text):
        keys = {str(k).lower(): v for k, v in obj.items()}
        if "score" in keys:
            raw = keys["score"]
            if isinstance(raw, bool):
                return None, f"score is not a number: {raw!r}"
            try:
                value = float(raw)
            except (TypeError, ValueError):
                return None, f"score is not a number: {raw!r}"
            break
    if value is None:
        m = _SCORE_LINE.search(text) or _BARE.match(text)
        if m is None:
            return None, "no score found"
        value = float(m.group(1))
        denominator = float(m.group(2)) if m.group(2) else None
    if denominator is not None and denominator != hi:
        return None, f"score {value:g}/{denominator:g} is not on the {lo:g}-{hi:g} scale"
    if math.isnan(value) or not lo <= value <= hi:
        return None, f"score {value:g} outside {lo:g}-{hi:g}"
    return value, None


def _excerpt(text: str | None, limit: int = 300) -> str:
    text = "" if text is None else str(text)
    return text if len(text) <= limit else text[:limit] + "..."


class JudgeScorer:
    """Scores conversations by asking an LLM judge for a structured rating."""

    kind = "judge"

    def __init__(
        self,
        generate: Generate,
        *,
        model_id: str,
        name: str = "judge",
        rubric: str = DEFAULT_RUBRIC,
        scale: tuple[int, int] = (1, 10),
        retries: int = 2,
        batch_size: int = 8,
    ):
        """``model_id`` names the judge (backend and model) for the score cache key."""
        if retries < 0:
            raise ValueError("retries must be >= 0")
        self.generate = generate
        self.model_id = model_id
        self.name = name
        self.rubric = rubric
        self.lo, self.hi = scale
        self.retries = retries
        self.batch_size = batch_size

    @property
    def identity(self) -> str:
        rubric_hash = hashlib.sha256(self.rubric.encode()).hexdigest()[:16]
        return f"judge|{self.model_id}|rubric={rubric_hash}|scale={self.lo}-{self.hi}"

    def judge_prompt(self, conversation: Conversation) -> list[dict]:
        """The messages sent to the judge for one conversation."""
        shown = "\n\n".join(
            f"[{m['role']}]\n{m['content']}" for m in conversation
        )
        fmt = _FORMAT.format(lo=self.lo, hi=self.hi)
        user = (
            f"Conversation to rate:\n<conversation>\n{shown}\n</conversation>\n\n"
            f"Rate the final assistant response from {self.lo} (worst) to {self.hi} (best). {fmt}"
        )
        return [{"role": "system", "content": self.rubric}, {"role": "user", "content": user}]

    def _retry_prompt(self, base: list[dict], answer: str | None, why: str) -> list[dict]:
        fmt = _FORMAT.format(lo=self.lo, hi=self.hi)
        return base + [
            {"role": "assistant", "content": "" if answer is None else str(answer)},
            {"role": "user", "content": f"Your answer could not be read ({why}). {fmt}"},
        ]

    def _ask(self, prompts: list[list[dict]]) -> list[str | None]:
        answers = list(self.generate(prompts))
        if len(answers) != len(prompts):
            raise RuntimeError(
                f"judge backend returned {len(answers)} answers for {len(prompts)} prompts"
            )
        return answers

    def score_batch(self, conversations: Sequence[Conversation]) -> list[ScoreResult]:
        """Judge one batch, retrying unreadable answers up to ``retries`` times."""
        base = [self.judge_prompt(c) for c in conversations]
        results: list[ScoreResult | None] = [None] * len(base)
        pending = list(range(len(base)))
        prompts = list(base)
        last: dict[int, tuple[str | None, str]] = {}
        for _attempt in range(self.retries + 1):
            answers = self._ask([prompts[i] for i in pending])
            still = []
            for i, ans in zip(pending, answers):
                value, why = parse_judge_answer(ans, self.lo, self.hi)
                if value is not None:
                    results[i] = ScoreResult(value, None)
                else:
                    last[i] = (ans, why)
                    prompts[i] = self._retry_prompt(base[i], ans, why)
                    still.append(i)
            pending = still
            if not pending:
                break
        tries = self.retries + 1
        for i in pending:
            ans, why = last[i]
            results[i] = ScoreResult(
                None,
                f"judge_error: unreadable answer after {tries} tries ({why}): {_excerpt(ans)!r}",
            )
        return results  # type: ignore[return-value]

    def score(
        self, conversations: Sequence[Conversation], on_batch: BatchCallback | None = None
    ) -> list[ScoreResult]:
        out: list[ScoreResult] = []
        for start in range(0, len(conversations), self.batch_size):
            chunk = list(conversations[start : start + self.batch_size])
            res = self.score_batch(chunk)
            out.extend(res)
            if on_batch is not None:
                on_batch(list(range(start, start + len(chunk))), res)
        return out
