"""Run one candidate program and its tests in the sandbox, and many in parallel workers."""

from __future__ import annotations

import json
import os
import secrets
import selectors
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from thresher.sandbox.levels import (
    ORDER,
    Level,
    build,
    dangerous_extensions,
    elf_interpreter,
    warn_once,
)

_HERE = Path(__file__).parent
#: modules imported (and snapshotted against patching) before the candidate runs
PRELOAD = ("math", "random", "copy", "itertools", "functools", "collections", "re", "string", "heapq", "bisect",
           "operator", "hashlib")
_TAIL = 65536
#: seconds a container command gets on top of the timeout (to start)
CONTAINER_GRACE = 5.0


@dataclass(frozen=True)
class Limits:
    """Resource limits of one candidate run."""

    timeout: float = 10.0
    """Wall-clock seconds before the candidate is killed (CPU time is capped at the same)."""
    memory_mb: int = 2048
    """Address space (RLIMIT_AS), MiB."""
    file_mb: int = 16
    """Largest file the candidate may write (RLIMIT_FSIZE), MiB."""
    open_files: int = 128
    """Open file descriptors (RLIMIT_NOFILE)."""
    processes: int = 32
    """Processes of the throw-away uid (RLIMIT_NPROC; applied only with a throw-away uid)."""


@dataclass(frozen=True)
class Outcome:
    """The verdict of one run."""

    passed: bool
    """The tests ran to the end and passed (the completion proof came back)."""
    reason: str
    """passed, failed (tests failed or the code raised), no-proof (exited 0 without the
    proof: an early exit), timeout, or sandbox-error."""
    level: str
    """The sandbox level that ran it."""
    seconds: float
    """Wall time of the candidate."""


def _script(code: str, tests: str, entry_point: str | None, nonce: str, workdir: str | None,
            guard: bool = True) -> bytes:
    job = {"code": code, "tests": tests or "", "entry_point": entry_point or None, "nonce": nonce,
           "workdir": workdir, "preload": list(PRELOAD), "guard": guard}
    src = (_HERE / "harness.py").read_text(encoding="utf-8")
    return (src + f"\n_thresher_harness({job!r})\n").encode("utf-8")


def _command(level: Level, workdir: str, limits: Limits, uid: int | None) -> list[str]:
    if level.name == "container":
        return list(level.prefix)
    exe = os.path.realpath(level.python)
    cfg = {"workdir": workdir, "timeout": limits.timeout, "python": level.python,
           "mounts": level.name == "namespaces", "landlock": level.landlock > 0, "own_uid": uid is not None,
           "executables": [exe, *filter(None, [elf_interpreter(exe)])],
           "env": {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "HOME": workdir, "TMPDIR": workdir,
                   "PYTHONDONTWRITEBYTECODE": "1", "PYTHONHASHSEED": "0", "OMP_NUM_THREADS": "1",
                   "OPENBLAS_NUM_THREADS": "1"},
           "limits": {"memory": limits.memory_mb << 20, "file": limits.file_mb << 20, "open_files": limits.open_files,
                      "processes": limits.processes + (0 if uid is not None else _own_processes())}}
    prefix = list(level.prefix)
    if level.tool == "bwrap":  # bubblewrap mounts itself: the work folder rw, the C test modules hidden
        cfg["mounts"], cfg["own_uid"] = False, True  # and the launcher is inside a PID namespace
        hide = [a for so in dangerous_extensions(level.python) if not Path(so).name.startswith("_ctypes.")
                for a in ("--ro-bind", "/dev/null", so)]  # the launcher itself needs _ctypes (audited anyway)
        prefix += [*hide, "--bind", workdir, workdir, "--chdir", workdir, "--"]
    src = (_HERE / "launcher.py").read_text(encoding="utf-8")
    return [*prefix, level.python, "-I", "-S", "-c", src, json.dumps(cfg)]


def _own_processes() -> int:
    """Processes of this uid now (RLIMIT_NPROC counts them all: the candidate gets a margin above)."""
    me, n = os.getuid(), 0
    for entry in (os.listdir("/proc") if os.path.isdir("/proc/self") else []):
        try:
            n += entry.isdigit() and os.stat(f"/proc/{entry}").st_uid == me
        except OSError:
            continue
    return n


def _communicate(proc: subprocess.Popen, data: bytes, timeout: float) -> tuple[bytes, bytes, bool]:
    """Feed stdin, keep the last 64 KiB of stdout and stderr; (out, err, timed_out)."""
    sel = selectors.DefaultSelector()
    bufs = {proc.stdout: b"", proc.stderr: b""}
    for pipe in bufs:
        os.set_blocking(pipe.fileno(), False)
        sel.register(pipe, selectors.EVENT_READ)
    view = memoryview(data)
    os.set_blocking(proc.stdin.fileno(), False)
    sel.register(proc.stdin, selectors.EVENT_WRITE)
    deadline = time.monotonic() + timeout
    while sel.get_map():
        left = deadline - time.monotonic()
        if left <= 0:
            return bufs[proc.stdout], bufs[proc.stderr], True
        for key, _ in sel.select(min(left, 1.0)):
            if key.fileobj is proc.stdin:
                try:
                    n = os.write(proc.stdin.fileno(), view[:65536])
                except (BrokenPipeError, BlockingIOError) as e:
                    n = 0 if isinstance(e, BlockingIOError) else len(view)
                view = view[n:]
                if not len(view):
                    sel.unregister(proc.stdin)
                    proc.stdin.close()
                continue
            chunk = os.read(key.fileobj.fileno(), 65536)
            if not chunk:
                sel.unregister(key.fileobj)
                continue
            bufs[key.fileobj] = (bufs[key.fileobj] + chunk)[-_TAIL:]
    return bufs[proc.stdout], bufs[proc.stderr], False


def _kill_uid(uid: int) -> None:
    """SIGKILL every process of the throw-away ``uid`` (a backstop after the launcher)."""
    for _ in range(20 if os.path.isdir("/proc/self") else 0):
        found = False
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                if os.stat(f"/proc/{entry}").st_uid == uid:
                    os.kill(int(entry), signal.SIGKILL)
                    found = True
            except OSError:
                continue
        if not found:
            return
        time.sleep(0.01)


def _remove(workdir: str) -> None:
    """Delete the work folder, even where the candidate took permissions away."""
    try:
        shutil.rmtree(workdir)
    except OSError:
        for root, dirs, _ in os.walk(workdir):
            for d in dirs:
                try:
                    os.chmod(os.path.join(root, d), 0o700)
                except OSError:
                    pass
        shutil.rmtree(workdir, ignore_errors=True)


def _verdict(out: bytes, err: bytes, nonce: str, level: Level, timed_out: bool, seconds: float) -> Outcome:
    proof = f"THRESHER-PROOF {nonce}".encode()
    proved = proof in out.splitlines()
    status: dict = {}
    if level.name != "container":
        for line in reversed(err.splitlines()):
            try:
                status = json.loads(line)
                break
            except ValueError:
                continue
        seconds = float(status.get("seconds", seconds))
        if status.get("status") == "error":
            return Outcome(False, "sandbox-error", level.name, seconds)
    if timed_out or status.get("status") == "timeout":
        return Outcome(False, "timeout", level.name, seconds)
    if proved:
        return Outcome(True, "passed", level.name, seconds)
    return Outcome(False, "no-proof" if status.get("code") == 0 else "failed", level.name, seconds)


def run_check(code: str, tests: str, entry_point: str | None = None, *, limits: Limits = Limits(),
              sandbox: str | None = None, level: Level | None = None, _guard: bool = True) -> Outcome:
    """Run ``code`` then ``tests`` (HumanEval: defines ``check(candidate)``, called with the
    function ``entry_point``; without one the tests are plain asserts) in the sandbox.
    Passes only when the completion proof comes back: the tests ran to the end."""
    level = level or detect(sandbox)
    warn_once(level)
    nonce = "tn-" + secrets.token_hex(16)
    workdir = os.path.realpath(tempfile.mkdtemp(prefix="thresher-sandbox-"))
    uid = 1_000_000 + secrets.randbelow(1_000_000_000) if level.drop_uid and level.name != "container" else None
    if uid is not None:
        os.chown(workdir, uid, uid)
    script = _script(code, tests, entry_point, nonce, None if level.name == "container" else workdir, _guard)
    kwargs = {"user": uid, "group": uid, "extra_groups": []} if uid is not None else {}
    started = time.monotonic()
    try:
        proc = subprocess.Popen(_command(level, workdir, limits, uid), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, env={"PATH": "/usr/bin:/bin"}, cwd=workdir,
                                start_new_session=True, close_fds=True, **kwargs)
    except OSError:
        _remove(workdir)
        return Outcome(False, "sandbox-error", level.name, 0.0)
    try:
        grace = CONTAINER_GRACE if level.name == "container" else 15.0  # else the launcher times it
        out, err, timed_out = _communicate(proc, script, limits.timeout + grace)
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except OSError:
            pass
        proc.wait()
        for pipe in (proc.stdin, proc.stdout, proc.stderr):
            pipe.close()
        if uid is not None:
            _kill_uid(uid)
        _remove(workdir)
    return _verdict(out, err, nonce, level, timed_out, time.monotonic() - started)


def probe(level: Level) -> bool:
    """True when ``level`` works here: a right answer passes and a wrong one fails."""
    tests = "def check(c):\n    assert c(2) == 3\n"
    good = run_check("def f(x):\n    return x + 1\n", tests, "f", level=level, limits=Limits(timeout=20))
    if not good.passed:
        return False
    return not run_check("def f(x):\n    return x\n", tests, "f", level=level, limits=Limits(timeout=20)).passed


_LOCK = threading.Lock()
_CHOSEN: dict[tuple[str | None, str | None], Level] = {}


def detect(sandbox_cmd: str | None = None, cap: str | None = None) -> Level:
    """The strongest level that works here (probed with a real check, once per process).
    ``cap`` (or ``THRESHER_SANDBOX_LEVEL``) names the strongest level to consider."""
    cap = cap or os.environ.get("THRESHER_SANDBOX_LEVEL") or None
    if cap is not None and cap not in ORDER:
        raise ValueError(f"THRESHER_SANDBOX_LEVEL: unknown level {cap!r} (expected one of {', '.join(ORDER)})")
    key = (sandbox_cmd, cap)
    with _LOCK:
        if key in _CHOSEN:
            return _CHOSEN[key]
        names = ORDER[ORDER.index(cap):] if cap else ORDER
        tries = [(n, t) for n in names for t in (("unshare", "bwrap") if n == "namespaces" else ("",))]
        for name, tool in tries:
            level = build(name, sandbox_cmd, tool or "unshare")
            if level is not None and (name in ("container", "fallback") or probe(level)):
                _CHOSEN[key] = level
                return level
    raise RuntimeError("no sandbox level works")  # fallback always does


def _cpus() -> int:
    """The CPUs this process may use (its affinity where the platform tells it)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def verify_many(jobs: Iterable[Sequence[str | None]], *, workers: int | None = None, limits: Limits = Limits(),
                sandbox: str | None = None, level: Level | None = None) -> list[Outcome]:
    """``run_check`` over ``(code, tests, entry_point)`` jobs with ``workers`` parallel
    sandboxes (default: the CPU count), results in input order."""
    jobs = list(jobs)
    if not jobs:
        return []
    level = level or detect(sandbox)
    n = max(1, min(workers or _cpus(), len(jobs)))
    with ThreadPoolExecutor(max_workers=n) as pool:
        return list(pool.map(lambda j: run_check(j[0], j[1], j[2] if len(j) > 2 else None, limits=limits,
                                                 level=level), jobs))
