"""Process measurement shared by the benchmark scripts, and returning freed memory to the OS."""

from __future__ import annotations

import ctypes
import ctypes.util
import resource
import sys
import threading
import time
import traceback
from pathlib import Path

import psutil


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


class MemoryTimeline:
    """Resident memory of this process sampled every `interval` seconds on a thread while the context is
    open: `samples` (seconds, MiB, where) and `peaks` (each sample at least `step_mib` above the last
    peak), `where` being the innermost frames of the opening thread inside package `package`."""

    def __init__(self, interval: float = 0.25, step_mib: int = 50, package: str = "helpers") -> None:
        self.interval, self.step_mib, self.package = interval, step_mib, package
        self.samples: list[tuple[float, int, str]] = []
        self.peaks: list[tuple[float, int, list[str]]] = []
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def __enter__(self) -> MemoryTimeline:
        self._main, self._start = threading.get_ident(), time.perf_counter()
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._done.set()
        self._thread.join()

    def _sample(self) -> None:
        process, best = psutil.Process(), 0
        while not self._done.wait(self.interval):
            rss = process.memory_info().rss >> 20
            frame = sys._current_frames().get(self._main)
            stack = traceback.extract_stack(frame) if frame is not None else []
            where = [
                f"{Path(f.filename).name}:{f.lineno} {f.name}" for f in stack if self.package in f.filename
            ]
            seconds = round(time.perf_counter() - self._start, 2)
            self.samples.append((seconds, rss, where[-1] if where else ""))
            if rss > best + self.step_mib:
                best = rss
                self.peaks.append((seconds, rss, where[-3:]))
