"""The transformers backend: batched ``model.generate`` for CPUs and small GPUs.

Prompts are rendered with the teacher's chat template, sorted by length, left-padded and
generated in micro-batches; ``n`` samples come from ``num_return_sequences``; generation
stops at EOS or the template's end-of-turn token (and at ``stop`` strings).
"""

from __future__ import annotations

import hashlib
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


def load_causal_lm(model: str | None, *, dtype: str = "auto", device: str | None = None,
                   trust_remote_code: bool = False, revision: str | None = None) -> tuple[Any, Any, Any]:
    """Resolve ``model`` (None/"smollm2", a folder or a hub name) and load tokenizer + model.

    Returns ``(path, tokenizer, model)``; errors are one-line :class:`ThresherError`.
    """
    from thresher.models import check_device, load_model, load_tokenizer, resolve_model
    from thresher.precision import torch_dtype as precision_dtype

    device = check_device(device)  # before resolving or loading anything
    path = resolve_model(model, revision=revision)
    torch_dtype = precision_dtype(dtype, device)  # auto: bf16 on a GPU or a CPU with native bf16 math
    try:
        tok = load_tokenizer(path, trust_remote_code=trust_remote_code)
        lm = load_model(path, dtype=torch_dtype, trust_remote_code=trust_remote_code)
    except (OSError, ValueError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ThresherError(f"{model or 'smollm2'}: cannot load the model from {path}: {first}") from None
    lm.to(device)
    lm.eval()
    return path, tok, lm


class TransformersBackend:
    """Batched generation with transformers (see module docstring).

    ``max_batch_sequences`` bounds the sequences (prompts x n) decoded together; ``batch_size``
    is the number of prompts the stage hands over per call (one shard each); ``threads`` sets
    torch's CPU threads (0: torch's default; on a busy shared CPU, 1 or
    ``OMP_WAIT_POLICY=PASSIVE`` is often much faster).
    """

    name = "transformers"

    def __init__(self, model: str | None = None, *, dtype: str = "auto", device: str | None = None,
                 trust_remote_code: bool = False, max_batch_sequences: int = 0,
                 batch_size: int = 0, threads: int = 0, revision: str | None = None,
                 allow_special_tokens_in_content: bool = False, **unused: Any) -> None:
        self.allow_special = allow_special_tokens_in_content
        import torch

        if threads:
            torch.set_num_threads(threads)

        self.path, self.tokenizer, self.lm = load_causal_lm(
            model, dtype=dtype, device=device, trust_remote_code=trust_remote_code, revision=revision)
        self.device = self.lm.device
        self.model = model or "smollm2"
        self.revision = model_fingerprint(self.path)
        self.chat_template = self.tokenizer.chat_template
        on_gpu = self.device.type == "cuda"
        self.max_batch_sequences = max_batch_sequences or (64 if on_gpu else 16)
        self.batch_size = batch_size or (64 if on_gpu else 16)
        self.tokenizer.padding_side = "left"
        self.stop_ids = end_of_turn_ids(self.tokenizer)
        if not self.stop_ids:
            raise ThresherError(f"{self.model}: the tokenizer has no EOS token")
        if self.tokenizer.pad_token_id is None:
            self.tokenizer.pad_token = self.tokenizer.convert_ids_to_tokens(self.stop_ids[0])
        self._torch = torch
        self.output_spec: Any = None  # distill.structured.OutputSpec: answers start with its prefill (set by the stage)

    def render(self, conversation: list[dict]) -> str:
        """The prompt text exactly as the model sees it."""
        return render_chat(self.tokenizer, conversation, model=self.model)

    def generate(self, conversations: list[list[dict]], *, n: int,
                 params: SamplingParams) -> list[list[Completion]]:
        """``n`` completions per conversation, in input order."""
        check_generate_args(conversations, n, params)
        if params.temperature == 0 and n > 1:  # greedy: every sample is the same
            import dataclasses

            once = self.generate(conversations, n=1, params=params)
            return [[dataclasses.replace(c[0]) for _ in range(n)] for c in once]
        texts = [self.render(c) for c in conversations]
        ids = [encode_chat_ids(self.tokenizer, t, c, add_generation_prompt=True,
                               allow_special_in_content=self.allow_special) for t, c in zip(texts, conversations)]
        self._prefix = self.output_spec.prefill() if self.output_spec is not None else ""
        if self._prefix:  # structured output: the answer starts with the JSON object's opening
            extra = self.tokenizer.encode(self._prefix, add_special_tokens=False)
            ids = [x + extra for x in ids]
        order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
        per_batch = max(1, self.max_batch_sequences // n)
        results: list[list[Completion] | None] = [None] * len(ids)
        for start in range(0, len(order), per_batch):
            chunk = order[start:start + per_batch]
            outs = self._generate_batch([ids[i] for i in chunk], n, params)
            for i, comps in zip(chunk, outs):
                results[i] = comps
        return [r for r in results if r is not None]

    def _generation_config(self, n: int, params: SamplingParams) -> Any:
        from transformers import GenerationConfig

        kw: dict[str, Any] = {
            "max_new_tokens": params.max_tokens,
            "num_return_sequences": n,
            "eos_token_id": self.stop_ids,
            "pad_token_id": self.tokenizer.pad_token_id,
            "do_sample": params.temperature > 0,
        }
        if params.temperature > 0:
            kw.update(temperature=params.temperature, top_p=params.top_p, top_k=params.top_k or None)
        if params.repetition_penalty != 1.0:
            kw["repetition_penalty"] = params.repetition_penalty
        if params.stop:
            kw["stop_strings"] = list(params.stop)
        return GenerationConfig(**kw)

    def _generate_batch(self, batch: list[list[int]], n: int, params: SamplingParams) -> list[list[Completion]]:
        torch = self._torch
        width = max(len(x) for x in batch)
        pad = self.tokenizer.pad_token_id
        input_ids = torch.tensor([[pad] * (width - len(x)) + x for x in batch], device=self.device)
        mask = torch.tensor([[0] * (width - len(x)) + [1] * len(x) for x in batch], device=self.device)
        if params.seed is not None and params.temperature > 0:
            digest = hashlib.blake2b(repr((params.seed, batch[0])).encode(), digest_size=4).digest()
            torch.manual_seed(int.from_bytes(digest, "little"))
        extra = {"tokenizer": self.tokenizer} if params.stop else {}
        with torch.inference_mode():
            out = self.lm.generate(input_ids=input_ids, attention_mask=mask,
                                   generation_config=self._generation_config(n, params), **extra)
        gen = out[:, width:].tolist()
        stop_ids = set(self.stop_ids)
        results: list[list[Completion]] = []
        for p, prompt in enumerate(batch):
            comps = []
            for s in range(n):
                seq = gen[p * n + s]
                cut = next((k for k, t in enumerate(seq) if t in stop_ids), None)
                if cut is None:
                    body, finish, used = seq, "length", len(seq)
                else:
                    body, finish, used = seq[:cut], "stop", cut + 1
                body = [t for t in body if t != pad]
                raw = getattr(self, "_prefix", "") + self.tokenizer.decode(body, skip_special_tokens=False)
                comps.append(make_completion(raw, finish_reason=finish, prompt_tokens=len(prompt),
                                             completion_tokens=used, params=params))
            results.append(comps)
        return results

    def close(self) -> None:
        """Drop the model."""
        self.lm = None
