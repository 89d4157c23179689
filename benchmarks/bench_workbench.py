"""Whole-workbench benchmark: per-step wall time, CPU time and peak kernel memory at several sizes.

Usage: python benchmarks/bench_workbench.py [N_CUSTOMERS ...]   (default: 20000 100000 1000000)
The demo world of each size is generated once into data/raw/bench_<N>/ and reused; generation is
not counted. The run folder is kept under outputs/bench/runs/ (printed), so the per-phase timings
the step manifests record (step 03's phases, step 02's merge seconds, step 04's map seconds) stay.
Per-step CPU seconds come from run.json when the runner records them (`cpu_seconds`); the total CPU
is the kernels' (child processes) plus this process's, measured around the run.
"""

from __future__ import annotations

import json
import resource
import sys
import time
from datetime import datetime
from pathlib import Path

from helpers.core.config import load_config
from helpers.core.paths import OUTPUTS_DIR
from helpers.core.runner import ensure_demo_data, run_workbench

BENCH_OUTPUTS = OUTPUTS_DIR / "bench"


def _cpu_seconds() -> float:
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def bench(customers: int) -> Path:
    """Run the workbench on the demo world of `customers`; print the figures; return the run folder."""
    overrides = [f"demo.customers={customers}", f"data.raw_dir=data/raw/bench_{customers}"]
    started = time.perf_counter()
    ensure_demo_data(load_config(None, overrides), progress=True)  # not timed below
    generation = time.perf_counter() - started
    cpu, started = _cpu_seconds(), time.perf_counter()
    result = run_workbench(None, overrides, outputs_dir=BENCH_OUTPUTS, progress=True)
    total, cpu = time.perf_counter() - started, _cpu_seconds() - cpu
    manifest = json.loads((result.run_dir / "run.json").read_text())
    span = (
        datetime.fromisoformat(manifest["finished_at"]) - datetime.fromisoformat(manifest["started_at"])
    ).total_seconds()
    print(f"\n== {customers:,} customers: run folder {result.run_dir}")
    print(f"total {total:.1f} s wall ({span:.1f} s started->finished), {cpu:.1f} CPU s; "
          f"world generation {generation:.1f} s not counted")  # fmt: skip
    print(f"{'step':<22}{'wall s':>10}{'CPU s':>10}{'peak MB':>10}")
    for step, record in manifest["steps"].items():
        cpu_step = record.get("cpu_seconds")
        cpu_text = f"{cpu_step:>10.1f}" if cpu_step is not None else f"{'n/a':>10}"
        print(f"{step:<22}{record['seconds']:>10.1f}{cpu_text}{record['peak_kernel_rss_mb']:>10.0f}")
    steps_total = sum(r["seconds"] for r in manifest["steps"].values())
    print(f"{'sum of steps':<22}{steps_total:>10.1f}")
    return result.run_dir


if __name__ == "__main__":
    for size in [int(arg) for arg in sys.argv[1:]] or [20000, 100000, 1000000]:
        bench(size)
