"""Audit-step benchmark: generate the demo world, then run step 01 on it; wall time and peak memory.

Generation and audit each run in their own process, so each max RSS is that phase's own (the
audit's includes DuckDB). Data goes into a temporary folder deleted afterwards unless --keep.
Targets on the 2-core machine at 1M customers: audit < 2 min and < 6 GB peak.

    nice .venv/bin/python benchmarks/bench_audit.py                 # 100000 and 1000000
    nice .venv/bin/python benchmarks/bench_audit.py 100000 --memory-limit 2GB
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


def generate(customers: int, seed: int, folder: Path) -> dict:
    """Write the demo world of `customers` people into `folder/raw` (this process)."""
    from helpers.demo.world import generate_demo_world

    start = time.perf_counter()
    counts = generate_demo_world(
        folder / "raw", folder / "truth", n_customers=customers, seed=seed, progress=False
    )
    wall = time.perf_counter() - start
    raw_bytes = sum(p.stat().st_size for p in (folder / "raw").iterdir())
    megabytes = round(raw_bytes / 2**20)
    return {
        "wall_seconds": round(wall, 1),
        "peak_rss_mb": round(peak_rss_mb()),
        "raw_megabytes": megabytes,
        "rows": counts,
    }


def audit(folder: Path, memory_limit: str | None, threads: int | None) -> dict:
    """Run the whole audit step (contract, profiling, artifacts) on `folder/raw` (this process)."""
    from helpers.audit import run_step
    from helpers.core.config import load_config
    from helpers.core.context import StepContext

    overrides = [f"data.raw_dir={folder / 'raw'}"]
    overrides += [f"audit.memory_limit={memory_limit}"] if memory_limit else []
    overrides += [f"audit.threads={threads}"] if threads else []
    config = load_config(None, overrides)
    context = StepContext(run_dir=folder / "run", step="01_data_audit", config=config)
    context.step_dir.mkdir(parents=True, exist_ok=True)
    start, start_cpu = time.perf_counter(), time.process_time()
    report = run_step(context)
    wall, cpu = time.perf_counter() - start, time.process_time() - start_cpu
    ledger = report.ledger
    return {
        "wall_seconds": round(wall, 1),
        "cpu_seconds": round(cpu, 1),
        "peak_rss_mb": round(peak_rss_mb()),
        "input_rows": int(ledger["input_rows"].sum()),
        "quarantined_rows": int(ledger["quarantined_rows"].sum()),
        "pandera_rows_checked": report.contract.contract_checked_rows,
    }


def child(*arguments: str) -> dict:
    completed = subprocess.run(
        [sys.executable, __file__, *arguments], check=True, capture_output=True, text=True
    )
    return json.loads(completed.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("sizes", nargs="*", type=int, default=[100_000, 1_000_000])
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--memory-limit", help="DuckDB memory_limit (default: audit.memory_limit)")
    parser.add_argument("--threads", type=int, help="DuckDB threads (default: audit.threads)")
    parser.add_argument("--keep", type=Path, help="keep the data in this folder (reused if it has raw/)")
    parser.add_argument("--phase", choices=["generate", "audit"], help=argparse.SUPPRESS)
    parser.add_argument("--folder", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.phase == "generate":
        print(json.dumps(generate(args.sizes[0], args.seed, args.folder)))
        return
    if args.phase == "audit":
        print(json.dumps(audit(args.folder, args.memory_limit, args.threads)))
        return
    for size in args.sizes:
        with tempfile.TemporaryDirectory(prefix="bench_audit_") as scratch:
            folder = args.keep / str(size) if args.keep else Path(scratch)
            folder.mkdir(parents=True, exist_ok=True)
            if (folder / "raw").is_dir():
                made = {"wall_seconds": None, "peak_rss_mb": None, "raw_megabytes": None, "rows": "reused"}
            else:
                made = child(
                    str(size), "--seed", str(args.seed), "--phase", "generate", "--folder", str(folder)
                )
            knobs = [*(["--memory-limit", args.memory_limit] if args.memory_limit else []),
                     *(["--threads", str(args.threads)] if args.threads else [])]  # fmt: skip
            audited = child(str(size), "--phase", "audit", "--folder", str(folder), *knobs)
        print(
            f"{size:>9,d} customers  generation: {made['wall_seconds']} s, peak {made['peak_rss_mb']} MB, "
            f"{made['raw_megabytes']} MB raw"
        )
        print(f"{'':>20s} audit: {audited['wall_seconds']} s wall ({audited['cpu_seconds']} s CPU), "
              f"peak {audited['peak_rss_mb']} MB, {audited['input_rows']:,d} rows in, "
              f"{audited['quarantined_rows']:,d} quarantined, "
              f"pandera checked {sum(audited['pandera_rows_checked'].values()):,d} rows")  # fmt: skip
        print("  rows:", json.dumps(made["rows"]))


if __name__ == "__main__":
    main()
