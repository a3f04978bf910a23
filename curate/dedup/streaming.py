"""Dedup over streamed rows (issue 24): the rows pass by once, dedup keeps a projection.

The streaming executor (:mod:`thresher.executors.stream`) hands the stage its input a batch at
a time (:meth:`~.stage.DedupStage.project`) and then the projection of every row
(:meth:`~.stage.DedupStage.run_projection`); the rows are written out by a second pass.

- **project** (per batch, in input order): each row's normalised text gives its exact hash
  (the xxh3-128 digest, 16 bytes, as a column of the projection), a non-empty flag (a column)
  and its MinHash signature, appended to a :class:`~.store.SignatureLog` (in RAM within half
  of ``--memory``, a memory-mapped spill file above it). Under ``verify: exact`` / ``edit``
  the normalised texts go to spill files on disk too (:class:`TextSpill`): the candidate rows'
  texts are read back from there, never held in RAM.
- **decide** (once): the reference (``against``) is read and signed after the input rows (rows
  ``n..n+m-1``, as in the whole-table path), then :func:`~.engine.decide_signed` runs phases
  2-5 exactly as :func:`~.engine.deduplicate` does: same survivors, reasons, clusters, stats.

Held per row while deciding: the projection (row number, id, category, the keep_by value, the
16-byte hash and the flag: ~60 bytes plus the id's and category's characters), the signature
(``4 * num_perm`` bytes, on disk past ``memory / 2``) and the decision arrays (~40 bytes).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from thresher.curate.dedup.decision import DedupResult
from thresher.curate.dedup.normalize import NormalizeOptions, normalized_texts, options_of
from thresher.curate.dedup.store import SignatureLog, parse_size

#: the projection's scratch columns (dropped before the decisions go back to the rows)
HASH = "__dedup_hash"
NONEMPTY = "__dedup_nonempty"
SCRATCH = (HASH, NONEMPTY)


class TextSpill:
    """Normalised texts of the streamed rows, one Parquet file per block, read back by row."""

    def __init__(self, spill_dir: Path):
        self.dir = spill_dir
        self.starts: list[int] = []
        self.files: list[Path] = []
        self._cached: tuple[int, pl.Series] | None = None

    def add(self, start: int, texts: list[str]) -> None:
        """Store the texts of rows ``start .. start + len(texts) - 1``."""
        self.dir.mkdir(parents=True, exist_ok=True)
        path = self.dir / f"texts-{len(self.files):05d}.parquet"
        pl.DataFrame({"t": texts}, schema={"t": pl.String}).write_parquet(path, compression="lz4")
        self.starts.append(start)
        self.files.append(path)

    def _block(self, k: int) -> pl.Series:
        if self._cached is None or self._cached[0] != k:
            self._cached = (k, pl.read_parquet(self.files[k])["t"])
        return self._cached[1]

    def texts_of(self, idx: np.ndarray) -> list[str]:
        """The texts of rows ``idx`` (any order), each block read once per call."""
        idx = np.asarray(idx, dtype=np.int64)
        order = np.argsort(idx, kind="stable")
        sidx = idx[order]
        block = np.searchsorted(np.asarray(self.starts, dtype=np.int64), sidx, side="right") - 1
        found: list[str] = []
        for k in np.unique(block):
            sel = sidx[block == k] - self.starts[k]
            found.extend(self._block(int(k)).gather(sel).to_list())
        out = np.empty(len(idx), dtype=object)
        out[order] = found
        return out.tolist()


@dataclass
class Stream:
    """What the streaming pass keeps between batches (in ``context.state``)."""

    cfg: Any
    spill_dir: Path
    log: SignatureLog
    texts: TextSpill | None
    columns: list[str] = field(default_factory=list)
    """Every column name the batches had, in the order first seen (for the keep_by error)."""
    rows: int = 0
    seconds: float = 0.0


def start(cfg: Any, spill_dir: Path) -> Stream:
    """A fresh stream state (a spill folder left by a killed run is emptied first)."""
    from thresher.curate.dedup.store import remove_spill

    remove_spill(spill_dir)
    texts = TextSpill(spill_dir) if cfg.verify in ("exact", "edit") else None
    return Stream(cfg, spill_dir, SignatureLog(cfg.num_perm, parse_size(cfg.memory), spill_dir), texts)


def sign_rows(df: pl.DataFrame, cfg: Any, norm: NormalizeOptions) -> tuple[list[bytes], np.ndarray, np.ndarray, list[str]]:
    """Digests, non-empty flags, signatures and normalised texts of the rows of ``df``."""
    import xxhash

    from thresher.curate.dedup.minhash import signatures
    from thresher.curate.dedup.shingles import shingle_hashes

    texts = normalized_texts(df, cfg.on, norm)
    digests = [xxhash.xxh3_128_digest(t.encode("utf-8")) for t in texts]
    nonempty = np.fromiter((bool(t) for t in texts), dtype=bool, count=len(texts))
    h, off = shingle_hashes(texts, ngram=cfg.ngram, unit=cfg.shingle, hash=cfg.hash)
    return digests, nonempty, signatures(h, off, num_perm=cfg.num_perm, seed=cfg.seed), texts


def project_batch(batch: pl.DataFrame, stream: Stream, first_row: int) -> pl.DataFrame:
    """The hash and non-empty columns of a batch (rows ``first_row ..``); its signatures (and
    under ``verify: exact``/``edit`` its normalised texts) go to the stream's stores."""
    if first_row != stream.rows:
        raise RuntimeError(f"dedup: batch starts at row {first_row}, expected row {stream.rows}")
    t0 = time.perf_counter()
    cfg = stream.cfg
    norm = options_of(cfg)
    digests: list[bytes] = []
    flags: list[np.ndarray] = []
    for s in range(0, batch.height, cfg.chunk_rows):
        d, ne, sig, texts = sign_rows(batch.slice(s, cfg.chunk_rows), cfg, norm)
        stream.log.append(sig)
        if stream.texts is not None:
            stream.texts.add(stream.rows + s, texts)
        digests.extend(d)
        flags.append(ne)
    stream.rows += batch.height
    stream.seconds += time.perf_counter() - t0
    return pl.DataFrame({HASH: pl.Series(digests, dtype=pl.Binary),
                         NONEMPTY: np.concatenate(flags) if flags else np.zeros(0, dtype=bool)})


def _sign_reference(ref: pl.DataFrame, stream: Stream) -> tuple[list[bytes], np.ndarray]:
    """Append the reference rows' signatures after the input rows'; their digests and flags."""
    cfg = stream.cfg
    norm = options_of(cfg)
    digests: list[bytes] = []
    flags = [np.zeros(0, dtype=bool)]
    for s in range(0, ref.height, cfg.chunk_rows):
        d, ne, sig, _ = sign_rows(ref.slice(s, cfg.chunk_rows), cfg, norm)
        stream.log.append(sig)
        digests.extend(d)
        flags.append(ne)
    return digests, np.concatenate(flags)


def _texts_of(stream: Stream, n: int, ref: pl.DataFrame | None) -> Any:
    """``texts_of`` for global rows: the spilled texts of input rows, the reference's after them."""
    from thresher.curate.dedup.exact import table_texts

    ref_texts = table_texts([ref], stream.cfg) if ref is not None else None

    def texts_of(idx: np.ndarray) -> list[str]:
        idx = np.asarray(idx, dtype=np.int64)
        mine = idx < n
        if stream.texts is None:
            raise RuntimeError("dedup: normalised texts were not kept (verify: estimate)")
        if mine.all() or ref_texts is None:
            return stream.texts.texts_of(idx)
        out = np.empty(len(idx), dtype=object)
        out[mine] = stream.texts.texts_of(idx[mine])
        out[~mine] = ref_texts(idx[~mine] - n)
        return out.tolist()

    return texts_of


def decide_projection(table: pl.DataFrame, stream: Stream, keep_by: str | None, *,
                      ref: pl.DataFrame | None, ref_label: str) -> DedupResult:
    """The dedup result of the streamed rows from their projection ``table`` (every row, in
    input order, with the :data:`SCRATCH` columns) and the stream's signatures."""
    from thresher.curate.dedup.engine import Signed, decide_signed

    n = table.height
    if n != stream.rows:
        raise RuntimeError(f"dedup: {n} rows in the projection, {stream.rows} signed")
    t0 = time.perf_counter()
    ref_hash, ref_nonempty = _sign_reference(ref, stream) if ref is not None else ([], np.zeros(0, dtype=bool))
    timings = {"signatures": stream.seconds + time.perf_counter() - t0}
    signed = Signed(stream.log.finish(), table[HASH], table[NONEMPTY].to_numpy().astype(bool, copy=True),
                    ref_hash, ref_nonempty, stream.log)
    return decide_signed(stream.cfg, signed, table["id"].cast(pl.String), table[keep_by] if keep_by else None,
                         ref=(ref["id"].cast(pl.String).to_list(), ref_label) if ref is not None else None,
                         texts_of=_texts_of(stream, n, ref), spill_dir=stream.spill_dir, timings=timings)
