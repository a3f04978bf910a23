"""Length scorer: the response's length in tokens of a tokenizer (default: the student's,
SmolLM2), no model weights loaded. "Long is more for alignment" (Zhao et al. 2024) found
the longest responses a strong selection baseline; ranking by ``-score_length`` (or a
``max_scores`` filter) selects for brevity instead."""

from __future__ import annotations

from collections.abc import Sequence

from .base import BatchCallback, Conversation, ScoreResult, folder_fingerprint, split_response


class LengthScorer:
    """``score_<name>`` = tokens in the final assistant turn's text."""

    kind = "length"

    def __init__(self, model: str | None = None, *, name: str = "length", trust_remote_code: bool = False,
                 batch_size: int = 256, **unused):
        from thresher.models import load_tokenizer, resolve_model

        self.name = name
        self.path = str(resolve_model(model))
        self.tokenizer = load_tokenizer(self.path, trust_remote_code=trust_remote_code)
        self.batch_size = batch_size

    @property
    def identity(self) -> str:
        return f"length|{folder_fingerprint(self.path)}"

    def score(self, conversations: Sequence[Conversation], on_batch: BatchCallback | None = None) -> list[ScoreResult]:
        out: list[ScoreResult] = []
        for start in range(0, len(conversations), self.batch_size):
            chunk = conversations[start:start + self.batch_size]
            texts = [split_response(c)[1] for c in chunk]
            ids = self.tokenizer([t["content"] if t else "" for t in texts], add_special_tokens=False)["input_ids"]
            res = [ScoreResult(float(len(i)), None) if t is not None else
                   ScoreResult(None, "no final assistant turn to score") for t, i in zip(texts, ids)]
            out.extend(res)
            if on_batch is not None:
                on_batch(list(range(start, start + len(chunk))), res)
        return out
