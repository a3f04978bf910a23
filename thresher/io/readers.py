"""Read any supported input into a validated row table.

Files: JSONL (``.jsonl``/``.ndjson``), JSON arrays (``.json``), Parquet, CSV; a Hugging Face
``save_to_disk`` folder; or a hub dataset name (``org/name`` or ``org/name:split``) through
``datasets``. Record shapes are auto-detected or forced (see :mod:`thresher.io.shapes`).

Every problem names the file and line (or row) and the reason. With
``on_bad_rows="skip"`` bad rows are collected in :attr:`ReadResult.rejects` instead.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

from thresher.errors import InputError
from thresher.io.shapes import (
    ROW_KEYS,
    SHAPE_KEYS,
    SHAPES,
    ShapeError,
    decode_cells,
    detect_shape,
    row_fields,
    to_messages,
)
from thresher.schema import (
    IdAssigner,
    clean_messages,
    conform,
    empty_table,
    fill_ids,
    is_messages_dtype,
    table_problems,
    validate_messages,
)

__all__ = ["SHAPES", "ReadResult", "read_rows", "read_table", "read_tables"]

JSONL_EXT = {".jsonl", ".ndjson"}
PARQUET_EXT = {".parquet", ".pq"}


@dataclass
class ReadResult:
    """Rows read from ``path`` plus the rejected rows (when skipping bad rows)."""

    table: pl.DataFrame
    path: str
    rejects: list[dict[str, Any]] = field(default_factory=list)
    shape: str | None = None  # the record shape read (None for canonical tables)


def one_line(text: str) -> str:
    """``text`` with line breaks and other control characters escaped."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() or c == " " else repr(c)[1:-1] for c in text)


class _Collector:
    def __init__(self, label: str, on_bad_rows: str):
        self.label = label
        self.skip = on_bad_rows == "skip"
        self.rejects: list[dict[str, Any]] = []

    def bad(self, where: str, reason: str, raw: Any = None, code: str = "invalid-row") -> None:
        """Raise for ``where`` (error mode) or record the rejected row with a stable ``code``."""
        reason = one_line(reason)  # quoted data may hold newlines: the message stays one line
        msg = f"{self.label}:{where}: {reason}"
        if not self.skip:
            raise InputError(msg)
        rid = raw.get("id") if isinstance(raw, Mapping) else None
        rid = rid if isinstance(rid, (str, int)) and not isinstance(rid, bool) else None
        if raw is not None and not isinstance(raw, str):
            try:
                raw = json.dumps(raw, ensure_ascii=False, default=str)
            except (TypeError, ValueError):
                raw = repr(raw)
        self.rejects.append({"file": self.label, "where": where, "reason": reason, "raw": raw,
                             "code": code, "id": None if rid is None else str(rid)})


_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


def _lone_surrogate(text: str, rec: Any) -> str | None:
    """Why ``rec`` (parsed from ``text``) is not valid Unicode, or None (a cheap text test first)."""
    if not _SURROGATE_ESCAPE.search(text):
        return None
    try:
        json.dumps(rec, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError as e:
        return f"lone surrogate {e.object[e.start]!r} in a string (not valid Unicode)"
    except (RecursionError, ValueError):
        return None
    return None


def _loads(text: str) -> Any:
    try:
        return json.loads(text)
    except RecursionError:
        raise json.JSONDecodeError("nested too deeply", text, 0) from None


def _jsonl_records(path: Path, col: _Collector) -> Iterator[tuple[str, Any]]:
    with open(path, "rb") as fh:
        for lineno, raw in enumerate(fh, start=1):
            if lineno == 1 and raw.startswith(b"\xef\xbb\xbf"):  # UTF-8 byte-order mark
                raw = raw[3:]
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as e:
                col.bad(str(lineno), f"not valid UTF-8 (byte 0x{raw[e.start]:02x} at column {e.start + 1})",
                        raw.decode("utf-8", "replace").rstrip("\n"), code="invalid-utf8")
                continue
            if not text.strip():
                continue
            try:
                rec = _loads(text)
            except json.JSONDecodeError as e:
                col.bad(str(lineno), f"malformed JSON ({e.msg.removesuffix(' at')} at column {e.colno})", text.rstrip("\n"),
                        code="malformed-json")
                continue
            why = _lone_surrogate(text, rec)
            if why:
                col.bad(str(lineno), why, text.rstrip("\n"), code="invalid-unicode")
                continue
            yield str(lineno), rec


def _json_records(path: Path, col: _Collector) -> Iterator[tuple[str, Any]]:
    data = path.read_bytes()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data[: e.start].count(b"\n") + 1
        raise InputError(f"{col.label}:{line}: not valid UTF-8 (byte 0x{data[e.start]:02x})") from None
    text = text.removeprefix("\ufeff")  # UTF-8 byte-order mark
    if not text.strip():
        return
    try:
        obj = _loads(text)
    except json.JSONDecodeError as e:
        # a .json file may hold JSON lines
        if e.msg == "Extra data":
            yield from _jsonl_records(path, col)
            return
        raise InputError(f"{col.label}:{e.lineno}: malformed JSON ({e.msg.removesuffix(' at')} at column {e.colno})") from None
    if isinstance(obj, Mapping) and isinstance(obj.get("data"), list):
        obj = obj["data"]
    if not isinstance(obj, list):
        raise InputError(f"{col.label}: expected a JSON array of records, got {type(obj).__name__}")
    check = _SURROGATE_ESCAPE.search(text) is not None
    for i, rec in enumerate(obj, start=1):
        why = _lone_surrogate(text, rec) if check else None
        if why:
            col.bad(f"row {i}", why, None, code="invalid-unicode")
            continue
        yield f"row {i}", rec


def _frame_records(df: pl.DataFrame) -> Iterator[tuple[str, Any]]:
    for i, rec in enumerate(df.iter_rows(named=True), start=1):
        yield f"row {i}", rec


def _csv_records(path: Path, col: _Collector) -> Iterator[tuple[str, Any]]:
    try:
        df = pl.read_csv(path, infer_schema=False, encoding="utf8")
    except Exception as e:  # polars raises ComputeError for bad UTF-8 and malformed CSV
        raise InputError(f"{col.label}: cannot read CSV ({str(e).splitlines()[0]})") from None
    for i, rec in enumerate(df.iter_rows(named=True), start=2):  # line 1 is the header
        yield str(i), {k: v for k, v in rec.items() if v is not None}


def _decoded(records: Iterator[tuple[str, Any]], col: _Collector) -> Iterator[tuple[str, Any]]:
    for where, rec in records:
        try:
            yield where, decode_cells(rec)
        except ShapeError as e:
            col.bad(where, str(e), rec, code="bad-cell")


def _hub_frame(name: str, label: str, split: str | None = None) -> pl.DataFrame:
    repo, _, named = name.partition(":")
    split = named or split
    os.environ.setdefault("HF_HUB_ETAG_TIMEOUT", "10")
    os.environ.setdefault("HF_HUB_DOWNLOAD_TIMEOUT", "10")
    try:
        import datasets

        ds = datasets.load_dataset(repo, split=split or "train")
    except Exception as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise InputError(
            f"{label}: cannot load hub dataset '{repo}' (offline, not found or no access): {first[:200]}"
        ) from None
    return pl.from_arrow(ds.data.table)  # type: ignore[return-value]


def _disk_frame(path: Path, label: str, split: str | None = None) -> pl.DataFrame:
    import datasets

    try:
        ds = datasets.load_from_disk(str(path))
    except Exception as e:
        raise InputError(f"{label}: not a dataset folder saved with save_to_disk ({str(e).splitlines()[0]})") from None
    if isinstance(ds, datasets.DatasetDict):
        want = split or "train"
        if want not in ds:
            raise InputError(f"{label}: dataset dict has no {want!r} split (splits: {', '.join(ds)}; "
                             "choose one with --split)")
        from thresher.progress import info

        info(f"{label}: reading split {want!r} of {', '.join(ds)}")
        ds = ds[want]
    elif split is not None:
        raise InputError(f"{label}: --split {split!r} given but the folder holds a single dataset, not splits")
    return pl.from_arrow(ds.data.table)  # type: ignore[return-value]


def _looks_like_hub(name: str) -> bool:
    p = name.split(":")[0]
    return (p.count("/") == 1 and not p.startswith((".", "/", "~")) and Path(p).suffix == ""
            and all(part for part in p.split("/")))


def _canonical_fast(df: pl.DataFrame, label: str, col: _Collector) -> pl.DataFrame | None:
    """Fast path for canonical tables (our own Parquet): vectorised validation."""
    if "messages" not in df.columns or not is_messages_dtype(df.schema["messages"]):
        return None
    id_type = df.schema.get("id")
    if id_type is not None and not (id_type in (pl.String, pl.Null, pl.Categorical) or id_type.is_numeric()):
        raise InputError(f"{label}: the id column holds {id_type} values; ids must be strings or numbers")
    if "id" not in df.columns:
        df = df.with_columns(pl.Series("id", fill_ids([None] * df.height, df["messages"].to_list()),
                                       dtype=pl.String))
    elif df["id"].cast(pl.String).is_null().any() or (df["id"].cast(pl.String) == "").any():
        df = df.with_columns(pl.Series("id", fill_ids(df["id"].cast(pl.String).to_list(),
                                                      df["messages"].to_list()), dtype=pl.String))
    df = conform(df)
    try:
        problems = table_problems(df)
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException as e:  # polars panics are BaseExceptions
        raise InputError(f"{label}: cannot validate rows ({str(e).splitlines()[0][:200]})") from None
    if problems.height:
        bad_rows = set()
        for row, reason in problems.iter_rows():
            code = "duplicate-id" if reason.startswith("duplicate id") else "invalid-messages"
            col.bad(f"row {row}", reason, df.row(row - 1, named=True), code=code)
            bad_rows.add(row - 1)
        keep = [i for i in range(df.height) if i not in bad_rows]
        df = df[keep]
    return df


def read_rows(
    path: str | os.PathLike,
    fmt: str | None = None,
    *,
    on_bad_rows: str = "error",
    category: str | None = None,
    source: str | None = None,
    split: str | None = None,
) -> ReadResult:
    """Read ``path`` (file, dataset folder or hub name) into validated rows.

    ``fmt`` forces a record shape (one of :data:`SHAPES`); unknown columns are then an
    error (except for the canonical ``messages`` shape, which keeps provenance columns).
    ``category``/``source`` fill those columns where the input has none; ``split`` picks the
    split of a DatasetDict folder or hub dataset (default ``train``).

    Rows without an id get :func:`derived_id` (the content hash, plus the occurrence index for
    the second and later copies of the same conversation); a duplicate id the input gave is
    a bad row naming both lines.
    """
    if fmt is not None and fmt not in SHAPES:
        raise InputError(f"unknown format {fmt!r} (expected one of {', '.join(SHAPES)})")
    if on_bad_rows not in ("error", "skip"):
        raise InputError(f"on_bad_rows must be 'error' or 'skip', got {on_bad_rows!r}")
    label = str(path)
    p = Path(path)
    head, sep, named = label.rpartition(":")
    if sep and not p.exists() and named and Path(head).is_dir():  # folder:split
        p, split = Path(head), named
    col = _Collector(label, on_bad_rows)
    records, fast = _open(p, label, fmt, split, col)
    if fast is not None:
        table = fast
        if table.height == 0 and not col.rejects:
            raise InputError(f"{label}: empty file (no rows)")
        table = _fill(table, category, source)
        return ReadResult(table, label, col.rejects)

    rows, shape, unknown_keys, any_record = _rows(records, fmt, label, col)
    if not any_record:
        raise InputError(f"{label}: empty file (no rows)")
    if unknown_keys:
        from thresher.progress import info

        info(f"{label}: ignored message key(s) {', '.join(sorted(unknown_keys))} (kept: role, content, "
             "tool_calls, tool_call_id, name, weight/train, reasoning_content/thinking)")
    if not rows:
        return ReadResult(_fill(empty_table(), category, source), label, col.rejects, shape)
    try:
        table = conform(pl.DataFrame(rows, infer_schema_length=None))
    except Exception as e:
        raise InputError(f"{label}: inconsistent column types across rows ({str(e).splitlines()[0]})") from None
    return ReadResult(_fill(table, category, source), label, col.rejects, shape)


def _from_frame(frame: pl.DataFrame, label: str, fmt: str | None,
                col: _Collector) -> tuple[Iterator[tuple[str, Any]], pl.DataFrame | None]:
    fast = _canonical_fast(frame, label, col) if fmt in (None, "messages") else None
    return (iter(()) if fast is not None else _frame_records(frame)), fast


def _open(p: Path, label: str, fmt: str | None, split: str | None,
          col: _Collector) -> tuple[Iterator[tuple[str, Any]], pl.DataFrame | None]:
    """``(records, fast)``: the input's records as ``(where, record)`` pairs, or (canonical
    tables) the already validated table in ``fast``."""
    if p.is_dir():
        return _from_frame(_disk_frame(p, label, split), label, fmt, col)
    if _looks_like_hub(label) and not p.exists():
        return _from_frame(_hub_frame(label, label, split), label, fmt, col)
    if not p.is_file():
        raise InputError(f"{label}: no such file or folder")
    ext = p.suffix.lower()
    if p.stat().st_size == 0:
        raise InputError(f"{label}: empty file (no rows)")
    if ext in JSONL_EXT:
        return _jsonl_records(p, col), None
    if ext == ".json":
        return _json_records(p, col), None
    if ext in PARQUET_EXT:
        try:
            frame = pl.read_parquet(p)
        except Exception as e:
            raise InputError(f"{label}: cannot read Parquet ({str(e).splitlines()[0]})") from None
        return _from_frame(frame, label, fmt, col)
    if ext in (".csv", ".tsv"):
        return _decoded(_csv_records(p, col), col), None
    raise InputError(f"{label}: unsupported file type '{ext or p.name}' "
                     "(expected .jsonl, .json, .parquet, .csv or a dataset folder)")


def _rows(records: Iterator[tuple[str, Any]], fmt: str | None, label: str,
          col: _Collector) -> tuple[list[dict[str, Any]], str | None, set[str], bool]:
    """Validate each record into a row: ``(rows, shape, ignored message keys, any record)``."""
    rows: list[dict[str, Any]] = []
    ids = IdAssigner()
    shape = fmt
    any_record = False
    unknown_keys: set[str] = set()
    for where, rec in records:
        any_record = True
        if not isinstance(rec, Mapping):
            col.bad(where, f"expected a JSON object, got {type(rec).__name__}", rec, code="not-an-object")
            continue
        if shape is None:
            shape = detect_shape(rec)
            if shape is None:
                raise InputError(
                    f"{label}:{where}: cannot tell the record format from its keys "
                    f"({', '.join(map(str, rec)) or 'none'}); expected messages, conversations, "
                    "instruction/output, prompt/completion or prompt (or pass --format)"
                )
        if fmt is not None and fmt != "messages":
            from thresher.io.references import INPUT_KEYS  # reference answers and tests travel too

            allowed = set(SHAPE_KEYS[fmt]) | set(ROW_KEYS) | set(INPUT_KEYS)
            unknown = [k for k in rec if k not in allowed]
            if unknown:
                col.bad(where, f"unknown column(s) {', '.join(repr(k) for k in unknown)} for format "
                        f"{fmt} (expected {', '.join(SHAPE_KEYS[fmt] + ROW_KEYS)})", rec, code="unknown-column")
                continue
        try:
            msgs = to_messages(rec, shape, unknown_keys)
        except ShapeError as e:
            col.bad(where, str(e), rec, code="bad-shape")
            continue
        why = validate_messages(msgs)
        if why:
            col.bad(where, why, rec, code="invalid-messages")
            continue
        try:
            row = row_fields(rec, shape)
        except ShapeError as e:
            col.bad(where, str(e), rec, code="bad-shape")
            continue
        row["messages"] = clean_messages(msgs)
        row["id"], problem = ids.assign(row.get("id"), row["messages"], where)
        if problem:
            col.bad(where, problem, rec, code="duplicate-id" if problem.startswith("duplicate") else "bad-id")
            continue
        rows.append(row)
    return rows, shape, unknown_keys, any_record


def _fill(df: pl.DataFrame, category: str | None, source: str | None) -> pl.DataFrame:
    if category is not None:
        df = df.with_columns(pl.col("category").fill_null(category))
    if source is not None:
        df = df.with_columns(pl.col("source").fill_null(source))
    return df


def read_table(path: str | os.PathLike, fmt: str | None = None, **kwargs: Any) -> pl.DataFrame:
    """Read ``path`` into a validated row table, raising on the first bad row."""
    return read_rows(path, fmt, **kwargs).table


def read_tables(paths: list[str | os.PathLike] | tuple, fmt: str | None = None, **kwargs: Any) -> pl.DataFrame:
    """Read several inputs into one row table (columns missing from some inputs are null)."""
    from thresher.io.openai_batch import join

    frames = join([read_rows(p, fmt, **kwargs) for p in paths])  # Batch results meet their requests
    if not frames:
        raise InputError("no input given")
    return frames[0] if len(frames) == 1 else pl.concat(frames, how="diagonal_relaxed")
