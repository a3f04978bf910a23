"""Run directories: one folder per stage with ``kept.parquet``, ``dropped.parquet``,
``stats.json`` and ``manifest.json``.

The manifest holds a fingerprint of the stage's inputs (file contents) and config; running a
finished stage again with the same fingerprint does nothing and says so, while a changed
config or input recomputes it. A stage that was interrupted has no finished manifest, so it
is recomputed (stages that resume internally keep their own partial files under the folder).
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

from thresher import __version__
from thresher.config import to_dict
from thresher.io.atomic import write_text_atomic
from thresher.progress import info
from thresher.schema import DROP_COLUMNS
from thresher.stage_folder import (
    DROPPED,
    KEPT,
    KIND,
    MANIFEST,
    OWN_ENTRIES,
    STATS,
    acquire,
    artefact,
    artefact_records,
    check_out,
    damage,
    file_records,
    kill_point,
    read_manifest,
    recover,
    release,
    swap_in,
)
from thresher.tally import Tally

__all__ = ["DROPPED", "KEPT", "MANIFEST", "STATS", "StageFolder", "StageResult", "StageStats", "artefact",
           "damage", "dropped_frame", "drop_code_of"]

_hash_cache: dict[tuple[str, int, int], str] = {}


def file_fingerprint(path: str | os.PathLike) -> str:
    """Content hash of a file, or of every file in a folder (names and contents)."""
    p = Path(path)
    if not p.exists():
        return f"missing:{p}"
    if p.is_dir():
        h = hashlib.blake2b(digest_size=16)
        for f in _folder_files(p):
            h.update(str(f.relative_to(p)).encode())
            h.update(file_fingerprint(f).encode())
        return h.hexdigest()
    st = p.stat()
    key = (str(p.resolve()), st.st_size, st.st_mtime_ns)
    if key in _hash_cache:
        return _hash_cache[key]
    h = hashlib.blake2b(digest_size=16)
    with open(p, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 22), b""):
            h.update(chunk)
    _hash_cache[key] = h.hexdigest()
    return _hash_cache[key]


def _folder_files(folder: Path) -> list[Path]:
    """The files a folder input's fingerprint covers: thresher's own stage and run folders
    inside it (``--out`` under the input folder) and its lock/staging entries are left out."""
    from thresher.stage_folder import is_run_folder, is_stage_manifest

    files = []
    for root, dirs, names in os.walk(folder):
        here = Path(root)
        dirs[:] = [d for d in dirs if d not in OWN_ENTRIES and not is_stage_manifest(read_manifest(here / d))
                   and not is_run_folder(here / d)]
        files.extend(here / n for n in names if n not in OWN_ENTRIES)
    return sorted(files)


def config_fingerprint(config: Any, exclude: Any = None) -> str:
    """Stable hash of a config (dataclass or mapping) without the keys in ``exclude``.

    ``exclude`` defaults to the config's ``_fingerprint_exclude`` (options that change how fast
    a stage runs, never what it writes); the one way options are left out of a fingerprint.
    """
    data = to_dict(config)
    if exclude is None:
        exclude = getattr(config, "_fingerprint_exclude", ())
    if isinstance(data, dict):
        data = {k: v for k, v in data.items() if k not in exclude}
    text = json.dumps(data, sort_keys=True, default=str)
    return hashlib.blake2b(text.encode(), digest_size=16).hexdigest()


@dataclass
class StageResult:
    """What a finished stage produced."""

    name: str
    out: Path
    stats: dict[str, Any] = field(default_factory=dict)
    reused: bool = False

    @property
    def kept_path(self) -> Path:
        return self.out / KEPT

    @property
    def dropped_path(self) -> Path:
        return self.out / DROPPED

    @property
    def stats_path(self) -> Path:
        return self.out / STATS


def _as_expr(value: str | pl.Series | pl.Expr | None) -> pl.Expr:
    if value is None or isinstance(value, str):
        return pl.lit(value, dtype=pl.String)
    if isinstance(value, pl.Series):
        return pl.lit(value.cast(pl.String))
    return value.cast(pl.String)


def drop_code_of(reason: str) -> str:
    """A slug for a free-text reason (used only where a stage gives no code itself):
    the reason up to its first value, id or detail, lower-cased, words joined by ``-``."""
    import re

    head = re.sub(r"\s+of\s.*$|[=<>:(\[].*$", "", reason or "").strip().lower()
    return re.sub(r"[^a-z0-9]+", "-", head).strip("-") or "dropped"


def dropped_frame(df: pl.DataFrame, stage: str, reasons: str | pl.Series | pl.Expr,
                  codes: str | pl.Series | pl.Expr | None = None) -> pl.DataFrame:
    """``df`` with ``drop_stage``, ``drop_code`` (a stable slug such as ``too-short-chars``)
    and ``drop_reason`` (the human text) columns; a reason/code per row or one for all.
    Without ``codes`` the code is derived from the reason (:func:`drop_code_of`)."""
    reason = _as_expr(reasons)
    if codes is None:
        code = reason.map_elements(drop_code_of, return_dtype=pl.String) if not isinstance(reasons, str) \
            else pl.lit(drop_code_of(reasons), dtype=pl.String)
    else:
        code = _as_expr(codes)
    return df.drop([c for c in DROP_COLUMNS if c in df.columns]).with_columns(
        pl.lit(stage, dtype=pl.String).alias("drop_stage"), code.alias("drop_code"), reason.alias("drop_reason")
    )


class StageFolder:
    """A stage's run folder. See the module docstring and CONTRIBUTING.md."""

    def __init__(self, name: str, out: str | os.PathLike, *, inputs: list[str | os.PathLike] | tuple = (),
                 config: Any = None, force: bool = False, quiet: bool = False,
                 read_options: dict[str, Any] | None = None):
        self.name = name
        self.read_options = dict(read_options) if read_options else None
        self.out = Path(out)
        self.inputs = [Path(p) for p in inputs]
        self.config = config
        self.force = force
        self.quiet = quiet
        self.started = time.time()
        self._lock: str | None = None
        if not force:  # another stage's results, a recipe run, its input, a folder not ours
            check_out(self.out, self.name, self.inputs)
        self._lock = acquire(self.out, what="stage folder")  # one writer at a time
        recover(self.out)  # a swap a kill interrupted: finish or undo it
        self.fingerprint = self._fingerprint()

    def close(self) -> None:
        """Release the folder's lock (done by :meth:`finish`; safe to call twice)."""
        lock, self._lock = getattr(self, "_lock", None), None
        release(lock)

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # noqa: BLE001, S110 - interpreter shutdown: the kernel drops the lock anyway
            pass

    def _fingerprint(self) -> dict[str, Any]:
        return {
            "kind": KIND,
            "stage": self.name,
            "thresher": __version__,
            "config": config_fingerprint(self.config) if self.config is not None else None,
            "inputs": [{"path": str(p), "hash": file_fingerprint(p)} for p in self.inputs],
            "read": self.read_options,
        }

    def path(self, name: str) -> Path:
        """A path for an extra artefact or resumable state inside the stage folder (the folder
        is created). Name artefacts others read in :meth:`finish`'s ``artefacts``."""
        self.out.mkdir(parents=True, exist_ok=True)
        return self.out / name

    @property
    def manifest_path(self) -> Path:
        return self.out / MANIFEST

    def _manifest(self) -> dict[str, Any] | None:
        return read_manifest(self.out)

    @property
    def done(self) -> bool:
        """True when this stage already finished with the same inputs and config (and its
        files still match the manifest).

        When False, the stage is marked as running (see :meth:`start`); the ``--out`` folder
        was checked when the stage was opened (another stage's results, a recipe run, the
        stage's own input or a folder thresher did not make are refused unless ``force``).
        """
        finished = self._finished()
        if not finished:
            self.start()
        return finished

    def _finished(self) -> bool:
        if self.force:
            return False
        m = self._manifest()
        if not m or m.get("status") != "done":
            return False
        try:  # a hand-edited manifest of the wrong shape is simply not this result
            same_inputs = [i["hash"] for i in m.get("inputs", [])] == [i["hash"] for i in self.fingerprint["inputs"]]
        except (TypeError, KeyError):
            return False
        same = (m.get("config") == self.fingerprint["config"] and same_inputs
                and m.get("stage") == self.name and m.get("read") == self.fingerprint["read"])
        if not (same and (self.out / KEPT).exists()):
            return False
        why = damage(self.out)
        if why:
            info(f"{self.name}: {self.out}: {why}; recomputing the stage")
            return False
        return True

    def result(self) -> StageResult:
        """The finished result (use when :attr:`done`); says that it was reused."""
        try:
            stats = json.loads((self.out / STATS).read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            stats = {}
        if not self.quiet:
            info(f"{self.name}: already finished with the same inputs and config, reusing {self.out}")
        self.close()
        return StageResult(self.name, self.out, stats, reused=True)

    def start(self) -> None:
        """Mark the stage as running. A finished result already in the folder stays as it is
        (complete) until :meth:`finish` swaps the new one in."""
        self.out.mkdir(parents=True, exist_ok=True)
        m = self._manifest()
        if not (m and m.get("status") == "done"):
            write_text_atomic(self.manifest_path, json.dumps({**self.fingerprint, "status": "running"}, indent=2))

    def dropped_table(self, kept: pl.DataFrame, dropped: pl.DataFrame | None) -> pl.DataFrame:
        """``dropped`` as dropped.parquet holds it: the drop columns last, each row with a code
        (an empty frame of ``kept``'s columns when None)."""
        if dropped is None:
            dropped = kept.clear().with_columns([pl.lit(None, dtype=pl.String).alias(c) for c in DROP_COLUMNS])
        for c in DROP_COLUMNS:
            if c not in dropped.columns:
                dropped = dropped.with_columns(pl.lit(self.name if c == "drop_stage" else None,
                                                      dtype=pl.String).alias(c))
        if dropped.height and dropped["drop_code"].null_count():
            dropped = dropped.with_columns(pl.coalesce(
                "drop_code", pl.col("drop_reason").map_elements(drop_code_of, return_dtype=pl.String)))
        return dropped.select([*(c for c in dropped.columns if c not in DROP_COLUMNS), *DROP_COLUMNS])

    def finish(self, kept: pl.DataFrame, dropped: pl.DataFrame | None = None,
               stats: dict[str, Any] | None = None, *, rows_in: int | None = None,
               artefacts: dict[str, str] | None = None) -> StageResult:
        """Write kept/dropped/stats and the finished manifest as one result set, swapped in
        atomically (see :mod:`thresher.stage_folder`); returns the result.

        ``artefacts`` names the stage's extra outputs (``{"adapter": "adapter"}``: name ->
        path inside the folder); the manifest records them and :func:`artefact` finds them.
        """
        from thresher.io.writers import write_table

        dropped = self.dropped_table(kept, dropped)

        def rows(folder: Path) -> None:
            write_table(kept, folder / KEPT)
            kill_point("kept")
            write_table(dropped, folder / DROPPED)
            kill_point("dropped")

        return self._commit(Tally.of(self.name, kept, dropped), stats, rows_in, artefacts, rows)

    def finish_parts(self, written: Path, tally: Tally, stats: dict[str, Any] | None = None, *,
                     rows_in: int | None = None, artefacts: dict[str, str] | None = None) -> StageResult:
        """:meth:`finish` for a stage that streamed: ``written`` holds its finished
        ``kept.parquet`` and ``dropped.parquet`` (files or folders of parts, moved in as they
        are); ``tally`` counts their rows (:class:`~thresher.tally.Tally`, summed over parts
        or counted from projections) for the stats."""

        def rows(folder: Path) -> None:
            os.replace(written / KEPT, folder / KEPT)
            kill_point("kept")
            os.replace(written / DROPPED, folder / DROPPED)
            kill_point("dropped")

        return self._commit(tally, stats, rows_in, artefacts, rows)

    def _commit(self, tally: Tally, stats: dict[str, Any] | None, rows_in: int | None,
                artefacts: dict[str, str] | None, rows: Any) -> StageResult:
        full = StageStats.of_tally(self.name, tally, rows_in, time.time() - self.started, stats).to_dict()
        names = {k: str(v) for k, v in (artefacts or {}).items()}

        def write(folder: Path) -> None:
            rows(folder)
            write_text_atomic(folder / STATS, json.dumps(full, indent=2, default=str))
            kill_point("stats")
            records = {**artefact_records(self.out, names), **file_records(folder)}  # artefacts: already in place
            write_text_atomic(folder / MANIFEST, json.dumps(
                {**self.fingerprint, "status": "done", "finished": time.time(), "files": records,
                 "artefacts": names, **_usage(full)}, indent=2))

        try:
            swap_in(self.out, write)
        finally:
            self.close()
        if not self.quiet:
            info(f"{self.name}: {full['rows_in']} rows in, {tally.kept} kept, {tally.dropped} dropped -> {self.out}")
        return StageResult(self.name, self.out, full, reused=False)


def _usage(stats: dict[str, Any]) -> dict[str, Any]:
    """The manifest's ``usage`` block: API tokens and cost of a stage that called an API
    (generate with an API teacher, score with an API judge); empty otherwise."""
    if "cost_usd" not in stats:
        return {}
    keys = ("requests", "prompt_tokens", "completion_tokens_total", "cost_usd", "cost_usd_with_reused")
    return {"usage": {k: stats[k] for k in keys if k in stats}}


@dataclass
class StageStats:
    """What every stage's ``stats.json`` holds; the stage's own figures follow in ``extra``
    (written at the top level of the JSON, after these keys)."""

    stage: str
    rows_in: int
    """Rows the stage read (rows rejected on read included)."""
    rows_out: int
    """Rows in kept.parquet."""
    rows_dropped: int
    """Rows in dropped.parquet (rejected on read included)."""
    rows_rejected_on_read: int = 0
    """Rows dropped by the reader (``drop_stage = "read"``)."""
    kept_by_category: dict[str, int] = field(default_factory=dict)
    dropped_by_category: dict[str, int] = field(default_factory=dict)
    drop_reasons: dict[str, int] = field(default_factory=dict)
    """Dropped rows by rule (the reason's leading words)."""
    drop_codes: dict[str, int] = field(default_factory=dict)
    """Dropped rows by ``drop_code``; read for counts, never the free-text reasons."""
    seconds: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)
    """The stage's own figures (histograms, thresholds, timings)."""

    @classmethod
    def build(cls, stage: str, kept: pl.DataFrame, dropped: pl.DataFrame, rows_in: int | None,
              seconds: float, extra: dict[str, Any] | None) -> StageStats:
        """The stats of a finished stage from its tables."""
        return cls.of_tally(stage, Tally.of(stage, kept, dropped), rows_in, seconds, extra)

    @classmethod
    def of_tally(cls, stage: str, tally: Tally, rows_in: int | None, seconds: float,
                 extra: dict[str, Any] | None) -> StageStats:
        """The stats of a finished stage from the :class:`~thresher.tally.Tally` of its rows."""
        return cls(stage=stage, rows_in=rows_in if rows_in is not None else tally.kept + tally.dropped,
                   **tally.stats(), seconds=round(seconds, 3), extra=dict(extra or {}))

    def to_dict(self) -> dict[str, Any]:
        """The JSON object of stats.json (``extra`` flattened in; it may override a key)."""
        data = {k: v for k, v in self.__dict__.items() if k != "extra"}
        return {**data, **self.extra}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> StageStats:
        """Read back what :meth:`to_dict` wrote."""
        names = {f for f in cls.__dataclass_fields__ if f != "extra"}
        base = {k: v for k, v in data.items() if k in names}
        base.setdefault("stage", "")
        for k in ("rows_in", "rows_out", "rows_dropped"):
            base.setdefault(k, 0)
        return cls(**base, extra={k: v for k, v in data.items() if k not in names})

    @classmethod
    def read(cls, folder: str | os.PathLike) -> StageStats | None:
        """The stats of a stage folder, or None when it has none."""
        try:
            return cls.from_dict(json.loads((Path(folder) / STATS).read_text(encoding="utf-8")))
        except (OSError, ValueError):
            return None
