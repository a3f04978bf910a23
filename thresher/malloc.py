"""The C allocator's settings for long streamed runs: :func:`fixed_mmap_threshold`.

glibc's malloc serves a block of 128 KiB or more with its own ``mmap`` (given back to the system
when freed), but raises that threshold to the size of every such block freed, up to 32 MiB.
After the first batches of a stream, the batch-sized buffers (Python lists of a batch's rows,
Arrow and NumPy buffers through malloc) then come from the heap, whose freed holes are reused
only in part: resident memory creeps up batch after batch. Measured on filter over 10M small
rows (`benchmarks/README.md`, "1M against 10M rows"): a peak of 514 MB with the sliding
threshold, 472 MB with it fixed. ``MALLOC_MMAP_THRESHOLD_`` in the environment wins.
"""

from __future__ import annotations

import ctypes
import os
import sys

#: glibc's ``M_MMAP_THRESHOLD`` parameter of ``mallopt``
M_MMAP_THRESHOLD = -3
#: blocks of this many bytes or more are mapped (glibc's initial threshold)
THRESHOLD = 128 * 1024


def fixed_mmap_threshold(threshold: int = THRESHOLD) -> bool:
    """Fix glibc's mmap threshold at ``threshold`` bytes (no sliding); True when it was set.
    Does nothing off Linux, on another C library, or when the environment sets it already."""
    if not sys.platform.startswith("linux") or "MALLOC_MMAP_THRESHOLD_" in os.environ:
        return False
    try:
        # the process's own symbols: libc is loaded already (no ldconfig lookup at every start)
        return bool(ctypes.CDLL(None).mallopt(M_MMAP_THRESHOLD, threshold))
    except (OSError, AttributeError):  # not glibc (musl has no mallopt)
        return False
