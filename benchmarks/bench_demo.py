"""Demo-world generation benchmark: wall and CPU time, peak memory and rows written per size.

Each size runs in its own process (so max RSS is that run's own) and writes into a temporary
folder that is deleted afterwards. Targets on the 2-core machine: 1M customers < 5 min, < 6 GB.

    .venv/bin/python benchmarks/bench_demo.py                 # 100000 and 1000000
    nice .venv/bin/python benchmarks/bench_demo.py 100000
    .venv/bin/python benchmarks/bench_demo.py 100000 --style export   # the export-style world
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from helpers.core.measure import peak_rss_mb
from helpers.demo.world import generate_demo_world


def run_one(customers: int, seed: int, style: str) -> dict:
    """Generate one world into a temporary folder; measure it in this process."""
    with tempfile.TemporaryDirectory(prefix="bench_demo_") as folder:
        raw, truth = Path(folder) / "raw", Path(folder) / "truth"
        start, cpu = time.perf_counter(), time.process_time()
        counts = generate_demo_world(
            raw, truth, n_customers=customers, seed=seed, progress=False, style=style
        )
        wall, cpu = time.perf_counter() - start, time.process_time() - cpu
        raw_bytes = sum(p.stat().st_size for p in raw.iterdir())
    return {
        "customers": customers,
        "wall_seconds": round(wall, 1),
        "cpu_seconds": round(cpu, 1),
        "peak_rss_mb": round(peak_rss_mb()),
        "raw_megabytes": round(raw_bytes / 2**20),
        "rows": counts,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("sizes", nargs="*", type=int, default=[100_000, 1_000_000])
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--style", choices=["default", "export"], default="default")
    parser.add_argument("--one", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(run_one(args.sizes[0], args.seed, args.style)))
        return
    for size in args.sizes:
        child = subprocess.run(
            [sys.executable, __file__, str(size), "--seed", str(args.seed), "--style", args.style, "--one"],
            check=True,
            capture_output=True,
            text=True,
        )
        result = json.loads(child.stdout.strip().splitlines()[-1])
        rows = result.pop("rows")
        raw_rows = sum(v for k, v in rows.items() if not k.startswith("truth/"))
        print(
            f"{size:>9,} customers ({args.style}): {result['wall_seconds']:>7.1f} s wall, "
            f"{result['cpu_seconds']:>7.1f} s CPU, "
            f"peak RSS {result['peak_rss_mb']:,} MB, {raw_rows:,} raw rows, "
            f"{result['raw_megabytes']:,} MB raw files"
        )
        for name, count in rows.items():
            print(f"{'':>12}{name:<40}{count:>12,}")


if __name__ == "__main__":
    main()
