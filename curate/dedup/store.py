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
