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

KEPT = "kept.parquet"
DROPPED = "dropped.parquet"
STATS = "stats.json"
MANIFEST = "manifest.json"

_hash_cache: dict[tuple[str, int, int], str] = {}


def file_fingerprint(path: str | os.PathLike) -> str:
    """Content hash of a file, or of every file in a folder (names and contents)."""
    p = Path(path)
    if not p.exists():
        return f"missing:{p}"
    if p.is_dir():
        h = hashlib.blake2b(digest_size=16)
        for f in sorted(x for x in p.rglob("*") if x.is_file()):
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


def config_fingerprint(config: Any) -> str:
    """Stable hash of a config (dataclass or mapping)."""
    data = to_dict(config)
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


def _category_counts(df: pl.DataFrame | None) -> dict[str, int]:
    if df is None or df.height == 0 or "category" not in df.columns:
        return {}
    counts = df.group_by("category").len().sort("category", nulls_last=True)
    return {str(c) if c is not None else "(none)": int(n) for c, n in counts.iter_rows()}


class Stage:
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
        self.fingerprint = self._fingerprint()

    def _fingerprint(self) -> dict[str, Any]:
        return {
            "stage": self.name,
            "thresher": __version__,
            "config": config_fingerprint(self.config) if self.config is not None else None,
            "inputs": [{"path": str(p), "hash": file_fingerprint(p)} for p in self.inputs],
            "read": self.read_options,
        }

    def path(self, name: str) -> Path:
        """A path for an extra artefact inside the stage folder (the folder is created)."""
        self.out.mkdir(parents=True, exist_ok=True)
        return self.out / name

    @property
    def manifest_path(self) -> Path:
        return self.out / MANIFEST

    def _manifest(self) -> dict[str, Any] | None:
        try:
            return json.loads(self.manifest_path.read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            return None

    @property
    def done(self) -> bool:
        """True when this stage already finished with the same inputs and config.

        When False, the stage is marked as running (see :meth:`start`), so a run killed
        before :meth:`finish` never looks finished.
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
        same_inputs = [i["hash"] for i in m.get("inputs", [])] == [i["hash"] for i in self.fingerprint["inputs"]]
        same = (m.get("config") == self.fingerprint["config"] and same_inputs
                and m.get("stage") == self.name and m.get("read") == self.fingerprint["read"])
        return bool(same and (self.out / KEPT).exists())

    def result(self) -> StageResult:
        """The finished result (use when :attr:`done`); says that it was reused."""
        try:
            stats = json.loads((self.out / STATS).read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            stats = {}
        if not self.quiet:
            info(f"{self.name}: already finished with the same inputs and config, reusing {self.out}")
        return StageResult(self.name, self.out, stats, reused=True)

    def start(self) -> None:
        """Mark the stage as running (a finished manifest is withdrawn until it finishes)."""
        self.out.mkdir(parents=True, exist_ok=True)
        write_text_atomic(self.manifest_path, json.dumps({**self.fingerprint, "status": "running"}, indent=2))

    def finish(self, kept: pl.DataFrame, dropped: pl.DataFrame | None = None,
               stats: dict[str, Any] | None = None, *, rows_in: int | None = None) -> StageResult:
        """Write kept/dropped/stats and the finished manifest; returns the result."""
        from thresher.io.writers import write_table

        self.out.mkdir(parents=True, exist_ok=True)
        if dropped is None:
            dropped = kept.clear().with_columns([pl.lit(None, dtype=pl.String).alias(c) for c in DROP_COLUMNS])
        for c in DROP_COLUMNS:
            if c not in dropped.columns:
                dropped = dropped.with_columns(pl.lit(self.name if c == "drop_stage" else None,
                                                      dtype=pl.String).alias(c))
        if dropped.height and dropped["drop_code"].null_count():
            dropped = dropped.with_columns(pl.coalesce(
                "drop_code", pl.col("drop_reason").map_elements(drop_code_of, return_dtype=pl.String)))
        dropped = dropped.select([*(c for c in dropped.columns if c not in DROP_COLUMNS), *DROP_COLUMNS])
        write_table(kept, self.out / KEPT)
        write_table(dropped, self.out / DROPPED)
        n_in = rows_in if rows_in is not None else kept.height + dropped.height
        reasons: dict[str, int] = {}
        if dropped.height:
            # count by rule: the reason up to its first value, id or detail
            # rows rejected on read count by their code (their reason starts with the file name)
            read = pl.col("drop_stage") == "read"
            distinct = dropped.group_by(pl.when(read).then(pl.format("read: {}", pl.col("drop_code")))
                                        .otherwise(pl.col("drop_reason").cast(pl.String))
                                        .fill_null("(no reason)").alias("drop_reason")).len()
            rules = (distinct.with_columns(pl.col("drop_reason")
                                           .str.replace(r"^(read: .*)$|\s+of\s.*$|[=<>:(\[].*$", "$1")
                                           .str.strip_chars())
                     .group_by("drop_reason").agg(pl.col("len").sum()).sort("len", descending=True))
            for r, n in rules.head(50).iter_rows():
                reasons[str(r) or "(no reason)"] = int(n)
        codes: dict[str, int] = {}
        if dropped.height:
            by = (dropped.group_by(pl.col("drop_stage").fill_null(self.name), pl.col("drop_code").fill_null("dropped"))
                  .len().sort(["len", "drop_code"], descending=[True, False]))
            for st, code, n in by.iter_rows():
                codes[code if st == self.name else f"{st}:{code}"] = int(n)
        full = {
            "stage": self.name,
            "rows_in": n_in,
            "rows_out": kept.height,
            "rows_dropped": dropped.height,
            "kept_by_category": _category_counts(kept),
            "dropped_by_category": _category_counts(dropped),
            "drop_reasons": reasons,
            "drop_codes": codes,
            "seconds": round(time.time() - self.started, 3),
            **(stats or {}),
        }
        write_text_atomic(self.out / STATS, json.dumps(full, indent=2, default=str))
        write_text_atomic(self.manifest_path, json.dumps(
            {**self.fingerprint, "status": "done", "finished": time.time()}, indent=2))
        if not self.quiet:
            info(f"{self.name}: {n_in} rows in, {kept.height} kept, {dropped.height} dropped -> {self.out}")
        return StageResult(self.name, self.out, full, reused=False)
