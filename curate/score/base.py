"""Types shared by the scorers.

A scorer turns conversations (lists of ``{"role", "content"}`` dicts) into one
:class:`ScoreResult` each: a number, or no number and an error saying why (a row skipped
as too long, a judge answer that could not be read). Scores are never invented: a row
without a number keeps a null score and its reason in ``<name>_error``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from typing import NamedTuple, Protocol

Conversation = list[dict]


class ScoreResult(NamedTuple):
    """One row's score (``None`` when there is none) and the reason when there is none."""

    score: float | None
    error: str | None = None


#: called after each scored batch with (positions in the list passed to ``score``, results)
BatchCallback = Callable[[list[int], Sequence[ScoreResult]], None]


class Scorer(Protocol):
    """What the score stage needs from a scorer."""

    name: str  # column suffix: the stage writes score_<name> and <name>_error

    @property
    def identity(self) -> str:
        """Everything that changes the scores (model, its weights' fingerprint, options)."""
        ...

    def score(
        self, conversations: Sequence[Conversation], on_batch: BatchCallback | None = None
    ) -> list[ScoreResult]:
        """Score conversations; results are in input order."""
        ...


def conversation_key(messages: Sequence[dict]) -> str:
    """Stable hash of a conversation's content (roles and texts, nothing else)."""
    canon = json.dumps(
        [[m.get("role"), m.get("content")] for m in messages],
        ensure_ascii=False,
        separators=(",", ":"),
    )
    return hashlib.sha256(canon.encode("utf-8")).hexdigest()


def split_response(messages: Sequence[dict]) -> tuple[list[dict], dict | None]:
    """Split a conversation into (prompt turns, final assistant turn or None)."""
    msgs = [{"role": m["role"], "content": m["content"]} for m in messages]
    if msgs and msgs[-1]["role"] == "assistant":
        return msgs[:-1], msgs[-1]
    return msgs, None


def resolve_device(device: str) -> str:
    """``auto`` means cuda when a GPU is visible, else cpu; an unknown or absent device is a
    one-line error before any model loads."""
    from thresher.models import check_device

    return check_device(device)


def resolve_dtype(dtype: str, device: str):
    """``auto`` means bfloat16 on a GPU or a CPU with native bf16 math, else float32; the one
    parser, :func:`thresher.precision.torch_dtype`."""
    from thresher.precision import torch_dtype

    return torch_dtype(dtype, device)


def folder_fingerprint(path: str) -> str:
    """Cheap fingerprint of a local model folder (file names, sizes, mtimes) for cache keys.

    Re-training a model into the same folder changes the fingerprint, so cached scores of
    the old weights are not reused. Hub names (not folders) are returned unchanged.
    """
    from pathlib import Path

    p = Path(path)
    if not p.is_dir():
        return path
    h = hashlib.sha256(str(p.resolve()).encode())
    for f in sorted(p.iterdir()):
        if f.is_file() and (f.suffix in {".safetensors", ".bin", ".json", ".gguf", ".model"}):
            st = f.stat()
            h.update(f"{f.name}:{st.st_size}:{st.st_mtime_ns}".encode())
    return f"{p.resolve()}@{h.hexdigest()[:16]}"
