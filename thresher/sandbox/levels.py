"""Sandbox levels: which isolation this machine allows, probed once per process.

From strongest to weakest (the first that works is used; ``THRESHER_SANDBOX_LEVEL`` or the
``level`` argument caps it, e.g. to test a weaker one):

- ``container``: ``--sandbox CMD``, a command that runs ``python -`` in a container of the
  user's choice (``docker run --rm --network none -i IMAGE python -``);
- ``namespaces``: ``unshare`` (else ``bwrap``) user+mount+PID+network+IPC+UTS namespaces (no network at all,
  only the namespace's own processes in /proc, every mount read-only except the work folder),
  plus Landlock where the kernel has it;
- ``landlock``: Landlock (Linux >= 5.13): nothing outside the work folder is writable,
  nothing but Python executable; TCP bind/connect refused from ABI 4, signals and abstract
  sockets outside the sandbox from ABI 6;
- ``fallback``: resource limits, own session and the in-process guard only (one warning line
  per run: network and filesystem are not isolated).

Every level also has: resource limits (CPU time, address space, file size, open files and,
where it means something, processes), a launcher parent with an empty environment, the
process group killed at the timeout and after exit, a throw-away uid when thresher runs as
root, and the in-process guard and completion proof of :mod:`thresher.sandbox.harness`.
"""

from __future__ import annotations

import functools
import os
import shlex
import shutil
import stat
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path

ORDER = ("container", "namespaces", "landlock", "fallback")
UNSHARE_FLAGS = ("--user", "--map-root-user", "--net", "--pid", "--fork", "--mount", "--mount-proc", "--ipc",
                 "--uts", "--kill-child")
#: bubblewrap: the same namespaces, read-only root, fresh /dev and /proc (the work folder and
#: the hidden C modules are added per run)
BWRAP_FLAGS = ("--unshare-all", "--die-with-parent", "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc")
MEASURES = {
    "container": ("the user's container command",),
    "namespaces": ("user, mount, PID, network, IPC and UTS namespaces", "read-only filesystem except the work folder",
                   "own /proc (no other process visible)", "no network interface"),
    "landlock": ("Landlock: writes and execution confined to the work folder and Python",),
    "fallback": (),
}
COMMON = ("rlimits (CPU, address space, file size, open files)", "own session, killed whole",
          "launcher parent with an empty environment", "in-process guard (audit hook) and completion proof")
FALLBACK_WARNING = ("thresher: warning: code sandbox level 'fallback': network and filesystem are not isolated "
                    "(no user namespaces or Landlock here); use --sandbox CMD to run code in a container")


@dataclass(frozen=True)
class Level:
    """One way of running untrusted code, with what it blocks."""

    name: str
    """container, namespaces, landlock or fallback."""
    python: str = sys.executable
    """The interpreter that runs the harness (one the throw-away uid can execute)."""
    prefix: tuple[str, ...] = ()
    """The command before the launcher (``unshare ...``), or the container command."""
    landlock: int = 0
    """Landlock ABI applied to the candidate (0: none)."""
    drop_uid: bool = False
    """Run as a throw-away uid (thresher runs as root)."""
    measures: tuple[str, ...] = field(default=())
    """What this level does, in words (stats and report)."""

    @property
    def tool(self) -> str | None:
        """unshare or bwrap for the namespaces level."""
        return Path(self.prefix[0]).name if self.name == "namespaces" and self.prefix else None

    @property
    def warning(self) -> str | None:
        """The one line a run prints when the level does not isolate network and filesystem."""
        if self.name == "fallback":
            return FALLBACK_WARNING
        if self.name == "landlock" and self.landlock < 4:
            return (f"thresher: warning: code sandbox level 'landlock' (ABI {self.landlock}): the network is "
                    "not isolated; use --sandbox CMD to run code in a container")
        return None

    def describe(self) -> dict:
        """The level as recorded in stats: name, measures, warning."""
        return {"level": self.name, "measures": list(self.measures), "landlock_abi": self.landlock,
                "throwaway_uid": self.drop_uid, "warning": self.warning}


def landlock_abi() -> int:
    """The kernel's Landlock ABI version (0 when absent or not Linux)."""
    if not sys.platform.startswith("linux"):
        return 0
    import ctypes

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return max(int(libc.syscall(444, None, 0, 1)), 0)
    except (OSError, AttributeError):
        return 0


@functools.lru_cache(maxsize=8)
def dangerous_extensions(python: str) -> tuple[str, ...]:
    """CPython's C test and ctypes extension modules of ``python`` (they can read or write any
    memory): hidden inside the namespaces."""
    import subprocess

    code = ("import os, sys\nfor d in sys.path:\n    if d.endswith('lib-dynload') and os.path.isdir(d):\n"
            "        for f in sorted(os.listdir(d)):\n            if f.startswith(('_test', '_ctypes', '_xx', 'xx')):\n"
            "                print(os.path.join(d, f))\n")
    try:
        out = subprocess.run([python, "-I", "-S", "-c", code], capture_output=True, text=True, timeout=30,
                             env={"PATH": "/usr/bin:/bin"}).stdout
    except (OSError, subprocess.SubprocessError):
        return ()
    return tuple(line for line in out.splitlines() if line.startswith("/"))


def _world_usable(path: str) -> bool:
    """Every folder above ``path`` is searchable by others and ``path`` readable+executable."""
    p = Path(os.path.realpath(path))
    try:
        for parent in p.parents:
            if not os.stat(parent).st_mode & stat.S_IXOTH:
                return False
        return os.stat(p).st_mode & (stat.S_IROTH | stat.S_IXOTH) == (stat.S_IROTH | stat.S_IXOTH)
    except OSError:
        return False


def interpreter(drop_uid: bool) -> str | None:
    """A Python the candidate's uid can run: this one, else the system's python3."""
    if not drop_uid:
        return sys.executable
    here = [(sys.executable, sys.base_prefix)]
    others = [(p, str(Path(os.path.realpath(p)).parent.parent)) for p in ("/usr/bin/python3", "/usr/local/bin/python3")]
    for exe, prefix in here + others:
        if os.path.exists(exe) and _world_usable(exe) and _world_usable(os.path.join(prefix, "lib")):
            return exe
    return None


@functools.lru_cache(maxsize=8)
def elf_interpreter(exe: str) -> str | None:
    """The dynamic loader an ELF executable names (PT_INTERP), for the Landlock execute rule."""
    import struct

    try:
        with open(os.path.realpath(exe), "rb") as f:
            head = f.read(64)
            if head[:4] != b"\x7fELF" or head[4] != 2:
                return None
            phoff, = struct.unpack_from("<Q", head, 32)
            phentsize, phnum = struct.unpack_from("<HH", head, 54)
            f.seek(phoff)
            table = f.read(phentsize * phnum)
            for i in range(phnum):
                p_type, _, p_offset, _, _, p_filesz = struct.unpack_from("<IIQQQQ", table, i * phentsize)
                if p_type == 3:
                    f.seek(p_offset)
                    return f.read(p_filesz).rstrip(b"\0").decode()
    except (OSError, struct.error, UnicodeDecodeError):
        return None
    return None


def build(name: str, sandbox_cmd: str | None = None, tool: str = "unshare") -> Level | None:
    """The Level ``name`` as this machine would run it (None when it cannot exist here);
    ``tool`` makes the namespaces with ``unshare`` or ``bwrap`` (bubblewrap)."""
    root = hasattr(os, "geteuid") and os.geteuid() == 0
    if name == "container":
        if not sandbox_cmd:
            return None
        return Level("container", prefix=tuple(shlex.split(sandbox_cmd)), measures=MEASURES["container"])
    python = interpreter(root)
    if python is None:
        python, root = sys.executable, False
    abi = landlock_abi()
    if name == "namespaces":
        exe = shutil.which(tool)
        if not exe or not sys.platform.startswith("linux"):
            return None
        extra = (f"made with {tool}",) + ((f"Landlock ABI {abi}",) if abi else ())
        prefix = (exe, *UNSHARE_FLAGS) if tool == "unshare" else (exe, *BWRAP_FLAGS)
        return Level(name, python, prefix, abi, root, MEASURES[name] + extra + COMMON)
    if name == "landlock":
        if abi < 1:
            return None
        return Level(name, python, (), abi, root, MEASURES[name] + (f"Landlock ABI {abi}",) + COMMON)
    if name == "fallback":
        return Level(name, python, (), 0, root, COMMON + (("throw-away uid",) if root else ()))
    raise ValueError(f"unknown sandbox level {name!r} (expected one of {', '.join(ORDER)})")


_WARNED: set[str] = set()
_WARN_LOCK = threading.Lock()


def warn_once(level: Level) -> None:
    """Print the level's warning line on stderr, once per process."""
    w = level.warning
    with _WARN_LOCK:
        if not w or w in _WARNED:
            return
        _WARNED.add(w)
    print(w, file=sys.stderr, flush=True)
