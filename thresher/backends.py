"""Lazy access to the generation backends of ``thresher.distill`` for other packages.

curate (e.g. the LLM judge) must not import distill; the CLI and recipe runner call
:func:`make_generator` here, which imports ``thresher.distill.backends`` only when used.
"""

from __future__ import annotations

from typing import Any


def make_generator(backend: str, model: str | None, **options: Any) -> Any:
    """A distill backend (``vllm``, ``openai`` or ``transformers``) for ``model``.

    The object has ``generate(conversations, *, n, params) -> list[list[Completion]]``.
    """
    from thresher.distill.backends import make_backend

    return make_backend(backend, model, **options)


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
            from thresher.distill.backends import SamplingParams

            state["backend"] = make_generator(backend, model, **options)
            state["params"] = SamplingParams(temperature=temperature, max_tokens=max_tokens)
        out = state["backend"].generate(list(conversations), n=1, params=state["params"])
        return [samples[0].text if samples else "" for samples in out]

    return generate
