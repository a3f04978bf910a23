"""Prompts: extraction from rows, system prompts, chat-template rendering.

A prompt is the conversation up to (not including) a final assistant turn: rows that hold
a full conversation are re-answered, rows read from a prompt column are answered. The last
turn of a prompt must be the user's; multi-turn prompts are kept whole.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import polars as pl

from thresher.errors import InputError, ThresherError
from thresher.schema import prompt_messages


@dataclass(frozen=True)
class Prompt:
    """One prompt row: its id, messages (ending with a user turn), category and source."""

    id: str
    messages: tuple[tuple[str, str], ...]
    category: str | None = None
    source: str | None = None
    extra: dict[str, Any] = field(default_factory=dict, hash=False, compare=False)
    """The prompt row's reference answer and tests (``thresher.io.references.REFERENCE_COLUMNS``),
    copied to every sample."""

    def as_messages(self) -> list[dict[str, str]]:
        """The messages as a list of ``{"role", "content"}`` dicts."""
        return [{"role": r, "content": c} for r, c in self.messages]


def extract_prompts(df: pl.DataFrame, *, where: str = "input", system: str | None = None) -> list[Prompt]:
    """Turn a row table into prompts.

    ``system`` is added as a first system turn to prompts that have none. Rows whose prompt
    part does not end with a user turn raise :class:`InputError` naming ``where`` and the row.
    Rows with the same id, or the same prompt messages (e.g. one question with several
    reference answers), are answered once: the first such row gives the prompt its id.
    """
    if "messages" not in df.columns:
        raise InputError(f"{where}: no messages or prompt column")
    from thresher.io.references import REFERENCE_COLUMNS

    has_cat = "category" in df.columns
    has_src = "source" in df.columns
    carried = [c for c in REFERENCE_COLUMNS if c in df.columns]
    out: list[Prompt] = []
    seen: set[str] = set()
    seen_turns: set[tuple[tuple[str, str], ...]] = set()
    for i, row in enumerate(df.iter_rows(named=True), start=1):
        msgs = row["messages"] or []
        prompt = prompt_messages(msgs)
        if not prompt or prompt[-1]["role"] != "user" or not (prompt[-1]["content"] or "").strip():
            rid = row.get("id")
            raise InputError(
                f"{where}: row {i}" + (f" (id {rid})" if rid else "")
                + ": missing prompt (the last turn before the answer must be a non-empty user turn)"
            )
        if system is not None and prompt[0]["role"] != "system":
            prompt = [{"role": "system", "content": system}, *prompt]
        pid = str(row["id"])
        turns = tuple((m["role"], m["content"]) for m in prompt)
        if pid in seen or turns in seen_turns:
            continue
        seen.add(pid)
        seen_turns.add(turns)
        out.append(
            Prompt(
                id=pid,
                messages=turns,
                category=row["category"] if has_cat else None,
                source=row["source"] if has_src else None,
                extra={c: row[c] for c in carried},
            )
        )
    return out


def render_chat(tokenizer: Any, messages: list[dict[str, str]], *, model: str = "teacher") -> str:
    """Render a prompt with the tokenizer's own chat template, ready for the assistant turn."""
    if not getattr(tokenizer, "chat_template", None):
        raise ThresherError(f"{model}: the tokenizer has no chat template; use an instruct/chat model")
    try:
        return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    except Exception as e:  # noqa: BLE001 - jinja errors: e.g. templates that reject system turns
        msg = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise ThresherError(f"{model}: chat template failed on a prompt: {msg}") from None
