"""Resumable results: row keys and an append-only folder of atomically written shards.

Each finished sample is stored under a key that hashes everything that determines it:
the prompt messages, the teacher (name and revision), the sampling parameters, the chat
template and the sample index. Shards are written to a temporary file, flushed to disk and
renamed into place, so a process killed at any moment (even with SIGKILL) leaves only
complete shards; a rerun loads them and generates only the keys that are missing.
"""

from __future__ import annotations

import hashlib
import json
import os
import uuid
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import polars as pl

SHARD_SCHEMA: dict[str, pl.DataType] = {
    "key": pl.String,
    "parent_id": pl.String,
    "sample_index": pl.Int64,
    "text": pl.String,
    "reasoning": pl.String,
    "finish_reason": pl.String,
    "prompt_tokens": pl.Int64,
    "completion_tokens": pl.Int64,
    "structured": pl.String,  # structured output: the parsed JSON, or null
    "schema_error": pl.String,  # structured output: why the answer failed the schema, or null
}


def row_key(messages: Sequence[Mapping[str, str]] | Sequence[tuple[str, str]], *, teacher: str,
            revision: str | None, params: Mapping[str, Any], chat_template: str | None,
            sample_index: int) -> str:
    """16-hex-digit key of one sample (also the output row's ``id``)."""
    msgs = [[m["role"], m["content"]] if isinstance(m, Mapping) else list(m) for m in messages]
    template = hashlib.blake2b((chat_template or "").encode(), digest_size=8).hexdigest()
    canon = json.dumps(
        {"m": msgs, "t": teacher, "r": revision or "", "p": dict(params), "c": template, "s": sample_index},
        sort_keys=True, ensure_ascii=False, separators=(",", ":"),
    )
    return hashlib.blake2b(canon.encode("utf-8"), digest_size=8).hexdigest()


class ShardStore:
    """A folder of ``shard-*.parquet`` files holding finished samples (see module docstring)."""

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)

    def load(self) -> dict[str, dict[str, Any]]:
        """All stored samples by key. Leftover temporary files of a killed run are removed;
        an unreadable shard (disk trouble) is skipped so its samples are generated again."""
        found: dict[str, dict[str, Any]] = {}
        if not self.folder.is_dir():
            return found
        for tmp in self.folder.glob(".tmp-*"):
            tmp.unlink(missing_ok=True)
        for shard in sorted(self.folder.glob("shard-*.parquet")):
            try:
                df = pl.read_parquet(shard)
            except Exception:  # noqa: BLE001, S112 - a truncated file can only come from outside our atomic writes
                continue
            for rec in df.iter_rows(named=True):
                found.setdefault(rec["key"], rec)
        return found

    def write(self, records: Iterable[Mapping[str, Any]]) -> Path | None:
        """Write one shard atomically (temp file, fsync, rename, fsync of the folder)."""
        rows = [{k: rec.get(k) for k in SHARD_SCHEMA} for rec in records]
        if not rows:
            return None
        self.folder.mkdir(parents=True, exist_ok=True)
        name = f"shard-{len(list(self.folder.glob('shard-*.parquet'))):06d}-{uuid.uuid4().hex[:8]}.parquet"
        tmp = self.folder / f".tmp-{name}"
        final = self.folder / name
        pl.DataFrame(rows, schema=SHARD_SCHEMA).write_parquet(tmp)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, final)
        try:
            fd = os.open(self.folder, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        except OSError:
            pass
        return final
