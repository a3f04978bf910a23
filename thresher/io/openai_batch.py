"""OpenAI Batch API files: read the input and output files, join them, write an input file.

Input file (one request a line)::

    {"custom_id": "r1", "method": "POST", "url": "/v1/chat/completions",
     "body": {"model": "gpt-4o-mini", "messages": [...], "max_tokens": 256}}

Output file (one result a line, in any order)::

    {"id": "batch_req_...", "custom_id": "r1", "error": null,
     "response": {"status_code": 200, "body": {"model": ..., "choices": [{"message": {...},
                  "finish_reason": "stop"}], "usage": {...}}}}

Read alone, an input file gives prompt rows and an output file gives one-turn assistant rows;
read together (``thresher convert requests.jsonl results.jsonl out.parquet`` or any stage
given both), each result is joined to its request by ``custom_id`` into a whole conversation.
The row ``id`` is the ``custom_id``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from thresher.io.shape_error import ShapeError

INPUT, OUTPUT = "openai-batch", "openai-batch-output"
ENDPOINT = "/v1/chat/completions"


def _custom_id(record: Mapping[str, Any]) -> str:
    cid = record.get("custom_id")
    if not isinstance(cid, (str, int)) or isinstance(cid, bool) or cid == "":
        raise ShapeError("'custom_id' must be a non-empty string")
    return str(cid)


def result_body(record: Mapping[str, Any]) -> Mapping[str, Any]:
    """The chat-completion body of a successful result (raises ShapeError for a failed one)."""
    err = record.get("error")
    resp = record.get("response")
    if err:
        msg = err.get("message") if isinstance(err, Mapping) else err
        raise ShapeError(f"batch request {record.get('custom_id')!r} failed: {msg}")
    if not isinstance(resp, Mapping):
        raise ShapeError("'response' must be an object")
    status = resp.get("status_code", 200)
    body = resp.get("body")
    if status != 200:
        detail = body.get("error", {}).get("message") if isinstance(body, Mapping) and \
            isinstance(body.get("error"), Mapping) else None
        raise ShapeError(f"batch request {record.get('custom_id')!r} failed with status {status}"
                         + (f": {detail}" if detail else ""))
    if not isinstance(body, Mapping) or not isinstance(body.get("choices"), list) or not body["choices"]:
        raise ShapeError("'response.body.choices' must be a non-empty list")
    return body


def batch_messages(record: Mapping[str, Any], shape: str) -> list[Any]:
    """The raw messages of a Batch input record (``body.messages``) or output record
    (``response.body.choices[0].message``)."""
    _custom_id(record)
    if shape == INPUT:
        body = record.get("body")
        msgs = body.get("messages") if isinstance(body, Mapping) else None
        if not isinstance(msgs, list):
            raise ShapeError("'body.messages' must be a list (only chat-completion requests are read)")
        return list(msgs)
    choice = result_body(record)["choices"][0]
    msg = choice.get("message") if isinstance(choice, Mapping) else None
    if not isinstance(msg, Mapping):
        raise ShapeError("'response.body.choices[0].message' must be an object")
    return [dict(msg)]


def batch_fields(record: Mapping[str, Any], shape: str) -> dict[str, Any]:
    """Row columns of a Batch record: ``id`` (the custom_id); for results also ``teacher``
    (the model that answered) and ``finish_reason``."""
    out: dict[str, Any] = {"id": _custom_id(record)}
    if shape == OUTPUT:
        body = result_body(record)
        out["teacher"] = body.get("model")
        out["finish_reason"] = body["choices"][0].get("finish_reason")
    return out


def join(results: Sequence[Any], *, on_bad_rows: str = "error") -> list[Any]:
    """Join every Batch output table to the Batch input table among ``results`` (ReadResults)
    by id; returns the tables to concatenate (others unchanged). A result without its request
    is an InputError naming the custom_id; so is a request without a (successful) result,
    or, with ``on_bad_rows="skip"``, a reject (code ``no-result``) of its requests file."""
    import polars as pl

    from thresher.errors import InputError
    from thresher.schema import clean_messages, conform

    inputs = [r for r in results if getattr(r, "shape", None) == INPUT]
    outputs = [r for r in results if getattr(r, "shape", None) == OUTPUT]
    if not inputs or not outputs:
        return [r.table for r in results]
    prompts = {}
    for req in inputs:
        prompts.update({i: (req, m) for i, m in zip(req.table["id"].to_list(), req.table["messages"].to_list())})
    joined, answered = [], set()
    for res in outputs:
        df = res.table
        missing = [i for i in df["id"].to_list() if i not in prompts]
        if missing:
            raise InputError(f"{res.path}: custom_id {missing[0]!r} has no request in "
                             f"{', '.join(r.path for r in inputs)}")
        answered.update(df["id"].to_list())
        msgs = [prompts[i][1] + m for i, m in zip(df["id"].to_list(), df["messages"].to_list())]
        joined.append(conform(df.drop("messages").with_columns(
            pl.Series("messages", [clean_messages(m) for m in msgs]))))
    _unanswered(prompts, answered, outputs, on_bad_rows)
    batch = {id(r) for r in (*inputs, *outputs)}
    rest = [r.table for r in results if id(r) not in batch]
    return [*joined, *rest]


def _unanswered(prompts: Mapping[str, Any], answered: set, outputs: Sequence[Any], on_bad_rows: str) -> None:
    """A request without a successful result: an error, or a reject of its requests file."""
    from thresher.errors import InputError

    where = ", ".join(r.path for r in outputs)
    for cid, (req, msgs) in prompts.items():
        if cid in answered:
            continue
        reason = f"request custom_id {cid!r} has no successful result in {where}"
        if on_bad_rows != "skip":
            raise InputError(f"{req.path}: {reason}")
        req.rejects.append({"file": req.path, "where": f"custom_id {cid}", "reason": reason,
                            "raw": json.dumps({"custom_id": cid, "messages": msgs}, ensure_ascii=False, default=str),
                            "code": "no-result", "id": cid})


def request_line(custom_id: str, messages: list[Mapping[str, Any]], model: str,
                 params: Mapping[str, Any]) -> str:
    """One line of a Batch input file (a chat-completion request)."""
    keep = ("role", "content", "tool_calls", "tool_call_id", "name")
    msgs = [{k: m[k] for k in keep if m.get(k) is not None} for m in messages]
    body = {"model": model, "messages": msgs, **params}
    return json.dumps({"custom_id": custom_id, "method": "POST", "url": ENDPOINT, "body": body},
                      ensure_ascii=False)


def write_requests(path: Path, lines: Sequence[str]) -> Path:
    """Write a Batch input file atomically."""
    from thresher.io.atomic import write_text_atomic

    write_text_atomic(path, "".join(line + "\n" for line in lines))
    return path
