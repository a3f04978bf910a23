"""Compressed inputs: ``.gz``, ``.bz2``, ``.xz`` and ``.zst`` files in every format.

``data.jsonl.gz`` is read as JSONL, ``data.parquet.zst`` as Parquet, and so on: the format
comes from the extension under the compression suffix. JSONL and CSV stream; JSON and Parquet
are decompressed into memory. A damaged or truncated stream is a one-line :class:`InputError`
naming the file.
"""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

from thresher.errors import InputError

#: compression suffix -> codec name
COMPRESSED: dict[str, str] = {".gz": "gzip", ".bz2": "bz2", ".xz": "xz", ".zst": "zstd"}


def inner_suffix(p: Path) -> str:
    """The format extension of ``p`` (``.jsonl`` for ``a.jsonl.gz``), lower-cased."""
    suffix = p.suffix.lower()
    if suffix in COMPRESSED:
        return Path(p.name[: -len(suffix)]).suffix.lower()
    return suffix


def decompress_errors() -> tuple[type[BaseException], ...]:
    """The exceptions a damaged compressed stream raises (codec errors, OSError, EOFError)."""
    errs: list[type[BaseException]] = [OSError, EOFError, lzma.LZMAError, ValueError]
    try:
        import zstandard

        errs.append(zstandard.ZstdError)
    except ImportError:  # pragma: no cover - a dependency
        pass
    return tuple(errs)


def open_binary(p: Path) -> IO[bytes]:
    """``p`` opened for reading bytes, decompressed when its suffix names a codec."""
    kind = COMPRESSED.get(p.suffix.lower())
    if kind is None:
        return open(p, "rb")
    if kind == "gzip":
        return gzip.open(p, "rb")  # type: ignore[return-value]
    if kind == "bz2":
        return bz2.open(p, "rb")  # type: ignore[return-value]
    if kind == "xz":
        return lzma.open(p, "rb")  # type: ignore[return-value]
    try:
        import zstandard
    except ImportError:  # pragma: no cover - a dependency
        raise InputError(f"{p}: reading .zst needs the zstandard package (pip install zstandard)") from None
    return io.BufferedReader(zstandard.ZstdDecompressor().stream_reader(open(p, "rb"), closefd=True))


def decompress_failure(label: str, p: Path, e: BaseException) -> InputError:
    """The one-line error for a damaged stream of ``p``."""
    kind = COMPRESSED.get(p.suffix.lower())
    what = f"cannot decompress {kind}" if kind else "cannot read"
    detail = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    return InputError(f"{label}: {what} ({detail[:200]})")


def read_bytes(p: Path, label: str) -> bytes:
    """The whole (decompressed) content of ``p``."""
    if p.suffix.lower() not in COMPRESSED:
        return p.read_bytes()
    try:
        with open_binary(p) as fh:
            return fh.read()
    except decompress_errors() as e:
        raise decompress_failure(label, p, e) from None


def _reads(p: Path, label: str, read: Callable[[IO[bytes]], bytes]) -> Iterator[bytes]:
    """``read(fh)`` of the (decompressed) ``p`` until it gives nothing; a damaged stream is
    :func:`decompress_failure`."""
    errors = decompress_errors()
    try:
        with open_binary(p) as fh:
            while True:
                try:
                    got = read(fh)
                except errors as e:
                    raise decompress_failure(label, p, e) from None
                if not got:
                    return
                yield got
    except errors as e:  # opening or closing the stream
        raise decompress_failure(label, p, e) from None


def lines(p: Path, label: str) -> Iterator[bytes]:
    """The (decompressed) lines of ``p`` as bytes, streamed."""
    if p.suffix.lower() not in COMPRESSED:
        with open(p, "rb") as fh:
            yield from fh
        return
    yield from _reads(p, label, lambda fh: fh.readline())


#: bytes read from a file at a time by :func:`line_batches`
READ_BYTES = 4 << 20


def _batch_end(ends: Any, rows: int, size: int) -> int | None:
    """Where a batch of whole lines stops (an offset), given the offsets just past each line
    ``ends``: after ``rows`` lines, or after the first line that brings it to ``size`` bytes,
    whichever comes first; None when neither is within ``ends``."""
    import numpy as np

    stops = []
    if len(ends) >= rows:
        stops.append(int(ends[rows - 1]))
    i = int(np.searchsorted(ends, size))
    if i < len(ends):
        stops.append(int(ends[i]))
    return min(stops) if stops else None


def line_batches(p: Path, label: str, rows: int, size: int) -> Iterator[bytes]:
    """The (decompressed) lines of ``p``, a batch at a time as one ``bytes`` of whole lines
    (the last line of the file may lack its newline): at most ``rows`` lines, ending with the
    line that brings the batch to ``size`` bytes. The same batches as taking the lines of
    :func:`lines` one by one, without a Python object a line: small lines (up to 512 bytes)
    would come from CPython's small-object allocator, whose arenas a stream of millions of
    them fragments, so memory crept up with the rows read."""
    import numpy as np

    rows = max(rows, 1)  # a batch holds one line at least
    pending, ends = bytearray(), np.zeros(0, dtype=np.int64)
    blocks, eof = _reads(p, label, lambda fh: fh.read(READ_BYTES)), False
    while True:
        end = _batch_end(ends, rows, size)
        while end is None and not eof:
            block = next(blocks, None)
            if block is None:
                eof = True
                break
            found = np.flatnonzero(np.frombuffer(block, dtype=np.uint8) == 10) + (len(pending) + 1)
            pending.extend(block)
            ends = np.concatenate([ends, found])
            end = _batch_end(ends, rows, size)
        if end is None:  # the end of the file: what is left, its last line maybe unterminated
            end = len(pending)
        if end == 0:
            return
        yield bytes(pending[:end])
        del pending[:end]
        ends = ends[np.searchsorted(ends, end, side="right"):] - end


def split_lines(batch: bytes) -> list[bytes]:
    """The lines of a :func:`line_batches` batch, each with its newline (as :func:`lines`)."""
    pieces = batch.split(b"\n")
    last = pieces.pop()
    out = [piece + b"\n" for piece in pieces]
    if last:
        out.append(last)
    return out
