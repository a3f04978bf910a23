"""The conversation row schema, defined and validated in one place.

A row is a conversation:

- ``id``: a string, a stable hash of the messages unless the input gives one;
- ``messages``: a list of ``{"role", "content"}`` with roles ``system``, ``user``,
  ``assistant`` and ``tool``, and string content;
- ``category`` and ``source``: strings (may be null);
- provenance columns that stages add (``score_<name>``, ``parent_id``, ``teacher`` ...).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import polars as pl

ROLES: tuple[str, ...] = ("system", "user", "assistant", "tool")
CORE_COLUMNS: tuple[str, ...] = ("id", "messages", "category", "source")
MESSAGE_DTYPE = pl.Struct({"role": pl.String, "content": pl.String})
MESSAGES_DTYPE = pl.List(MESSAGE_DTYPE)
DROP_COLUMNS: tuple[str, ...] = ("drop_stage", "drop_reason")


def content_id(messages: Sequence[Mapping[str, Any]]) -> str:
    """Stable 16-hex-digit id of a conversation's content (roles and texts only)."""
    canon = json.dumps(
        [[m["role"], m["content"]] for m in messages], ensure_ascii=False, separators=(",", ":")
    )
    return hashlib.blake2b(canon.encode("utf-8"), digest_size=8).hexdigest()


def validate_messages(messages: Any) -> str | None:
    """Return why ``messages`` is not a valid conversation, or ``None`` when it is.

    Rules: a non-empty list of objects, each with a known ``role`` and string ``content``;
    user and assistant turns must not be empty or whitespace-only.
    """
    if not isinstance(messages, (list, tuple)):
        return f"messages must be a list, got {type(messages).__name__}"
    if len(messages) == 0:
        return "empty conversation"
    for i, m in enumerate(messages, start=1):
        if not isinstance(m, Mapping):
            return f"message {i}: must be an object with role and content"
        role = m.get("role")
        if role is None:
            return f"message {i}: missing role"
        if role not in ROLES:
            return f"message {i}: unknown role {role!r} (expected one of {', '.join(ROLES)})"
        if "content" not in m or m["content"] is None:
            return f"message {i} ({role}): missing content"
        content = m["content"]
        if not isinstance(content, str):
            return f"message {i} ({role}): content must be a string, got {type(content).__name__}"
        if role in ("user", "assistant") and not content.strip():
            return f"message {i} ({role}): empty content"
    if all(m["role"] == "system" for m in messages):
        return "conversation has only system messages"
    return None


def clean_messages(messages: Iterable[Mapping[str, Any]]) -> list[dict[str, str]]:
    """Keep only ``role`` and ``content`` of each message (call after validation)."""
    return [{"role": m["role"], "content": m["content"]} for m in messages]


def _last_assistant_index(messages: Sequence[Mapping[str, Any]]) -> int | None:
    if messages and messages[-1]["role"] == "assistant":
        return len(messages) - 1
    return None


def prompt_messages(messages: Sequence[Mapping[str, Any]]) -> list[dict[str, str]]:
    """The prompt part of a conversation: everything before a final assistant turn."""
    idx = _last_assistant_index(messages)
    msgs = messages if idx is None else messages[:idx]
    return [{"role": m["role"], "content": m["content"]} for m in msgs]


def response_text(messages: Sequence[Mapping[str, Any]]) -> str:
    """Content of the final assistant turn, or ``""`` when the conversation has none."""
    idx = _last_assistant_index(messages)
    return "" if idx is None else messages[idx]["content"]


def prompt_text(messages: Sequence[Mapping[str, Any]]) -> str:
    """Content of the last user turn of the prompt part (``""`` if there is none)."""
    for m in reversed(prompt_messages(messages)):
        if m["role"] == "user":
            return m["content"]
    return ""


def conversation_text(messages: Sequence[Mapping[str, Any]]) -> str:
    """All turns' content joined with role markers (``<user> ...``), one turn per line."""
    return "\n".join(f"<{m['role']}> {m['content']}" for m in messages)


def empty_table(extra: Mapping[str, pl.DataType] | None = None) -> pl.DataFrame:
    """An empty row table with the core schema (plus ``extra`` columns)."""
    schema: dict[str, pl.DataType] = {
        "id": pl.String,
        "messages": MESSAGES_DTYPE,
        "category": pl.String,
        "source": pl.String,
    }
    schema.update(extra or {})
    return pl.DataFrame(schema=schema)


def make_rows(
    records: Iterable[Mapping[str, Any]],
    *,
    category: str | None = None,
    source: str | None = None,
    validate: bool = True,
) -> pl.DataFrame:
    """Build a row table from dicts holding ``messages`` (and optionally ``id``, ``category``,
    ``source`` and extra columns). Missing ids become :func:`content_id` of the messages.

    Raises :class:`~thresher.errors.InputError` on an invalid conversation when ``validate``.
    """
    from thresher.errors import InputError

    out: list[dict[str, Any]] = []
    for i, rec in enumerate(records, start=1):
        msgs = rec.get("messages")
        if validate:
            why = validate_messages(msgs)
            if why:
                raise InputError(f"row {i}: {why}")
        row = dict(rec)
        row["messages"] = clean_messages(msgs)
        if row.get("id") in (None, ""):
            row["id"] = content_id(row["messages"])
        else:
            row["id"] = str(row["id"])
        row.setdefault("category", category)
        row.setdefault("source", source)
        if row["category"] is None:
            row["category"] = category
        if row["source"] is None:
            row["source"] = source
        out.append(row)
    if not out:
        return empty_table()
    df = pl.DataFrame(out, infer_schema_length=None)
    return conform(df)


def conform(df: pl.DataFrame) -> pl.DataFrame:
    """Cast the core columns to the canonical dtypes and put them first."""
    if "category" not in df.columns:
        df = df.with_columns(pl.lit(None, dtype=pl.String).alias("category"))
    if "source" not in df.columns:
        df = df.with_columns(pl.lit(None, dtype=pl.String).alias("source"))
    df = df.with_columns(
        pl.col("id").cast(pl.String),
        pl.col("messages").cast(MESSAGES_DTYPE),
        pl.col("category").cast(pl.String),
        pl.col("source").cast(pl.String),
    )
    rest = [c for c in df.columns if c not in CORE_COLUMNS]
    return df.select([*CORE_COLUMNS, *rest])


def table_problems(df: pl.DataFrame) -> pl.DataFrame:
    """Vectorised validation of a row table: returns ``(row, reason)`` for each bad row
    (row numbers are 1-based), empty when all rows are valid."""
    n = df.height
    if n == 0:
        return pl.DataFrame({"row": [], "reason": []}, schema={"row": pl.Int64, "reason": pl.String})
    idx = pl.int_range(1, n + 1, dtype=pl.Int64)
    base = df.select(idx.alias("row"), pl.col("messages"), pl.col("id"))
    reasons = []
    reasons.append(
        base.filter(pl.col("messages").is_null() | (pl.col("messages").list.len() == 0))
        .select("row", pl.lit("empty conversation").alias("reason"))
    )
    ex = (
        base.filter(pl.col("messages").list.len() > 0)
        .with_columns(pl.int_ranges(1, pl.col("messages").list.len() + 1).alias("turn"))
        .explode("messages", "turn")
        .unnest("messages")
    )
    role_ok = pl.col("role").is_in(list(ROLES))
    reasons.append(
        ex.filter(pl.col("role").is_null()).select(
            "row", pl.format("message {}: missing role", pl.col("turn")).alias("reason")
        )
    )
    reasons.append(
        ex.filter(pl.col("role").is_not_null() & ~role_ok).select(
            "row",
            pl.format(
                "message {}: unknown role '{}' (expected one of " + ", ".join(ROLES) + ")",
                pl.col("turn"),
                pl.col("role"),
            ).alias("reason"),
        )
    )
    reasons.append(
        ex.filter(role_ok & pl.col("content").is_null()).select(
            "row", pl.format("message {} ({}): missing content", "turn", "role").alias("reason")
        )
    )
    reasons.append(
        ex.filter(
            pl.col("role").is_in(["user", "assistant"])
            & (pl.col("content").str.strip_chars().str.len_chars() == 0)
        ).select("row", pl.format("message {} ({}): empty content", "turn", "role").alias("reason"))
    )
    first = base.select("row", "id").with_columns(pl.col("row").min().over("id").alias("first"))
    dup = first.filter(pl.col("id").is_not_null() & (pl.col("row") != pl.col("first"))).select(
        "row", pl.format("duplicate id '{}' (first seen at row {})", pl.col("id"), pl.col("first")).alias("reason")
    )
    reasons.append(dup)
    nulls = base.filter(pl.col("id").is_null()).select("row", pl.lit("missing id").alias("reason"))
    reasons.append(nulls)
    out = pl.concat(reasons).sort("row").unique("row", keep="first", maintain_order=True)
    return out
