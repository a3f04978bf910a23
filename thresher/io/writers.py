"""Write row tables: Parquet (canonical), JSONL / JSON, or a Hugging Face dataset folder.

The format comes from the extension (a path without one is a dataset folder). ``shape``
writes the records as ShareGPT, Alpaca, prompt/completion or plain prompts instead of
messages. Every write is atomic.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import polars as pl

from thresher.errors import InputError
from thresher.io.atomic import atomic_path
from thresher.io.chat import strip_nulls
from thresher.io.shapes import SHAPES, ShapeError, from_messages
from thresher.schema import message_fields


def _records(df: pl.DataFrame, shape: str) -> list[dict[str, Any]]:
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
        with atomic_path(p) as tmp, open(tmp, "w", encoding="utf-8") as fh:
            if ext == ".json":
                json.dump(recs, fh, ensure_ascii=False, default=str)
            else:
                for rec in recs:
                    fh.write(json.dumps(rec, ensure_ascii=False, default=str))
                    fh.write("\n")
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


def write_rejects(rejects: list[dict[str, Any]], out_path: str | os.PathLike) -> Path | None:
    """Write rejected rows (with reasons) as JSONL beside ``out_path``; returns its path.

    Without rejects, a rejects file left by an earlier run into the same output is removed
    (it would describe rows this output never saw)."""
    p = Path(out_path)
    target = p.with_name(p.name + ".rejects.jsonl") if p.suffix == "" else p.with_name(p.stem + ".rejects.jsonl")
    if not rejects:
        if target.is_file():
            target.unlink()
        return None
    with atomic_path(target) as tmp, open(tmp, "w", encoding="utf-8") as fh:
        for rec in rejects:
            fh.write(json.dumps(rec, ensure_ascii=False, default=str) + "\n")
    return target
