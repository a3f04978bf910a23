"""The allocator setting of the CLI: glibc's mmap threshold fixed, unless the environment sets it."""

from __future__ import annotations

import subprocess
import sys

import pytest

from thresher.malloc import fixed_mmap_threshold


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_a_freed_large_block_is_given_back_to_the_system():
    """With the threshold fixed, a 1 MiB block freed once no longer moves the next ones onto
    the heap: 200 MiB allocated and freed in 1 MiB blocks leaves the RSS where it was."""
    code = """
import ctypes, sys
from thresher.malloc import fixed_mmap_threshold
if sys.argv[1] == "fixed":
    assert fixed_mmap_threshold()
libc = ctypes.CDLL("libc.so.6")
libc.malloc.restype = ctypes.c_void_p
libc.free.argtypes = [ctypes.c_void_p]
def rss():
    return int(open("/proc/self/statm").read().split()[1]) * 4096 >> 20
libc.free(libc.malloc(1 << 20))  # glibc raises a sliding threshold past 1 MiB here
before = rss()
blocks = []
for _ in range(200):
    b = libc.malloc(1 << 20)
    ctypes.memset(b, 1, 1 << 20)
    blocks.append(b)
for b in blocks[:-1]:  # the last one keeps the heap's top in use (no trim)
    libc.free(b)
print(rss() - before)
"""
    got = {mode: int(subprocess.run([sys.executable, "-c", code, mode], capture_output=True,
                                    text=True, check=True).stdout) for mode in ("fixed", "sliding")}
    assert got["fixed"] < 10 and got["sliding"] > 150, got


def test_the_environment_wins(monkeypatch):
    monkeypatch.setenv("MALLOC_MMAP_THRESHOLD_", "65536")
    assert fixed_mmap_threshold() is False
