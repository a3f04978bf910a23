"""Memory-bounded storage for signatures and band keys.

Within the ``--memory`` budget everything stays in RAM. Above it, signatures go to a
memory-mapped ``.npy`` file (the OS pages them in and out; only the pairs being verified are
touched) and band keys go to one parquet file per chunk, grouped later by polars' streaming
engine. Half of the budget is reserved for signatures and a quarter for band keys; the rest
is headroom for the rows themselves and polars' group_by.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

_UNITS = {"": 1, "b": 1, "k": 1 << 10, "kb": 1 << 10, "m": 1 << 20, "mb": 1 << 20,
          "g": 1 << 30, "gb": 1 << 30, "t": 1 << 40, "tb": 1 << 40}


def parse_size(text: str) -> int:
    """Parse ``"512MB"``, ``"4G"``, ``"1.5gb"`` or a plain byte count; raise ValueError if malformed."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([kmgt]?i?b?)\s*", str(text).lower())
    if not m:
        raise ValueError(f"not a size: {text!r} (use e.g. 512MB, 4GB)")
    unit = m.group(2).replace("i", "")
    if unit not in _UNITS:
        raise ValueError(f"not a size: {text!r} (use e.g. 512MB, 4GB)")
    return int(float(m.group(1)) * _UNITS[unit])


class SignatureStore:
    """An ``(n, num_perm)`` uint32 array, in RAM or memory-mapped under ``spill_dir``."""

    def __init__(self, n: int, num_perm: int, budget: int, spill_dir: Path):
        self.nbytes = n * num_perm * 4
        self.spilled = self.nbytes > budget // 2
        if self.spilled:
            spill_dir.mkdir(parents=True, exist_ok=True)
            self.path: Path | None = spill_dir / "signatures.npy"
            self.array = np.lib.format.open_memmap(self.path, mode="w+", dtype=np.uint32,
                                                   shape=(n, num_perm))
        else:
            self.path = None
            self.array = np.empty((n, num_perm), dtype=np.uint32)

    def close(self) -> None:
        """Release the array (and flush the memory map)."""
        if isinstance(self.array, np.memmap):
            self.array.flush()
        self.array = np.empty((0, 0), dtype=np.uint32)


def _anonymous(shape: tuple[int, int]) -> np.ndarray:
    """A uint32 array in its own anonymous memory map: once dropped, its memory goes back to the
    system at once (a freed numpy block of a few MB may stay with the process's heap)."""
    import mmap

    count = int(shape[0]) * int(shape[1])
    buf = mmap.mmap(-1, max(count * 4, 1), flags=mmap.MAP_PRIVATE)
    return np.frombuffer(buf, dtype=np.uint32, count=count).reshape(shape)


class SignatureLog:
    """Signatures appended block by block while the rows stream past (their number unknown until
    the end): in RAM within half the budget, as :class:`SignatureStore`; once over it, every
    block goes to a raw spill file, memory-mapped by :meth:`finish`. The blocks in RAM are
    copied into one array by :meth:`finish`, each released as soon as it is copied."""

    def __init__(self, num_perm: int, budget: int, spill_dir: Path):
        self.num_perm = num_perm
        self.budget = budget // 2
        self.spill_dir = spill_dir
        self.blocks: list[np.ndarray] = []
        self.rows = 0
        self.path: Path | None = None
        self._fh: Any = None
        self.array = np.empty((0, num_perm), dtype=np.uint32)

    @property
    def spilled(self) -> bool:
        return self.path is not None

    @property
    def nbytes(self) -> int:
        return self.rows * self.num_perm * 4

    def append(self, sig: np.ndarray) -> None:
        """Add the signatures ``(k, num_perm)`` of the next ``k`` rows."""
        sig = np.ascontiguousarray(sig, dtype=np.uint32)
        self.rows += len(sig)
        if not self.spilled and self.nbytes > self.budget:
            self.spill_dir.mkdir(parents=True, exist_ok=True)
            self.path = self.spill_dir / "signatures.u32"
            self._fh = open(self.path, "wb")
            for b in self.blocks:
                self._fh.write(b.tobytes())
            self.blocks = []
        if self.spilled:
            self._fh.write(sig.tobytes())
        else:
            block = _anonymous(sig.shape)
            block[:] = sig
            self.blocks.append(block)

    def finish(self) -> np.ndarray:
        """Every row's signatures as one ``(rows, num_perm)`` array (memory-mapped when spilled)."""
        if self._fh is not None:
            self._fh.close()
            self._fh = None
        if self.spilled and self.rows:
            self.array = np.memmap(self.path, dtype=np.uint32, mode="r+", shape=(self.rows, self.num_perm))
        elif len(self.blocks) == 1:
            self.array = self.blocks.pop()
        elif self.blocks:  # one array, each block freed once copied (no second copy of them all)
            self.array = _anonymous((self.rows, self.num_perm))
            pos = 0
            self.blocks.reverse()
            while self.blocks:
                b = self.blocks.pop()
                self.array[pos:pos + len(b)] = b
                pos += len(b)
        return self.array

    def close(self) -> None:
        """Release the signatures (the spill file goes with the spill folder)."""
        if self._fh is not None:
            self._fh.close()
            self._fh = None
        self.blocks = []
        self.array = np.empty((0, 0), dtype=np.uint32)


class BandKeyStore:
    """Accumulates band-key frames; switches to parquet spill files once over its budget."""

    def __init__(self, budget: int, spill_dir: Path):
        self.budget = budget // 4
        self.spill_dir = spill_dir
        self.frames: list[pl.DataFrame] = []
        self.files: list[Path] = []
        self.held = 0

    @property
    def spilled(self) -> bool:
        return bool(self.files)

    def _write(self, frame: pl.DataFrame) -> None:
        self.spill_dir.mkdir(parents=True, exist_ok=True)
        path = self.spill_dir / f"bandkeys-{len(self.files):05d}.parquet"
        frame.write_parquet(path, compression="lz4", statistics=False)
        self.files.append(path)

    def add(self, frame: pl.DataFrame) -> None:
        """Add a frame of ``(band, key, idx)`` rows."""
        if self.spilled:
            self._write(frame)
            return
        self.frames.append(frame)
        self.held += frame.estimated_size()
        if self.held > self.budget:
            for f in self.frames:
                self._write(f)
            self.frames, self.held = [], 0

    def lazy(self) -> pl.LazyFrame:
        """All band keys as one lazy frame (scanning the spill files when spilled)."""
        from thresher.curate.dedup.lsh import KEY_SCHEMA

        if self.spilled:
            return pl.scan_parquet([str(p) for p in self.files])
        if not self.frames:
            return pl.DataFrame(schema=KEY_SCHEMA).lazy()
        return pl.concat(self.frames, rechunk=False).lazy()

    def cleanup(self) -> None:
        """Delete the spill files."""
        self.frames = []
        for p in self.files:
            p.unlink(missing_ok=True)
        self.files = []


def remove_spill(spill_dir: Path) -> None:
    """Remove the spill folder (after the stage finishes)."""
    shutil.rmtree(spill_dir, ignore_errors=True)
