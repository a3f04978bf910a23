"""The scorer registry: each ``--scorer`` kind is one entry, ``kind -> (parse, build)``.

- ``parse(name, kind, rest, text)`` turns the part after ``KIND:`` into a
  :class:`~thresher.curate.score.specs.ScorerSpec` (or raises ``SpecError`` with a one-line
  reason naming ``text``);
- ``build(spec, config)`` makes the scorer from its spec and the score stage's Config (import
  the scorer's module inside it: ``thresher --help`` must not load torch). Model scorers take
  the shared :class:`~thresher.curate.score.options.ModelOptions` (``ModelOptions.from_config``).
  ``build`` is None for a kind the stage computes itself (``passrate``, from the other scores).

A new scorer is its module plus one entry in :data:`SCORERS` (and a line in
:mod:`.specs`'s docstring and the Config's ``scorers`` help).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from thresher.named_spec import split_named_spec

from .options import ModelOptions
from .specs import ScorerSpec, SpecError


@dataclass(frozen=True)
class ScorerKind:
    """One registry entry: how a spec of this kind parses, and how its scorer is built."""

    parse: Callable[[str, str, str, str], ScorerSpec]
    build: Callable[[ScorerSpec, Any], Any] | None


# ---------------------------------------------------------------- parsers


def optional_model(name: str, kind: str, rest: str, text: str) -> ScorerSpec:
    """``KIND`` or ``KIND:MODEL`` (the default model when none is given)."""
    return ScorerSpec(name, kind, model=rest or None)


def required(need: str) -> Callable[[str, str, str, str], ScorerSpec]:
    """``KIND:ARG`` with ARG required; ``need`` says what is missing (``verify needs ...``)."""
    def parse(name: str, kind: str, rest: str, text: str) -> ScorerSpec:
        if not rest:
            raise SpecError(f"scorer {text!r}: {need}")
        return ScorerSpec(name, kind, model=rest)
    return parse


def backend_model(name: str, kind: str, rest: str, text: str) -> ScorerSpec:
    """``KIND:BACKEND[:MODEL]``."""
    backend, _, model = rest.partition(":")
    if not backend.strip():
        raise SpecError(f"scorer {text!r}: judge needs a backend, e.g. judge:transformers:smollm2")
    return ScorerSpec(name, kind, model=model.strip() or None, backend=backend.strip())


# ---------------------------------------------------------------- builders


def model_scorer(module: str, cls: str) -> Callable[[ScorerSpec, Any], Any]:
    """Builder of a model scorer ``module.cls(spec.model, name=, options=)``: its module is
    imported when the scorer is built, its options come from the Config."""
    def build(spec: ScorerSpec, config: Any):
        from importlib import import_module

        scorer = getattr(import_module(f"{__package__}.{module}"), cls)
        return scorer(spec.model, name=spec.name, options=ModelOptions.from_config(config))
    return build


def _reward(spec: ScorerSpec, config: Any):
    from .reward import RewardScorer

    return RewardScorer(spec.model, name=spec.name, label=config.label, engine=config.engine,
                        options=ModelOptions.from_config(config))


def _verify(spec: ScorerSpec, config: Any):
    from .verify import VerifyScorer

    return VerifyScorer(spec.model, name=spec.name, workers=config.verify_workers or None)


def _length(spec: ScorerSpec, config: Any):
    from .length import LengthScorer

    return LengthScorer(spec.model, name=spec.name, trust_remote_code=config.trust_remote_code)


def _relevance(spec: ScorerSpec, config: Any):
    from .relevance import RelevanceScorer

    return RelevanceScorer(spec.model, name=spec.name, device=config.device, batch_size=config.batch_size)


def _judge(spec: ScorerSpec, config: Any):
    from .judge import DEFAULT_RUBRIC, JudgeScorer

    options = ModelOptions.from_config(config)
    rubric = DEFAULT_RUBRIC
    if config.judge_rubric is not None:
        rubric = Path(config.judge_rubric).read_text(encoding="utf-8").strip()
    return JudgeScorer(
        judge_generator(spec, config, options),
        model_id=f"{spec.backend}:{spec.model or 'default'}:max_tokens={config.judge_max_tokens}",
        name=spec.name,
        rubric=rubric,
        scale=(1, config.judge_scale),
        retries=config.judge_retries,
        batch_size=options.batch_size,
    )


def judge_generator(spec: ScorerSpec, config: Any, options: ModelOptions):
    """The judge's text generator over a distill backend (built lazily by the core)."""
    from thresher.generation import make_text_generator

    extra = {"base_url": config.judge_base_url} if config.judge_base_url else {}
    return make_text_generator(
        spec.backend,
        spec.model,
        temperature=0.0,
        max_tokens=config.judge_max_tokens,
        trust_remote_code=options.trust_remote_code,
        **extra,
    )


#: every scorer kind, in the order ``--help`` and errors list them
SCORERS: dict[str, ScorerKind] = {
    "loglik": ScorerKind(optional_model, model_scorer("loglik", "LoglikScorer")),
    "reward": ScorerKind(required("reward needs a model, e.g. reward:PATH_OR_HUB_NAME"), _reward),
    "judge": ScorerKind(backend_model, _judge),
    "length": ScorerKind(optional_model, _length),
    "ifd": ScorerKind(optional_model, model_scorer("ifd", "IfdScorer")),
    "verify": ScorerKind(required("verify needs a verifier, e.g. verify:sentences:1-2"), _verify),
    "passrate": ScorerKind(required("passrate needs what passes, e.g. passrate:m (a verify scorer) "
                                    "or passrate:verify:math"), None),
    "gain": ScorerKind(optional_model, model_scorer("gain", "GainScorer")),
    "ending": ScorerKind(optional_model, model_scorer("gain", "EndingScorer")),
    "relevance": ScorerKind(optional_model, _relevance),
}


# ---------------------------------------------------------------- parsing a spec


def parse_spec(text: str) -> ScorerSpec:
    """Parse one scorer spec; raise SpecError with a one-line reason."""
    name, kind, rest, _ = split_named_spec(text, "scorer", SCORERS, SpecError)
    return SCORERS[kind].parse(name or kind, kind, rest, text)


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
