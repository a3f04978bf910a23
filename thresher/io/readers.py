"""Read any supported input into a validated row table.

Files: JSONL (``.jsonl``/``.ndjson``), JSON arrays (``.json``), Parquet, CSV; a Hugging Face
``save_to_disk`` folder; or a hub dataset name (``org/name`` or ``org/name:split``) through
``datasets``. Record shapes are auto-detected or forced (see :mod:`thresher.io.shapes`).

Every problem names the file and line (or row) and the reason. With
``on_bad_rows="skip"`` bad rows are collected in :attr:`ReadResult.rejects` instead.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

from thresher.errors import InputError
from thresher.io.columns import MAX_DEPTH, ColumnError, ColumnTypes, check_scalar_column
from thresher.io.compress import (
    COMPRESSED,
    decompress_errors,
    decompress_failure,
    inner_suffix,
    lines,
    open_binary,
    read_bytes,
)
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
    EXTRA_MESSAGE_FIELDS,
    IdAssigner,
    clean_messages,
    conform,
    empty_table,
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


class _DupKeys:
    """Object keys given twice in one record (JSON keeps the last): counted per file, one warning."""

    def __init__(self) -> None:
        self.count = 0
        self.first: tuple[str, str] | None = None  # (where, key)
        self.key: str | None = None
        self.decode = json.JSONDecoder(object_pairs_hook=self.hook).decode

    def hook(self, pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        d = dict(pairs)
        if len(d) != len(pairs) and self.key is None:
            seen: set[str] = set()
            self.key = next(k for k, _ in pairs if k in seen or seen.add(k))  # type: ignore[func-returns-value]
        return d

    def note(self, where: str) -> None:
        if self.key is not None:
            self.count += 1
            if self.first is None:
                self.first = (where, self.key)
            self.key = None

    def warn(self, label: str) -> None:
        if self.first is not None:
            from thresher.progress import info

            where, key = self.first
            more = f" ({self.count - 1} more record(s) in this file)" if self.count > 1 else ""
            info(f"{label}:{where}: duplicate key {key!r} in an object; the last value is kept{more}")


def _loads(text: str, dups: _DupKeys | None = None) -> Any:
    return dups.decode(text) if dups is not None else json.loads(text)


def _jsonl_records(path: Path, col: _Collector) -> Iterator[tuple[str, Any]]:
    dups = _DupKeys()
    yield from _line_records(enumerate(lines(path, col.label), start=1), col, dups)
    dups.warn(col.label)


def _line_records(numbered: Iterable[tuple[int, bytes]], col: _Collector,
                  dups: _DupKeys) -> Iterator[tuple[str, Any]]:
    """The records of numbered raw JSONL lines (bad lines reported to ``col``)."""
    for lineno, raw in numbered:
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
            rec = _loads(text, dups)
        except RecursionError:
            dups.key = None
            col.bad(str(lineno), f"nested too deeply (more than {MAX_DEPTH} levels)", text.rstrip("\n")[:1000],
                    code="too-deep")
            continue
        except json.JSONDecodeError as e:
            dups.key = None
            col.bad(str(lineno), f"malformed JSON ({e.msg.removesuffix(' at')} at column {e.colno})", text.rstrip("\n"),
                    code="malformed-json")
            continue
        dups.note(str(lineno))
        why = _lone_surrogate(text, rec)
        if why:
            col.bad(str(lineno), why, text.rstrip("\n"), code="invalid-unicode")
            continue
        yield str(lineno), rec


def _json_records(path: Path, col: _Collector) -> Iterator[tuple[str, Any]]:
    data = read_bytes(path, col.label)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data[: e.start].count(b"\n") + 1
        raise InputError(f"{col.label}:{line}: not valid UTF-8 (byte 0x{data[e.start]:02x})") from None
    text = text.removeprefix("\ufeff")  # UTF-8 byte-order mark
    if not text.strip():
        return
    dups = _DupKeys()
    try:
        obj = _loads(text, dups)
    except RecursionError:
        raise InputError(f"{col.label}:1: nested too deeply (more than {MAX_DEPTH} levels)") from None
    except json.JSONDecodeError as e:
        # a .json file may hold JSON lines
        if e.msg == "Extra data":
            yield from _jsonl_records(path, col)
            return
        raise InputError(f"{col.label}:{e.lineno}: malformed JSON ({e.msg.removesuffix(' at')} at column {e.colno})") from None
    dups.note("1")
    dups.warn(col.label)
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


def _frame_records(df: pl.DataFrame, first: int = 0) -> Iterator[tuple[str, Any]]:
    for i, rec in enumerate(df.iter_rows(named=True), start=first + 1):
        yield f"row {i}", rec


#: CSV columns holding an answer: an empty cell is an empty answer (a filterable row), not a missing one
ANSWER_CELLS = ("completion", "output")


def _csv_records(path: Path, col: _Collector, delimiter: str = ",") -> Iterator[tuple[str, Any]]:
    """Records of a CSV/TSV file, each named by the line it starts on (a quoted cell may span
    lines). Empty cells are missing values, except in answer columns (an empty answer)."""
    csv.field_size_limit(2 ** 31 - 1)
    text = io.TextIOWrapper(open_binary(path), encoding="utf-8-sig", newline="")
    reader = csv.reader(text, delimiter=delimiter, strict=True)
    start = 1
    try:
        with text:
            header: list[str] | None = None
            while True:
                try:
                    cells = next(reader)
                except StopIteration:
                    return
                where, start = str(start), reader.line_num + 1
                if header is None:
                    header = cells
                    continue
                if not any(cells):
                    continue
                if len(cells) != len(header):
                    col.bad(where, f"{len(cells)} cells, but the header has {len(header)}",
                            delimiter.join(cells), code="bad-csv-row")
                    continue
                yield where, {k: (v if v != "" else "" if k in ANSWER_CELLS else None)
                              for k, v in zip(header, cells) if v != "" or k in ANSWER_CELLS}
    except UnicodeDecodeError as e:
        raise InputError(f"{col.label}:{start}: not valid UTF-8 (byte 0x{e.object[e.start]:02x})") from None
    except csv.Error as e:
        raise InputError(f"{col.label}:{start}: cannot read CSV ({e})") from None
    except decompress_errors() as e:  # a damaged compressed stream
        if path.suffix.lower() not in COMPRESSED:
            raise
        raise decompress_failure(col.label, path, e) from None


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


def _canonical_fast(df: pl.DataFrame, label: str, col: _Collector, ids: IdAssigner,
                    first: int = 0) -> pl.DataFrame | None:
    """Fast path for canonical tables (our own Parquet): the same rules as every other input,
    vectorised (:func:`thresher.schema.table_problems`), then ids as the record path gives them.
    ``first`` is the number of rows of the same input before ``df`` (a batch of a stream)."""
    if "messages" not in df.columns or not is_messages_dtype(df.schema["messages"]):
        return None
    id_type = df.schema.get("id")
    if id_type is not None and not (id_type in (pl.String, pl.Null, pl.Categorical) or id_type.is_numeric()):
        raise InputError(f"{label}: the id column holds {id_type} values; ids must be strings or numbers")
    for name in ("category", "source"):
        kind = df.schema.get(name)
        if kind is not None and not (kind in (pl.String, pl.Null, pl.Categorical, pl.Enum) or kind.is_numeric()):
            raise InputError(f"{label}: the {name} column holds {kind} values; it must hold strings")
    if "id" not in df.columns:
        df = df.with_columns(pl.lit(None, dtype=pl.String).alias("id"))
    try:
        df = conform(df)
        problems = table_problems(df, check_ids=False)
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException as e:  # polars panics are BaseExceptions
        raise InputError(f"{label}: cannot validate rows ({str(e).splitlines()[0][:200]})") from None
    bad = {}
    for row, reason in problems.iter_rows():
        bad[row - 1] = reason
    if not bad and ids.take_all(df["id"], f"{label}", start=first + 1):  # every id given and new: no per-row work
        return df
    new_ids: list[str | None] = []
    for i, g, msgs in _ids_and_messages(df):
        where = f"row {first + i + 1}"
        if i in bad:
            col.bad(where, bad[i], df.row(i, named=True), code="invalid-messages")
            new_ids.append(None)
            continue
        rid, problem = ids.assign(g, msgs, where)
        if problem:
            col.bad(where, problem, df.row(i, named=True), code="duplicate-id")
            bad[i] = problem
            new_ids.append(None)
            continue
        new_ids.append(rid)
    df = df.with_columns(pl.Series("id", new_ids, dtype=pl.String))
    if bad:
        df = df.filter(~pl.int_range(pl.len()).is_in(list(bad)))
    return df


def _ids_and_messages(df: pl.DataFrame, rows: int = 20_000) -> Iterator[tuple[int, Any, Any]]:
    """``(index, given id, messages)`` per row, a slice of ``rows`` at a time as Python objects
    (messages only where the id is missing: they give the derived id)."""
    for start in range(0, df.height, rows):
        part = df.slice(start, rows)
        given = part["id"].to_list()
        need = any(g in (None, "") for g in given)
        msgs = part["messages"].to_list() if need else None
        for j, g in enumerate(given):
            yield start + j, g, msgs[j] if msgs is not None and g in (None, "") else ()


def read_rows(
    path: str | os.PathLike,
    fmt: str | None = None,
    *,
    on_bad_rows: str = "error",
    category: str | None = None,
    source: str | None = None,
    split: str | None = None,
    ids: IdAssigner | None = None,
) -> ReadResult:
    """Read ``path`` (file, dataset folder or hub name) into validated rows.

    ``fmt`` forces a record shape (one of :data:`SHAPES`); unknown columns are then an
    error (except for the canonical ``messages`` shape, which keeps provenance columns).
    Without ``fmt`` the shape is the one most records have (a file mixing ``prompt`` and
    ``prompt``/``completion`` records is prompt/completion); a record of another shape is a
    bad row. ``category``/``source`` fill those columns where the input has none; ``split``
    picks the split of a DatasetDict folder or hub dataset (default ``train``). Files may be
    compressed (``.gz``, ``.bz2``, ``.xz``, ``.zst``).

    Rows without an id get :func:`derived_id` (the content hash, plus the occurrence index for
    the second and later copies of the same conversation); a duplicate id the input gave is
    a bad row naming both lines. Pass one ``ids`` (:class:`IdAssigner`) to several calls to
    keep ids unique across files.
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
    ids = ids if ids is not None else IdAssigner()
    ids.file = label
    records, frame = _open(p, label, fmt, split, col)
    if frame is None and fmt in (None, "messages") and inner_suffix(p) in JSONL_EXT:
        from thresher.io.arrow_jsonl import (
            read_canonical,  # clean messages lines, straight into Arrow
        )

        rows_fast = read_canonical(p, label, ids)
        if rows_fast is not None:
            return ReadResult(_fill(rows_fast, category, source), label, [], "messages")
    fast = _canonical_fast(frame, label, col, ids) if frame is not None and fmt in (None, "messages") else None
    if fast is not None:
        if fast.height == 0 and not col.rejects:
            raise InputError(f"{label}: empty file (no rows)")
        return ReadResult(_fill(fast, category, source), label, col.rejects)
    if frame is not None:
        records = _frame_records(frame)

    rows, shape, unknown_keys, any_record = _rows(records, fmt, label, col, ids)
    if not any_record:
        raise InputError(f"{label}: empty file (no rows)")
    if unknown_keys:
        from thresher.progress import info

        info(f"{label}: ignored message key(s) {', '.join(sorted(unknown_keys))} (kept: role, content, "
             "tool_calls, tool_call_id, name, weight/train, reasoning_content/thinking)")
    return ReadResult(_fill(_table_of(rows, label), category, source), label, col.rejects, shape)


def _table_of(rows: list[dict[str, Any]], label: str) -> pl.DataFrame:
    """The canonical table of validated rows (the empty table when there are none)."""
    if not rows:
        return empty_table()
    try:
        return conform(_row_frame(rows))
    except Exception as e:
        raise InputError(f"{label}: inconsistent column types across rows ({str(e).splitlines()[0]})") from None


def _arrow_messages(fields: set[str]) -> Any:
    """The Arrow type of :func:`thresher.schema.messages_dtype` for ``fields``."""
    import pyarrow as pa

    text = pa.large_string()
    call = pa.struct([("id", text), ("type", text), ("function", pa.struct([("name", text), ("arguments", text)]))])
    kinds = {"tool_calls": pa.list_(call), "weight": pa.float64()}
    extra = [(k, kinds.get(k, text)) for k in EXTRA_MESSAGE_FIELDS if k in fields]
    return pa.large_list(pa.struct([("role", text), ("content", text), *extra]))


def _row_frame(rows: list[dict[str, Any]]) -> pl.DataFrame:
    """``pl.DataFrame(rows)`` with the (validated, cleaned) messages built through Arrow: polars
    builds nested values from Python objects at about twice the memory (``rows`` lose them)."""
    import pyarrow as pa

    msgs = [r.pop("messages") for r in rows]
    try:
        fields = {k for m in msgs for turn in m for k in turn}
        column = pl.from_arrow(pa.array(msgs, type=_arrow_messages(fields)))
    except (pa.ArrowException, TypeError, ValueError):  # not expected: build it as polars would
        for r, m in zip(rows, msgs):
            r["messages"] = m
        return pl.DataFrame(rows, infer_schema_length=None)
    del msgs
    return pl.DataFrame(rows, infer_schema_length=None).with_columns(column.alias("messages"))


def _open(p: Path, label: str, fmt: str | None, split: str | None,
          col: _Collector) -> tuple[Iterator[tuple[str, Any]], pl.DataFrame | None]:
    """``(records, frame)``: the input's records as ``(where, record)`` pairs, or (Parquet,
    dataset folders, hub datasets) a table in ``frame``."""
    if p.is_dir():
        from thresher.io import parts

        if parts.is_dataset(p):  # a folder of Parquet part files (a streaming stage's kept.parquet)
            try:
                return iter(()), parts.read(p)
            except Exception as e:
                raise InputError(f"{label}: cannot read Parquet ({str(e).splitlines()[0]})") from None
        return iter(()), _disk_frame(p, label, split)
    if _looks_like_hub(label) and not p.exists():
        return iter(()), _hub_frame(label, label, split)
    if p.exists() and not p.is_file():
        raise InputError(f"{label}: not a regular file (a pipe, socket or device); give a file, "
                         "a dataset folder or a hub dataset name")
    if not p.is_file():
        raise InputError(f"{label}: no such file or folder")
    ext = inner_suffix(p)
    if p.stat().st_size == 0:
        raise InputError(f"{label}: empty file (no rows)")
    if ext in JSONL_EXT:
        return _jsonl_records(p, col), None
    if ext == ".json":
        return _json_records(p, col), None
    if ext in PARQUET_EXT:
        data = read_bytes(p, label) if p.suffix.lower() in COMPRESSED else None
        try:
            frame = pl.read_parquet(io.BytesIO(data) if data is not None else p)
        except Exception as e:
            raise InputError(f"{label}: cannot read Parquet ({str(e).splitlines()[0]})") from None
        return iter(()), frame
    if ext in (".csv", ".tsv"):
        return _decoded(_csv_records(p, col, "\t" if ext == ".tsv" else ","), col), None
    raise InputError(f"{label}: unsupported file type '{ext or p.name}' (expected .jsonl, .json, "
                     ".parquet, .csv or .tsv, optionally compressed as .gz, .bz2, .xz or .zst, or a dataset folder)")


def _choose_shape(records: list[tuple[str, Any]]) -> str | None:
    """The shape most records have (first seen on a tie); ``prompt`` records count as
    prompt/completion when the file has any (their missing completion is then a bad row)."""
    counts: dict[str, int] = {}
    for _, rec in records:
        if isinstance(rec, Mapping):
            s = detect_shape(rec)
            if s is not None:
                counts[s] = counts.get(s, 0) + 1
    if "prompt" in counts and "prompt-completion" in counts:
        counts["prompt-completion"] += counts.pop("prompt")
    return max(counts, key=lambda k: counts[k]) if counts else None


def _rows(records: Iterator[tuple[str, Any]], fmt: str | None, label: str,
          col: _Collector, ids: IdAssigner, shape: str | None = None) -> tuple[list[dict[str, Any]], str | None, set[str], bool]:
    """Validate each record into a row: ``(rows, shape, ignored message keys, any record)``.
    ``shape``: the records' shape as an earlier batch of the same input chose it."""
    rows: list[dict[str, Any]] = []
    recs = list(records)
    shape = fmt or shape or _choose_shape(recs)
    if shape is None:
        first = next(((w, r) for w, r in recs if isinstance(r, Mapping)), None)
        if first is not None:
            raise InputError(
                f"{label}:{first[0]}: cannot tell the record format from its keys "
                f"({', '.join(map(str, first[1])) or 'none'}); expected messages, conversations, "
                "instruction/output, prompt/completion or prompt (or pass --format)")
    from thresher.io.references import INPUT_KEYS

    types = ColumnTypes(loose=INPUT_KEYS)  # reference/tests columns: normalised to text later
    unknown_keys: set[str] = set()
    if shape == "openai-batch-output":  # results repeat their requests' ids: they are joined later
        ids, ids.file = IdAssigner(), label
    for where, rec in recs:
        if not isinstance(rec, Mapping):
            col.bad(where, f"expected a JSON object, got {type(rec).__name__}", rec, code="not-an-object")
            continue
        assert shape is not None
        row = _row(rec, where, fmt, shape, col, unknown_keys)
        if row is None:
            continue
        why = types.check(row, where)
        if why:
            col.bad(where, why, rec, code="column-type")
            continue
        row["id"], problem = ids.assign(row.get("id"), row["messages"], where)
        if problem:
            col.bad(where, problem, rec, code="duplicate-id" if problem.startswith("duplicate") else "bad-id")
            continue
        rows.append(row)
    return rows, shape, unknown_keys, bool(recs)


def _row(rec: Mapping[str, Any], where: str, fmt: str | None, shape: str, col: _Collector,
         unknown_keys: set[str]) -> dict[str, Any] | None:
    """One record as a row (None when it is a bad row, recorded in ``col``)."""
    if fmt is None:
        seen = detect_shape(rec)
        if seen is not None and seen != shape and not (seen == "prompt" and shape == "prompt-completion"):
            col.bad(where, f"a {seen} record, but this file's records are {shape} (pass --format to choose)",
                    rec, code="bad-shape")
            return None
    elif fmt != "messages":
        from thresher.io.references import INPUT_KEYS  # reference answers and tests travel too

        allowed = set(SHAPE_KEYS[fmt]) | set(ROW_KEYS) | set(INPUT_KEYS)
        unknown = [k for k in rec if k not in allowed]
        if unknown:
            col.bad(where, f"unknown column(s) {', '.join(repr(k) for k in unknown)} for format "
                    f"{fmt} (expected {', '.join(SHAPE_KEYS[fmt] + ROW_KEYS)})", rec, code="unknown-column")
            return None
    try:
        msgs = to_messages(rec, shape, unknown_keys)
    except ShapeError as e:
        col.bad(where, str(e), rec, code="bad-shape")
        return None
    why = validate_messages(msgs)
    if why:
        col.bad(where, why, rec, code="invalid-messages")
        return None
    try:
        row = row_fields(rec, shape)
        for key in ("category", "source"):
            if key in row:
                row[key] = check_scalar_column(row, key)
    except (ShapeError, ColumnError) as e:
        col.bad(where, str(e), rec, code="bad-shape" if isinstance(e, ShapeError) else "column-type")
        return None
    row["messages"] = clean_messages(msgs)
    return row


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

    ids = IdAssigner()
    frames = join([read_rows(p, fmt, ids=ids, **kwargs) for p in paths],  # Batch results meet their requests
                  on_bad_rows=kwargs.get("on_bad_rows", "error"))
    if not frames:
        raise InputError("no input given")
    return frames[0] if len(frames) == 1 else pl.concat(frames, how="diagonal_relaxed")


# The record path's pieces the streaming reader (thresher.io.stream) reads a batch at a time with.
Collector = _Collector
DupKeys = _DupKeys
canonical_fast = _canonical_fast
frame_records = _frame_records
line_records = _line_records
open_input = _open
validate_records = _rows
table_of = _table_of
