"""The conversation row schema, defined and validated in one place.

A row is a conversation:

- ``id``: a string, a stable hash of the messages unless the input gives one;
- ``messages``: a list of ``{"role", "content"}`` with roles ``system``, ``user``,
  ``assistant`` and ``tool``, and string content; messages may also hold the optional fields
  of :data:`EXTRA_MESSAGE_FIELDS` (``tool_calls``, ``tool_call_id``, ``name``, ``weight``,
  ``reasoning_content``). The struct only has those fields when some message of the table
  uses them, so plain conversations keep the two-field :data:`MESSAGES_DTYPE`;
  :func:`messages_dtype` gives the dtype for a set of fields and :func:`is_messages_dtype`
  accepts any of them;
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
TOOL_CALL_DTYPE = pl.Struct({"id": pl.String, "type": pl.String,
                             "function": pl.Struct({"name": pl.String, "arguments": pl.String})})
#: optional message fields, in canonical order: OpenAI tool calls (``arguments`` as JSON text),
#: the tool turn's call id, a participant name, the axolotl turn weight (0 = not trained) and
#: the reasoning text
EXTRA_MESSAGE_FIELDS: dict[str, pl.DataType] = {
    "tool_calls": pl.List(TOOL_CALL_DTYPE),
    "tool_call_id": pl.String,
    "name": pl.String,
    "weight": pl.Float64,
    "reasoning_content": pl.String,
}


def messages_dtype(fields: Iterable[str] = ()) -> pl.DataType:
    """The messages dtype holding ``role``, ``content`` and the optional ``fields``."""
    wanted = set(fields)
    extra = {k: v for k, v in EXTRA_MESSAGE_FIELDS.items() if k in wanted}
    return pl.List(pl.Struct({"role": pl.String, "content": pl.String, **extra})) if extra else MESSAGES_DTYPE


def message_fields(dtype: Any) -> list[str]:
    """Optional message fields present in a messages dtype (``[]`` for anything else)."""
    inner = getattr(dtype, "inner", None)
    fields = getattr(inner, "fields", None) or []
    return [f.name for f in fields if f.name in EXTRA_MESSAGE_FIELDS]


def is_messages_dtype(dtype: Any) -> bool:
    """True for the canonical messages dtype with any subset of the optional fields."""
    return dtype == messages_dtype(message_fields(dtype))


def _extras(m: Mapping[str, Any]) -> dict[str, Any]:
    return {k: m[k] for k in EXTRA_MESSAGE_FIELDS if m.get(k) is not None}


DROP_COLUMNS: tuple[str, ...] = ("drop_stage", "drop_code", "drop_reason")


def content_id(messages: Sequence[Mapping[str, Any]]) -> str:
    """Stable 16-hex-digit id of a conversation's content (roles and texts, plus the optional
    fields a message holds)."""
    canon = json.dumps(
        [[m["role"], m["content"], *([_extras(m)] if _extras(m) else [])] for m in messages],
        ensure_ascii=False, separators=(",", ":"), sort_keys=True, default=str,
    )
    return hashlib.blake2b(canon.encode("utf-8"), digest_size=8).hexdigest()


def derived_id(messages: Sequence[Mapping[str, Any]], occurrence: int = 0) -> str:
    """The id of a row the input gave none: :func:`content_id`, plus ``-<occurrence>`` for the
    second and later copies of the same conversation (so identical rows stay distinct rows
    with stable ids, and the first copy's id is the plain content hash)."""
    base = content_id(messages)
    return base if occurrence == 0 else f"{base}-{occurrence}"


class IdAssigner:
    """Give every row an id while reading, in order.

    A row without an id gets :func:`derived_id` with its occurrence index (skipping any id
    already taken), never an error. A given id that was already seen is a problem naming
    the first place it appeared.
    """

    def __init__(self) -> None:
        self.seen: dict[str, tuple[str, str]] = {}
        self._count: dict[str, int] = {}
        self.file = ""
        """The input being read (set by the reader): a repeat from another file names that file."""

    def assign(self, given: Any, messages: Sequence[Mapping[str, Any]], where: str) -> tuple[str, str | None]:
        """``(id, problem)``: problem is None unless ``given`` repeats an earlier id or is not
        a string or a number (an object, a list or a bool is refused, never stringified)."""
        problem = id_type_problem(given)
        if problem:
            return "", problem
        if given not in (None, ""):
            rid = str(given)
            if rid in self.seen:
                return rid, duplicate_id_problem(rid, *self.seen[rid], self.file)
            self.seen[rid] = (self.file, where)
            return rid, None
        return self._derive(messages, where), None

    def take_all(self, column: pl.Series, file: str, prefix: str = "row ", start: int = 1) -> bool:
        """Register a whole column of given ids at once (rows ``row 1``, ``row 2`` ...; lines
        ``1``, ``2`` ... with ``prefix=""``) when none is null, empty, repeated or seen before;
        False (nothing registered) otherwise."""
        values = takeable_ids(column)
        if values is None or not self.seen.keys().isdisjoint(values):
            return False
        self.seen.update((v, (file, f"{prefix}{i}")) for i, v in enumerate(values, start=start))
        return True

    def overlay(self) -> IdAssigner:
        """A trial assigner that sees this one's ids but records its own apart (keep them with
        :meth:`commit`, or drop the trial to leave this one unchanged)."""
        from collections import ChainMap

        trial = IdAssigner()
        trial.file = self.file
        trial.seen = ChainMap({}, self.seen)  # type: ignore[assignment]
        trial._count = ChainMap({}, self._count)  # type: ignore[assignment]
        return trial

    def commit(self, trial: IdAssigner) -> None:
        """Keep the ids a trial from :meth:`overlay` assigned."""
        self.seen.update(trial.seen.maps[0])  # type: ignore[attr-defined]
        self._count.update(trial._count.maps[0])  # type: ignore[attr-defined]

    def _derive(self, messages: Sequence[Mapping[str, Any]], where: str) -> str:
        base = content_id(messages)
        occ = self._count.get(base, 0)
        rid = base if occ == 0 else f"{base}-{occ}"
        while rid in self.seen:
            occ += 1
            rid = f"{base}-{occ}"
        self._count[base] = occ + 1
        self.seen[rid] = (self.file, where)
        return rid


def _place(where: str) -> str:
    return f"line {where}" if where.isdigit() else where


def id_type_problem(given: Any) -> str | None:
    """Why ``given`` cannot be an id (an object, a list or a bool: never stringified), or None."""
    if isinstance(given, (bool, Mapping, list, tuple, dict)):
        kind = "a bool" if isinstance(given, bool) else f"an {'object' if isinstance(given, Mapping) else 'array'}"
        return f"id must be a string or a number, got {kind}"
    return None


def duplicate_id_problem(rid: str, file: str, first: str, current: str) -> str:
    """The problem of id ``rid`` given again, first seen at ``first`` of ``file`` (``current``:
    the file being read, named only when it is another)."""
    place = _place(first) if file == current else f"{file}:{first.removeprefix('line ')}"
    return f"duplicate id '{rid}' (first seen at {place})"


def takeable_ids(column: pl.Series) -> list[str] | None:
    """The ids of ``column`` as strings when none is null, empty or repeated (a column an id
    set may take at once), else None."""
    col = column.cast(pl.String)
    if col.null_count() or (col == "").any() or col.is_duplicated().any():
        return None
    return col.to_list()


def fill_ids(given: Sequence[Any], messages: Sequence[Sequence[Mapping[str, Any]]]) -> list[str]:
    """Ids for a column where some may be null or empty: given ids are kept as they are
    (duplicates among them are left for validation to report), missing ones become
    :func:`derived_id` with their occurrence index, never colliding with a given id."""
    taken = {str(g) for g in given if g not in (None, "")}
    count: dict[str, int] = {}
    out: list[str] = []
    for g, msgs in zip(given, messages):
        if g not in (None, ""):
            out.append(str(g))
            continue
        base = content_id(msgs or [])  # null messages: an invalid row, reported by validation
        occ = count.get(base, 0)
        rid = base if occ == 0 else f"{base}-{occ}"
        while rid in taken:
            occ += 1
            rid = f"{base}-{occ}"
        count[base] = occ + 1
        taken.add(rid)
        out.append(rid)
    return out


def validate_messages(messages: Any) -> str | None:
    """Return why ``messages`` is not a valid conversation, or ``None`` when it is.

    Rules: a non-empty list of objects, each with a known ``role`` and string ``content``;
    ``tool_calls`` only on assistant turns; user and assistant turns must not be empty or
    whitespace-only, except a final assistant turn (an empty answer is a row that the filter
    stage's ``drop_empty`` drops, with its reason); not only system turns.
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
        weight = m.get("weight")
        if weight is not None and (isinstance(weight, bool) or not isinstance(weight, (int, float))
                                   or not 0 <= weight <= 1):
            return f"message {i} ({role}): 'weight' must be a number in [0, 1], got {weight!r}"
        calls = m.get("tool_calls")
        if calls and role != "assistant":
            return f"message {i} ({role}): tool_calls are only allowed on assistant turns"
        if role in ("user", "assistant") and not content.strip() and not calls \
                and not (role == "assistant" and i == len(messages)):
            return f"message {i} ({role}): empty content"
    if all(m["role"] == "system" for m in messages):
        return "conversation has only system messages"
    return None


def clean_messages(messages: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Keep ``role``, ``content`` and the optional fields that are set (call after validation)."""
    return [{"role": m["role"], "content": m["content"], **_extras(m)} for m in messages]


def _last_assistant_index(messages: Sequence[Mapping[str, Any]]) -> int | None:
    if messages and messages[-1]["role"] == "assistant":
        return len(messages) - 1
    return None


def prompt_messages(messages: Sequence[Mapping[str, Any]]) -> list[dict[str, str]]:
    """The prompt part of a conversation: everything before a final assistant turn."""
    idx = _last_assistant_index(messages)
    msgs = messages if idx is None else messages[:idx]
    return [{"role": m["role"], "content": m["content"],
             **{k: v for k, v in _extras(m).items() if k != "weight"}} for m in msgs]


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
        _messages_expr(df.schema["messages"]),
        pl.col("category").cast(pl.String),
        pl.col("source").cast(pl.String),
    )
    rest = [c for c in df.columns if c not in CORE_COLUMNS]
    return df.select([*CORE_COLUMNS, *rest])


def _messages_expr(dtype: Any) -> pl.Expr:
    """Cast the messages column to the canonical dtype, matching struct fields by name."""
    fields = message_fields(dtype)
    if not fields:
        return pl.col("messages").cast(MESSAGES_DTYPE)
    target = messages_dtype(fields)
    if dtype == target:
        return pl.col("messages")
    el = pl.element().struct.field
    parts = [el(f).cast(t) for f, t in target.inner.to_schema().items()]
    return pl.col("messages").list.eval(pl.struct(parts)).cast(target)


def table_problems(df: pl.DataFrame, *, check_ids: bool = True) -> pl.DataFrame:
    """Vectorised validation of a row table, the rules of :func:`validate_messages`: returns
    ``(row, reason)`` for each bad row (row numbers are 1-based), empty when all rows are
    valid. ``check_ids`` also reports missing and duplicate ids."""
    n = df.height
    if n == 0:
        return pl.DataFrame({"row": [], "reason": []}, schema={"row": pl.Int64, "reason": pl.String})
    idx = pl.int_range(1, n + 1, dtype=pl.Int64)
    base = df.select(idx.alias("row"), pl.col("messages"), pl.col("id"))
    reasons = [
        base.filter(pl.col("messages").is_null() | (pl.col("messages").list.len() == 0))
        .select("row", pl.lit("empty conversation").alias("reason"))
    ]
    ex = (
        base.filter(pl.col("messages").list.len() > 0)
        .with_columns(pl.int_ranges(1, pl.col("messages").list.len() + 1).alias("turn"),
                      pl.col("messages").list.len().alias("turns"))
        .explode("messages", "turn")
    )
    reasons.append(ex.filter(pl.col("messages").is_null()).select(
        "row", "turn", pl.lit(-1).alias("_k"),
        pl.format("message {}: must be an object with role and content", "turn").alias("reason")))
    ex = ex.filter(pl.col("messages").is_not_null()).unnest("messages")
    reasons.extend(_turn_problems(ex))
    only_system = ex.group_by("row").agg((pl.col("role") == "system").all().alias("sys"))
    reasons.append(only_system.filter(pl.col("sys")).select(
        "row", pl.lit("conversation has only system messages").alias("reason")))
    if check_ids:
        first = base.select("row", "id").with_columns(pl.col("row").min().over("id").alias("first"))
        reasons.append(first.filter(pl.col("id").is_not_null() & (pl.col("row") != pl.col("first"))).select(
            "row", pl.format("duplicate id '{}' (first seen at row {})", pl.col("id"), pl.col("first")).alias("reason")))
        reasons.append(base.filter(pl.col("id").is_null()).select("row", pl.lit("missing id").alias("reason")))
    # the first problem of a row in the order validate_messages finds them: by turn
    return pl.concat(reasons, how="diagonal_relaxed").sort(["row", "turn", "_k"], nulls_last=True) \
        .unique("row", keep="first", maintain_order=True).select("row", "reason")


#: the characters ``str.strip()`` removes (polars' default strips fewer: not U+001C..U+001F)
PY_WHITESPACE = "".join(chr(c) for c in range(0x3001) if chr(c).isspace())


def _turn_problems(ex: pl.DataFrame) -> list[pl.DataFrame]:
    """Per-turn problems of exploded messages (one row per turn: ``row``, ``turn``, fields)."""
    role_ok = pl.col("role").is_in(list(ROLES))
    has_calls = (pl.col("tool_calls").is_not_null() & (pl.col("tool_calls").list.len() > 0)) \
        if "tool_calls" in ex.columns else pl.lit(False)
    checks: list[tuple[pl.Expr, pl.Expr]] = [
        (pl.col("role").is_null(), pl.format("message {}: missing role", "turn")),
        (pl.col("role").is_not_null() & ~role_ok,
         pl.format("message {}: unknown role '{}' (expected one of " + ", ".join(ROLES) + ")", "turn", "role")),
        (role_ok & pl.col("content").is_null(), pl.format("message {} ({}): missing content", "turn", "role")),
    ]
    if "weight" in ex.columns:
        w = pl.col("weight")
        checks.append((role_ok & pl.col("content").is_not_null() & w.is_not_null() & (w.is_nan() | (w < 0) | (w > 1)),
                       pl.format("message {} ({}): 'weight' must be a number in [0, 1], got {}", "turn", "role", w)))
    checks += [
        (role_ok & pl.col("content").is_not_null() & has_calls & (pl.col("role") != "assistant"),
         pl.format("message {} ({}): tool_calls are only allowed on assistant turns", "turn", "role")),
        (pl.col("role").is_in(["user", "assistant"]) & (pl.col("content").str.strip_chars(PY_WHITESPACE).str.len_chars() == 0)
         & ~has_calls & ~((pl.col("role") == "assistant") & (pl.col("turn") == pl.col("turns"))),
         pl.format("message {} ({}): empty content", "turn", "role")),
    ]
    out = []
    for k, (cond, reason) in enumerate(checks):
        out.append(ex.filter(cond).select("row", "turn", pl.lit(k).alias("_k"), reason.alias("reason")))
    return [pl.concat(out).sort("row", "turn", "_k")]
