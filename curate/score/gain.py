"""Gain scorer: does the answer belong to the question?

``score_gain`` = mean log p(answer | question) - mean log p(answer), in nats per answer token,
under a causal LM (default SmolLM2-135M-Instruct, offline). Both means are over the same
answer tokens (the rendered final assistant turn with its end-of-turn marker, as the loglik
scorer takes them): once after the chat-rendered prompt, once after the same chat frame with
an empty user turn (a lone start token when the model has no chat template). The frame
takes out what any chat context adds to an answer, so the gain is what this question adds
(on planted answers to other questions in chatterbot Q/A, AUC 0.81 against 0.71 after a
lone start token). A
good answer is easier to predict once the question is known (gain > 0); an answer to a
different question is not (gain near 0 or below). Unlike the plain log-likelihood, the gain
does not favour generic or frequent answers, so one threshold means about the same in every
category. (An echo of the question scores high: the echo text rule catches those.)

Both passes run as one length-sorted batched pass (:func:`conditional_pass`); identical
answers share one answer-only forward pass. The IFD scorer uses the same pass.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .base import BatchCallback, Conversation, ScoreResult
from .batching import score_prepared
from .loglik import LoglikScorer, Prepared
from .options import ModelOptions


def neutral_frame(inner: LoglikScorer) -> list[int]:
    """Token ids that stand before an answer when the question is empty: the chat template's
    rendering of one empty user turn plus the generation prompt (a start token without one)."""
    tok = inner.tokenizer
    if getattr(tok, "chat_template", None):
        text = tok.apply_chat_template([{"role": "user", "content": ""}], tokenize=False,
                                       add_generation_prompt=True)
        ids = list(tok(text, add_special_tokens=False)["input_ids"])
        if ids:
            return ids
    return [inner.start_id]


#: results of recent conditional passes, shared by the gain, ending and ifd scorers of one
#: process: a second scorer over the same rows reuses the first one's forward passes
_MEMO: dict[tuple[str, str], tuple[float, float, float]] = {}
_MEMO_LIMIT = 500_000


def conditional_pass(inner: LoglikScorer, conversations: Sequence[Conversation],
                     frame: Sequence[int] | None = None) -> list[tuple[float, float, float] | str]:
    """:func:`_conditional_pass` through the per-process memo (keyed by model, frame and
    conversation)."""
    from .base import conversation_key

    tag = f"{inner.identity}|frame={'neutral' if frame is None else list(frame)}"
    keys = [(tag, conversation_key(c)) for c in conversations]
    todo = [i for i, k in enumerate(keys) if k not in _MEMO]
    fresh = _conditional_pass(inner, [conversations[i] for i in todo], frame) if todo else []
    out: list = [None] * len(keys)
    for i, r in zip(todo, fresh):
        out[i] = r
        if not isinstance(r, str):
            if len(_MEMO) >= _MEMO_LIMIT:
                _MEMO.clear()
            _MEMO[keys[i]] = r
    return [out[i] if out[i] is not None else _MEMO[k] for i, k in enumerate(keys)]


def _conditional_pass(inner: LoglikScorer, conversations: Sequence[Conversation],
                      frame: Sequence[int] | None = None) -> list[tuple[float, float, float] | str]:
    """``(mean log p(answer | prompt), mean log p(answer | empty frame), log p(last answer token |
    prompt, answer before it))`` per conversation, or the reason
    there is none; every forward pass of both kinds in one length-sorted batching. ``frame``:
    the ids before the answer in the answer-only pass (default :func:`neutral_frame`)."""
    prepared = inner.prepare(conversations)
    frame = neutral_frame(inner) if frame is None else list(frame)
    items: list[Prepared] = []
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
            items.append(Prepared([*frame, *answer], n_prompt=len(frame)))
        uncond_at.append(seen[answer])
    detail: dict[int, float] = {}

    def batch(b: list[Prepared]) -> list[float]:
        res = inner.score_batch_detail(b)
        for p, (_mean, last) in zip(b, res):
            detail[id(p)] = last
        return [mean for mean, _last in res]

    scored = score_prepared(items, batch, batch_size=inner.batch_size,
                            max_batch_tokens=inner.max_batch_tokens, sort=inner.sort) if items else []
    out: list[tuple[float, float, float] | str] = []
    for p, c, u in zip(prepared, cond_at, uncond_at):
        if c is None or u is None:
            out.append(p.error or "nothing to score")
        else:
            out.append((scored[c].score, scored[u].score, detail[id(items[c])]))
    return out


class GainScorer:
    """``score_<name>`` = mean log p(answer | prompt) - mean log p(answer), nats per token."""

    kind = "gain"
    neutral = True  # answer-only pass after the empty-question chat frame (else a start token)

    def __init__(self, model: str | None = None, *, name: str | None = None,
                 options: ModelOptions | None = None, **overrides: Any):
        """``options``: the shared model-scorer options (default: score's Config defaults);
        keyword arguments override single fields."""
        self.name = name or self.kind
        self.inner = LoglikScorer(model, name=self.name, options=options, **overrides)

    @property
    def identity(self) -> str:
        return f"{self.kind}|" + self.inner.identity

    def combine(self, cond: float, uncond: float, last: float) -> ScoreResult:
        """The row's score from its two mean log-probabilities (and the last token's)."""
        return ScoreResult(cond - uncond, None)

    def score(self, conversations: Sequence[Conversation], on_batch: BatchCallback | None = None) -> list[ScoreResult]:
        out = [ScoreResult(None, r) if isinstance(r, str) else self.combine(*r)
               for r in conditional_pass(self.inner, conversations,
                                         None if self.neutral else [self.inner.start_id])]
        if on_batch is not None:
            on_batch(list(range(len(out))), out)
        return out

    def release(self) -> None:
        self.inner.release()


class EndingScorer(GainScorer):
    """``score_<name>`` = log p(end of the answer | question, answer): the log-probability of
    the answer's last token (the chat template's end-of-turn marker) where it stands. A
    complete answer ends where the model expects an end; an answer cut off mid-sentence
    ("No, I am") does not. Computed in the gain scorer's conditional pass (shared with it
    through the per-process memo: listing both costs one pass)."""

    kind = "ending"

    def combine(self, cond: float, uncond: float, last: float) -> ScoreResult:
        return ScoreResult(last, None)
