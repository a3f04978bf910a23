"""Verifier scorer: a programmatic check of the response from ``thresher eval``'s verifiers
(``sentences:1-2``, ``words:5-40``, ``json``, ``lang:en``, ``regex:PATTERN``), 1.0 pass, 0.0 fail.
Rejection sampling against the behaviour wanted: ``filter`` keeps rows with
``min_scores: {score_NAME: 1}``. Verifiers needing a reference, tests or the finish reason
(exact, numeric, code, ends) are not available here (use ``drop_truncated`` for ends)."""

from __future__ import annotations

from collections.abc import Sequence

from thresher.errors import ThresherError

from .base import BatchCallback, Conversation, ScoreResult, split_response

NOT_HERE = ("exact", "numeric", "code", "ends")


class VerifyScorer:
    """``score_<name>`` = 1.0 when the verifier passes the final assistant turn."""

    kind = "verify"

    def __init__(self, spec: str | None, *, name: str = "verify", **unused):
        from thresher.evaluate.judges import JudgeSpecError, parse_judge

        if not spec:
            raise ThresherError("verify scorer needs a verifier, e.g. verify:sentences:1-2")
        try:
            self.judge = parse_judge(spec)
        except JudgeSpecError as e:
            raise ThresherError(f"scorer verify:{spec}: {e}") from None
        if not self.judge.is_verifier or self.judge.kind in NOT_HERE or self.judge.needs_reference:
            raise ThresherError(f"scorer verify:{spec}: {self.judge.kind} is not a response-only verifier "
                                "(use sentences, words, json, lang or regex:PATTERN)")
        self.name = name
        self.spec = spec
        self._fn = self.judge.verifier()

    @property
    def identity(self) -> str:
        return f"verify|{self.spec}"

    def score(self, conversations: Sequence[Conversation], on_batch: BatchCallback | None = None) -> list[ScoreResult]:
        from thresher.evaluate.verifiers import Item

        out = []
        for conv in conversations:
            _, resp = split_response(conv)
            out.append(ScoreResult(float(self._fn(resp["content"], Item())), None) if resp is not None
                       else ScoreResult(None, "no final assistant turn to score"))
        if on_batch is not None:
            on_batch(list(range(len(out))), out)
        return out
