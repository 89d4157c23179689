"""Whole-workbench benchmark: per-step wall time, CPU time and peak kernel memory at several sizes,
where each step's time goes, and step 03's transactions aggregate against a hand-written DuckDB
reference statement.

Usage: python benchmarks/bench_workbench.py [N_CUSTOMERS ...] [--rerun STEP ...] [--kernel KERNEL]
(default sizes: 20000 100000 1000000; --help lists every option). Wrap it in `flock /tmp/heavy.lock`
on a shared machine.
The demo world of each size is generated once into data/raw/bench_<N>/ and reused; generation is
not counted. The run folder is kept under outputs/bench/runs/ (printed), so the per-phase timings
the step manifests record (step 03's phases, step 02's merge seconds, step 04's map seconds) stay.
Per step: wall, CPU (the kernel's user + system time, `cpu_seconds` in run.json), peak kernel RSS,
and the wall split by the executed notebook's cell timings: setup (cells before the `run_step`
cell: imports, parameters), run_step, display (tables and figures after it), the rest (kernel
start or namespace reset, papermill); render is the HTML pages, written while the next step runs.
The total CPU is the kernel's (child processes) plus this process's (papermill, rendering); the
machine's busy CPU seconds not spent by the benchmark are printed too (0 on a quiet machine).
`--rerun STEP` re-executes that step's notebook twice in one kernel against the finished run, as
an analyst does in JupyterLab (it writes to a scratch folder): first with a cold kernel, then warm.
The reference: after the run, step 03's transactions query (44 columns) and one DuckDB statement
computing a 7-column per-customer value summary run on the same engine over the run's Parquet
files; wall and CPU (this process, every DuckDB thread) of each and their ratio are printed.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import nbformat
import pandas as pd
import psutil

from helpers.core.config import load_config
from helpers.core.context import StepContext
from helpers.core.paths import OUTPUTS_DIR
from helpers.core.runner import KernelCpu, SharedKernel, ensure_demo_data, execute_notebook, run_workbench
from helpers.core.steps import STEP_BY_NAME
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


def machine_busy_seconds() -> float:
    """CPU seconds every process on the machine has spent so far (all cores, idle and I/O wait excluded)."""
    times = psutil.cpu_times()
    return sum(times) - times.idle - getattr(times, "iowait", 0.0)


def cell_phases(executed: Path) -> dict[str, float]:
    """Wall seconds of an executed notebook's cells: before the `run_step` cell (setup), that cell,
    and after it (display), from papermill's per-cell durations."""
    notebook = nbformat.read(executed, as_version=4)
    phases = {"setup": 0.0, "run_step": 0.0, "display": 0.0}
    phase = "setup"
    for cell in notebook.cells:
        if cell.cell_type != "code":
            continue
        seconds = (cell.metadata.get("papermill") or {}).get("duration") or 0.0
        if phase == "setup" and "run_step(" in cell.source:
            phases["run_step"] += seconds
            phase = "display"
        else:
            phases[phase] += seconds
    return phases


def print_steps(run_dir: Path, manifest: dict[str, Any]) -> None:
    """One line per step: wall, CPU, peak memory and where the wall time went."""
    columns = ("wall s", "CPU s", "peak MB", "setup", "run_step", "display", "rest", "render")
    print(f"{'step':<20}" + "".join(f"{name:>9}" for name in columns))
    for step, record in manifest["steps"].items():
        phases = cell_phases(run_dir / "notebooks" / f"{step}.ipynb")
        rest = record["seconds"] - sum(phases.values())
        values = (
            record["seconds"], record.get("cpu_seconds"), record["peak_kernel_rss_mb"],
            phases["setup"], phases["run_step"], phases["display"], rest, record.get("render_seconds"),
        )  # fmt: skip
        print(f"{step:<20}" + "".join(f"{v:>9.1f}" if v is not None else f"{'n/a':>9}" for v in values))
    steps = manifest["steps"].values()
    total = sum(r["seconds"] for r in steps), sum(r.get("cpu_seconds") or 0.0 for r in steps)
    print(f"{'sum of steps':<20}{total[0]:>9.1f}{total[1]:>9.1f}")
    if manifest.get("kernel_start_seconds") is not None:
        print(f"shared kernel start {manifest['kernel_start_seconds']:.1f} s (in step 1's rest)")


def rerun(run_dir: Path, step: str) -> None:
    """Execute `step`'s notebook twice in one kernel against the finished run (interactive: a
    scratch folder), as from JupyterLab; print each execution's wall and kernel CPU seconds."""
    notebook = STEP_BY_NAME[step].notebook
    print(f"{'rerun ' + step:<34}{'wall s':>8}{'CPU s':>8}")
    with SharedKernel() as kernel:
        for label in ("cold kernel (imports)", "warm kernel"):
            executed = run_dir.parent.parent / "interactive" / f"rerun-{step}-{os.getpid()}.ipynb"
            executed.parent.mkdir(parents=True, exist_ok=True)
            started = time.perf_counter()
            with KernelCpu() as cpu:
                kernel.prepare()
                execute_notebook(notebook, executed, {"run_dir": str(run_dir)}, kernel)
            print(f"{label:<34}{time.perf_counter() - started:>8.1f}{cpu.seconds:>8.1f}")
            executed.unlink()


def bench(
    customers: int, kernel: str = "shared", reruns: tuple[str, ...] = (), reference: bool = True
) -> Path:
    """Run the workbench on the demo world of `customers`; print the figures; return the run folder."""
    overrides = [
        f"demo.customers={customers}", f"data.raw_dir=data/raw/bench_{customers}", f"run.kernel={kernel}"
    ]  # fmt: skip
    started = time.perf_counter()
    ensure_demo_data(load_config(None, overrides), progress=True)  # not timed below
    generation = time.perf_counter() - started
    load_before = os.getloadavg()
    busy, cpu, started = machine_busy_seconds(), _cpu_seconds(), time.perf_counter()
    result = run_workbench(None, overrides, outputs_dir=BENCH_OUTPUTS, progress=True)
    total, cpu = time.perf_counter() - started, _cpu_seconds() - cpu
    others = machine_busy_seconds() - busy - cpu
    manifest = json.loads((result.run_dir / "run.json").read_text())
    span = (
        datetime.fromisoformat(manifest["finished_at"]) - datetime.fromisoformat(manifest["started_at"])
    ).total_seconds()
    print(f"\n== {customers:,} customers, run.kernel {kernel} ({manifest['kernel']}): {result.run_dir}")
    print(f"total {total:.1f} s wall ({span:.1f} s started->finished), {cpu:.1f} CPU s; "
          f"world generation {generation:.1f} s not counted")  # fmt: skip
    print(
        f"load average before {load_before[0]:.2f}, after {os.getloadavg()[0]:.2f}; other processes used "
        f"{max(others, 0.0):.1f} CPU s of the {os.cpu_count()} cores meanwhile"
    )
    print_steps(result.run_dir, manifest)
    for step in reruns:
        rerun(result.run_dir, step)
    if reference:
        transactions_vs_reference(result.run_dir)
    return result.run_dir


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "sizes",
        nargs="*",
        type=int,
        metavar="N_CUSTOMERS",
        help="demo world sizes (default: 20000 100000 1000000)",
    )
    parser.add_argument(
        "--rerun", nargs="+", default=[], choices=sorted(STEP_BY_NAME), metavar="STEP",
        help="after the run, re-execute these steps' notebooks in a cold, then a warm kernel",
    )  # fmt: skip
    parser.add_argument(
        "--kernel", choices=["auto", "shared", "per_step"], default="auto",
        help="run.kernel: auto (as make run: shared below 1 GiB of raw files), shared, or a kernel per step",
    )  # fmt: skip
    parser.add_argument("--no-reference", action="store_true", help="skip the DuckDB reference comparison")
    args = parser.parse_args(argv)
    for size in args.sizes or [20000, 100000, 1000000]:
        bench(size, args.kernel, tuple(args.rerun), reference=not args.no_reference)


if __name__ == "__main__":
    main()
