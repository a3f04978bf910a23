"""IFD scorer: instruction-following difficulty (Li et al. 2023, "From Quantity to Quality",
the Cherry LLM selection): ``loss(answer | prompt) / loss(answer)`` under the student.

Both losses are the mean token negative log-likelihood of the same response tokens (the
rendered final assistant turn, end-of-turn marker included, as the loglik scorer takes
them): once after the chat-rendered prompt, once after a lone start token. A ratio near or
above 1 means the prompt does not help the model predict the answer (hard, or unrelated);
low values mean the answer follows easily from the prompt. Higher is "more to learn".
Both passes run as one length-sorted batched pass shared with the gain scorer
(:func:`thresher.curate.score.gain.conditional_pass`).
"""

from __future__ import annotations

from .base import ScoreResult
from .gain import GainScorer


class IfdScorer(GainScorer):
    """``score_<name>`` = conditioned NLL / unconditioned NLL of the response."""

    kind = "ifd"
    neutral = False  # the paper's answer-only loss: after a lone start token

    def combine(self, cond: float, uncond: float, last: float) -> ScoreResult:
        if uncond == 0:
            return ScoreResult(None, "answer has zero loss without the prompt: IFD undefined")
        return ScoreResult(cond / uncond, None)  # (-cond) / (-uncond)
