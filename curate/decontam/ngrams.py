"""Text normalisation and word n-gram hashing, shared by the benchmark index and the scan.

A text is normalised (Unicode NFKC, lower case, every run of characters that are not letters
or digits becomes one space) and split into words. A word n-gram is hashed as a 64-bit
polynomial combination of the per-word 64-bit hashes.

The scan works on the UTF-8 bytes of a whole batch of texts at once: numba kernels
(:mod:`._kernels`) cut and hash the words in one pass, lower-casing ASCII letters on the fly
and treating every other ASCII byte as a separator. That is the full normalisation for ASCII
text (NFKC and lower case change no other ASCII character); only the texts with a non-ASCII
character go through polars (NFKC, lower case, separators to spaces) first.

Both sides (benchmark and data) go through exactly these functions, so the same words give
the same hashes within a process; hashes are never stored on disk.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl
import pyarrow as pa

from thresher.curate.decontam import _kernels

WORD_SEED = 0x7468726573686572  # "thresher"
_NONWORD = r"[^\p{L}\p{N}]+"

# Fixed odd 64-bit multipliers, one per position in the n-gram (n up to 64).
_MULTIPLIERS = np.random.default_rng(13).integers(1, 2**63, size=64, dtype=np.uint64) * np.uint64(
    2
) + np.uint64(1)
MAX_N = len(_MULTIPLIERS)


def _byte_table() -> np.ndarray:
    """Byte -> the byte of the normalised word, 0 for a separator: ASCII letters lower-cased,
    ASCII digits kept, other ASCII bytes separate words, non-ASCII bytes (already normalised
    letters and digits once :func:`_normalized_utf8` is done) kept."""
    table = np.zeros(256, np.uint8)
    for c in b"0123456789abcdefghijklmnopqrstuvwxyz":
        table[c] = c
    for c in b"ABCDEFGHIJKLMNOPQRSTUVWXYZ":
        table[c] = c + 32
    table[0x80:] = np.arange(0x80, 0x100, dtype=np.uint8)
    return table


_BYTE_TABLE = _byte_table()
_IDENTITY = np.arange(256, dtype=np.uint8)


def normalized_text(expr: pl.Expr) -> pl.Expr:
    """A polars expression: NFKC, lower case, each run of non-letters/digits one space."""
    return (
        expr.fill_null("")
        .str.normalize("NFKC")
        .str.to_lowercase()
        .str.replace_all(_NONWORD, " ")
    )


def normalized_words(expr: pl.Expr) -> pl.Expr:
    """A polars expression: the normalised word list of a string expression."""
    return normalized_text(expr).str.strip_chars().str.split(" ")


def normalize(text: str) -> list[str]:
    """The normalised words of one text (same rules as :func:`normalized_words`)."""
    words = pl.select(normalized_words(pl.lit(text, dtype=pl.String))).item()
    return [w for w in words if w]


@dataclass(frozen=True)
class Words:
    """Words of a batch of text segments, flattened.

    ``seg`` holds, for each word, the index of its segment (non-decreasing); ``hashes`` the
    64-bit word hashes; ``words`` the words themselves when kept (for the benchmark side).
    """

    seg: np.ndarray
    hashes: np.ndarray
    words: pl.Series | None = None


def _utf8(texts: pl.Series) -> tuple[np.ndarray, np.ndarray]:
    """The UTF-8 bytes of ``texts`` (no nulls) back to back, and the ``len + 1`` offsets of
    each text in them (zero-copy views of the Arrow buffers)."""
    arr = texts.to_arrow(compat_level=pl.CompatLevel.oldest())
    if not isinstance(arr, pa.LargeStringArray):
        arr = arr.cast(pa.large_string())
    _, offsets, data = arr.buffers()
    if offsets is None:  # an empty array
        return np.empty(0, np.uint8), np.zeros(1, np.int64)
    offsets = np.frombuffer(offsets, np.int64)[arr.offset : arr.offset + len(arr) + 1]
    return np.frombuffer(data, np.uint8) if data is not None else np.empty(0, np.uint8), offsets


def _strings(buf: np.ndarray, starts: np.ndarray, ends: np.ndarray, table: np.ndarray) -> pl.Series:
    """The byte ranges ``starts[k]:ends[k]`` of ``buf`` (mapped through ``table``) as strings."""
    data, offsets = _kernels.gather(buf, starts, ends, table)
    arr = pa.LargeStringArray.from_buffers(len(starts), pa.py_buffer(offsets), pa.py_buffer(data))
    return pl.Series("text", arr)


def _normalized_utf8(texts: pl.Series) -> tuple[np.ndarray, np.ndarray]:
    """:func:`_utf8` of ``texts``, its tokens (runs of non-whitespace) with a non-ASCII
    character first normalised by :func:`normalized_text`; the kernels normalise the rest.

    Token by token equals text by text: ASCII whitespace stops NFKC (a starter that never
    composes), the final-sigma rule of lower-casing (neither cased nor case-ignorable) and
    words; and each non-ASCII byte is a letter or digit once a token is normalised.
    """
    buf, offsets = _utf8(texts.cast(pl.String).fill_null(""))
    starts, ends = _kernels.non_ascii_tokens(buf, offsets)
    if len(starts) == 0:
        return buf, offsets
    tokens = _strings(buf, starts, ends, _IDENTITY)
    repl, repl_offsets = _utf8(tokens.to_frame().select(normalized_text(pl.first())).to_series())
    buf = _kernels.splice(buf, starts, ends, repl, repl_offsets)
    moved = np.append(0, np.cumsum(np.diff(repl_offsets) - (ends - starts)))
    return buf, offsets + moved[np.searchsorted(ends, offsets, side="right")]


def segment_words(texts: pl.Series, *, keep_words: bool = False) -> Words:
    """Normalise and split each text of ``texts``; empty words are removed."""
    buf, offsets = _normalized_utf8(texts)
    seg, hashes, starts, ends = _kernels.split_words(
        buf, offsets, _BYTE_TABLE, np.uint64(WORD_SEED)
    )
    words = None
    if keep_words:
        words = _strings(buf, starts, ends, _BYTE_TABLE).alias("words")
    return Words(seg, hashes, words)


def ngram_hashes(words: Words, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Hashes of every word n-gram inside a segment, and the position of its first word.

    Returns ``(hashes, starts)``: ``starts[k]`` indexes ``words`` (so the segment of n-gram k
    is ``words.seg[starts[k]]``). N-grams never cross a segment boundary; a segment shorter
    than ``n`` words has none.
    """
    check_n(n)
    return _kernels.ngrams(words.hashes, words.seg, n, _MULTIPLIERS)


@dataclass(frozen=True)
class KeySet:
    """A set of 64-bit hashes for fast membership tests (see :meth:`KeySet.build`).

    ``keys``: the sorted distinct hashes; ``bitmap``: ``2**bitmap_bits`` bits packed in
    ``uint64``, bit ``key >> (64 - bitmap_bits)`` set for every key (small enough to stay in
    cache, it rejects almost every other hash); ``buckets``: where the keys whose top
    ``bucket_bits`` bits are ``b`` start in ``keys`` (``buckets[b]:buckets[b + 1]``, about
    one key each), so a lookup reads one or two keys instead of a binary search.
    """

    keys: np.ndarray
    bitmap: np.ndarray
    bitmap_bits: int
    buckets: np.ndarray
    bucket_bits: int

    @classmethod
    def build(cls, keys: np.ndarray, bitmap_bits: int = 24) -> KeySet:
        """The set of ``keys`` (any order, repeats allowed)."""
        keys = np.sort(keys.astype(np.uint64))
        if len(keys):
            keys = keys[np.append(True, keys[1:] != keys[:-1])]  # distinct
        top = keys >> np.uint64(64 - bitmap_bits)
        bitmap = np.zeros(1 << max(bitmap_bits - 6, 0), np.uint64)
        np.bitwise_or.at(bitmap, top >> np.uint64(6), np.uint64(1) << (top & np.uint64(63)))
        bucket_bits = min(max(len(keys).bit_length(), 1), 24)
        firsts = np.arange(1 << bucket_bits, dtype=np.uint64) << np.uint64(64 - bucket_bits)
        buckets = np.append(np.searchsorted(keys, firsts), len(keys)).astype(np.int64)
        return cls(keys, bitmap, bitmap_bits, buckets, bucket_bits)

    def __len__(self) -> int:
        return len(self.keys)

    def kernel_args(self) -> tuple:
        """The arguments of the kernels' membership test (``_kernels._member``)."""
        return (
            self.keys, self.bitmap, np.uint64(64 - self.bitmap_bits),
            self.buckets, np.uint64(64 - self.bucket_bits),
        )

    def contains(self, hashes: np.ndarray) -> np.ndarray:
        """Boolean mask: which of ``hashes`` are in the set."""
        return _kernels.member_mask(hashes.astype(np.uint64, copy=False), *self.kernel_args())


def scan_hits(texts: pl.Series, n: int, keys: KeySet) -> tuple[np.ndarray, np.ndarray]:
    """The word n-grams of ``texts`` (as :func:`segment_words` then :func:`ngram_hashes`)
    whose hash is in ``keys``: ``(text index, hash)`` of each, in one pass that never holds
    all the words."""
    check_n(n)
    buf, offsets = _normalized_utf8(texts)
    return _kernels.scan_hits(
        buf, offsets, _BYTE_TABLE, np.uint64(WORD_SEED), n, _MULTIPLIERS, *keys.kernel_args()
    )


def check_n(n: int) -> None:
    """Raise ``ValueError`` unless ``1 <= n <= MAX_N``."""
    if not 1 <= n <= MAX_N:
        raise ValueError(f"n must be in [1, {MAX_N}]")
