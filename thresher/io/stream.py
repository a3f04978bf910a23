"""Read a stage's inputs in batches: the streaming twin of :func:`thresher.io.inputs.read_inputs`.

:func:`iter_inputs` yields ``(rows, rejected)`` a batch at a time, with the same rules as the
whole-table read (shapes, validation, ids unique across every input, rows rejected on read as
``drop_stage = "read"`` frames), so that peak memory depends on the batch size, not on the
input size:

- JSONL (compressed or not) as blocks of whole lines, ``rows`` lines a batch (one ``bytes``
  a batch, not one a line: :func:`thresher.io.compress.line_batches`); CSV/TSV record by
  record, ``rows`` records a batch;
- Parquet by row groups, and a folder of Parquet parts part by part;
- a batch also ends once its rows pass ``$THRESHER_PART_BYTES`` (default 32 MiB: bytes of
  JSONL lines, of CSV field text, Parquet's uncompressed size per row), so that 30 KB reasoning
  traces make smaller batches than 300-byte chats. Boundaries depend on the data only, so a
  rerun cuts the same batches.

Every row's id is remembered (:class:`thresher.io.idset.CompactIds`: an id given twice is a
bad row naming the first place it appeared) as a 16-byte digest and where it appeared; past
400k ids they move to disk behind Bloom filters, so memory holds 1.3 to 2.6 bytes a row of it
(and at most ~30 MB more); a finished stage's own output (a stage folder) is read without it,
its ids being unique already. The record shape of a file with
no ``--format`` is chosen from its first batch (the whole-table read chooses it from every
record). Inputs that only read whole (JSON arrays, dataset folders, hub datasets, OpenAI
Batch files, which meet their requests by id) make :func:`streamable` False.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import polars as pl

from thresher.errors import InputError
from thresher.io import parts
from thresher.io.compress import COMPRESSED, inner_suffix, open_binary
from thresher.io.inputs import ReadOptions, rejects_frame, resolve_inputs

#: rows a batch holds by default (a part of a streaming stage's output)
BATCH_ROWS = 50_000
#: input bytes a batch holds at most by default (``$THRESHER_PART_BYTES``)
BATCH_BYTES = 32 << 20
PART_BYTES_ENV = "THRESHER_PART_BYTES"
_RECORD_EXT = {".jsonl", ".ndjson", ".csv", ".tsv"}


def _kind(p: Path) -> str | None:
    """``"records"`` (JSONL, CSV), ``"parquet"`` (a file or a folder of parts) or None."""
    if parts.is_dataset(p):
        return "parquet"
    if not p.is_file():
        return None
    ext = inner_suffix(p)
    if ext in (".parquet", ".pq"):
        return "parquet" if p.suffix.lower() not in COMPRESSED else None
    return "records" if ext in _RECORD_EXT else None


def _batch_file(p: Path) -> bool:
    """True for an OpenAI Batch file (its first record has a ``custom_id``)."""
    if inner_suffix(p) not in (".jsonl", ".ndjson"):
        return False
    try:
        with open_binary(p) as fh:
            for line in fh:
                if line.strip():
                    rec = json.loads(line)
                    return isinstance(rec, dict) and "custom_id" in rec
    except (OSError, ValueError, EOFError):
        return False
    return False


def streamable(paths: list[str | os.PathLike] | tuple, options: ReadOptions | None = None) -> bool:
    """True when every input can be read a batch at a time (see the module docstring)."""
    opts = ReadOptions.coerce(options)
    if opts.fmt is not None and opts.fmt.startswith("openai-batch"):
        return False
    try:
        resolved = resolve_inputs(paths)
    except InputError:
        return False
    return bool(resolved) and all(_kind(p) is not None and not _batch_file(p) for p in resolved)


def input_bytes(paths: list[str | os.PathLike] | tuple) -> int:
    """Bytes on disk of the inputs (a compressed file counts four times its size)."""
    total = 0
    for p in resolve_inputs(paths):
        if parts.exists(p):
            total += parts.size(p) * (4 if p.suffix.lower() in COMPRESSED else 1)
        elif p.is_file():
            total += p.stat().st_size * (4 if p.suffix.lower() in COMPRESSED else 1)
    return total


def part_bytes() -> int:
    """Input bytes a batch holds at most (``$THRESHER_PART_BYTES``, default 32 MiB)."""
    return max(1, int(os.environ.get(PART_BYTES_ENV) or BATCH_BYTES))


def iter_inputs(paths: list[str | os.PathLike] | tuple, options: ReadOptions | dict | None = None,
                rows: int = BATCH_ROWS, max_bytes: int | None = None) -> Iterator[tuple[pl.DataFrame, pl.DataFrame]]:
    """``(rows, rejected)`` batches of every input in order (see the module docstring); a
    batch of ``rows`` rows or fewer, and of about ``max_bytes`` (default :func:`part_bytes`)
    or less. Raises :class:`InputError` as the whole-table read does."""
    from thresher.io.idset import CompactIds

    opts = ReadOptions.coerce(options)
    if not paths:
        raise InputError("no input given")
    resolved = resolve_inputs(paths)
    ids = _TrustedIds() if len(resolved) == 1 and _stage_output(resolved[0]) else CompactIds()
    cap = _Cap(rows, max_bytes or part_bytes())
    for p in resolved:
        yield from _one_input(p, opts, ids, cap)


class _Cap:
    """A batch's limits: ``rows`` rows, ``size`` bytes (the batch that passes it ends there)."""

    def __init__(self, rows: int, size: int) -> None:
        self.rows, self.size = rows, size

    def take(self, items: Iterator, weigh) -> list:  # noqa: ANN001 - any iterator, a size function
        """The next batch of ``items``: until ``rows`` items or ``size`` bytes by ``weigh``."""
        out, total = [], 0
        for item in items:
            out.append(item)
            total += weigh(item)
            if len(out) >= self.rows or total >= self.size:
                break
        return out


def _record_size(item: tuple[str, object]) -> int:
    """About the bytes of a CSV record ``(where, record)``: its field texts."""
    rec = item[1]
    if isinstance(rec, dict):
        return sum(len(v) if isinstance(v, str) else 8 for v in rec.values())
    return 64


def _stage_output(p: Path) -> bool:
    """True for the kept rows of a finished thresher stage (their ids are unique already)."""
    from thresher.stage_folder import KEPT, is_stage_manifest, read_manifest

    m = read_manifest(p.parent)
    return p.name == KEPT and is_stage_manifest(m) and (m or {}).get("status") == "done"


class _TrustedIds:
    """The id check of a stage's own output: ids were made unique when it was written, so
    nothing is remembered across batches (a repeat inside one batch still falls back to the
    full check of :class:`~thresher.schema.IdAssigner` for that batch)."""

    file = ""

    def take_all(self, column: pl.Series, file: str, prefix: str = "row ", start: int = 1) -> bool:
        col = column.cast(pl.String)
        return not (col.null_count() or (col == "").any() or col.is_duplicated().any())

    def settle(self) -> None:
        """Nothing is remembered across batches."""

    def assign(self, given, messages, where):  # noqa: ANN001 - IdAssigner's signature
        from thresher.schema import IdAssigner

        return IdAssigner().assign(given, messages, where)


def _one_input(p: Path, opts: ReadOptions, ids, cap: _Cap) -> Iterator[tuple[pl.DataFrame, pl.DataFrame]]:
    from thresher.io.readers import Collector

    label = str(p)
    col = Collector(label, opts.on_bad_rows)
    ids.file = label
    batches = _parquet_batches(p, label, opts, col, ids, cap) if _kind(p) == "parquet" \
        else _record_batches(p, label, opts, col, ids, cap)
    seen = 0
    for table in batches:
        ids.settle()
        seen += table.height + len(col.rejects)
        yield _finish(table), rejects_frame(col.rejects)
        col.rejects = []
    if seen == 0:
        raise InputError(f"{label}: empty file (no rows)")


def _finish(table: pl.DataFrame) -> pl.DataFrame:
    from thresher.io.references import normalize_references

    return normalize_references(table)


def _parquet_batches(p: Path, label: str, opts: ReadOptions, col, ids, cap: _Cap) -> Iterator[pl.DataFrame]:
    from thresher.io.readers import canonical_fast, frame_records, table_of, validate_records

    first, shape = 0, None
    try:
        source = parts.iter_batches(p, cap.rows, max_bytes=cap.size)
        for df in source:
            fast = canonical_fast(df, label, col, ids, first) if opts.fmt in (None, "messages") else None
            if fast is None:
                found, shape, _, _ = validate_records(frame_records(df, first), opts.fmt, label, col, ids, shape)
                fast = table_of(found, label)
            first += df.height
            yield fast
    except InputError:
        raise
    except Exception as e:  # a damaged file: one line naming it
        raise InputError(f"{label}: cannot read Parquet ({str(e).splitlines()[0]})") from None


def _jsonl_batches(p: Path, label: str, opts: ReadOptions, col, ids, cap: _Cap) -> Iterator[pl.DataFrame]:
    """A JSONL file a batch of lines at a time (``cap``): a clean block straight into Arrow
    (:func:`thresher.io.arrow_jsonl.read_block`), any other through the record path."""
    from thresher.io.arrow_jsonl import read_block
    from thresher.io.compress import line_batches, split_lines
    from thresher.io.readers import DupKeys, line_records, open_input, table_of, validate_records

    open_input(p, label, opts.fmt, opts.split, col)  # the same checks as the record path (empty, a folder ...)
    first, shape, dups, unknown = 0, None, DupKeys(), set()
    fast_ok = opts.fmt in (None, "messages")
    for data in line_batches(p, label, cap.rows, cap.size):
        fast = read_block(data, label, ids, first) if fast_ok else None
        if fast is None:
            block = split_lines(data)
            numbered = enumerate(block, start=first + 1)
            found, shape, keys, _ = validate_records(line_records(numbered, col, dups), opts.fmt, label, col, ids, shape)
            unknown |= keys
            fast = table_of(found, label)
            first += len(block)
        else:
            first += fast.height
        yield fast
    dups.warn(label)
    if unknown:
        _ignored(label, unknown)


def _ignored(label: str, keys: set[str]) -> None:
    from thresher.progress import info

    info(f"{label}: ignored message key(s) {', '.join(sorted(keys))} (kept: role, content, "
         "tool_calls, tool_call_id, name, weight/train, reasoning_content/thinking)")


def _record_batches(p: Path, label: str, opts: ReadOptions, col, ids, cap: _Cap) -> Iterator[pl.DataFrame]:
    from thresher.io.readers import open_input, table_of, validate_records

    if inner_suffix(p) in (".jsonl", ".ndjson"):
        yield from _jsonl_batches(p, label, opts, col, ids, cap)
        return
    records, _ = open_input(p, label, opts.fmt, opts.split, col)
    records, shape, unknown = iter(records), None, set()
    while True:
        chunk = cap.take(records, _record_size)
        if not chunk:
            break
        found, shape, keys, _ = validate_records(iter(chunk), opts.fmt, label, col, ids, shape)
        unknown |= keys
        yield table_of(found, label)
    if unknown:
        _ignored(label, unknown)
