"""Whole-workbench benchmark: per-step wall time, CPU time and peak kernel memory at several sizes,
and step 03's transactions aggregate against a hand-written DuckDB reference statement.

Usage: python benchmarks/bench_workbench.py [N_CUSTOMERS ...]   (default: 20000 100000 1000000)
The demo world of each size is generated once into data/raw/bench_<N>/ and reused; generation is
not counted. The run folder is kept under outputs/bench/runs/ (printed), so the per-phase timings
the step manifests record (step 03's phases, step 02's merge seconds, step 04's map seconds) stay.
Per-step CPU seconds are the runner's (`cpu_seconds` in run.json: the kernel's user + system time);
the total CPU is the kernels' (child processes) plus this process's, measured around the run.
The reference: after the run, step 03's transactions query (44 columns) and one DuckDB statement
computing a 7-column per-customer value summary run on the same engine over the run's Parquet
files; wall and CPU (this process, every DuckDB thread) of each and their ratio are printed.
"""

from __future__ import annotations

import json
import resource
import sys
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import pandas as pd

from helpers.core.config import load_config
from helpers.core.context import StepContext
from helpers.core.paths import OUTPUTS_DIR
from helpers.core.runner import ensure_demo_data, run_workbench
from helpers.engine.base import connect
from helpers.features.build import (
    EVENT_TABLES,
    FeatureSettings,
    aggregate_table,
    find_levels,
    query_params,
)
from helpers.identity.events import register_events

BENCH_OUTPUTS = OUTPUTS_DIR / "bench"
REFERENCE_SQL = """
SELECT
    x.customer_id,
    count(*) FILTER (WHERE NOT t.is_refund) AS n_purchases,
    count(DISTINCT date_trunc('day', t.txn_at)) FILTER (WHERE NOT t.is_refund) AS purchase_days,
    sum(t.amount) FILTER (WHERE NOT t.is_refund) AS monetary_total,
    sum(t.amount) FILTER (WHERE NOT t.is_refund AND t.txn_at >= $start_12m) AS monetary_12m,
    sum(t.amount) FILTER (WHERE t.is_refund) AS refund_amount,
    min(t.txn_at) AS first_txn_at,
    max(t.txn_at) AS last_txn_at
FROM transactions AS t
LEFT JOIN crosswalk AS x ON x.source_system = t.source_system AND x.source_record_id = t.source_customer_id
WHERE t.txn_at < $as_of_end
GROUP BY x.customer_id
"""


def _cpu_seconds() -> float:
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def _timed(work: Callable[[], pd.DataFrame]) -> tuple[float, float, int]:
    """Wall and CPU seconds (this process, all threads) of `work`, and the rows it returned."""
    cpu, started = time.process_time(), time.perf_counter()
    rows = len(work())
    return time.perf_counter() - started, time.process_time() - cpu, rows


def transactions_vs_reference(run_dir: Path) -> None:
    """Print step 03's transactions aggregate and the reference statement, each timed on the run."""
    ctx = StepContext(run_dir=run_dir, step="03_features", config=load_config(run_dir / "config.yml"))
    settings = FeatureSettings.from_config(ctx.settings.features, ctx.reference_date, ctx.seed)
    index = pd.Index(ctx.read("02_identity_merge", "golden", columns=["customer_id"])["customer_id"])
    tables = {**{name: name for name in EVENT_TABLES}, "crosswalk": "crosswalk"}
    engine = connect(memory_limit=settings.duckdb_memory_limit, threads=settings.duckdb_threads)
    try:
        register_events(engine, ctx, tables)
        levels, other = find_levels(engine, tables, settings)
        params = query_params(settings.reference_date)
        step = _timed(
            lambda: aggregate_table(engine, "transactions", tables, settings, levels, index, other)[0]
        )
        bounds = {name: params[name] for name in ("as_of_end", "start_12m")}
        reference = _timed(lambda: engine.query(REFERENCE_SQL, **bounds))
    finally:
        engine.close()
    print(f"{'transactions aggregate':<34}{'wall s':>8}{'CPU s':>8}{'rows':>10}")
    for label, (wall, cpu, rows) in (
        ("step 03 query (44 columns)", step),
        ("DuckDB reference (7 columns)", reference),
    ):
        print(f"{label:<34}{wall:>8.2f}{cpu:>8.2f}{rows:>10,}")
    ratios = step[0] / reference[0], step[1] / max(reference[1], 1e-3)
    print(f"{'ratio step / reference':<34}{ratios[0]:>8.1f}{ratios[1]:>8.1f}")


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
    steps_cpu = sum(r.get("cpu_seconds", 0.0) for r in manifest["steps"].values())
    print(f"{'sum of steps':<22}{steps_total:>10.1f}{steps_cpu:>10.1f}")
    transactions_vs_reference(result.run_dir)
    return result.run_dir


if __name__ == "__main__":
    for size in [int(arg) for arg in sys.argv[1:]] or [20000, 100000, 1000000]:
        bench(size)
