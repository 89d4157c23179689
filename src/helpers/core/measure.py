"""Process measurement shared by the benchmark scripts, and returning freed memory to the OS."""

from __future__ import annotations

import ctypes
import ctypes.util
import resource
import sys


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far, in MB (Linux reports ru_maxrss in KB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def release_freed_memory() -> None:
    """Give the heap memory this process has freed back to the OS (glibc's malloc_trim; nothing
    elsewhere). Freed pandas frames otherwise stay in the resident set and add to the next peak."""
    library = ctypes.util.find_library("c") if sys.platform.startswith("linux") else None
    if library:
        trim = getattr(ctypes.CDLL(library), "malloc_trim", None)
        if trim is not None:  # glibc only (musl has none)
            trim(0)
