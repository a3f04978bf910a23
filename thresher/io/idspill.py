"""Sorted id levels on disk, for :class:`thresher.io.idset.CompactIds`: :class:`DiskLevels`.

A level of sorted 16-byte keys and their 8-byte places moves to two files in a temporary
folder (``$TMPDIR``, removed with the set). Memory keeps Bloom filters over the spilled keys,
a scalable series: each filter is sized for twice the keys of the one before, at 10 bits a
key, and a new one starts when the last is full (so no filter is ever rebuilt; 1.25 to 2.5
bytes a key; about one lookup in 40 of an absent key reads the disk at 10M keys), and every
256th key of each level (0.06 bytes a key). A lookup the filters pass reads one 4 KiB block of
each level with :func:`os.pread`: the files are never mapped, so their pages are not the
process's memory.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import weakref

import numpy as np

#: bits a key of a Bloom filter at its capacity, and probes a key
BLOOM_BITS, BLOOM_K = 10, 7
#: the first filter's capacity (keys); each next one holds twice the one before
FIRST_CAPACITY = 1 << 20
#: keys between two in-memory fences of a level (one read of 4 KiB a lookup)
FENCE = 256
#: keys probed at once when keys are added to a filter (bounded scratch)
_BLOCK = 1 << 16
_MASK = (1 << 64) - 1


def probes(keys: np.ndarray, m: int) -> np.ndarray:
    """The Bloom filter's bit positions of each key, ``(len(keys), BLOOM_K)``: double hashing
    on the two 64-bit halves of the digest (uniform already)."""
    halves = np.frombuffer(keys.tobytes(), dtype="<u8").reshape(-1, 2)
    h1, h2 = halves[:, :1], halves[:, 1:] | np.uint64(1)
    with np.errstate(over="ignore"):
        return (h1 + np.arange(BLOOM_K, dtype=np.uint64) * h2) % np.uint64(m)


class Bloom:
    """A Bloom filter of ``capacity`` keys (``BLOOM_BITS`` bits each) over 16-byte digests."""

    def __init__(self, capacity: int) -> None:
        self.capacity, self.m = capacity, max(64, capacity * BLOOM_BITS)
        # a bytearray: a scalar probe indexes it without NumPy's overhead, NumPy writes it in place
        self._bits = bytearray((self.m + 7) // 8)

    def add(self, keys: np.ndarray) -> None:
        bits = np.frombuffer(self._bits, dtype=np.uint8)
        for start in range(0, len(keys), _BLOCK):
            pos = probes(keys[start:start + _BLOCK], self.m).ravel()
            np.bitwise_or.at(bits, (pos >> np.uint64(3)).astype(np.int64), (1 << (pos & np.uint64(7))).astype(np.uint8))

    def maybe(self, keys: np.ndarray) -> np.ndarray:
        """Which of ``keys`` may be held (no false negatives)."""
        pos = probes(keys, self.m)
        bits = np.frombuffer(self._bits, dtype=np.uint8)
        return ((bits[(pos >> np.uint64(3)).astype(np.int64)] >> (pos & np.uint64(7)).astype(np.uint8)) & 1).all(axis=1)

    def maybe_one(self, key: bytes) -> bool:
        """:meth:`maybe` of one key in plain Python (the per-row path: ~1 µs, not ~15)."""
        h1, h2 = int.from_bytes(key[:8], "little"), int.from_bytes(key[8:], "little") | 1
        bits, m = self._bits, self.m
        for i in range(BLOOM_K):
            p = ((h1 + i * h2) & _MASK) % m
            if not bits[p >> 3] >> (p & 7) & 1:
                return False
        return True

    @property
    def nbytes(self) -> int:
        return len(self._bits)


class _File:
    """One spilled level: its keys and places files, and its fences."""

    def __init__(self, keys: np.ndarray, places: np.ndarray, stem: str) -> None:
        self.n = len(keys)
        self.fences = keys[::FENCE].copy()
        self.paths = (f"{stem}.keys", f"{stem}.places")
        keys.tofile(self.paths[0])
        places.tofile(self.paths[1])
        self.fds = [os.open(p, os.O_RDONLY) for p in self.paths]

    def index(self, key: bytes) -> int | None:
        """The position of ``key`` in the level (one block read), or None."""
        block = int(np.searchsorted(self.fences, key, side="right")) - 1
        if block < 0:
            return None
        start = block * FENCE
        count = min(FENCE, self.n - start)
        keys = np.frombuffer(os.pread(self.fds[0], count * 16, start * 16), dtype="S16")
        i = int(np.searchsorted(keys, key))
        return start + i if i < count and keys[i] == key else None

    def place(self, i: int) -> int:
        return int(np.frombuffer(os.pread(self.fds[1], 8, i * 8), dtype=np.int64)[0])


class DiskLevels:
    """Sorted levels moved to disk, looked up as one (see the module docstring)."""

    def __init__(self) -> None:
        self._files: list[_File] = []
        self._blooms: list[Bloom] = []
        self._filled = 0
        """Keys in the last filter."""
        self._folder: str | None = None

    def __len__(self) -> int:
        return sum(f.n for f in self._files)

    def add(self, keys: np.ndarray, places: np.ndarray) -> None:
        """Spill one sorted level (``keys`` ``S16``, ``places`` ``int64``)."""
        if self._folder is None:
            self._folder = tempfile.mkdtemp(prefix="thresher-ids-")
            weakref.finalize(self, _remove, self._folder, self._files)
        self._files.append(_File(keys, places, os.path.join(self._folder, str(len(self._files)))))
        start = 0
        while start < len(keys):
            if not self._blooms or self._filled >= self._blooms[-1].capacity:
                capacity = 2 * self._blooms[-1].capacity if self._blooms else FIRST_CAPACITY
                self._blooms.append(Bloom(capacity))
                self._filled = 0
            bloom = self._blooms[-1]
            take = min(len(keys) - start, bloom.capacity - self._filled)
            bloom.add(keys[start:start + take])
            start, self._filled = start + take, self._filled + take

    def find(self, key: bytes) -> int | None:
        """The place of ``key``, or None."""
        if not self._files or not any(b.maybe_one(key) for b in self._blooms):
            return None
        for f in self._files:
            i = f.index(key)
            if i is not None:
                return f.place(i)
        return None

    def hits(self, keys: np.ndarray) -> np.ndarray:
        """Which of ``keys`` are held."""
        if not self._files or not len(keys):
            return np.zeros(len(keys), dtype=bool)
        out = np.zeros(len(keys), dtype=bool)
        for b in self._blooms:
            out |= b.maybe(keys)
        for j in np.flatnonzero(out):
            key = keys[j].tobytes()
            out[j] = any(f.index(key) is not None for f in self._files)
        return out

    def nbytes(self) -> int:
        """The bytes held in memory (the filters and the fences)."""
        return sum(b.nbytes for b in self._blooms) + sum(f.fences.nbytes for f in self._files)


def _remove(folder: str, files: list[_File]) -> None:
    """Close the levels' files and remove their folder."""
    for f in files:
        for fd in f.fds:
            os.close(fd)
        f.fds = []
    shutil.rmtree(folder, ignore_errors=True)
