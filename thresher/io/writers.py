"""Write row tables: Parquet (canonical), JSONL / JSON, or a Hugging Face dataset folder.

The format comes from the extension (a path without one is a dataset folder). ``shape``
writes the records as ShareGPT, Alpaca, prompt/completion or plain prompts instead of
messages. Every write is atomic.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

import polars as pl

from thresher.errors import InputError
from thresher.io.atomic import atomic_path
from thresher.io.chat import strip_nulls
from thresher.io.shapes import SHAPES, ShapeError, from_messages
from thresher.schema import message_fields

#: the shapes that hold only role and text (no tool calls, weights, names or reasoning)
TEXT_ONLY_SHAPES = ("sharegpt", "alpaca", "prompt")


def _check_fields(df: pl.DataFrame, shape: str) -> None:
    """Refuse to write optional message fields that ``shape`` cannot hold (they would be lost)."""
    if shape not in TEXT_ONLY_SHAPES or "messages" not in df.columns:
        return
    for name in message_fields(df.schema["messages"]):
        used = df.select(pl.col("messages").list.eval(pl.element().struct.field(name).is_not_null()).list.any()
                         .alias("u")).to_series()
        if used.any():
            i = int(used.arg_true()[0])
            rid = df["id"][i] if "id" in df.columns else None
            raise InputError(f"row {i + 1} (id {rid}): --to {shape} cannot hold the message field '{name}' "
                             "(it would be lost); write --to messages or prompt-completion to keep it")


def _finite(value: Any, count: list[int]) -> Any:
    """``value`` with NaN and infinities replaced by None (JSON has neither), counted."""
    if isinstance(value, float) and not math.isfinite(value):
        count[0] += 1
        return None
    if isinstance(value, dict):
        return {k: _finite(v, count) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v, count) for v in value]
    return value


def _dumps(rec: Any, count: list[int]) -> str:
    try:
        return json.dumps(rec, ensure_ascii=False, default=str, allow_nan=False)
    except ValueError:  # NaN or an infinity somewhere
        return json.dumps(_finite(rec, count), ensure_ascii=False, default=str, allow_nan=False)


def _records(df: pl.DataFrame, shape: str) -> list[dict[str, Any]]:
    _check_fields(df, shape)
    out = []
    for i, row in enumerate(df.iter_rows(named=True), start=1):
        msgs = row.pop("messages")
        try:
            rec = from_messages(msgs, shape)
        except ShapeError as e:
            raise InputError(f"row {i} (id {row.get('id')}): cannot write as {shape}: {e}") from None
        out.append({"id": row.pop("id"), **rec, **row})
    return out


def _check_dataset_target(p: Path) -> None:
    """Refuse to replace anything but a dataset folder written before: an existing folder
    (``thresher convert IN ~/work``) would otherwise be swapped out and deleted."""
    if p.is_file():
        raise InputError(f"{p}: is a file; a dataset folder is written at a path without an extension")
    if p.is_dir() and any(p.iterdir()) and not ((p / "state.json").is_file() and (p / "dataset_info.json").is_file()):
        raise InputError(
            f"{p}: folder exists and is not a dataset folder; refusing to replace it "
            "(give a new folder, or a file name ending in .parquet, .jsonl or .json)")


def write_table(df: pl.DataFrame, path: str | os.PathLike, *, shape: str = "messages") -> Path:
    """Write ``df`` to ``path`` atomically; returns the path."""
    if shape not in SHAPES:
        raise InputError(f"unknown output format {shape!r} (expected one of {', '.join(SHAPES)})")
    p = Path(path)
    ext = p.suffix.lower()
    if ext in (".parquet", ".pq"):
        if shape == "messages":
            with atomic_path(p) as tmp:
                df.write_parquet(tmp)
        else:
            frame = pl.DataFrame(_records(df, shape), infer_schema_length=None)
            with atomic_path(p) as tmp:
                frame.write_parquet(tmp)
    elif ext in (".jsonl", ".ndjson", ".json"):
        recs = _records(df, shape) if shape != "messages" else df.to_dicts()
        if shape == "messages" and "messages" in df.columns and message_fields(df.schema["messages"]):
            for rec in recs:  # optional message fields only where set (no "tool_calls": null)
                rec["messages"] = strip_nulls(rec["messages"] or [])
        nan = [0]
        with atomic_path(p) as tmp, open(tmp, "w", encoding="utf-8") as fh:
            if ext == ".json":
                fh.write(_dumps(recs, nan))
            else:
                for rec in recs:
                    fh.write(_dumps(rec, nan))
                    fh.write("\n")
        if nan[0]:
            from thresher.progress import info

            info(f"{p}: {nan[0]} NaN/Infinity value(s) written as null (JSON has no NaN)")
    elif ext == "":
        _check_dataset_target(p)
        import datasets

        frame = df if shape == "messages" else pl.DataFrame(_records(df, shape), infer_schema_length=None)
        ds = datasets.Dataset(frame.to_arrow())
        with atomic_path(p, is_dir=True) as tmp:
            ds.save_to_disk(str(tmp))
    else:
        raise InputError(f"{p}: unsupported output type '{ext}' (use .parquet, .jsonl, .json or a folder)")
    return p


def rejects_path(out_path: str | os.PathLike) -> Path:
    """Where the rejected rows of an output go: ``OUT-stem.rejects.jsonl`` beside it."""
    p = Path(out_path)
    return p.with_name(p.name + ".rejects.jsonl") if p.suffix == "" else p.with_name(p.stem + ".rejects.jsonl")


def is_rejects_file(path: str | os.PathLike) -> bool:
    """True when ``path`` is a rejects file thresher wrote (each line names file, where, reason)."""
    try:
        with open(path, "rb") as fh:
            first = fh.readline(1 << 20)
        rec = json.loads(first)
    except (OSError, ValueError):
        return False
    return isinstance(rec, dict) and {"file", "where", "reason", "code"} <= set(rec)


def write_rejects(rejects: list[dict[str, Any]], out_path: str | os.PathLike) -> Path | None:
    """Write rejected rows (with reasons) as JSONL beside ``out_path``; returns its path.

    Without rejects, a rejects file an earlier run wrote into the same output is removed (it
    would describe rows this output never saw); a file thresher did not write is never removed
    or replaced (an InputError when there are rejects to write)."""
    target = rejects_path(out_path)
    ours = target.is_file() and is_rejects_file(target)
    if not rejects:
        if ours:
            target.unlink()
        return None
    if target.exists() and not ours:
        raise InputError(f"{target}: exists and is not a rejects file thresher wrote; refusing to replace it")
    with atomic_path(target) as tmp, open(tmp, "w", encoding="utf-8") as fh:
        for rec in rejects:
            fh.write(json.dumps(rec, ensure_ascii=False, default=str) + "\n")
    return target
