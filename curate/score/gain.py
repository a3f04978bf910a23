"""Gain scorer: does the answer belong to the question?

``score_gain`` = mean log p(answer | question) - mean log p(answer), in nats per answer token,
under a causal LM (default SmolLM2-135M-Instruct, offline). Both means are over the same
answer tokens (the rendered final assistant turn with its end-of-turn marker, as the loglik
scorer takes them): once after the chat-rendered prompt, once after a lone start token. A
good answer is easier to predict once the question is known (gain > 0); an answer to a
different question is not (gain near 0 or below). Unlike the plain log-likelihood, the gain
does not favour generic or frequent answers, so one threshold means about the same in every
category. (An echo of the question scores high: the echo text rule catches those.)

Both passes run as one length-sorted batched pass (:func:`conditional_pass`); identical
answers share one answer-only forward pass. The IFD scorer uses the same pass.
"""

from __future__ import annotations

from collections.abc import Sequence

from .base import BatchCallback, Conversation, ScoreResult
from .batching import score_prepared
from .loglik import LoglikScorer, _Prepared


def conditional_pass(inner: LoglikScorer, conversations: Sequence[Conversation]
                     ) -> list[tuple[float, float] | str]:
    """``(mean log p(answer | prompt), mean log p(answer))`` per conversation, or the reason
    there is none; every forward pass of both kinds in one length-sorted batching."""
    prepared = inner.prepare(conversations)
    items: list[_Prepared] = []
    cond_at: list[int | None] = []
    uncond_at: list[int | None] = []
    seen: dict[tuple[int, ...], int] = {}
    for p in prepared:
        if p.ids is None:
            cond_at.append(None)
            uncond_at.append(None)
            continue
        cond_at.append(len(items))
        items.append(p)
        answer = tuple(p.ids[p.n_prompt:])
        if answer not in seen:  # identical answers: one answer-only pass
            seen[answer] = len(items)
            items.append(_Prepared([inner.start_id, *answer], n_prompt=1))
        uncond_at.append(seen[answer])
    scored = score_prepared(items, inner.score_batch, batch_size=inner.batch_size,
                            max_batch_tokens=inner.max_batch_tokens, sort=inner.sort) if items else []
    out: list[tuple[float, float] | str] = []
    for p, c, u in zip(prepared, cond_at, uncond_at):
        if c is None or u is None:
            out.append(p.error or "nothing to score")
        else:
            out.append((scored[c].score, scored[u].score))
    return out


class GainScorer:
    """``score_<name>`` = mean log p(answer | prompt) - mean log p(answer), nats per token."""

    kind = "gain"

    def __init__(self, model: str | None = None, *, name: str = "gain", **options):
        self.name = name
        self.inner = LoglikScorer(model, name=name, **options)

    @property
    def identity(self) -> str:
        return "gain|" + self.inner.identity

    def combine(self, cond: float, uncond: float) -> ScoreResult:
        """The row's score from its two mean log-probabilities."""
        return ScoreResult(cond - uncond, None)

    def score(self, conversations: Sequence[Conversation], on_batch: BatchCallback | None = None) -> list[ScoreResult]:
        out = [ScoreResult(None, r) if isinstance(r, str) else self.combine(*r)
               for r in conditional_pass(self.inner, conversations)]
        if on_batch is not None:
            on_batch(list(range(len(out))), out)
        return out

    def release(self) -> None:
        self.inner.release()
