"""IFD scorer: instruction-following difficulty (Li et al. 2023, "From Quantity to Quality",
the Cherry LLM selection): ``loss(answer | prompt) / loss(answer)`` under the student.

Both losses are the mean token negative log-likelihood of the same response tokens (the
rendered final assistant turn, end-of-turn marker included, as the loglik scorer takes
them): once after the chat-rendered prompt, once after a lone start token. A ratio near or
above 1 means the prompt does not help the model predict the answer (hard, or unrelated);
low values mean the answer follows easily from the prompt. Higher is "more to learn".
"""

from __future__ import annotations

from collections.abc import Sequence

from .base import BatchCallback, Conversation, ScoreResult
from .batching import score_prepared
from .loglik import LoglikScorer, _Prepared


class IfdScorer:
    """``score_<name>`` = conditioned NLL / unconditioned NLL of the response."""

    kind = "ifd"

    def __init__(self, model: str | None = None, *, name: str = "ifd", **options):
        self.name = name
        self.inner = LoglikScorer(model, name=name, **options)

    @property
    def identity(self) -> str:
        return "ifd|" + self.inner.identity

    def unconditioned(self, prepared: Sequence[_Prepared]) -> list[_Prepared]:
        """The same response tokens after only a start token."""
        out = []
        for p in prepared:
            if p.ids is None:
                out.append(p)
            else:
                out.append(_Prepared([self.inner.start_id, *p.ids[p.n_prompt:]], n_prompt=1))
        return out

    def _losses(self, prepared: Sequence[_Prepared]) -> list[ScoreResult]:
        inner = self.inner
        return score_prepared(list(prepared), inner.score_batch, batch_size=inner.batch_size,
                              max_batch_tokens=inner.max_batch_tokens, sort=inner.sort)

    def score(self, conversations: Sequence[Conversation], on_batch: BatchCallback | None = None) -> list[ScoreResult]:
        cond_p = self.inner.prepare(conversations)
        cond = self._losses(cond_p)
        uncond = self._losses(self.unconditioned(cond_p))
        out = []
        for c, u in zip(cond, uncond):
            if c.score is None or u.score is None:
                out.append(ScoreResult(None, c.error or u.error))
            elif u.score == 0:
                out.append(ScoreResult(None, "answer has zero loss without the prompt: IFD undefined"))
            else:
                out.append(ScoreResult(c.score / u.score, None))  # (-cond) / (-uncond)
        if on_batch is not None:
            on_batch(list(range(len(out))), out)
        return out

    def release(self) -> None:
        self.inner.release()
