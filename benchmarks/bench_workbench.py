"""Whole-workbench benchmark: per-step wall time and peak kernel memory at several sizes.

Usage: python benchmarks/bench_workbench.py [N_CUSTOMERS ...]   (default: 20000 100000 1000000)
The demo world of each size is generated once into data/raw/bench_<N>/ and reused.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

from helpers.core.runner import run_workbench


def bench(customers: int) -> None:
    overrides = [f"demo.customers={customers}", f"data.raw_dir=data/raw/bench_{customers}"]
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as outputs:
        result = run_workbench(None, overrides, outputs_dir=Path(outputs), progress=True)
        manifest = json.loads((result.run_dir / "run.json").read_text())
    total = time.perf_counter() - started
    print(f"\n== {customers:,} customers: total {total:.1f} s (incl. generation when missing)")
    print(f"{'step':<22}{'seconds':>10}{'peak MB':>10}")
    for step, record in manifest["steps"].items():
        print(f"{step:<22}{record['seconds']:>10.1f}{record['peak_kernel_rss_mb']:>10.0f}")
    steps_05_06 = sum(r["seconds"] for s, r in manifest["steps"].items() if s[:2] in {"05", "06"})
    print(f"{'steps 05+06':<22}{steps_05_06:>10.1f}")


if __name__ == "__main__":
    for size in [int(arg) for arg in sys.argv[1:]] or [20000, 100000, 1000000]:
        bench(size)
