"""Token counting, prices and the ``--estimate`` of the generate stage.

Prompt tokens are counted with the teacher's tokenizer when it is available offline (the
embedded SmolLM2, a local folder or .gguf, a hub model already in the cache, or ``--tokenizer``),
rendering the conversation with its chat template as a server does. Otherwise the count is an
approximation: ``ceil(characters / 4)`` per message plus 4 tokens of chat markup per message and
3 for the reply's header (OpenAI's rule of thumb for English; code and other languages use more).

``estimate(...)`` reads the prompts, skips samples already stored in OUT (a rerun asks only for
what is missing) and reports prompt tokens, expected completion tokens (the worst case
``max_tokens`` and, when OUT holds earlier samples of the same teacher, their observed mean),
requests and the cost at the teacher's price. It sends no request.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

from thresher.pricing import Price, lookup

Counter = Callable[[list[dict]], int]

APPROX = "approximation: characters/4 + 4 per message + 3"


def approx_tokens(conv: list[dict]) -> int:
    """The documented approximation of a conversation's prompt tokens (see module docstring)."""
    return sum(math.ceil(len(str(m.get("content") or "")) / 4) + 4 for m in conv) + 3


def _local_tokenizer_path(name: str | None) -> Path | None:
    """The local folder of ``name``'s tokenizer, without any network access (None: not local)."""
    from thresher.errors import ThresherError
    from thresher.models import ALIASES, EMBEDDED, resolve_model

    key = "smollm2" if name is None else str(name)
    p = Path(key).expanduser()
    if ALIASES.get(key.lower(), key) in EMBEDDED or p.is_dir() or (p.is_file() and p.suffix == ".gguf"):
        try:
            return resolve_model(key)
        except ThresherError:
            return None
    if key.count("/") == 1 and not key.startswith((".", "/", "~")):
        try:
            from huggingface_hub import snapshot_download

            return Path(snapshot_download(key, local_files_only=True))
        except Exception:  # noqa: BLE001 - not cached (or no hub library): fall back to the approximation
            return None
    return None


def prompt_counter(teacher: str | None, tokenizer: str | None = None,
                   trust_remote_code: bool = False) -> tuple[Counter, str]:
    """``(count(conversation) -> tokens, how)``: the teacher's tokenizer when local, else the approximation."""
    path = _local_tokenizer_path(tokenizer or teacher)
    if path is None:
        return approx_tokens, APPROX
    from thresher.models import load_tokenizer

    try:
        tok = load_tokenizer(path, trust_remote_code=trust_remote_code)
    except (OSError, ValueError):
        return approx_tokens, APPROX
    if not getattr(tok, "chat_template", None):
        return approx_tokens, APPROX

    def count(conv: list[dict]) -> int:
        ids = tok.apply_chat_template(conv, tokenize=True, add_generation_prompt=True)
        if isinstance(ids, dict) or hasattr(ids, "keys"):
            ids = ids["input_ids"]
        return len(ids)

    return count, f"tokenizer of {tokenizer or teacher or 'smollm2'}"


def price_for(config: Any, backend_name: str, teacher: str | None) -> Price | None:
    """The teacher's price: ``prices:``/``--price-in/--price-out`` over the shipped table (None: unknown)."""
    prices = dict(config.prices or {})
    pin = config.price_in if config.price_in is not None else prices.get("input")
    pout = config.price_out if config.price_out is not None else prices.get("output")
    return lookup(teacher or config.teacher, batch=backend_name == "openai-batch", price_in=pin, price_out=pout)


def stored_usage(records: list[dict[str, Any]]) -> tuple[int, int]:
    """``(prompt, completion)`` tokens billed for stored samples: a prompt once per parent prompt
    (``n`` samples are one request), completions per sample."""
    prompt: dict[str, int] = {}
    completion = 0
    for r in records:
        prompt[r["parent_id"]] = max(prompt.get(r["parent_id"], 0), int(r.get("prompt_tokens") or 0))
        completion += int(r.get("completion_tokens") or 0)
    return sum(prompt.values()), completion
