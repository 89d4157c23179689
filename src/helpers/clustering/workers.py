"""Step 04's independent fits spread over this process and worker processes.

The comparison fits every algorithm on the same sample, then refits the contenders' stability:
jobs that share nothing and are deterministic (every seed is fixed by the job), so running them
in parallel gives exactly the serial results. `run_jobs` runs them in this process and in up to
`PROCESSES` - 1 loky worker processes (one per further core; the workers are kept for the next
call, as joblib's reusable executor does, so a rerun in an open kernel does not start them
again). Each process takes the next job when it is free, longest first as the caller orders them;
this process starts at once, and a worker takes its first job only once it has started and
imported the jobs' module, so a worker that is still starting delays nothing.
"""

from __future__ import annotations

import importlib
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, cast

import joblib
from joblib.externals.loky import get_reusable_executor
from threadpoolctl import threadpool_limits

PROCESSES = 2  # processes running the comparison's jobs (this one included), at most one per core
_in_worker = False  # True in a worker process: its own jobs' jobs run there, in order


def in_worker(function: Callable[..., Any], job: Sequence[Any], threads: int) -> tuple[Any, float]:
    """`timed` in a worker process, where `run_jobs` starts no further process."""
    global _in_worker
    _in_worker = True
    return timed(function, job, threads)


def timed(function: Callable[..., Any], job: Sequence[Any], threads: int) -> tuple[Any, float]:
    """`function(*job)` under `threadpool_limits(threads)` and the wall seconds it took."""
    started = time.perf_counter()
    with threadpool_limits(limits=threads):
        result = function(*job)
    return result, time.perf_counter() - started


def run_jobs(
    function: Callable[..., Any], jobs: Sequence[Sequence[Any]], threads: int, processes: int | None = None
) -> list[tuple[Any, float]]:
    """`timed(function, job, threads)` for every job, in job order, spread over this process and
    `min(processes, cores, len(jobs)) - 1` worker processes (none, or called in a worker: all here,
    in order; `processes` None: `PROCESSES`).

    `function` must be importable (a module-level function) and its jobs picklable; an exception
    of any job is raised here once every started job has ended."""
    workers = min(PROCESSES if processes is None else processes, joblib.cpu_count(), len(jobs)) - 1
    if workers <= 0 or _in_worker:
        return [timed(function, job, threads) for job in jobs]
    executor = get_reusable_executor(max_workers=workers)
    pending = deque(range(len(jobs)))
    results: list[tuple[Any, float] | None] = [None] * len(jobs)

    def next_job() -> int | None:
        try:
            return pending.popleft()  # atomic: each job is taken once
        except IndexError:
            return None

    def feed_worker() -> None:
        # A job is taken only once the worker runs: a worker still starting (importing) takes none.
        executor.submit(importlib.import_module, function.__module__).result()
        while (position := next_job()) is not None:
            results[position] = executor.submit(in_worker, function, jobs[position], threads).result()

    with ThreadPoolExecutor(max_workers=workers) as feeders:
        fed = [feeders.submit(feed_worker) for _ in range(workers)]
        try:
            while (position := next_job()) is not None:
                results[position] = timed(function, jobs[position], threads)
        finally:
            pending.clear()  # on an error here, the workers take no further job
        for feeder in fed:
            feeder.result()
    return cast(list[tuple[Any, float]], results)  # every position was filled, or an error raised
