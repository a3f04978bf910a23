"""Per-row score cache: parquet shards keyed by (scorer identity, conversation content).

Layout: ``<root>/<sha256(identity)[:16]>/identity.txt`` plus ``part-*.parquet`` shards with
columns ``key`` (hash of the conversation), ``score`` and ``error``. Shards are written
atomically every ``flush_every`` rows or ``flush_seconds`` while a scorer runs, so a crashed
or interrupted run loses at most one unflushed chunk; re-running, or running with a second
scorer added, scores only the rows that have no cached result. Many small shards are merged
when the cache is opened; a torn shard (a crash mid-write never leaves one, but a full disk
might) is ignored.

The default root is ``$THRESHER_CACHE/scores`` or ``~/.cache/thresher/scores``.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Iterable, Sequence
from pathlib import Path

from .base import ScoreResult

MERGE_ABOVE = 32  # shards; more are merged into one when the cache is opened


def default_cache_root() -> Path:
    """Where scores are cached when the config names no ``cache_dir``: ``<thresher cache>/scores``
    (``$THRESHER_CACHE`` or ``~/.cache/thresher``)."""
    from thresher.models import cache_dir

    return cache_dir() / "scores"


def _frame(keys: Sequence[str], scores: Sequence[float | None], errors: Sequence[str | None]):
    import polars as pl

    return pl.DataFrame(
        {"key": list(keys), "score": list(scores), "error": list(errors)},
        schema={"key": pl.String, "score": pl.Float64, "error": pl.String},
    )


class ScoreCache:
    """Cached results of one scorer identity. Lookups read the shards' rows for the keys
    asked (a polars scan filtered on ``key``): memory holds a batch's results, never the
    whole cache, however many rows it has."""

    def __init__(self, root: Path | str, identity: str, *, flush_every: int = 256,
                 flush_seconds: float = 60.0):
        self.identity = identity
        digest = hashlib.sha256(identity.encode("utf-8")).hexdigest()[:16]
        self.dir = Path(root) / digest
        self.flush_every = flush_every
        self.flush_seconds = flush_seconds
        self._last_flush = time.monotonic()
        self._pending: dict[str, ScoreResult] = {}
        self._compact()

    def _shards(self) -> list[Path]:
        """The readable shards, oldest first (a torn one, from a full disk, is left out)."""
        import polars as pl

        found = sorted(self.dir.glob("part-*.parquet")) if self.dir.is_dir() else []
        ok = []
        for s in found:
            try:
                pl.read_parquet_schema(s)
            except Exception:  # noqa: BLE001, S112 - a torn shard from a crash is ignored
                continue
            ok.append(s)
        return ok

    def _scan(self):
        """Every cached row (a lazy frame; the latest result of a key last), or None."""
        import polars as pl

        shards = self._shards()
        return pl.scan_parquet([str(s) for s in shards]) if shards else None

    def _compact(self) -> None:
        """Merge the shards into one when there are more than :data:`MERGE_ABOVE` (streamed
        to disk, the latest result of each key kept)."""
        found = sorted(self.dir.glob("part-*.parquet")) if self.dir.is_dir() else []
        if len(found) <= MERGE_ABOVE:
            return
        import polars as pl

        shards = self._shards()

        merged = pl.scan_parquet([str(s) for s in shards]).unique("key", keep="last", maintain_order=True)
        name = f"part-{time.time_ns()}-{os.getpid()}"
        tmp = self.dir / f".{name}.tmp"
        merged.sink_parquet(tmp)
        os.replace(tmp, self.dir / f"{name}.parquet")
        for s in found:  # those merged, and torn ones (a shard written meanwhile stays)
            s.unlink(missing_ok=True)

    def __len__(self) -> int:
        import polars as pl

        lf = self._scan()
        disk = lf.select("key").collect()["key"] if lf is not None else pl.Series("key", [], dtype=pl.String)
        return pl.concat([disk, pl.Series("key", list(self._pending), dtype=pl.String)]).n_unique()

    def get(self, key: str) -> ScoreResult | None:
        """The cached result for a conversation key, or None."""
        return self.lookup([key]).get(key)

    def lookup(self, keys: Iterable[str]) -> dict[str, ScoreResult]:
        """Cached results for those of ``keys`` that have one."""
        import polars as pl

        wanted = list(dict.fromkeys(keys))
        out: dict[str, ScoreResult] = {}
        lf = self._scan()
        if lf is not None and wanted:
            hits = lf.filter(pl.col("key").is_in(pl.Series(wanted, dtype=pl.String))).collect()
            for key, score, error in hits.unique("key", keep="last", maintain_order=True).iter_rows():
                out[key] = ScoreResult(score, error)
        out.update({k: self._pending[k] for k in wanted if k in self._pending})
        return out

    def add(self, keys: Sequence[str], results: Sequence[ScoreResult]) -> None:
        """Record results; they reach disk every ``flush_every`` rows or ``flush_seconds``
        seconds (whichever comes first) and on ``flush()``."""
        for k, r in zip(keys, results):
            self._pending[k] = ScoreResult(r.score, r.error)
        if (len(self._pending) >= self.flush_every
                or time.monotonic() - self._last_flush >= self.flush_seconds):
            self.flush()

    def _write(self, df) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        ident = self.dir / "identity.txt"
        if not ident.exists():
            ident.write_text(self.identity + "\n", encoding="utf-8")
        name = f"part-{time.time_ns()}-{os.getpid()}"
        tmp = self.dir / f".{name}.tmp"
        df.write_parquet(tmp)
        os.replace(tmp, self.dir / f"{name}.parquet")

    def flush(self) -> None:
        """Write pending results as one shard."""
        self._last_flush = time.monotonic()
        if not self._pending:
            return
        keys = list(self._pending)
        self._write(
            _frame(
                keys,
                [self._pending[k].score for k in keys],
                [self._pending[k].error for k in keys],
            )
        )
        self._pending = {}
