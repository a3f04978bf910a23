"""Stage folders on disk: in-place result swaps, locks, damage checks and ``--out`` safety.

A finished stage folder holds a *result set*: ``kept.parquet``, ``dropped.parquet``,
``stats.json`` and ``manifest.json`` (the manifest records every result file's size and hash,
the stage's named artefacts, and ``"kind": "thresher-stage"``, the mark that says thresher
made the folder). A recompute never writes the result set in place:

1. the new result set is written into ``OUT/.thresher-new/`` (manifest last: its finished
   manifest is the commit point);
2. the live manifest is withdrawn, the new kept/dropped/stats files are renamed over the live
   ones, and the new manifest last;
3. ``.thresher-new`` is removed.

Every rename happens inside the folder, so ``--out`` may be a symlink (written through: the
link stays, the target's other files are never moved), a mount point or a folder on another
filesystem. :func:`recover` (run whenever a stage folder is opened) finishes a swap whose new
manifest was written (roll forward) or drops an incomplete ``.thresher-new`` and stray
``.tmp`` files, so a stage folder is always either the old complete result or the new one.

Only one process writes a stage folder at a time: :func:`folder_lock` holds an advisory
``flock`` on ``OUT/.thresher.lock`` (released by the kernel when the process dies, so a kill
never leaves a stale lock); a second process names the holder (pid, host, since) and stops,
or waits with ``--wait``.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import json
import os
import re
import shutil
import signal
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from thresher.errors import ThresherError

KEPT = "kept.parquet"
DROPPED = "dropped.parquet"
STATS = "stats.json"
MANIFEST = "manifest.json"
RESULT_FILES = (KEPT, DROPPED, STATS, MANIFEST)
HASHED = (KEPT, DROPPED, STATS)
#: the staging folder inside a stage folder, the lock file, and the manifest's mark
STAGING = ".thresher-new"
LOCK = ".thresher.lock"
#: where a swap moves a replaced result folder (a folder of parts) before removing it
RETIRED = ".thresher-old"
#: where a streaming stage keeps its finished parts until the stage finishes (resume per part)
PARTS_WORK = ".thresher-parts"
KIND = "thresher-stage"
#: entries thresher itself keeps in a folder (a folder holding only these counts as empty)
OWN_ENTRIES = (STAGING, LOCK, RETIRED, PARTS_WORK)
#: temporary files :func:`thresher.io.atomic.atomic_path` leaves when a kill interrupts it
_TMP = re.compile(r"^\..+\.[a-z0-9_]{8}\.tmp$")

#: fault injection for the kill tests: SIGKILL this process at the named point of a swap
KILL_ENV = "THRESHER_TEST_KILL_AT"
HINT = "choose another --out, or pass --force to replace it"


def kill_point(name: str) -> None:
    """SIGKILL the process here when ``$THRESHER_TEST_KILL_AT`` names this point (tests only)."""
    if os.environ.get(KILL_ENV) == name:
        os.kill(os.getpid(), signal.SIGKILL)


def staging(out: Path) -> Path:
    """The folder (inside ``out``) a new result set is written into."""
    return Path(out) / STAGING


def read_manifest(folder: Path) -> dict[str, Any] | None:
    """The folder's manifest, or None when it has none (or it is unreadable)."""
    try:
        data = json.loads((Path(folder) / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def is_stage_manifest(m: dict[str, Any] | None) -> bool:
    """True for a manifest thresher wrote: its ``kind`` mark (or, before the mark existed,
    the ``stage`` and ``thresher`` keys every stage manifest has)."""
    if not m:
        return False
    return m.get("kind") == KIND or (isinstance(m.get("stage"), str) and "thresher" in m and "status" in m)


def _is_done(folder: Path) -> bool:
    m = read_manifest(folder)
    return bool(m and m.get("status") == "done")


def _rmtree(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    elif path.exists() or path.is_symlink():
        path.unlink()


def user_entries(folder: Path) -> list[str]:
    """The names in ``folder`` that thresher did not put there itself (its lock and staging)."""
    try:
        return sorted(e.name for e in Path(folder).iterdir() if e.name not in OWN_ENTRIES)
    except (FileNotFoundError, NotADirectoryError):
        return []


# ---------------------------------------------------------------- the lock


_held: dict[str, list[Any]] = {}  # lock path -> [fd, count]: re-entrant within a process
_wait = {"on": False}


def set_wait(on: bool) -> None:
    """Make :func:`folder_lock` wait for a busy folder instead of stopping (``--wait``)."""
    _wait["on"] = bool(on)


def _holder(fd: int) -> str:
    try:
        info = json.loads(os.pread(fd, 4096, 0).decode("utf-8") or "{}")
    except (OSError, ValueError):
        info = {}
    if not isinstance(info, dict) or not info.get("pid"):
        return "another thresher process"
    since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(info.get("since", 0)))
    what = f", {info['command']}" if info.get("command") else ""
    return f"pid {info['pid']} on {info.get('host', '?')}, since {since}{what}"


def _secondary_rank() -> bool:
    """A torchrun rank other than 0: rank 0 holds the lock for the whole group."""
    try:
        return int(os.environ.get("RANK", "0") or 0) != 0
    except ValueError:
        return False


def acquire(folder: str | os.PathLike, *, wait: bool | None = None, what: str = "folder") -> str | None:
    """Take the lock of ``folder`` (created) and return its key for :func:`release`, or None
    when this process is a secondary torchrun rank. A folder another process holds is a
    one-line error naming the holder, or (``wait``, default :func:`set_wait`) waited for."""
    if _secondary_rank():
        return None
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    key = os.path.realpath(folder / LOCK)
    if key in _held:
        _held[key][1] += 1
        return key
    wait = _wait["on"] if wait is None else wait
    try:
        fd = _lock_fd(folder, key, wait, what)
    except (PermissionError, OSError) as e:
        if isinstance(e, PermissionError) or e.errno == errno.EROFS:
            return None  # a read-only folder: nothing can write it (a finished result is still reused)
        raise
    import sys

    record = json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "since": time.time(),
                         "command": " ".join(["thresher", *sys.argv[1:3]])[:80]})
    with contextlib.suppress(OSError):
        os.ftruncate(fd, 0)
        os.pwrite(fd, record.encode(), 0)
    _held[key] = [fd, 1]
    return key


def _lock_fd(folder: Path, key: str, wait: bool, what: str) -> int:
    """An fd of the lock file holding its exclusive ``flock`` (the holder removes the file
    when it is done, so a lock taken on a file that was removed meanwhile is taken again)."""
    said = False
    while True:
        fd = os.open(key, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                who = _holder(fd)
                if not wait:
                    raise ThresherError(f"{folder}: this {what} is in use by {who}; wait for it to "
                                        "finish, or rerun with --wait") from None
                if not said:
                    from thresher.progress import info

                    info(f"{folder}: waiting for {who} to finish")
                    said = True
                fcntl.flock(fd, fcntl.LOCK_EX)
            if os.fstat(fd).st_ino == os.stat(key).st_ino:
                return fd
        except FileNotFoundError:
            pass  # removed by its holder between our open and lock: take the new one
        except BaseException:
            os.close(fd)
            raise
        os.close(fd)


def release(key: str | None) -> None:
    """Release a lock :func:`acquire` took (the last release of a re-entrant lock unlocks)."""
    if key is None or key not in _held:
        return
    _held[key][1] -= 1
    if _held[key][1] <= 0:
        fd = _held.pop(key)[0]
        with contextlib.suppress(OSError):
            os.unlink(key)  # removed while still locked: a waiter re-checks the inode
        with contextlib.suppress(OSError):
            fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


@contextlib.contextmanager
def folder_lock(folder: str | os.PathLike, *, wait: bool | None = None, what: str = "folder") -> Iterator[None]:
    """:func:`acquire` ... :func:`release` as a context manager."""
    key = acquire(folder, wait=wait, what=what)
    try:
        yield
    finally:
        release(key)


def _try_lock(folder: Path) -> tuple[bool, str | None]:
    """(may touch the folder, key to release): False when another process holds its lock."""
    key = os.path.realpath(folder / LOCK)
    if key in _held:
        return True, None
    try:
        fd = os.open(key, os.O_RDWR | os.O_CREAT, 0o666)
    except OSError:
        return False, None  # read-only: nothing to repair from here
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        same = os.fstat(fd).st_ino == os.stat(key).st_ino
    except (BlockingIOError, FileNotFoundError):
        same = False
    if not same:  # held, or taken and released meanwhile: leave the folder to its writer
        os.close(fd)
        return False, None
    _held[key] = [fd, 1]
    return True, key


# ---------------------------------------------------------------- the swap


def _commit(out: Path, new: Path, *, points: bool = False) -> None:
    """Move a finished result set from ``new`` into ``out``: live manifest withdrawn, result
    files renamed over the live ones, the new manifest last (also finishes a partial commit).
    ``points``: pass the kill points (a swap; never a recovery)."""
    point = kill_point if points else (lambda name: None)
    if (new / MANIFEST).exists():
        with contextlib.suppress(FileNotFoundError):
            (out / MANIFEST).unlink()
    point("carried")
    for name in HASHED:
        if (new / name).exists():
            _replace(new / name, out / name, out / RETIRED)
    point("retired")
    if (new / MANIFEST).exists():
        os.replace(new / MANIFEST, out / MANIFEST)
    point("swapped")
    _rmtree(new)
    _rmtree(out / RETIRED)


def _replace(src: Path, dst: Path, retired: Path) -> None:
    """Rename ``src`` over ``dst``; a folder (a Parquet dataset) cannot be renamed over, or onto
    a file, so the old entry is first moved into ``retired`` (removed once the swap is done)."""
    if (src.is_dir() or dst.is_dir()) and (dst.exists() or dst.is_symlink()):
        retired.mkdir(exist_ok=True)
        _rmtree(retired / dst.name)
        os.replace(dst, retired / dst.name)
    os.replace(src, dst)


def recover(out: str | os.PathLike) -> None:
    """Finish (new result committed) or undo (incomplete) a swap a kill interrupted, and
    remove stray temporary files; a folder another process is writing is left alone."""
    out = Path(out)
    try:
        names = os.listdir(out)
    except OSError:
        return
    tmps = [n for n in names if _TMP.match(n)]
    if STAGING not in names and RETIRED not in names and not tmps:
        return
    ok, key = _try_lock(out)
    if not ok:
        return
    try:
        new = staging(out)
        if new.is_dir() and not new.is_symlink() and _is_done(new):
            _commit(out, new)
        elif new.exists() or new.is_symlink():
            _rmtree(new)
        _rmtree(out / RETIRED)
        for n in tmps:
            with contextlib.suppress(OSError):
                (out / n).unlink()
    finally:
        release(key)


def swap_in(out: Path, write: Any) -> None:
    """Write a new result set with ``write(folder)`` into the staging folder, then swap it in
    (see the module docstring). ``write`` must write the manifest last. A full disk is a
    one-line error naming the file; the staging folder is removed and the old result stays."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    recover(out)
    new = staging(out)
    _rmtree(new)
    new.mkdir()
    try:
        write(new)
    except BaseException as e:
        _rmtree(new)
        if disk_full(e):
            raise ThresherError(f"{out}: no space left on device while writing the stage's results; "
                                "the previous result is unchanged (free some space and rerun)") from None
        raise
    kill_point("staged")
    _commit(out, new, points=True)


def disk_full(e: BaseException) -> bool:
    """True for an out-of-space error (``OSError`` ENOSPC/EDQUOT, or a polars/Arrow error
    that wraps one as ``os error 28``)."""
    if isinstance(e, OSError) and e.errno in (errno.ENOSPC, errno.EDQUOT):
        return True
    text = str(e)
    return "os error 28" in text or "no space left on device" in text.lower()


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
    """Size and hash of each result file (kept, dropped, stats) of ``folder``; a result that is
    a folder of Parquet parts has one record per part (``kept.parquet/part-00000.parquet``),
    with its row count."""
    from thresher.io import parts

    out: dict[str, dict[str, Any]] = {}
    for name in HASHED:
        p = folder / name
        if p.is_file():
            out[name] = {"size": p.stat().st_size, "hash": _hash(p)}
        elif p.is_dir():
            for f in parts.files(p):
                out[f"{name}/{f.name}"] = {"size": f.stat().st_size, "hash": _hash(f), "rows": parts.count(f)}
    return out


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
    files = m.get("files") or {}
    if not isinstance(files, dict) or not all(isinstance(r, dict) for r in files.values()):
        return "manifest.json is damaged (its file records are not a mapping of records)"
    extra = _unrecorded_parts(folder, files)
    if extra:
        return f"{extra} is not one of the parts the manifest records"
    for rel, rec in files.items():
        if Path(rel).is_absolute() or ".." in Path(rel).parts:
            return f"manifest.json is damaged (it records a file outside the folder: {rel!r})"
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


def _unrecorded_parts(folder: Path, files: dict[str, Any]) -> str | None:
    """The first part file of a result folder (``kept.parquet/``) the manifest does not record."""
    from thresher.io import parts

    for name in HASHED:
        if (folder / name).is_dir():
            for f in parts.files(folder / name):
                rel = f"{name}/{f.name}"
                if rel not in files:
                    return rel
    return None


def artefact(folder: str | os.PathLike, name: str) -> Path | None:
    """The path of the stage's artefact ``name`` (``adapter``, ``merged``, ``clusters``,
    ``eval`` ...) as its manifest records it, or None when it has none."""
    folder = Path(folder)
    names = (read_manifest(folder) or {}).get("artefacts") or {}
    rel = names.get(name) if isinstance(names, dict) else None
    if not rel or not isinstance(rel, str) or Path(rel).is_absolute() or ".." in Path(rel).parts:
        return None
    p = folder / rel
    return p if p.exists() else None


# ---------------------------------------------------------------- --out safety


def _shown(names: list[str]) -> str:
    head = ", ".join(names[:3])
    return head + (f" and {len(names) - 3} more" if len(names) > 3 else "")


def is_run_folder(folder: Path) -> bool:
    """True for a recipe run folder (``recipe.yaml``, ``summary.json`` or ``versions.json``)."""
    return any((Path(folder) / n).is_file() for n in ("recipe.yaml", "summary.json", "versions.json"))


def check_out(out: Path, stage: str, inputs: list[Path]) -> None:
    """Refuse (one line) an ``--out`` that holds another stage's results, a recipe run, this
    stage's own input, or anything thresher did not write (a non-empty folder without a
    thresher manifest: ``.``, ``..``, a project). ``--force`` skips the check, and so does a
    secondary torchrun rank (rank 0 checks; a secondary would race with its first writes)."""
    if _secondary_rank():
        return
    out = Path(out)
    m = read_manifest(out) or read_manifest(staging(out))  # in a swap window: the new one
    own = is_stage_manifest(m)
    if own and m.get("stage") != stage:  # type: ignore[union-attr]
        raise ThresherError(f"{out}: holds the results of stage '{m['stage']}', not {stage}; {HINT}")  # type: ignore[index]
    if (out / "recipe.yaml").is_file() or (out / "summary.json").is_file():
        raise ThresherError(f"{out}: is the run folder of a recipe; {HINT}")
    target = out.resolve()
    for p in inputs:
        rp = Path(p).resolve()
        if rp == target or target in rp.parents:
            raise ThresherError(f"{out}: holds this stage's input {p}; {HINT}")
    names = user_entries(out) if not own else []
    if names:
        raise ThresherError(f"{out}: is not empty and is not a thresher stage folder (it holds "
                            f"{_shown(names)}); {HINT}")


def check_run_dir(run_dir: Path, recipe: str) -> None:
    """Refuse (one line) a recipe run folder that is a stage folder, another recipe's run, or
    a non-empty folder that is not a run folder at all."""
    run_dir = Path(run_dir)
    m = read_manifest(run_dir)
    if is_stage_manifest(m):
        raise ThresherError(f"{run_dir}: holds the results of stage '{m['stage']}', not a recipe run; {HINT}")  # type: ignore[index]
    if not is_run_folder(run_dir):
        names = user_entries(run_dir)
        if names:
            raise ThresherError(f"{run_dir}: is not empty and is not a thresher run folder (it holds "
                                f"{_shown(names)}); {HINT}")
        return
    try:
        from thresher.yamlutil import safe_load  # an alias bomb planted there is refused at once

        data = safe_load((run_dir / "recipe.yaml").read_text(encoding="utf-8"))
    except Exception:  # noqa: BLE001 - an unreadable recipe.yaml is not ours to judge
        return
    other = data.get("name") if isinstance(data, dict) else None
    if other and other != recipe:
        raise ThresherError(f"{run_dir}: is the run folder of recipe '{other}', not '{recipe}'; {HINT}")
