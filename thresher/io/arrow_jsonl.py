"""The fast path for canonical JSONL: read a ``messages`` file straight into Arrow.

The record path (:mod:`thresher.io.readers`) parses each line into Python dicts and builds the
table from them, which costs about 20 times the file's size in memory. Most inputs are plain
``{"messages": [{"role", "content"}, ...], ...}`` lines; for those, :func:`read_canonical`
parses the file with pyarrow's JSON reader (types inferred strictly: a value that changes type,
a key given twice or a lone surrogate is an error there), validates the rows with polars
expressions (:func:`thresher.schema.table_problems`) and assigns the ids as the record path
does, a bounded slice of rows at a time.

It returns ``None`` whenever the file is anything but clean: a line that is not exactly one
object, a blank line, a parse error, a message key or column type the record path would
normalise, warn about or refuse, an invalid conversation or a duplicate id. The caller then
reads the file through the record path, which gives every message, warning, rejected row and
id exactly as before: the fast path never decides anything the record path would decide
differently.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import polars as pl
import pyarrow as pa

from thresher.io.columns import MAX_DEPTH
from thresher.io.compress import open_binary
from thresher.schema import EXTRA_MESSAGE_FIELDS, IdAssigner, conform, table_problems

#: rows handed to Python at a time while deriving ids (bounds the per-row objects alive at once)
ID_SLICE = 2_000
#: rows validated at a time
CHECK_ROWS = 5_000
#: pyarrow's block size: a line longer than this is read by the record path
BLOCK_BYTES = 1 << 22
#: bytes scanned for line ends at a time
SCAN_BYTES = 1 << 20
#: optional message fields read as they are (the others, and the aliases, take the record path)
TEXT_FIELDS = ("tool_call_id", "name", "reasoning_content")
CORE_TYPES = (pa.string(), pa.int64(), pa.null())  # id, category and source: text or integers

_LONG_NUMBER = re.compile(rb"[:\[,][ \t]*-?[0-9]{19,}")  # may not fit in 64 bits: pyarrow makes it a double


class _LineTooLong(Exception):
    """A line longer than pyarrow's block: the record path reads the file."""


def _chunks(p: Path) -> Iterator[bytes]:
    """The file's (decompressed) bytes in chunks of whole lines (the last may end without a
    newline); raises :class:`_LineTooLong` for a line longer than :data:`BLOCK_BYTES`."""
    with open_binary(p) as fh:
        parts: list[bytes] = []
        size = 0
        while True:
            block = fh.read(SCAN_BYTES)
            if not block:
                break
            cut = block.rfind(b"\n") + 1
            if not cut:
                size += len(block)
                if size > BLOCK_BYTES:
                    raise _LineTooLong
                parts.append(block)
                continue
            yield b"".join([*parts, block[:cut]])
            parts, size = [block[cut:]], len(block) - cut
        if size:
            yield b"".join(parts)


#: bytes :func:`_lines_ok` scans at once (its scratch arrays are ~20 times this)
SCAN_BYTES = 2 << 20


def _lines_ok(a, first: bool, last: bool) -> int | None:
    """Newlines in the chunk ``a`` (whole lines, uint8) when every line is one ``{...}`` (``}``
    then ``\\n`` or ``\\r\\n``; no blank lines) whose strings and brackets balance and nest
    less than :data:`MAX_DEPTH` deep, else None. pyarrow's parser recurses per level: a hostile
    file nested thousands deep would crash it, so nesting is measured here first. Every rule is
    per line, so ``a`` is scanned in line-aligned pieces of about :data:`SCAN_BYTES`."""
    import numpy as np

    if len(a) <= SCAN_BYTES:
        return _lines_ok_piece(a, first, last)
    nl = np.flatnonzero(a == ord("\n"))
    total, lo = 0, 0
    while lo < len(a):
        i = int(np.searchsorted(nl, lo + SCAN_BYTES))
        hi = len(a) if i >= len(nl) else int(nl[i]) + 1
        got = _lines_ok_piece(a[lo:hi], first and lo == 0, last and hi == len(a))
        if got is None:
            return None
        total, lo = total + got, hi
    return total


def _lines_ok_piece(a, first: bool, last: bool) -> int | None:
    """:func:`_lines_ok` on a piece of whole lines."""
    import numpy as np

    start = 3 if first and bytes(a[:3]) == b"\xef\xbb\xbf" else 0
    end = len(a) - 1 if a[-1] == ord("\n") else len(a)
    if end <= start or a[start] != ord("{") or (last and end == len(a) and a[-1] != ord("}")):
        return None
    nl = np.flatnonzero(a == ord("\n"))
    before = a[nl - 1]
    before = np.where(before == ord("\r"), a[np.maximum(nl - 2, 0)], before)
    if (before != ord("}")).any() or (a[nl[nl < end] + 1] != ord("{")).any():
        return None
    idx = np.arange(len(a), dtype=np.int32)
    plain = np.maximum.accumulate(np.where(a == ord("\\"), np.int32(-1), idx))  # last non-backslash so far
    q = np.flatnonzero(a == ord('"'))
    q = q[(q == 0) | ((q - 1 - plain[np.maximum(q - 1, 0)]) % 2 == 0)]  # quotes not escaped
    toggle = np.zeros(len(a), dtype=np.uint8)
    toggle[q] = 1
    outside = np.bitwise_xor.accumulate(toggle) == 0
    opens = (a == ord("[")) | (a == ord("{"))
    closes = (a == ord("]")) | (a == ord("}"))
    depth = np.cumsum((opens.astype(np.int8) - closes.astype(np.int8)) * outside, dtype=np.int32)
    ends = np.append(nl, len(a) - 1) if end == len(a) else nl
    if depth.min() < 0 or depth.max() >= MAX_DEPTH or depth[ends].any() or not outside[ends].all():
        return None
    return len(nl)


def _one_object_per_line(p: Path) -> int | None:
    """The number of lines when the file is UTF-8 and every line is exactly one ``{...}``
    (:func:`_lines_ok`), else None."""
    import numpy as np

    lines, ends_line = 0, True
    for i, chunk in enumerate(_chunks(p)):
        try:
            chunk.decode("utf-8")  # pyarrow does not check that strings are UTF-8
        except UnicodeDecodeError:
            return None
        ends_line = chunk.endswith(b"\n")
        got = _lines_ok(np.frombuffer(chunk, dtype=np.uint8), i == 0, not ends_line)
        if got is None:
            return None
        lines += got
    return (lines + (0 if ends_line else 1)) or None


def _depth(t: pa.DataType) -> int:
    """How deeply lists and objects nest in ``t`` (iterative: a hostile file nests thousands deep)."""
    deepest, stack = 0, [(t, 0)]
    while stack:
        kind, d = stack.pop()
        deepest = max(deepest, d)
        if pa.types.is_list(kind) or pa.types.is_large_list(kind) or pa.types.is_struct(kind):
            stack.extend((kind.field(i).type, d + 1) for i in range(kind.num_fields))
    return deepest


def _plain_value(t: pa.DataType) -> bool:
    """A column type that means the same as the record path's (no objects: pyarrow cannot tell
    a missing key from a null one, and the record path refuses objects with other keys)."""
    if pa.types.is_list(t):
        return _plain_value(t.value_type)
    return t in (pa.null(), pa.bool_(), pa.int64(), pa.float64(), pa.string())


def _messages_ok(t: pa.DataType) -> bool:
    """``list<struct<role, content, ...>>`` with strings only and no key the record path renames."""
    if not pa.types.is_list(t) or not pa.types.is_struct(t.value_type):
        return False
    fields = {f.name: f.type for f in t.value_type}
    if len(fields) != t.value_type.num_fields or fields.get("role") != pa.string() \
            or fields.get("content") != pa.string():
        return False
    for name, kind in fields.items():
        if name in ("role", "content"):
            continue
        if name == "weight":
            if kind not in (pa.int64(), pa.float64(), pa.null()):
                return False
        elif name not in TEXT_FIELDS or kind not in (pa.string(), pa.null()):
            return False
    return True


def _schema_ok(schema: pa.Schema, has_double: bool, p: Path | bytes) -> bool:
    names = schema.names
    if "messages" not in names or "custom_id" in names or len(set(names)) != len(names):
        return False
    for f in schema:
        if f.name == "messages":
            ok = _messages_ok(f.type)
        elif f.name in ("id", "category", "source"):
            ok = f.type in CORE_TYPES
        else:
            ok = _plain_value(f.type)
        if not ok:
            return False
    chunks = [p] if isinstance(p, bytes) else _chunks(p)
    return not (has_double and any(_LONG_NUMBER.search(chunk) for chunk in chunks))


def _no_timestamps(t: pa.DataType) -> pa.DataType:
    """``t`` with inferred timestamps back as strings (the record path keeps them as text)."""
    if pa.types.is_timestamp(t):
        return pa.string()
    if pa.types.is_list(t):
        return pa.list_(_no_timestamps(t.value_type))
    if pa.types.is_struct(t):
        return pa.struct([pa.field(f.name, _no_timestamps(f.type)) for f in t])
    return t


def _parse(p: Path | bytes) -> pa.Table | None:
    """The file ``p`` (or a block of its whole lines) parsed by pyarrow, or None."""
    import io

    import pyarrow.json as pj

    def source():
        return io.BytesIO(p) if isinstance(p, bytes) else open_binary(p)

    opts = pj.ReadOptions(block_size=max(BLOCK_BYTES, len(p) + 1) if isinstance(p, bytes) else BLOCK_BYTES)
    try:
        with source() as fh:
            table = pj.read_json(fh, read_options=opts)
        if any(_depth(f.type) >= MAX_DEPTH for f in table.schema):  # the record path names the row
            return None
        fixed = pa.schema([pa.field(f.name, _no_timestamps(f.type)) for f in table.schema])
        if fixed != table.schema:
            del table
            with source() as fh:
                table = pj.read_json(fh, read_options=opts, parse_options=pj.ParseOptions(explicit_schema=fixed))
    except Exception:  # noqa: BLE001 - any parse or decompression problem: the record path names it
        return None
    finally:
        pa.default_memory_pool().release_unused()
    return table


def _has_double(t: pa.DataType) -> bool:
    if pa.types.is_list(t) or pa.types.is_struct(t):
        return any(_has_double(t.field(i).type) for i in range(t.num_fields))
    return pa.types.is_floating(t)


def _frame(table: pa.Table) -> pl.DataFrame:
    """The table as the record path builds it: extra message fields only when some message sets
    them, fields in canonical order, core columns first (:func:`thresher.schema.conform`)."""
    df = pl.from_arrow(table)
    assert isinstance(df, pl.DataFrame)
    df = df.rechunk()  # one chunk per column, as the record path builds it: the same Parquet pages
    if "id" not in df.columns:
        df = df.with_columns(pl.lit(None, dtype=pl.String).alias("id"))
    inner = table.schema.field("messages").type.value_type
    used = {f.name for f in inner if f.name not in ("role", "content") and f.type != pa.null()
            and df.select(pl.col("messages").list.eval(pl.element().struct.field(f.name).is_not_null())
                          .list.any().any()).item()}
    order = [n for n in ("role", "content", *EXTRA_MESSAGE_FIELDS) if n in ("role", "content") or n in used]
    if [f.name for f in inner] != order:
        el = pl.element().struct.field
        df = df.with_columns(pl.col("messages").list.eval(pl.struct([el(n) for n in order])))
    return conform(df)


def _assign_ids(df: pl.DataFrame, ids: IdAssigner, label: str, first: int = 0) -> pl.Series | None:
    """The ids the record path gives these rows (line ``first + i`` is row ``i``), registered in
    ``ids``; None (``ids`` unchanged) when a given id repeats one: the record path reports it."""
    if ids.take_all(df["id"], label, prefix="", start=first + 1):
        return df["id"]
    given_any = df.select((pl.col("id").is_not_null() & (pl.col("id") != "")).any()).item()
    trial = ids.overlay() if given_any else ids  # derived ids never fail: no trial needed
    out: list[str] = []
    for start in range(0, df.height, ID_SLICE):
        part = df.slice(start, ID_SLICE)
        given = part["id"].to_list()
        msgs = part["messages"].to_list()
        for i, (g, m) in enumerate(zip(given, msgs), start=first + start + 1):
            rid, problem = trial.assign(g, m, str(i))
            if problem:
                return None
            out.append(rid)
    if trial is not ids:
        ids.commit(trial)
    return pl.Series("id", out, dtype=pl.String)


def read_block(block: bytes, label: str, ids: IdAssigner, first: int) -> pl.DataFrame | None:
    """:func:`read_canonical` for a block of whole lines of a file (a batch of a stream), the
    first of them line ``first + 1``; None: read the block through the record path."""
    import numpy as np

    try:
        block.decode("utf-8")
        if not block or _lines_ok(np.frombuffer(block, dtype=np.uint8), first == 0, not block.endswith(b"\n")) is None:
            return None
        table = _parse(block)
        lines = block.count(b"\n") + (0 if block.endswith(b"\n") else 1)
        if table is None or table.num_rows != lines \
                or not _schema_ok(table.schema, any(_has_double(f.type) for f in table.schema), block):
            return None
    except Exception:  # noqa: BLE001 - the record path names the problem
        return None
    return _checked(table, ids, label, first)


def _checked(table: pa.Table, ids: IdAssigner, label: str, first: int = 0) -> pl.DataFrame | None:
    """The parsed rows validated and with their ids, or None (the record path decides)."""
    try:
        df = _frame(table)
        del table
        pa.default_memory_pool().release_unused()
        for start in range(0, df.height, CHECK_ROWS):  # a slice at a time: bounded scratch memory
            if not table_problems(df.slice(start, CHECK_ROWS), check_ids=False).is_empty():
                return None
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException:  # noqa: BLE001 - polars panics are BaseExceptions: the record path decides
        return None
    new = _assign_ids(df, ids, label, first)
    return None if new is None else df.with_columns(new)


def read_canonical(p: Path, label: str, ids: IdAssigner) -> pl.DataFrame | None:
    """The validated rows of the canonical JSONL file ``p`` with their ids (registered in
    ``ids``), or None: read it through the record path (see the module docstring)."""
    try:  # _LineTooLong, a damaged compressed stream: the record path reads it
        lines = _one_object_per_line(p)
        table = _parse(p) if lines else None
        if table is None or table.num_rows != lines \
                or not _schema_ok(table.schema, any(_has_double(f.type) for f in table.schema), p):
            return None
    except Exception:  # noqa: BLE001 - the record path names the problem
        return None
    return _checked(table, ids, label)
