"""Text generation for the stages that need a model to write (curate's LLM judge, eval's
judges): the registered ``generate`` stage's backends, found through the stage registry.

curate must not import distill, and the core names no stage package: :func:`make_generator`
asks :mod:`thresher.registry` for the ``generate`` stage's module (its ``make_backend`` and
``SamplingParams``), imported only when a generator is first used.
"""

from __future__ import annotations

from typing import Any


def make_generator(backend: str, model: str | None, **options: Any) -> Any:
    """A distill backend (``vllm``, ``openai`` or ``transformers``) for ``model``.

    The object has ``generate(conversations, *, n, params) -> list[list[Completion]]``.
    """
    from thresher.registry import stage_module

    return stage_module("generate").make_backend(backend, model, **options)


def make_text_generator(
    backend: str, model: str | None, *, temperature: float = 0.0, max_tokens: int = 256,
    **options: Any,
) -> Any:
    """A ``generate(conversations) -> list[str]`` callable over a distill backend.

    One completion per conversation, greedy by default; the backend is created on the first
    call (so nothing loads when a caller ends up not needing it). Used by the LLM judge of
    ``curate score``, which must not import distill itself.
    """
    state: dict[str, Any] = {}

    def generate(conversations: list[list[dict]]) -> list[str]:
        if "backend" not in state:
            from thresher.registry import stage_module

            SamplingParams = stage_module("generate").SamplingParams  # noqa: N806
            state["backend"] = made = make_generator(backend, model, **options)
            state["params"] = SamplingParams(temperature=temperature, max_tokens=max_tokens)
            if hasattr(made, "meter") and made.meter is None:  # an API backend: count tokens and cost
                from thresher.pricing import Meter, lookup

                made.meter = Meter(lookup(model, batch=backend == "openai-batch"))
        out = state["backend"].generate(list(conversations), n=1, params=state["params"])
        return [samples[0].text if samples else "" for samples in out]

    def usage() -> dict[str, Any] | None:
        """Tokens and cost of the API calls made so far (None: not an API backend, or no call)."""
        meter = getattr(state.get("backend"), "meter", None)
        if meter is None:
            return None
        cost = meter.cost
        return {"requests": meter.requests, "prompt_tokens": meter.prompt_tokens,
                "completion_tokens": meter.completion_tokens,
                "cost_usd": None if cost is None else round(cost, 6),
                "price": meter.price.as_dict() if meter.price else "unknown"}

    generate.usage = usage  # type: ignore[attr-defined]
    return generate
