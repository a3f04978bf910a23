"""The in-process half of the sandbox: run a candidate and its tests, then prove completion.

This file's text is piped to a fresh ``python -I -S -`` (inside the OS sandbox), followed by
``_thresher_harness(JOB)``. It uses the standard library only and never imports thresher.

The completion proof: the parent wrote a random nonce into ``JOB``. The candidate, its tests
and ``check(candidate)`` run in a worker thread (the main thread only sleeps: Python runs
signal handlers there, so a handler the candidate installs sees no harness frame). Before any
candidate code runs, the worker hands the nonce to a *holder thread* started with
``_thread.start_new_thread`` (the nonce is never bound in a frame the candidate can walk to)
and installs an audit hook that blocks the ways to reach another thread's frames or raw
memory (``sys._current_frames``, tracing, ``gc`` referrers, ``ctypes``, ``marshal``, forged
code objects, ``/proc``; from Python 3.13, whose frames' locals write through, every frame
object). Everything the worker uses after the candidate ran is bound before it ran. After
``check(candidate)`` has returned and nothing it relies on was patched, the worker reaches its
*done line* and wakes the holder. The holder writes ``THRESHER-PROOF <nonce>`` on the proof
descriptor only when it sees, from outside, the worker thread's top frame be the harness's
own frame at that very line. ``sys.exit``, ``os._exit``, ``atexit``, an exception
(``SystemExit`` included), a signal handler or another thread never get there, so they fail.
"""

# ruff: noqa: PLC0415


def _thresher_harness(job):
    """The main thread: preload, then run everything in a worker thread and sleep. Python
    runs signal handlers in the main thread, so a handler the candidate installs only ever
    sees this frame, which holds nothing."""
    import _thread
    import time

    for name in job.pop("preload"):  # modules the tests may use: imported (and snapshotted) first
        try:
            __import__(name)
        except ImportError:
            pass
    _thread.start_new_thread(_worker, (job,))
    del job
    while True:
        time.sleep(3600)


def _worker(job):
    import os

    try:
        _work(job)
    finally:
        os._exit(1)


def _work(job):
    import _thread
    import builtins
    import os
    import sys
    import time

    # everything used once the candidate has run is bound here, before it runs: the candidate
    # may rebind any module global or builtin, and reach (not rebind) these locals via frames
    _exit, unchanged, run, modules = os._exit, _unchanged, _run, sys.modules
    code, tests, entry = job.pop("code"), job.pop("tests"), job.pop("entry_point")
    tools = (exec, compile, _guard, _plain)
    proof_fd = _redirect_output(os)
    main_frame = sys._getframe()
    wake, done = _thread.allocate_lock(), _thread.allocate_lock()
    wake.acquire()
    done.acquire()
    done_line = main_frame.f_lineno + _DONE_OFFSET
    holder_ident = _thread.start_new_thread(_holder, (
        job.pop("nonce"), main_frame, done_line, _thread.get_ident(), wake, done, os.write, proof_fd,
        sys._current_frames, time.sleep))
    pristine = dict(vars(builtins))
    snapshot = _snapshot(sys, builtins, pristine)
    workdir = job.pop("workdir") or os.getcwd()
    if job.pop("guard"):  # off only in tests that measure what the OS level alone blocks
        sys.pycache_prefix = workdir + "/.pycache"  # no .pyc read: marshal.loads is refused from now on
        sys.dont_write_bytecode = True
        sys.addaudithook(_make_hook(holder_ident, workdir, os, sys))
    ok = False
    try:
        after = run(code, tests, entry, pristine, builtins, tools)
        ok = unchanged(snapshot, modules) and unchanged(after, modules)
    except BaseException:  # noqa: BLE001 - any exception (SystemExit, KeyboardInterrupt) is a fail
        ok = False
    if not ok:
        _exit(1)
    wake.release(); done.acquire()  # noqa: E702 - the done line (one line): the holder checks it
    _exit(0)


#: lines from ``done_line = ...`` to the done line in _work (a test pins it)
_DONE_OFFSET = 19


def _redirect_output(os):
    """Keep the proof channel (the original stdout) on another descriptor; the candidate's
    stdout and stderr go to /dev/null."""
    proof_fd = os.dup(1)
    null = os.open(os.devnull, os.O_WRONLY)
    os.dup2(null, 1)
    os.dup2(null, 2)
    os.close(null)
    return proof_fd


def _holder(nonce, main_frame, done_line, main_ident, wake, done, write, proof_fd, current_frames, sleep):
    """The holder thread. Everything it uses comes in its arguments: it looks up no global and
    no builtin, so nothing the candidate patches ever runs in this thread."""
    while True:
        wake.acquire()
        tries = 400
        while tries:
            tries -= 1
            top = current_frames().get(main_ident)
            if top is main_frame and top.f_lineno == done_line:
                write(proof_fd, ("THRESHER-PROOF " + nonce + "\n").encode())
                done.release()
                return
            top = None
            sleep(0.005)


def _snapshot(sys, builtins, pristine):
    """Every loaded module's public names (all of builtins, and of the tests' builtins copy), to
    detect patching: immutable tuples ``(name, module, its dict, ((key, value), ...))``."""
    out = []
    for name, mod in list(sys.modules.items()):
        if mod is None or name in ("__main__", "sys"):
            continue
        try:
            d = vars(mod)
        except TypeError:
            continue
        out.append((name, mod, d, tuple((k, v) for k, v in d.items() if not k.startswith("_"))))
    out.append(("<builtins>", builtins, vars(builtins), tuple(vars(builtins).items())))
    out.append(("<pristine>", None, pristine, tuple(pristine.items())))
    return tuple(out)


def _unchanged(snapshot, modules):
    """True when no module seen before the candidate ran was replaced or had a name rebound,
    and no guarded closure cell changed (it uses no global and no builtin)."""
    for name, mod, d, saved in snapshot:
        if name[0] != "<" and modules.get(name) is not mod:
            return False
        for k, v in saved:
            if name == "<cells>":
                if k.cell_contents is not v:
                    return False
            elif k not in d or d[k] is not v:
                return False
    return True


def _plain(value):
    """True when ``value`` is plain data: exact built-in types all the way down (an object of
    the candidate's own class, e.g. one whose ``__eq__`` is always true, is not). Builtins it
    uses are checked against patching after the tests."""
    plain = (int, float, complex, bool, str, bytes, type(None), list, tuple, dict, set, frozenset, range)
    budget, stack = 2_000_000, [value]
    while stack:
        budget -= 1
        if budget < 0:
            return False
        v = stack.pop()
        t = type(v)
        if t not in plain:
            return False
        if t is dict:
            stack.extend(v.keys())
            stack.extend(v.values())
        elif t is list or t is tuple or t is set or t is frozenset:
            stack.extend(v)
    return True


def _guard(fn, plain):
    def candidate(*args, **kwargs):
        result = fn(*args, **kwargs)
        if not plain(result):
            raise TypeError("thresher sandbox: the candidate returned an object that is not plain data")
        return result

    return candidate


def _run(code, tests_src, entry, pristine, builtins, tools):
    """Run the candidate's code, then the tests in a namespace with pristine builtins, then
    ``check(entry_point)``; any exception propagates (a fail). Returns what must still be
    unchanged afterwards: the tests' namespace and the guard's cells."""
    exec_, compile_, guard, plain = tools
    names = {"__name__": "__main__", "__builtins__": builtins}
    exec_(compile_(code, "<candidate>", "exec"), names)
    tests = {k: v for k, v in names.items() if k not in pristine}
    tests["__builtins__"] = pristine
    tests["__name__"] = "__main__"
    guarded = None
    if entry:
        if entry not in names:
            raise NameError("the candidate does not define " + entry)
        guarded = tests[entry] = guard(names[entry], plain)
    exec_(compile_(tests_src, "<tests>", "exec"), tests)
    after = (("<tests>", None, tests, tuple(tests.items())),)  # tuples: the candidate cannot edit them
    if guarded is not None:
        after += (("<cells>", None, None, tuple((c, c.cell_contents) for c in guarded.__closure__)),)
        check = tests.get("check")
        if check is None:
            raise NameError("the tests do not define check(candidate)")
        check(guarded)
    return after


_BLOCKED = frozenset({
    "sys._current_frames", "sys._current_exceptions", "sys.settrace", "sys.setprofile", "sys.addaudithook",
    "sys.monitoring.register_callback", "gc.get_objects", "gc.get_referrers", "gc.get_referents", "code.__new__",
    "os.fork", "os.forkpty", "os.system", "os.exec", "os.posix_spawn", "os.spawn", "subprocess.Popen",
    "os.kill", "os.killpg", "os.symlink", "os.link", "os.setxattr", "os.removexattr", "os.mknod", "os.mkfifo",
    "os.chroot", "_posixsubprocess.fork_exec", "pty.spawn", "marshal.loads", "marshal.load",
})
_BLOCKED_PREFIXES = ("ctypes.", "socket.", "cpython.", "_ctypes", "winreg.")
_PATH_EVENTS = frozenset({
    "os.remove", "os.rmdir", "os.mkdir", "os.chmod", "os.chown", "os.truncate", "os.utime", "os.rename",
    "shutil.rmtree", "shutil.copyfile", "shutil.copymode", "shutil.copystat", "shutil.copytree", "shutil.move",
    "shutil.chown", "os.chdir", "os.chflags", "os.lchflags",
})
_NO_IMPORT = frozenset({"ctypes", "_ctypes", "_ctypes_test", "_posixsubprocess", "_testcapi", "_testinternalcapi",
                        "_testbuffer", "_testmultiphase", "_testimportmultiple", "_testclinic", "_xxtestfuzz",
                        "_xxsubinterpreters"})
_WRITE_FLAGS = 1 | 2 | 64 | 512 | 1024  # O_WRONLY O_RDWR O_CREAT O_TRUNC O_APPEND


def _make_hook(holder_ident, workdir, os, sys):
    """The audit hook: refuses (raises) what the candidate may not do. It never looks up a
    global or a builtin at run time (the candidate could patch those): everything it uses is
    captured here, in cells only the hook's own function object reaches, which nothing
    references once it is installed."""
    get_ident = __import__("_thread").get_ident
    stat, fspath = os.stat, os.fspath
    is_str, is_bytes, is_int = str, bytes, int
    isinstance_, len_, refused, os_error, any_error = isinstance, len, PermissionError, OSError, Exception
    work = workdir.rstrip("/")
    work_b = work.encode()
    proc_dev = stat("/proc").st_dev if os.path.isdir("/proc/self") else -1
    blocked, prefixes, path_events, no_import = _BLOCKED, _BLOCKED_PREFIXES, _PATH_EVENTS, _NO_IMPORT
    write_flags, dir_bits, dir_mode = _WRITE_FLAGS, 0o170000, 0o040000
    # From Python 3.13 a frame's f_locals writes through (PEP 667): no frame object at all then
    # (before, frames are harmless: their locals are a read-only snapshot, and the holder's
    # thread is out of reach)
    frame_attrs = ("f_code", "tb_frame", "gi_frame", "cr_frame", "ag_frame") if sys.version_info >= (3, 13) \
        else ("f_code",)
    if sys.version_info >= (3, 13):
        blocked = blocked | {"sys._getframe"}

    def inside(p):
        """Textually inside the work folder (no symlink can be made, so text is enough)."""
        if isinstance_(p, is_bytes):
            if p == work_b or p.startswith(work_b + b"/"):
                return b"/.." not in p
            return not p.startswith(b"/") and not p.startswith(b"..") and b"/.." not in p
        if not isinstance_(p, is_str):
            return False
        if p == work or p.startswith(work + "/"):
            return "/.." not in p
        return not p.startswith("/") and not p.startswith("..") and "/.." not in p

    def check_open(path, mode, flags):
        if isinstance_(path, is_int):
            return
        try:
            path = fspath(path)
        except any_error:
            raise refused("thresher sandbox: open of an odd path") from None
        relative = not (path.startswith(b"/") if isinstance_(path, is_bytes) else path.startswith("/"))
        if relative and not inside(path):
            raise refused("thresher sandbox: a relative path leaving the work folder")
        try:
            st = stat(path)
        except os_error:
            st = None
        if st is not None and st.st_dev == proc_dev:
            raise refused("thresher sandbox: /proc is not readable")
        if st is not None and st.st_mode & dir_bits == dir_mode and not inside(path):
            raise refused("thresher sandbox: opening a directory outside the work folder")
        writes = (isinstance_(mode, is_str) and ("w" in mode or "a" in mode or "x" in mode or "+" in mode)) \
            or (isinstance_(flags, is_int) and flags & write_flags)
        if writes and not inside(path) and path not in ("/dev/null", b"/dev/null"):
            raise refused("thresher sandbox: writing outside the work folder")

    def hook(event, args):
        if event == "sys._current_frames" and get_ident() == holder_ident:
            return
        if event in blocked or event.startswith(prefixes):
            raise refused("thresher sandbox: " + event + " is not allowed")
        if event == "open" and len_(args) == 3:
            check_open(args[0], args[1], args[2])
        elif event in path_events:
            n = 2 if event in ("os.rename", "shutil.copyfile", "shutil.copytree", "shutil.move") else 1
            for p in args[:n]:
                if not inside(p):
                    raise refused("thresher sandbox: " + event + " outside the work folder")
        elif event == "import" and args and isinstance_(args[0], is_str) and args[0].split(".")[0] in no_import:
            raise refused("thresher sandbox: import " + args[0] + " is not allowed")
        elif event == "object.__getattr__" and len_(args) > 1 and args[1] in frame_attrs:
            raise refused("thresher sandbox: reading " + args[1] + " is not allowed")
        elif event == "object.__setattr__" and len_(args) > 1 and args[1] == "__code__":
            raise refused("thresher sandbox: replacing a function's code is not allowed")

    return hook
