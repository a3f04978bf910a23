"""Record shapes: how a raw record (a dict) becomes canonical messages, and back.

Shapes: ``messages`` (OpenAI/TRL), ``sharegpt`` (``conversations`` with from/value),
``alpaca`` (instruction/input/output), ``prompt-completion`` and ``prompt`` (a plain prompt
column), and the OpenAI Batch API files (read only): ``openai-batch`` (the input file,
``custom_id`` + ``body.messages``) and ``openai-batch-output`` (the results,
``custom_id`` + ``response.body.choices[0].message``; see :mod:`thresher.io.openai_batch`).
Messages are normalised by :mod:`thresher.io.chat` (content parts, tool calls, extra keys).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Literal, get_args

from thresher.io.shape_error import ShapeError

WriteShape = Literal["messages", "sharegpt", "alpaca", "prompt-completion", "prompt"]
BatchShape = Literal["openai-batch", "openai-batch-output"]
#: a record format (``--format``): one thresher writes, or an OpenAI Batch file it reads
Shape = Literal[WriteShape, BatchShape]
WRITE_SHAPES: tuple[str, ...] = get_args(WriteShape)
BATCH_SHAPES: tuple[str, ...] = get_args(BatchShape)
SHAPES: tuple[str, ...] = (*WRITE_SHAPES, *BATCH_SHAPES)
ROW_KEYS: tuple[str, ...] = ("id", "category", "source")
SHAPE_KEYS: dict[str, tuple[str, ...]] = {
    "messages": ("messages",),
    "openai-batch": ("custom_id", "method", "url", "body"),
    "openai-batch-output": ("custom_id", "response", "error"),
    "sharegpt": ("conversations", "system"),
    "alpaca": ("instruction", "input", "output", "system"),
    "prompt-completion": ("prompt", "completion", "system"),
    "prompt": ("prompt", "system"),
}
SHAREGPT_ROLES = {
    "human": "user",
    "user": "user",
    "gpt": "assistant",
    "assistant": "assistant",
    "chatgpt": "assistant",
    "bard": "assistant",
    "model": "assistant",
    "system": "system",
    "tool": "tool",
    "function": "tool",
    "observation": "tool",
}


def detect_shape(record: Mapping[str, Any]) -> str | None:
    """Guess the shape of a record from its keys (``None`` when nothing fits)."""
    keys = set(record)
    if "custom_id" in keys and "body" in keys:
        return "openai-batch"
    if "custom_id" in keys and ("response" in keys or "error" in keys):
        return "openai-batch-output"
    if "messages" in keys:
        return "messages"
    if "conversations" in keys:
        return "sharegpt"
    if "instruction" in keys and "output" in keys:
        return "alpaca"
    if "prompt" in keys and "completion" in keys:
        return "prompt-completion"
    if "prompt" in keys:
        return "prompt"
    return None


def decode_cells(record: dict[str, Any]) -> dict[str, Any]:
    """CSV cells hold nested values as JSON text: decode the columns that may be nested.

    ``messages``/``conversations`` must decode; ``prompt``/``completion`` are decoded only
    when they hold a JSON list of message objects (otherwise they stay plain text).
    """
    out = dict(record)
    for key in ("messages", "conversations"):
        value = out.get(key)
        if isinstance(value, str):
            try:
                out[key] = json.loads(value)
            except json.JSONDecodeError as e:
                raise ShapeError(f"'{key}': malformed JSON in cell ({e.msg.removesuffix(' at')} at column {e.colno})") from None
            except RecursionError:
                raise ShapeError(f"'{key}': malformed JSON in cell (nested too deeply)") from None
    for key in ("prompt", "completion"):
        value = out.get(key)
        if isinstance(value, str) and value.startswith("[{"):
            try:
                parsed = json.loads(value)
            except (json.JSONDecodeError, RecursionError):
                continue
            if isinstance(parsed, list) and all(isinstance(m, dict) for m in parsed):
                out[key] = parsed
    return out


def _maybe_json(value: Any, key: str) -> Any:
    return value


def _text(record: Mapping[str, Any], key: str, required: bool = True) -> str | None:
    value = record.get(key)
    if value is None:
        if required:
            raise ShapeError(f"missing '{key}'")
        return None
    if not isinstance(value, str):
        raise ShapeError(f"'{key}' must be a string, got {type(value).__name__}")
    return value


def _turns(value: Any, key: str, default_role: str) -> list[dict[str, Any]]:
    value = _maybe_json(value, key)
    if isinstance(value, str):
        return [{"role": default_role, "content": value}]
    if isinstance(value, list):
        return list(value)
    raise ShapeError(f"'{key}' must be a string or a list of messages, got {type(value).__name__}")


def _system(record: Mapping[str, Any]) -> list[dict[str, Any]]:
    sys_text = _text(record, "system", required=False)
    return [{"role": "system", "content": sys_text}] if sys_text else []


def to_messages(record: Mapping[str, Any], shape: str, unknown: set[str] | None = None) -> list[Any]:
    """Canonical messages of ``record`` read as ``shape`` (raises :class:`ShapeError`).

    Message keys without a meaning in thresher are collected in ``unknown`` (for one warning).
    """
    from thresher.io.chat import normalize_messages

    return normalize_messages(_raw_messages(record, shape), unknown)


def row_fields(record: Mapping[str, Any], shape: str) -> dict[str, Any]:
    """The record's columns besides its messages (``custom_id`` becomes the row ``id``)."""
    if shape in BATCH_SHAPES:
        from thresher.io.openai_batch import batch_fields

        return batch_fields(record, shape)
    return {k: v for k, v in record.items() if k not in SHAPE_KEYS[shape]}


def _raw_messages(record: Mapping[str, Any], shape: str) -> list[Any]:
    if shape in BATCH_SHAPES:
        from thresher.io.openai_batch import batch_messages

        return batch_messages(record, shape)
    if shape == "messages":
        if "messages" not in record or record["messages"] is None:
            raise ShapeError("missing 'messages'")
        msgs = _maybe_json(record["messages"], "messages")
        if not isinstance(msgs, list):
            raise ShapeError(f"'messages' must be a list, got {type(msgs).__name__}")
        return msgs
    if shape == "sharegpt":
        conv = _maybe_json(record.get("conversations"), "conversations")
        if conv is None:
            raise ShapeError("missing 'conversations'")
        if not isinstance(conv, list):
            raise ShapeError(f"'conversations' must be a list, got {type(conv).__name__}")
        out = _system(record)
        for i, turn in enumerate(conv, start=1):
            if not isinstance(turn, Mapping):
                raise ShapeError(f"conversations[{i}]: must be an object with from and value")
            who = turn.get("from", turn.get("role"))
            if who is None:
                raise ShapeError(f"message {i}: missing role ('from')")
            role = SHAREGPT_ROLES.get(str(who).lower())
            if role is None:
                raise ShapeError(f"message {i}: unknown role {who!r} in 'from'")
            msg = {k: v for k, v in turn.items() if k not in ("from", "value")}
            msg.update(role=role, content=turn.get("value", turn.get("content")))
            out.append(msg)
        return out
    if shape == "alpaca":
        instruction = _text(record, "instruction")
        extra = _text(record, "input", required=False)
        output = _text(record, "output")
        user = instruction if not extra else f"{instruction}\n\n{extra}"
        return [*_system(record), {"role": "user", "content": user},
                {"role": "assistant", "content": output}]
    if shape == "prompt-completion":
        if record.get("prompt") is None:
            raise ShapeError("missing 'prompt'")
        if record.get("completion") is None:
            raise ShapeError("missing 'completion'")
        return [*_system(record), *_turns(record["prompt"], "prompt", "user"),
                *_turns(record["completion"], "completion", "assistant")]
    if shape == "prompt":
        if record.get("prompt") is None:
            raise ShapeError("missing 'prompt'")
        return [*_system(record), *_turns(record["prompt"], "prompt", "user")]
    raise ShapeError(f"unknown format {shape!r}")


def from_messages(messages: list[Mapping[str, str]], shape: str) -> dict[str, Any]:
    """Turn canonical messages into a record of ``shape`` (raises ShapeError if it cannot
    hold the conversation, e.g. a multi-turn conversation as Alpaca)."""
    msgs = list(messages)
    system = [m["content"] for m in msgs if m["role"] == "system"]
    rest = [m for m in msgs if m["role"] != "system"]
    sys_field = {"system": system[0]} if system else {}
    if shape == "messages":
        from thresher.io.chat import strip_nulls

        return {"messages": strip_nulls(msgs)}
    if shape == "prompt-completion":
        # TRL's conversational prompt-completion: both are message lists (system turn included)
        if not rest or msgs[-1]["role"] != "assistant":
            raise ShapeError("prompt-completion needs a final assistant turn")
        from thresher.io.chat import strip_nulls

        return {"prompt": strip_nulls(msgs[:-1]), "completion": strip_nulls(msgs[-1:])}
    if len(system) > 1:
        raise ShapeError(f"{shape} holds at most one system message")
    if system and msgs[0]["role"] != "system":
        raise ShapeError(f"{shape} holds a system message only as the first turn")
    if system and not system[0]:
        raise ShapeError(f"{shape} cannot hold an empty system message (an empty 'system' field reads back as none)")
    if shape == "sharegpt":
        back = {v: k for k, v in SHAREGPT_ROLES.items() if k in ("human", "gpt", "system", "tool")}
        return {"conversations": [{"from": back[m["role"]], "value": m["content"]} for m in rest],
                **sys_field}
    if shape == "alpaca":
        if [m["role"] for m in rest] != ["user", "assistant"]:
            raise ShapeError("alpaca holds exactly one user and one assistant turn")
        return {**sys_field, "instruction": rest[0]["content"], "input": "",
                "output": rest[1]["content"]}
    if shape == "prompt":
        if len(rest) != 1 or rest[0]["role"] != "user":
            raise ShapeError("prompt holds exactly one user turn")
        return {**sys_field, "prompt": rest[0]["content"]}
    raise ShapeError(f"unknown format {shape!r}")
