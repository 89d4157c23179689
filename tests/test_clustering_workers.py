"""Step 04's comparison in two processes: `workers.run_jobs` and the comparison it runs, which must
give exactly the results of a serial run."""

from __future__ import annotations

import math
import operator
import os
import time

import joblib
import numpy as np
import pandas as pd
import pytest
from test_clustering import TOY_SETTINGS, toy_world

from helpers.clustering import candidates as cl
from helpers.clustering import workers


def test_run_jobs_returns_every_result_in_job_order():
    jobs = [(base, 3) for base in range(12)]
    results = workers.run_jobs(operator.pow, jobs, threads=1, processes=2)
    assert [value for value, _ in results] == [base**3 for base in range(12)]
    assert all(seconds >= 0 for _, seconds in results)


def pid_after(seconds: float) -> int:
    """This process's id, after `seconds` of sleep."""
    time.sleep(seconds)
    return os.getpid()


@pytest.mark.skipif(joblib.cpu_count() < 2, reason="a worker process needs a second core")
def test_run_jobs_shares_the_jobs_with_a_worker_process():
    # jobs long enough for the worker to start (~3 s cold) and take its share
    results = workers.run_jobs(pid_after, [(0.5,)] * 16, threads=1, processes=2)
    pids = [pid for pid, _ in results]
    assert os.getpid() in pids and len(set(pids)) == 2


def test_run_jobs_alone_runs_here_in_order():
    results = workers.run_jobs(os.getpid, [()] * 3, threads=1, processes=1)
    assert [pid for pid, _ in results] == [os.getpid()] * 3


@pytest.mark.parametrize("processes", [1, 2])
def test_run_jobs_raises_a_jobs_error(processes):
    with pytest.raises(ValueError, match="math domain error"):
        workers.run_jobs(math.sqrt, [(4.0,), (-1.0,), (9.0,)], threads=1, processes=processes)


def test_comparison_in_two_processes_equals_the_serial_one(monkeypatch):
    x, business, _ = toy_world(seed=3)
    parallel = cl.compare(x, business, TOY_SETTINGS)
    monkeypatch.setattr(workers, "PROCESSES", 1)
    serial = cl.compare(x, business, TOY_SETTINGS)
    timing = ["fit_seconds"]
    pd.testing.assert_frame_equal(
        parallel.table.drop(columns=timing), serial.table.drop(columns=timing), check_exact=True
    )
    assert list(parallel.candidates) == list(serial.candidates)
    assert list(parallel.seconds) == list(serial.seconds) == list(TOY_SETTINGS.algorithms)
    for key, candidate in serial.candidates.items():
        other = parallel.candidates[key]
        np.testing.assert_array_equal(other.centroids, candidate.centroids)
        np.testing.assert_array_equal(cl.predict_labels(other, x), cl.predict_labels(candidate, x))
        if candidate.stability is not None:
            np.testing.assert_array_equal(other.stability.aris, candidate.stability.aris)
    refitted = serial.table["stability_refits"] == TOY_SETTINGS.stability_refits
    assert refitted.any()  # the contenders' full refits ran in parallel too
