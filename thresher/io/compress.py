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
from collections.abc import Iterator
from pathlib import Path
from typing import IO

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


def lines(p: Path, label: str) -> Iterator[bytes]:
    """The (decompressed) lines of ``p`` as bytes, streamed."""
    if p.suffix.lower() not in COMPRESSED:
        with open(p, "rb") as fh:
            yield from fh
        return
    errors = decompress_errors()
    try:
        with open_binary(p) as fh:
            while True:
                try:
                    line = fh.readline()
                except errors as e:
                    raise decompress_failure(label, p, e) from None
                if not line:
                    return
                yield line
    except errors as e:  # opening or closing the stream
        raise decompress_failure(label, p, e) from None
