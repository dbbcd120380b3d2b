"""Keep freed host memory in the process, so that a population's big tensors reuse it.

A population step allocates and frees tensors of megabytes (K members' activations and
their gradients). glibc's malloc serves blocks that large with fresh ``mmap`` pages and
returns them when they are freed, so every step page-faults its activations in again: on
the transformer encoder of docs/BENCHMARKS.md (K = 16) that was a third of a step, the
zero-fill of one 12 MB gradient taking 9.5 ms. :func:`keep_freed_memory` asks glibc
(``mallopt``) to serve blocks up to 1 GiB from its heap and not to give the heap's free top
back to the system, the settings ``MALLOC_MMAP_THRESHOLD_`` and ``MALLOC_TRIM_THRESHOLD_``
would give at start-up. The process then keeps its peak heap until it exits: the memory a
population used stays with the process, ready for the next one.

It is process-wide, so the population trainers call it only on a CPU and only on glibc
(Linux); ``ADVISOR_KEEP_FREED_MEMORY=0`` turns it off. One-model-at-a-time training, whose
tensors are small enough for malloc's heap anyway, measured no change with it.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import os
import sys

_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_KEEP = 1 << 30


@functools.cache
def keep_freed_memory() -> bool:
    """Ask glibc's malloc to keep blocks up to 1 GiB in its heap; whether it now does.

    Once per process; ``False`` where malloc is not glibc's, or when the environment
    variable ``ADVISOR_KEEP_FREED_MEMORY`` is ``0``.

    >>> keep_freed_memory() == keep_freed_memory()
    True
    """
    return _apply()


def _apply() -> bool:
    if os.environ.get("ADVISOR_KEEP_FREED_MEMORY", "1") == "0" or not sys.platform.startswith(
        "linux"
    ):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # musl and others: no mallopt
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    return bool(mallopt(_M_MMAP_THRESHOLD, _KEEP)) and bool(mallopt(_M_TRIM_THRESHOLD, _KEEP))
