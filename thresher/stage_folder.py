"""Stage folders on disk: atomic replacement, damage checks and ``--out`` safety.

A finished stage folder holds a *result set*: ``kept.parquet``, ``dropped.parquet``,
``stats.json`` and ``manifest.json`` (the manifest records every result file's size and hash,
and the stage's named artefacts). A recompute never writes the result set in place:

1. the new result set is written into the sibling ``.NAME.new`` (manifest last);
2. every other entry of the live folder (resumable state, artefacts the run wrote) is moved
   into it;
3. the live folder is renamed to ``.NAME.old``, ``.NAME.new`` to the live name, and
   ``.NAME.old`` is deleted.

:func:`recover` (run whenever a stage folder is opened) finishes or undoes an interrupted
swap, so a stage folder is always either the old complete result or the new complete one.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
from pathlib import Path
from typing import Any

from thresher.errors import ThresherError

KEPT = "kept.parquet"
DROPPED = "dropped.parquet"
STATS = "stats.json"
MANIFEST = "manifest.json"
RESULT_FILES = (KEPT, DROPPED, STATS, MANIFEST)
HASHED = (KEPT, DROPPED, STATS)

#: fault injection for the kill tests: SIGKILL this process at the named point of a swap
KILL_ENV = "THRESHER_TEST_KILL_AT"


def kill_point(name: str) -> None:
    """SIGKILL the process here when ``$THRESHER_TEST_KILL_AT`` names this point (tests only)."""
    if os.environ.get(KILL_ENV) == name:
        os.kill(os.getpid(), signal.SIGKILL)


def staging(out: Path) -> Path:
    """The sibling folder a new result set is written into."""
    return out.parent / f".{out.name}.new"


def retired(out: Path) -> Path:
    """The sibling name the old folder takes during the swap."""
    return out.parent / f".{out.name}.old"


def read_manifest(folder: Path) -> dict[str, Any] | None:
    """The folder's manifest, or None when it has none (or it is unreadable)."""
    try:
        data = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _is_done(folder: Path) -> bool:
    m = read_manifest(folder)
    return bool(m and m.get("status") == "done")


def _rmtree(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    elif path.exists() or path.is_symlink():
        path.unlink()


def _carry(out: Path, new: Path) -> None:
    """Move every entry of ``out`` that is not part of its result set into ``new``."""
    for entry in sorted(out.iterdir()):
        if entry.name in RESULT_FILES or (new / entry.name).exists():
            continue
        os.rename(entry, new / entry.name)


def recover(out: str | os.PathLike) -> None:
    """Finish (new result complete) or undo (incomplete) a swap interrupted by a kill."""
    out = Path(out)
    new, old = staging(out), retired(out)
    if new.is_dir() and _is_done(new):
        if out.is_dir():
            _carry(out, new)
            os.rename(out, old)
        os.rename(new, out)
    elif new.exists():
        _rmtree(new)
    if old.exists():
        if out.exists():
            _rmtree(old)
        else:
            os.rename(old, out)


def swap_in(out: Path, write: Any) -> None:
    """Write a new result set with ``write(folder)`` into the staging folder, then swap it in
    (see the module docstring). ``write`` must write the manifest last."""
    recover(out)
    new = staging(out)
    _rmtree(new)
    new.mkdir(parents=True)
    write(new)
    kill_point("staged")
    if out.is_dir():
        _carry(out, new)
        kill_point("carried")
        os.rename(out, retired(out))
        kill_point("retired")
    os.rename(new, out)
    kill_point("swapped")
    _rmtree(retired(out))


# ---------------------------------------------------------------- file records and damage


def _size(path: Path) -> int:
    if path.is_dir():
        return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
    return path.stat().st_size


def _hash(path: Path) -> str:
    h = hashlib.blake2b(digest_size=16)
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 22), b""):
            h.update(chunk)
    return h.hexdigest()


def file_records(folder: Path) -> dict[str, dict[str, Any]]:
    """Size and hash of each result file (kept, dropped, stats) of ``folder``."""
    return {name: {"size": (folder / name).stat().st_size, "hash": _hash(folder / name)}
            for name in HASHED if (folder / name).is_file()}


def artefact_records(folder: Path, artefacts: dict[str, str]) -> dict[str, dict[str, Any]]:
    """Size of each named artefact (a file or a folder) under ``folder`` when it finished
    (informative: artefacts may be amended later, e.g. a model card; only their presence is checked)."""
    return {rel: {"size": _size(folder / rel), "artefact": True} for rel in artefacts.values()
            if rel not in HASHED and (folder / rel).exists()}


def damage(folder: str | os.PathLike, *, hashes: bool = True) -> str | None:
    """Why a finished stage folder no longer matches its manifest (a missing, truncated or
    changed file), or None when it matches (or records nothing to compare)."""
    folder = Path(folder)
    m = read_manifest(folder)
    if not m or m.get("status") != "done":
        return None
    for rel, rec in (m.get("files") or {}).items():
        p = folder / rel
        if not p.exists():
            return f"{rel} is missing"
        if rec.get("artefact"):
            continue
        size = _size(p)
        if size != rec.get("size"):
            return f"{rel} is damaged ({size} bytes, the manifest says {rec.get('size')})"
        if hashes and rec.get("hash") and p.is_file() and _hash(p) != rec["hash"]:
            return f"{rel} was changed after the stage finished (its hash differs from the manifest's)"
    return None


def artefact(folder: str | os.PathLike, name: str) -> Path | None:
    """The path of the stage's artefact ``name`` (``adapter``, ``merged``, ``clusters``,
    ``eval`` ...) as its manifest records it, or None when it has none."""
    folder = Path(folder)
    rel = ((read_manifest(folder) or {}).get("artefacts") or {}).get(name)
    if not rel:
        return None
    p = folder / rel
    return p if p.exists() else None


# ---------------------------------------------------------------- --out safety


def check_out(out: Path, stage: str, inputs: list[Path]) -> None:
    """Refuse (one line) an ``--out`` that holds another stage's results, a recipe run, or
    this stage's own input. ``--force`` skips the check."""
    hint = "choose another --out, or pass --force to replace it"
    m = read_manifest(out)
    if m and m.get("stage") not in (None, stage):
        raise ThresherError(f"{out}: holds the results of stage '{m['stage']}', not {stage}; {hint}")
    if (out / "recipe.yaml").is_file() or (out / "summary.json").is_file():
        raise ThresherError(f"{out}: is the run folder of a recipe; {hint}")
    target = out.resolve()
    for p in inputs:
        rp = Path(p).resolve()
        if rp == target or target in rp.parents:
            raise ThresherError(f"{out}: holds this stage's input {p}; {hint}")


def check_run_dir(run_dir: Path, recipe: str) -> None:
    """Refuse (one line) a recipe run folder that is a stage folder or another recipe's run."""
    hint = "choose another --out, or pass --force to replace it"
    m = read_manifest(run_dir)
    if m and m.get("stage"):
        raise ThresherError(f"{run_dir}: holds the results of stage '{m['stage']}', not a recipe run; {hint}")
    try:
        import yaml

        data = yaml.safe_load((run_dir / "recipe.yaml").read_text(encoding="utf-8"))
    except (OSError, ValueError, ImportError):
        return
    except Exception:  # noqa: BLE001 - an unreadable recipe.yaml is not ours to judge
        return
    other = data.get("name") if isinstance(data, dict) else None
    if other and other != recipe:
        raise ThresherError(f"{run_dir}: is the run folder of recipe '{other}', not '{recipe}'; {hint}")
