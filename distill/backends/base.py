"""Shared types of the generation backends: sampling parameters, completions, the protocol.

A backend turns chat conversations into completions::

    backend.generate(conversations, n=4, params=SamplingParams(max_tokens=256))
    -> [[Completion, Completion, Completion, Completion], ...]   # one list per conversation

Every backend returns exactly ``n`` completions per conversation, in sample-index order.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from thresher.errors import ThresherError

#: Reasoning markers recognised by :func:`split_reasoning` (open, close).
THINK_MARKERS: tuple[tuple[str, str], ...] = (
    ("<think>", "</think>"),
    ("<thinking>", "</thinking>"),
    ("<|begin_of_thought|>", "<|end_of_thought|>"),
)


@dataclass(frozen=True)
class SamplingParams:
    """Sampling parameters understood by every backend.

    ``temperature == 0`` means greedy decoding. ``top_k == 0`` disables top-k. ``seed`` makes
    sampling reproducible where the backend allows it (vLLM, servers that honour ``seed``;
    the transformers backend seeds each batch from it).
    """

    temperature: float = 0.7
    top_p: float = 1.0
    top_k: int = 0
    max_tokens: int = 512
    seed: int | None = 0
    stop: tuple[str, ...] = ()
    repetition_penalty: float = 1.0

    def check(self) -> list[str]:
        """Return range problems, one string each."""
        problems = []
        if self.temperature < 0:
            problems.append("temperature: must be >= 0")
        if not 0 < self.top_p <= 1:
            problems.append("top_p: must be in (0, 1]")
        if self.top_k < 0:
            problems.append("top_k: must be >= 0 (0 disables it)")
        if self.max_tokens < 1:
            problems.append("max_tokens: must be >= 1")
        if self.repetition_penalty <= 0:
            problems.append("repetition_penalty: must be > 0")
        if any(not isinstance(s, str) or not s for s in self.stop):
            problems.append("stop: must be non-empty strings")
        return problems

    def as_dict(self) -> dict[str, Any]:
        """Plain, JSON-ready dict (used for row keys and the ``gen_params`` column):
        :func:`thresher.config.to_dict`."""
        from thresher.config import to_dict

        return to_dict(self)


@dataclass
class Completion:
    """One generated sample.

    ``text`` is the answer with any reasoning removed; ``reasoning`` the text found between
    reasoning markers (``None`` when there was none); ``finish_reason`` is ``"stop"`` or
    ``"length"``; token counts are the backend's own (servers' usage where given).
    """

    text: str
    reasoning: str | None = None
    finish_reason: str = "stop"
    prompt_tokens: int = 0
    completion_tokens: int = 0


@runtime_checkable
class Backend(Protocol):
    """What :func:`thresher.distill.backends.make_backend` returns."""

    #: backend name ("transformers", "vllm", "openai")
    name: str
    #: model name as users know it (for the ``teacher`` column)
    model: str
    #: revision / content hash of the weights when known, else ``None``
    revision: str | None
    #: the chat template text used to render prompts (``None`` when a server renders them)
    chat_template: str | None
    #: prompts per call that keeps the backend busy (the stage shards by this)
    batch_size: int

    def generate(
        self, conversations: list[list[dict]], *, n: int, params: SamplingParams
    ) -> list[list[Completion]]:
        """Generate ``n`` completions for each conversation (list of ``{role, content}``)."""
        ...

    def close(self) -> None:
        """Free the model / connections."""
        ...


def check_generate_args(conversations: list[list[dict]], n: int, params: SamplingParams) -> None:
    """Validate the arguments every backend receives (raises ThresherError)."""
    if not isinstance(n, int) or n < 1:
        raise ThresherError(f"n: must be an integer >= 1 (got {n!r})")
    problems = params.check()
    if problems:
        raise ThresherError("; ".join(problems))
    for i, conv in enumerate(conversations):
        if not conv or conv[-1].get("role") != "user":
            raise ThresherError(f"conversation {i}: the last message must be the user's prompt")


def split_reasoning(text: str, markers: tuple[tuple[str, str], ...] = THINK_MARKERS) -> tuple[str, str | None]:
    """Split ``<think>...</think>`` (or another marker pair) from the answer.

    Returns ``(answer, reasoning)``. A close marker without an open one (templates that put
    the open marker in the prompt) counts everything before it as reasoning; an open marker
    never closed (generation cut by max_tokens) makes the whole rest reasoning and the
    answer empty.
    """
    for open_m, close_m in markers:
        if close_m in text:
            head, _, answer = text.partition(close_m)
            if open_m in head:
                before, _, reasoning = head.partition(open_m)
                answer = before + answer
            else:
                reasoning = head
            return answer.strip(), reasoning.strip()
        if open_m in text:
            before, _, reasoning = text.partition(open_m)
            return before.strip(), reasoning.strip()
    return text.strip(), None


def trim_at_stop(text: str, stop: tuple[str, ...]) -> tuple[str, bool]:
    """Cut ``text`` at the first stop string; returns (text, whether a stop string was hit)."""
    if not stop:
        return text, False
    pattern = "|".join(re.escape(s) for s in stop)
    m = re.search(pattern, text)
    if m is None:
        return text, False
    return text[: m.start()], True


def make_completion(raw: str, *, finish_reason: str, prompt_tokens: int, completion_tokens: int,
                    params: SamplingParams, reasoning: str | None = None) -> Completion:
    """Build a Completion from raw generated text: apply stop strings and split reasoning."""
    raw, hit = trim_at_stop(raw, params.stop)
    if hit:
        finish_reason = "stop"
    answer, found = split_reasoning(raw)
    if reasoning is None:
        reasoning = found
    elif found:
        reasoning = reasoning.strip() + "\n" + found
    return Completion(text=answer, reasoning=reasoning, finish_reason=finish_reason,
                      prompt_tokens=prompt_tokens, completion_tokens=completion_tokens)




def model_fingerprint(folder: str | Any) -> str:
    """A short content hash of a local model folder (config, tokenizer, weight headers).

    Cheap even for large checkpoints: weights contribute their size, their safetensors
    header (tensor names, shapes, offsets) and their first and last MiB.
    """
    import hashlib
    from pathlib import Path

    folder = Path(folder)
    h = hashlib.blake2b(digest_size=8)
    if folder.is_file():
        files = [folder]
    else:
        files = sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))
    for p in files:
        size = p.stat().st_size
        h.update(f"{p.name}:{size}\n".encode())
        if p.suffix in (".json", ".jinja", ".model", ".txt") and size < 64 << 20:
            h.update(p.read_bytes())
        elif p.suffix in (".safetensors", ".bin", ".gguf", ".pt"):
            with p.open("rb") as f:
                h.update(f.read(1 << 20))
                if size > 2 << 20:
                    f.seek(size - (1 << 20))
                    h.update(f.read())
    return h.hexdigest()
