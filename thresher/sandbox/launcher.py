"""The launcher: the candidate's parent, a process that holds no secret.

Run as ``python -I -S -c <this file's text> CONFIG_JSON`` with an empty environment, as a
throw-away uid when thresher runs as root, and (level ``namespaces``) as PID 1 of fresh
user, mount, PID, network, IPC and UTS namespaces. It never reads its stdin: the harness
script (with the nonce) goes straight through to the candidate's interpreter.

It makes the filesystem read-only except the work folder (namespaces), forks the candidate
in its own session with resource limits and Landlock, waits up to the timeout, kills the
candidate's whole process group, then every straggler (all processes of the throw-away uid,
or of the PID namespace), and writes one JSON status line on its stderr. Standard library
only; it never imports thresher.
"""

import ctypes
import json
import os
import resource
import signal
import sys
import time

SYS_MOUNT_SETATTR, SYS_LL_CREATE, SYS_LL_ADD, SYS_LL_RESTRICT = 442, 444, 445, 446
MS_BIND, MS_REC, MS_PRIVATE = 4096, 16384, 1 << 18
MOUNT_ATTR_RDONLY, AT_RECURSIVE, AT_FDCWD = 1, 0x8000, -100
PR_SET_NO_NEW_PRIVS, PR_SET_CHILD_SUBREAPER, PR_SET_PDEATHSIG = 38, 36, 1
# Landlock access rights (ABI 1..5) and scopes (ABI 6)
LL_EXECUTE, LL_WRITE_FILE, LL_REFER, LL_TRUNCATE = 1, 2, 1 << 13, 1 << 14
LL_WRITES_V1 = 2 | 16 | 32 | 64 | 128 | 256 | 512 | 1024 | 2048 | 4096  # write, remove, make_*
LL_NET_TCP = 1 | 2  # bind, connect
LL_SCOPES = 1 | 2  # abstract unix sockets, signals

_libc = ctypes.CDLL(None, use_errno=True)
_LINUX = sys.platform.startswith("linux")


class _MountAttr(ctypes.Structure):
    _fields_ = [("attr_set", ctypes.c_uint64), ("attr_clr", ctypes.c_uint64),
                ("propagation", ctypes.c_uint64), ("userns_fd", ctypes.c_uint64)]


class _RulesetAttr(ctypes.Structure):
    _fields_ = [("fs", ctypes.c_uint64), ("net", ctypes.c_uint64), ("scoped", ctypes.c_uint64)]


class _PathBeneath(ctypes.Structure):
    _pack_ = 1
    _fields_ = [("allowed", ctypes.c_uint64), ("parent_fd", ctypes.c_int32)]


def _check(result, what):
    if result < 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")
    return result


def setup_mounts(workdir):
    """Inside a fresh mount namespace: every mount read-only, the work folder writable."""
    _check(_libc.mount(b"none", b"/", None, MS_REC | MS_PRIVATE, None), "make mounts private")
    w = workdir.encode()
    _check(_libc.mount(w, w, None, MS_BIND, None), "bind the work folder")
    for path in _dangerous_extensions():  # C test modules that can break memory safety: hidden
        _check(_libc.mount(b"/dev/null", path.encode(), None, MS_BIND, None), f"hide {path}")
    ro = _MountAttr(MOUNT_ATTR_RDONLY, 0, 0, 0)
    _check(_libc.syscall(SYS_MOUNT_SETATTR, AT_FDCWD, b"/", AT_RECURSIVE, ctypes.byref(ro), ctypes.sizeof(ro)),
           "make / read-only")
    rw = _MountAttr(0, MOUNT_ATTR_RDONLY, 0, 0)
    _check(_libc.syscall(SYS_MOUNT_SETATTR, AT_FDCWD, w, 0, ctypes.byref(rw), ctypes.sizeof(rw)),
           "make the work folder writable")


def _dangerous_extensions():
    """CPython's C test and ctypes extension modules (they can read or write any memory)."""
    out = []
    for folder in sys.path:
        if folder.endswith("lib-dynload") and os.path.isdir(folder):
            out += [os.path.join(folder, f) for f in sorted(os.listdir(folder))
                    if f.startswith(("_test", "_ctypes", "_xx", "xx"))]
    return out


def landlock_abi():
    """The kernel's Landlock ABI version (0: none)."""
    r = _libc.syscall(SYS_LL_CREATE, None, 0, 1)
    return max(int(r), 0)


def _rule(ruleset, path, allowed):
    fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
    try:
        attr = _PathBeneath(allowed, fd)
        _check(_libc.syscall(SYS_LL_ADD, ruleset, 1, ctypes.byref(attr), 0), f"landlock rule {path}")
    finally:
        os.close(fd)


def apply_landlock(workdir, executables):
    """Restrict this process and its children: no write, delete or execute outside the work
    folder (executing only ``executables``), no TCP bind/connect (ABI >= 4), no signal or
    abstract socket outside the domain (ABI >= 6). Returns the ABI used."""
    abi = landlock_abi()
    if abi < 1:
        raise OSError("landlock unavailable")
    fs = LL_EXECUTE | LL_WRITES_V1 | (LL_REFER if abi >= 2 else 0) | (LL_TRUNCATE if abi >= 3 else 0)
    attr = _RulesetAttr(fs, LL_NET_TCP if abi >= 4 else 0, LL_SCOPES if abi >= 6 else 0)
    size = 24 if abi >= 6 else 16 if abi >= 4 else 8
    ruleset = _check(_libc.syscall(SYS_LL_CREATE, ctypes.byref(attr), size, 0), "landlock ruleset")
    try:
        _rule(ruleset, workdir, fs & ~LL_EXECUTE)
        _rule(ruleset, "/dev/null", LL_WRITE_FILE | (LL_TRUNCATE if abi >= 3 else 0))
        for exe in executables:
            if os.path.exists(exe):
                _rule(ruleset, exe, LL_EXECUTE)
        _check(_libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "no_new_privs")
        _check(_libc.syscall(SYS_LL_RESTRICT, ruleset, 0), "landlock restrict")
    finally:
        os.close(ruleset)
    return abi


def set_limits(cfg):
    """Resource limits of the candidate (they cannot be raised again from inside)."""
    lim = cfg["limits"]
    pairs = [(resource.RLIMIT_CPU, int(cfg["timeout"]) + 2), (resource.RLIMIT_AS, lim["memory"]),
             (resource.RLIMIT_FSIZE, lim["file"]), (resource.RLIMIT_NOFILE, lim["open_files"]),
             (resource.RLIMIT_CORE, 0)]
    if lim.get("processes"):  # the kernel ignores it for real root (then the namespace or guard bound forks)
        pairs.append((resource.RLIMIT_NPROC, lim["processes"]))
    for which, value in pairs:
        resource.setrlimit(which, (value, value))


def child(cfg):
    """In the forked child: own session, limits, Landlock, then exec the harness interpreter."""
    try:
        os.setsid()
        os.chdir(cfg["workdir"])
        null = os.open("/dev/null", os.O_WRONLY)
        os.dup2(null, 2)
        os.closerange(3, 65536)
        set_limits(cfg)
        if cfg.get("landlock"):
            apply_landlock(cfg["workdir"], cfg["executables"])
        py = cfg["python"]
        os.execve(py, [py, "-I", "-S", "-"], cfg["env"])
    finally:
        os._exit(127)


def wait(pid, timeout):
    """('exit', code) or ('timeout', None): waits for ``pid`` up to ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    delay = 0.002
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return "exit", os.waitstatus_to_exitcode(status)
        if time.monotonic() >= deadline:
            return "timeout", None
        time.sleep(delay)
        delay = min(delay * 2, 0.05)


def _children(me):
    out = []
    for entry in (os.listdir("/proc") if os.path.isdir("/proc/self") else []):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat", "rb") as f:
                    fields = f.read().rsplit(b")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == me:
                out.append(int(entry))
    return out


def kill_all(pgid, own_uid):
    """Kill the candidate's process group, then every straggler; reap them."""
    try:
        os.killpg(pgid, signal.SIGKILL)
    except OSError:
        pass
    for _ in range(200):
        if own_uid:  # a throw-away uid (or PID 1 of the namespace): kill(-1) reaches them all
            try:
                os.kill(-1, signal.SIGKILL)
            except OSError:
                pass
        else:  # we are their subreaper: orphans come to us
            for pid in _children(os.getpid()):
                try:
                    os.kill(pid, signal.SIGKILL)
                except OSError:
                    pass
        try:
            while os.waitpid(-1, os.WNOHANG)[0]:
                pass
        except ChildProcessError:
            return
        time.sleep(0.005)


def main():
    cfg = json.loads(sys.argv[1])
    status = {"status": "error"}
    try:
        if cfg.get("mounts"):
            setup_mounts(cfg["workdir"])
        if os.getpid() != 1 and _LINUX:
            _libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
        if cfg.get("probe"):
            status = {"status": "probe", "landlock": landlock_abi()}
            return
        started = time.monotonic()
        pid = os.fork()
        if pid == 0:
            child(cfg)
        kind, code = wait(pid, cfg["timeout"])
        status = {"status": kind, "code": code, "seconds": round(time.monotonic() - started, 4)}
        kill_all(pid, cfg.get("own_uid") or os.getpid() == 1)
    except OSError as e:
        status = {"status": "error", "error": str(e)}
    finally:
        os.write(2, (json.dumps(status) + "\n").encode())


if __name__ == "__main__":
    main()
