"""Per-message normalisation: content parts, tool calls and the per-message keys people bring.

What a message may hold once read (everything else is dropped, with one warning per input):

- ``role`` and ``content`` (a string; a list of ``{"type": "text", "text": ...}`` parts is
  joined; a bare string part or a non-text part such as an image is a :class:`ShapeError`, so
  with ``skip`` the row is rejected with that reason);
- ``tool_calls`` on assistant turns (OpenAI form: ``{id, type: "function", function: {name,
  arguments}}``; ``arguments`` is stored as JSON text, a dict is encoded); the assistant's
  ``content`` may then be null or empty and is stored as ``""``;
- ``tool_call_id`` and ``name`` (tool turns, named participants);
- ``weight`` (axolotl; ``train: true/false`` is read as weight 1/0): 0 means "do not train
  this turn" and the loss mask honours it;
- ``reasoning_content`` (``thinking`` is read as it).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from thresher.io.shape_error import ShapeError

#: optional message fields kept in the schema, in canonical order
EXTRA_FIELDS: tuple[str, ...] = ("tool_calls", "tool_call_id", "name", "weight", "reasoning_content")
ALIASES: dict[str, str] = {"thinking": "reasoning_content", "train": "weight"}
TEXT_PART_TYPES = ("text", "input_text", "output_text")


def join_parts(content: list[Any], where: str) -> str:
    """The text of a list of content parts (``{"type": "text", "text": ...}``), joined without a
    separator as the OpenAI API does. A bare string part is refused (joining ``["not", "a"]``
    would silently give ``nota``)."""
    texts: list[str] = []
    for j, part in enumerate(content, start=1):
        if isinstance(part, str):
            raise ShapeError(f"{where}: content part {j} is a bare string, not a "
                             '{"type": "text", "text": ...} object')
        if not isinstance(part, Mapping):
            raise ShapeError(f"{where}: content part {j} must be an object, got {type(part).__name__}")
        kind = part.get("type", "text")
        if kind not in TEXT_PART_TYPES:
            raise ShapeError(f"{where}: content part {j} is {kind!r}, not text "
                             "(only text parts can be trained on)")
        text = part.get("text")
        if not isinstance(text, str):
            raise ShapeError(f"{where}: content part {j} has no string 'text'")
        texts.append(text)
    return "".join(texts)


def _tool_calls(value: Any, where: str) -> list[dict[str, Any]]:
    if not isinstance(value, list):
        raise ShapeError(f"{where}: tool_calls must be a list, got {type(value).__name__}")
    out = []
    for j, call in enumerate(value, start=1):
        fn = call.get("function") if isinstance(call, Mapping) else None
        if not isinstance(fn, Mapping) or not isinstance(fn.get("name"), str) or not fn["name"]:
            raise ShapeError(f"{where}: tool call {j} needs function.name")
        args = fn.get("arguments", {})
        if not isinstance(args, str):
            args = json.dumps(args, ensure_ascii=False, sort_keys=True)
        out.append({"id": None if call.get("id") is None else str(call["id"]),
                    "type": str(call.get("type") or "function"),
                    "function": {"name": fn["name"], "arguments": args}})
    return out


def _weight(value: Any, key: str, where: str) -> float:
    if isinstance(value, bool):
        return 1.0 if value else 0.0
    if isinstance(value, (int, float)) and 0 <= value <= 1:
        return float(value)
    raise ShapeError(f"{where}: '{key}' must be true/false or a number in [0, 1], got {value!r}")


def normalize_message(m: Any, i: int, unknown: set[str] | None = None) -> Any:
    """One message in canonical form (a new dict); non-objects are returned as they are so that
    :func:`thresher.schema.validate_messages` names the problem. Unknown keys go to ``unknown``."""
    if not isinstance(m, Mapping):
        return m
    role = m.get("role")
    where = f"message {i} ({role})" if role else f"message {i}"
    out: dict[str, Any] = {"role": role, "content": m.get("content")}
    content = out["content"]
    if isinstance(content, list):
        out["content"] = join_parts(content, where)
    for key, value in m.items():
        if key in ("role", "content") or value is None:
            continue
        name = ALIASES.get(key, key)
        if name == "tool_calls":
            calls = _tool_calls(value, where)
            if calls:
                out["tool_calls"] = calls
        elif name == "weight":
            out["weight"] = _weight(value, key, where)
        elif name in ("tool_call_id", "name", "reasoning_content"):
            if not isinstance(value, str):
                raise ShapeError(f"{where}: '{key}' must be a string, got {type(value).__name__}")
            out[name] = value
        elif unknown is not None:
            unknown.add(key)
    if out.get("tool_calls") and out["content"] is None:
        out["content"] = ""
    return out


def normalize_messages(msgs: list[Any], unknown: set[str] | None = None) -> list[Any]:
    """:func:`normalize_message` over a conversation."""
    return [normalize_message(m, i, unknown) for i, m in enumerate(msgs, start=1)]


def template_messages(messages: Any) -> list[dict[str, Any]]:
    """Messages as chat templates expect them: null extras dropped, tool-call arguments as
    objects (HF templates render ``tool_call.arguments | tojson``), ``weight`` removed."""
    out = []
    for m in messages:
        d: dict[str, Any] = {"role": str(m["role"]), "content": "" if m.get("content") is None
                             else str(m["content"])}
        for key in ("tool_call_id", "name", "reasoning_content"):
            if m.get(key) is not None:
                d[key] = m[key]
        if m.get("tool_calls"):
            calls = []
            for c in m["tool_calls"]:
                fn = dict(c["function"])
                try:
                    fn["arguments"] = json.loads(fn["arguments"]) if isinstance(fn["arguments"], str) \
                        else fn["arguments"]
                except json.JSONDecodeError:
                    pass
                calls.append({"id": c.get("id"), "type": c.get("type") or "function", "function": fn})
            d["tool_calls"] = calls
        out.append(d)
    return out


def strip_nulls(messages: Any) -> list[dict[str, Any]]:
    """Messages without the null optional fields a polars struct fills in."""
    return [{k: v for k, v in m.items() if v is not None or k in ("role", "content")}
            for m in messages]
