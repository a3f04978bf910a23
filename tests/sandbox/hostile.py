"""Hostile answers for the sandbox tests: each defines ``f(x)`` (the tests want ``x + 1``).

Each answer returns the right value only when its attack worked, and raises otherwise, so a
pass means the sandbox let the attack through. The evidence of the attack is also checked
from outside (marker files, the victim file, processes, the TCP server's connections).
"""

from __future__ import annotations

import os
import socket
import threading
import time
from pathlib import Path

TESTS = "def check(candidate):\n    assert candidate(2) == 3\n    assert candidate(10) == 11\n"
GOOD = "def f(x):\n    return x + 1\n"
WRONG = "def f(x):\n    return x\n"
TOKEN = "thresher-hostile-7f3a9"


def environ(secret: str, pids: list[int]) -> str:
    """Reads the environment of its parent, every ancestor and ``pids``; passes if it sees ``secret``."""
    return f"""
import os
def f(x):
    seen = ''
    pids = {pids!r}
    p = os.getppid()
    while p > 1:
        pids.append(p)
        with open(f'/proc/{{p}}/stat') as s:
            p = int(s.read().rsplit(')', 1)[1].split()[1])
    for p in pids:
        try:
            with open(f'/proc/{{p}}/environ', 'rb') as e:
                seen += e.read().decode(errors='replace')
        except OSError:
            pass
    if {secret!r} not in seen:
        raise RuntimeError('no secret')
    return x + 1
"""


def write_outside(marker: Path, victim: Path) -> str:
    return f"""
import os
def f(x):
    with open({str(marker)!r}, 'w') as fh:
        fh.write('pwned')
    os.remove({str(victim)!r})
    return x + 1
"""


def run_program(marker: Path) -> str:
    return f"""
import subprocess
def f(x):
    subprocess.run(['touch', {str(marker)!r}], check=True)
    return x + 1
"""


def leave_child(marker: Path) -> str:
    """A double-forked, setsid child that writes ``marker`` 2 s later, and a long sleep."""
    return f"""
import os, subprocess, time
def f(x):
    subprocess.Popen(['sleep', '37.{TOKEN[-5:]}'], start_new_session=True)
    if os.fork() == 0:
        os.setsid()
        if os.fork() == 0:
            time.sleep(2)
            with open({str(marker)!r}, 'w') as fh:
                fh.write('late')
        os._exit(0)
    return x + 1
"""


FORK_BOMB = """
import os
def f(x):
    while True:
        os.fork()
"""
ALLOCATE_8GB = """
def f(x):
    block = bytearray(8 << 30)
    return x + 1 + len(block) * 0
"""
SLEEP = """
import time
def f(x):
    time.sleep(60)
    return x + 1
"""


def connect(port: int) -> str:
    """Connects with the socket module, ``_socket`` and after reloading socket."""
    return f"""
import importlib, _socket, socket
def f(x):
    s = _socket.socket(_socket.AF_INET, _socket.SOCK_STREAM)
    s.settimeout(2)
    s.connect(('127.0.0.1', {port}))
    s.close()
    importlib.reload(socket)
    socket.create_connection(('127.0.0.1', {port}), timeout=2).close()
    return x + 1
"""


EARLY_EXITS = {
    "sys.exit(0)": "import sys\ndef f(x):\n    return x\nsys.exit(0)\n",
    "sys.exit in f": "import sys\ndef f(x):\n    sys.exit(0)\n",
    "os._exit(0)": "import os\ndef f(x):\n    return x\nos._exit(0)\n",
    "os._exit in f": "import os\ndef f(x):\n    os._exit(0)\n",
    "atexit": "import atexit, os\natexit.register(lambda: os._exit(0))\ndef f(x):\n    return x\n",
    "raise SystemExit": "def f(x):\n    raise SystemExit(0)\n",
    "patch builtins": "import builtins\nbuiltins.AssertionError = type('N', (Exception,), {})\ndef f(x):\n    return x\n",
    "always equal": "class E:\n    def __eq__(self, o):\n        return True\ndef f(x):\n    return E()\n",
    "shadow builtins": "def abs(v):\n    return 0\ndef f(x):\n    return x\n",
    "exit from a thread": ("import threading, os, time\ndef f(x):\n    threading.Thread(target=lambda: os._exit(0))"
                           ".start()\n    time.sleep(1)\n    return x\n"),
    "frame walk": ("import sys\ndef f(x):\n    fr = sys._getframe()\n    while fr.f_back:\n        fr = fr.f_back\n"
                   "    for v in list(fr.f_locals.values()):\n        if hasattr(v, 'release'):\n"
                   "            try:\n                v.release()\n            except Exception:\n                pass\n"
                   "    return x\n"),
    "current frames": "import sys\ndef f(x):\n    sys._current_frames()\n    return x\n",
    "read own memory": "def f(x):\n    open('/proc/self/mem', 'rb')\n    return x\n",
    "swap the tests": ("import sys\nfr = sys._getframe()\nwhile fr:\n    for k in ('tests', 'tests_src'):\n"
                       "        if k in fr.f_locals:\n            fr.f_locals[k] = 'def check(c):\\n    pass\\n'\n"
                       "    fr = fr.f_back\ndef f(x):\n    return x\n"),
    "fake exec, then restore": ("import builtins\nreal = builtins.exec\ndef fake(src, ns=None, *a):\n"
                                "    builtins.exec = real\n    ns['check'] = lambda c: None\n"
                                "builtins.exec = fake\ndef f(x):\n    return x\n"),
    "swap the guard": ("import sys\nclass E:\n    def __eq__(self, o):\n        return True\ndef f(x):\n"
                       "    g = sys._getframe(1).f_back.f_locals['candidate']\n    for c in g.__closure__:\n"
                       "        if getattr(c.cell_contents, '__name__', '') == '_plain':\n"
                       "            c.cell_contents = lambda v: True\n    return E()\n"),
    "crafted bytecode": "import marshal\nmarshal.loads(marshal.dumps(compile('1', 'x', 'eval')))\ndef f(x):\n    return x + 1\n",
    "ctypes": "import ctypes\ndef f(x):\n    return x + 1\n",
    "C test module": "import _testcapi\ndef f(x):\n    return x + 1\n",
    "signal handler": ("import signal\nsignal.signal(signal.SIGALRM, lambda s, fr: fr.f_back)\n"
                       "signal.setitimer(signal.ITIMER_REAL, 0.01)\ndef f(x):\n    return x\n"),
}
#: a right answer using the standard library's frame-reading helpers and threads (it passes)
STDLIB_GOOD = ("from collections import namedtuple\nfrom typing import TypeVar\nimport threading, json\n"
               "T = TypeVar('T')\nP = namedtuple('P', 'a b')\n"
               "def f(x):\n    out = []\n    t = threading.Thread(target=lambda: out.append(P(x, 1)))\n"
               "    t.start()\n    t.join()\n    return json.loads(json.dumps(out[0].a + out[0].b))\n")
#: tests whose check uses a module global: the candidate swaps it while check runs
MODULE_TESTS = "import math\ndef check(candidate):\n    assert math.isclose(candidate(2), 3)\n"
PATCH_TESTS_GLOBAL = ("import sys\nclass M:\n    @staticmethod\n    def isclose(a, b):\n        return True\n"
                      "def f(x):\n    fr = sys._getframe(1).f_back\n    fr.f_globals['math'] = M\n    return x\n")


class Server:
    """A local TCP server counting the connections it accepts."""

    def __init__(self):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.connections = 0
        self._stop = False
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self):
        while not self._stop:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            self.connections += 1
            conn.close()

    def close(self):
        self._stop = True
        self._thread.join()
        self.sock.close()


def processes_with(text: str) -> list[int]:
    """Pids whose command line contains ``text``."""
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/cmdline", "rb") as fh:
                    if text.encode() in fh.read():
                        out.append(int(entry))
            except OSError:
                continue
    return out


def wait_quiet(seconds: float = 5.0) -> None:
    time.sleep(seconds)
