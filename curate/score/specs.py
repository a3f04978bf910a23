"""Scorer specs: the ``--scorer`` strings and how they become scorers (each kind's parser and
builder: :data:`thresher.curate.score.registry.SCORERS`).

Syntax: ``[NAME=]KIND[:ARGS]``; the scorer writes column ``score_<NAME>`` (NAME defaults to
KIND) and ``<NAME>_error``.

- ``loglik`` or ``loglik:MODEL``: mean response log-likelihood under a causal LM (default
  model: SmolLM2-135M-Instruct, offline).
- ``reward:MODEL``: a sequence-classification reward model (hub name or folder); a model
  with several labels needs ``label``.
- ``length`` or ``length:MODEL``: response length in tokens of MODEL's tokenizer (default SmolLM2);
- ``ifd`` or ``ifd:MODEL``: instruction-following difficulty, loss(answer | prompt) / loss(answer)
  under MODEL, the student (default SmolLM2);
- ``gain`` or ``gain:MODEL``: does the answer belong to the question: mean log p(answer | prompt)
  - mean log p(answer) per token under MODEL (default SmolLM2), one batched pass;
- ``ending`` or ``ending:MODEL``: log p(end of turn | question, answer): low for an answer cut
  off mid-way (the same pass as ``gain``: listing both costs one pass);
- ``relevance`` or ``relevance:EMBEDDER``: cosine of the question and the answer under an offline
  sentence embedder (default ``minilm``; :mod:`thresher.curate.score.relevance`);
- ``verify:VERIFIER``: 1.0 when the response passes one of thresher eval's verifiers
  (``verify:math``, ``verify:numeric``, ``verify:exact``, ``verify:regex`` against the row's
  ``reference``; ``verify:code`` with its ``tests``; ``verify:ends``; ``verify:sentences:1-2``,
  ``verify:words:5-40``, ``verify:json``, ``verify:lang:en``);
- ``passrate:WHAT``: the share of the prompt's samples passing WHAT (a verify scorer's name,
  a score column or ``verify:VERIFIER``), on every sample (:mod:`thresher.curate.score.passrate`);
- ``judge:BACKEND[:MODEL]``: an LLM judge through a distill backend (e.g.
  ``judge:transformers:smollm2``).

Examples: ``--scorer loglik --scorer rm=reward:/models/skywork --scorer judge:vllm:Qwen/Qwen3-8B``.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ScorerSpec:
    """A parsed ``--scorer`` value."""

    name: str
    kind: str
    model: str | None = None
    backend: str | None = None

    @property
    def column(self) -> str:
        return f"score_{self.name}"

    @property
    def error_column(self) -> str:
        return f"{self.name}_error"


class SpecError(ValueError):
    """A malformed scorer spec (message is user-facing)."""
