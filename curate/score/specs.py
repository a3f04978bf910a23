"""Scorer specs: the ``--scorer`` strings and how they become scorers.

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

import re
from dataclasses import dataclass

KINDS = ("loglik", "reward", "judge", "length", "ifd", "verify", "passrate", "gain", "ending", "relevance")
_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")


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


def parse_spec(text: str) -> ScorerSpec:
    """Parse one scorer spec; raise SpecError with a one-line reason."""
    raw = text.strip()
    name = None
    head = raw.split(":", 1)[0]
    if "=" in head:
        name, raw = raw.split("=", 1)
        name = name.strip()
        if not _NAME.match(name):
            raise SpecError(f"scorer {text!r}: name {name!r} must be letters, digits and _")
    kind, _, rest = raw.partition(":")
    kind = kind.strip().lower()
    rest = rest.strip()
    if kind not in KINDS:
        raise SpecError(f"unknown scorer {kind!r} in {text!r} (expected one of {', '.join(KINDS)})")
    name = name or kind
    if kind in ("loglik", "length", "ifd", "gain", "ending", "relevance"):
        return ScorerSpec(name, kind, model=rest or None)
    if kind == "verify":
        if not rest:
            raise SpecError(f"scorer {text!r}: verify needs a verifier, e.g. verify:sentences:1-2")
        return ScorerSpec(name, kind, model=rest)
    if kind == "passrate":
        if not rest:
            raise SpecError(f"scorer {text!r}: passrate needs what passes, e.g. passrate:m (a verify scorer) "
                            "or passrate:verify:math")
        return ScorerSpec(name, kind, model=rest)
    if kind == "reward":
        if not rest:
            raise SpecError(f"scorer {text!r}: reward needs a model, e.g. reward:PATH_OR_HUB_NAME")
        return ScorerSpec(name, kind, model=rest)
    backend, _, model = rest.partition(":")
    if not backend.strip():
        raise SpecError(f"scorer {text!r}: judge needs a backend, e.g. judge:transformers:smollm2")
    return ScorerSpec(name, kind, model=model.strip() or None, backend=backend.strip())


def parse_specs(texts: tuple[str, ...] | list[str]) -> tuple[list[ScorerSpec], list[str]]:
    """Parse every spec; return (specs, problems) with duplicate names reported."""
    specs, problems, seen = [], [], set()
    for i, t in enumerate(texts):
        try:
            s = parse_spec(str(t))
        except SpecError as e:
            problems.append(f"scorers[{i}]: {e}")
            continue
        if s.name in seen:
            problems.append(
                f"scorers[{i}]: two scorers named {s.name!r}; name one, e.g. {s.name}2={t}"
            )
        seen.add(s.name)
        specs.append(s)
    return specs, problems
