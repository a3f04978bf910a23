"""A memory-mapped token cache: lint and tokenise rows in batches, straight to disk.

:func:`cached_lint` gives the same :class:`~thresher.train.data.lint.LintReport` as
:func:`~thresher.train.data.lint.lint_rows` (same examples in the same order, same issues),
but each example is a :class:`CachedExample` whose ``input_ids`` and ``labels`` are read
lazily from flat ``int32`` files (``ids.bin``, ``labels.bin``) through ``numpy.memmap``; only
the lengths, counts and row ids stay in RAM. Rows are linted ``batch_rows`` at a time and each
batch's tokens are appended to the files, so peak memory does not grow with the token count.

A cache folder is named by a key over everything the tokens depend on: the rows (their
``id``, ``messages`` and ``reasoning``), the tokenizer (its vocabulary, merges, special tokens
and chat template), every masking option and :data:`FORMAT`. It is written in a temporary
folder renamed into place at the end (``meta.json`` last), so a run killed while writing
leaves no cache to reuse; a folder whose files do not match its ``meta.json`` is rebuilt.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from thresher.train.data import lint as _lint
from thresher.train.data.masks import LintIssue

#: bump when the files' layout or the tokenisation code changes what a key maps to
FORMAT = 2
#: rows linted (and appended to the files) per batch
BATCH_ROWS = 1024
_ENTRY_COLS = 5  # start, length, n_full, n_trained, cut


class TokenStore:
    """The flat token and label arrays of one cache folder, memory-mapped read-only."""

    def __init__(self, folder: Path, n_tokens: int) -> None:
        import numpy as np

        self.folder = folder
        empty = np.zeros(0, dtype=np.int32)
        self.ids = np.memmap(folder / "ids.bin", dtype=np.int32, mode="r") if n_tokens else empty
        self.labels = np.memmap(folder / "labels.bin", dtype=np.int32, mode="r") if n_tokens else empty


@dataclass(frozen=True, eq=False, slots=True)
class CachedExample:
    """An :class:`~thresher.train.data.masks.Example` whose tokens stay on disk until read."""

    store: TokenStore
    start: int
    length: int
    row_id: str = ""
    cut: bool = False
    n_full: int = 0
    traces: tuple[tuple[int, int], ...] = ()
    n_trained: int = 0

    def __len__(self) -> int:
        return self.length

    @property
    def input_ids(self) -> list[int]:
        """Token ids (read from the memory map)."""
        return self.store.ids[self.start:self.start + self.length].tolist()

    @property
    def labels(self) -> list[int]:
        """Labels, ``-100`` where not trained (read from the memory map)."""
        return self.store.labels[self.start:self.start + self.length].tolist()

    @property
    def n_reasoning(self) -> int:
        """Tokens in the reasoning traces of the trained turns."""
        return sum(b - a for a, b in self.traces)


def rows_digest(df: Any, batch_rows: int = BATCH_ROWS) -> str:
    """Digest of the columns the tokens depend on (``id``, ``messages``, ``reasoning``)."""
    h = hashlib.blake2b(digest_size=16)
    cols = [c for c in ("id", "messages", "reasoning") if c in df.columns]
    h.update(json.dumps(cols).encode())
    for start in range(0, df.height, batch_rows):
        part = df.slice(start, batch_rows).select(cols).to_dicts()
        h.update(json.dumps(part, sort_keys=True, default=str, ensure_ascii=False).encode())
    return h.hexdigest()


def tokenizer_fingerprint(tokenizer: Any) -> str:
    """Digest of what tokenisation depends on: the vocabulary and merges (fast tokenizers'
    JSON), the special and added tokens and the chat template."""
    h = hashlib.blake2b(digest_size=16)
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None:
        h.update(backend.to_str().encode())
    else:
        h.update(json.dumps(sorted(tokenizer.get_vocab().items())).encode())
    added = {int(k): str(v) for k, v in (getattr(tokenizer, "added_tokens_decoder", {}) or {}).items()}
    h.update(json.dumps([type(tokenizer).__name__, sorted(added.items()),
                         str(getattr(tokenizer, "special_tokens_map", {})),
                         getattr(tokenizer, "chat_template", None)], default=str).encode())
    return h.hexdigest()


def code_digest() -> str:
    """Digest of the source of the modules that turn a row into tokens and labels, so an edit
    to them (a development checkout) never reuses tokens made by the old code."""
    import sys

    from thresher import chat_tokens
    from thresher.train.data import masks, templates

    h = hashlib.blake2b(digest_size=16)
    for mod in (masks, _lint, templates, chat_tokens, sys.modules[__name__]):
        h.update(Path(mod.__file__ or "").read_bytes())
    return h.hexdigest()


def cache_key(df: Any, tokenizer: Any, options: dict[str, Any]) -> str:
    """The cache folder name for these rows, tokenizer and lint/masking ``options``."""
    from thresher import __version__

    parts = {"format": FORMAT, "thresher": __version__, "code": code_digest(), "rows": rows_digest(df),
             "tokenizer": tokenizer_fingerprint(tokenizer), "options": options}
    return hashlib.blake2b(json.dumps(parts, sort_keys=True, default=str).encode(),
                           digest_size=16).hexdigest()


def cached_lint(tokenizer: Any, df: Any, cache_dir: Path, *, batch_rows: int = BATCH_ROWS,
                **options: Any) -> tuple[_lint.LintReport, dict[str, Any]]:
    """:func:`lint_rows` through the cache in ``cache_dir``: (report, stats).

    ``options`` are :func:`lint_rows`'s keywords. Stats: ``key``, ``reused`` (a finished cache
    was found), ``rows``, ``entries`` and ``tokens`` (cached)."""
    key = cache_key(df, tokenizer, options)
    folder = Path(cache_dir) / key
    found = _load(folder)
    reused = found is not None
    if found is None:
        _lint.require_chat_template(tokenizer)
        shutil.rmtree(folder, ignore_errors=True)  # a damaged cache: rebuilt
        build(tokenizer, df, folder, batch_rows=batch_rows, **options)
        for wait in (0.0, 0.1, 0.5, 2.0):  # another rank may be swapping its identical copy in
            time.sleep(wait)
            found = _load(folder)
            if found is not None:
                break
        else:
            raise RuntimeError(f"{folder}: token cache unreadable right after writing it")
    report, meta = found
    return report, {"key": key, "folder": str(folder), "reused": reused, "rows": meta["rows"],
                    "entries": meta["entries"], "tokens": meta["tokens"]}


def prune(cache_dir: Path, keep: set[str]) -> list[str]:
    """Remove the finished caches in ``cache_dir`` other than ``keep`` (keys of an older config
    or older rows); temporary folders (another process still writing) are left. Returns the
    removed keys."""
    removed = []
    for child in sorted(Path(cache_dir).iterdir()) if Path(cache_dir).is_dir() else []:
        if child.is_dir() and not child.name.startswith(".") and child.name not in keep:
            shutil.rmtree(child, ignore_errors=True)
            removed.append(child.name)
    return removed


def build(tokenizer: Any, df: Any, folder: Path, *, batch_rows: int = BATCH_ROWS, **options: Any) -> None:
    """Lint ``df`` in batches and write the cache folder atomically (``meta.json`` last)."""
    from thresher.io.atomic import atomic_path

    try:
        with atomic_path(folder, is_dir=True) as tmp:
            tmp.mkdir(parents=True)
            meta = _write(tokenizer, df, tmp, batch_rows, options)
            (tmp / "meta.json").write_text(json.dumps(meta), encoding="utf-8")
    except OSError:
        if load(folder) is None:  # another process (a DDP rank) renamed its copy first: use it
            raise


def _write(tokenizer: Any, df: Any, tmp: Path, batch_rows: int, options: dict[str, Any]) -> dict[str, Any]:
    """Append every batch's examples to the files; the metadata to put in ``meta.json``."""
    import numpy as np

    meta: dict[str, Any] = {"rows": 0, "train_reasoning": options.get("train_reasoning", True),
                            "row_ids": [], "traces": {}, "examples": [], "issues": []}
    entries: list[Any] = []  # one int64 array per batch
    batch: list[tuple[int, ...]] = []
    tokens = 0
    with open(tmp / "ids.bin", "wb") as ids_fh, open(tmp / "labels.bin", "wb") as lab_fh:
        def add(ex: Any) -> int:
            nonlocal tokens
            ids_fh.write(np.asarray(ex.input_ids, dtype=np.int32).tobytes())
            lab_fh.write(np.asarray(ex.labels, dtype=np.int32).tobytes())
            batch.append((tokens, len(ex), ex.n_full, ex.n_trained, int(ex.cut)))
            meta["row_ids"].append(ex.row_id)
            if ex.traces:
                meta["traces"][str(len(meta["row_ids"]) - 1)] = [list(t) for t in ex.traces]
            tokens += len(ex)
            return len(meta["row_ids"]) - 1

        for start in range(0, df.height, batch_rows):
            part = _lint.lint_rows(tokenizer, df.slice(start, batch_rows), **options)
            meta["rows"] += part.rows
            seen: dict[int, int] = {}
            for issue in part.issues:
                entry = -1
                if issue.example is not None:
                    entry = seen.get(id(issue.example), -1)
                    if entry < 0:
                        entry = seen[id(issue.example)] = add(issue.example)
                meta["issues"].append([issue.row_id, issue.kind, issue.message, entry])
            for ex in part.examples:
                meta["examples"].append(seen[id(ex)] if id(ex) in seen else add(ex))
            entries.append(np.asarray(batch, dtype=np.int64).reshape(-1, _ENTRY_COLS))
            batch.clear()
    np.save(tmp / "entries.npy", np.concatenate(entries) if entries else np.zeros((0, _ENTRY_COLS), np.int64))
    meta.update(format=FORMAT, entries=len(meta["row_ids"]), tokens=tokens)
    return meta


def load(folder: Path) -> _lint.LintReport | None:
    """The report of a finished, intact cache folder, or None (missing, partial, damaged)."""
    found = _load(folder)
    return found[0] if found is not None else None


def _load(folder: Path) -> tuple[_lint.LintReport, dict[str, Any]] | None:
    """(report, meta) of a finished, intact cache folder, or None."""
    import numpy as np

    try:
        meta = json.loads((folder / "meta.json").read_text(encoding="utf-8"))
        entries = np.load(folder / "entries.npy")
        sizes = [(folder / n).stat().st_size for n in ("ids.bin", "labels.bin")]
    except (OSError, ValueError):
        return None
    if meta.get("format") != FORMAT or sizes != [4 * meta["tokens"]] * 2 \
            or entries.shape != (meta["entries"], _ENTRY_COLS):
        return None
    store = TokenStore(folder, meta["tokens"])
    traces = {int(i): tuple(tuple(t) for t in v) for i, v in meta["traces"].items()}
    examples = [CachedExample(store, s, n, meta["row_ids"][i], bool(c), f, traces.get(i, ()), t)
                for i, (s, n, f, t, c) in enumerate(entries.tolist())]
    report = _lint.LintReport(rows=meta["rows"], train_reasoning=meta["train_reasoning"])
    report.examples = [examples[i] for i in meta["examples"]]
    report.issues = [LintIssue(row_id, kind, message, examples[e] if e >= 0 else None)
                     for row_id, kind, message, e in meta["issues"]]
    return report, meta
