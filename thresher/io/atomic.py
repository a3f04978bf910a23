"""Atomic writes: write to a temporary sibling, then rename over the target.

An interrupted run never leaves a file (or folder) that looks complete.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from thresher.errors import ThresherError


def current_umask() -> int:
    """The process umask (read without changing it where /proc allows)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)  # no /proc: the classic set-and-restore
    os.umask(mask)
    return mask


def file_mode() -> int:
    """The mode a plain ``open(path, "w")`` would give a new file: 0o666 minus the umask."""
    return 0o666 & ~current_umask()


def _check_target(target: Path, is_dir: bool) -> None:
    """One-line errors for an output that is a folder, or whose parent is a file."""
    if not is_dir and target.is_dir():
        raise ThresherError(f"{target}: is a folder; give a file name (e.g. {target / 'out.parquet'})")
    for anc in target.parents:
        if anc.exists():
            if not anc.is_dir():
                raise ThresherError(f"{target}: {anc} is a file, not a folder")
            break


def honour_umask(folder: str | os.PathLike) -> None:
    """Give every file under ``folder`` the plain-``open()`` mode (some writers, e.g.
    safetensors, create their files 0600 whatever the umask)."""
    want = file_mode()
    for root, _dirs, files in os.walk(folder):
        for name in files:
            p = os.path.join(root, name)
            with contextlib.suppress(OSError):
                if not os.path.islink(p) and (os.stat(p).st_mode & 0o777) != want:
                    os.chmod(p, want)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, *, is_dir: bool = False) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; on success rename it to ``path``.

    On an exception the temporary file or folder is removed and ``path`` is untouched. The
    file gets the mode a plain ``open()`` would give it (0o666 minus the umask), not 0600.
    """
    target = Path(path)
    _check_target(target, is_dir)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    except PermissionError:
        raise ThresherError(f"{target}: cannot write in {target.parent} (permission denied)") from None
    except OSError as e:
        raise ThresherError(f"{target}: cannot write in {target.parent} ({e.strerror or e})") from None
    try:
        os.fchmod(fd, file_mode())  # mkstemp's 0600 would survive the rename
    finally:
        os.close(fd)
    tmp = Path(tmp_name)
    if is_dir:
        tmp.unlink()
    try:
        yield tmp
        if is_dir:
            honour_umask(tmp)
            if target.exists():
                old = target.with_name(f".{target.name}.old")
                shutil.rmtree(old, ignore_errors=True)
                target.rename(old)
                tmp.rename(target)
                shutil.rmtree(old, ignore_errors=True)
            else:
                tmp.rename(target)
        else:
            with open(tmp, "rb") as fh:
                os.fsync(fh.fileno())
            os.replace(tmp, target)
    except BaseException as e:
        if tmp.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
        if isinstance(e, OSError) and e.errno == errno.ENOSPC:  # name the file, not a temp name or none
            raise ThresherError(f"{target}: no space left on device; nothing was written "
                                "(free some space and rerun)") from None
        raise


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` to ``path`` atomically (UTF-8)."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
