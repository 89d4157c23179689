"""Whole-workbench benchmark: per-step wall time, CPU time and peak kernel memory at several sizes,
where each step's time goes, and step 03's transactions aggregate against a hand-written DuckDB
reference statement.

Usage: python benchmarks/bench_workbench.py [N_CUSTOMERS ...] [--rerun STEP ...] [--kernel KERNEL]
(default sizes: 20000 100000 1000000; --help lists every option). Wrap it in `flock /tmp/heavy.lock`
on a shared machine.
The demo world of each size is generated once into data/raw/bench_<N>/ (truth: data/truth/bench_<N>/;
`--data-root` moves both) and reused; generation is not counted. The run folder is kept under
outputs/bench/runs/ (`--outputs` moves it; printed), so the per-phase timings
the step manifests record (step 03's phases, step 02's merge seconds, step 04's map seconds) stay.
Per step: wall, CPU (the kernel's user + system time, `cpu_seconds` in run.json), peak kernel RSS,
the seconds until its artifacts were written (results: when the next step may start with
`run.overlap_steps`), and the wall split by the executed notebook's cell timings: setup (cells
before the `run_step` cell: imports, parameters), run_step, display (tables and figures after it),
the rest (kernel start or namespace reset, papermill); render is the HTML pages, written while the
next step runs.
The total CPU is the kernel's (child processes) plus this process's (papermill, rendering); the
machine's busy CPU seconds not spent by the benchmark are printed too (0 on a quiet machine).
`--rerun STEP` re-executes that step's notebook twice in one kernel against the finished run, as
an analyst does in JupyterLab (it writes to a scratch folder): first with a cold kernel, then warm.
The reference: after the run, step 03's transactions query and one hand-written DuckDB statement
computing the same 44 columns (`benchmarks/bench_references.py`) run on the same engine over the
run's Parquet files; wall and CPU (this process, every DuckDB thread), their ratio and the largest
difference between the two results are printed.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import resource
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import nbformat
import psutil

from helpers.core.config import load_config
from helpers.core.paths import OUTPUTS_DIR, PROJECT_ROOT
from helpers.core.runner import KernelCpu, SharedKernel, ensure_demo_data, execute_notebook, run_workbench
from helpers.core.steps import STEP_BY_NAME

BENCH_OUTPUTS = OUTPUTS_DIR / "bench"
DATA_ROOT = PROJECT_ROOT / "data"


def transactions_vs_reference(run_dir: Path) -> None:
    """Step 03's transactions aggregate against the same 44 columns written by hand in one DuckDB
    statement (`bench_references.compare_transactions`), timed on the finished run."""
    spec = importlib.util.spec_from_file_location(
        "bench_references", Path(__file__).with_name("bench_references.py")
    )
    bench_references = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench_references)
    bench_references.compare_transactions(run_dir)


def _cpu_seconds() -> float:
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


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
    columns = ("wall s", "CPU s", "peak MB", "results", "setup", "run_step", "display", "rest", "render")
    print(f"{'step':<20}" + "".join(f"{name:>9}" for name in columns))
    for step, record in manifest["steps"].items():
        phases = cell_phases(run_dir / "notebooks" / f"{step}.ipynb")
        rest = record["seconds"] - sum(phases.values())
        values = (
            record["seconds"], record.get("cpu_seconds"), record["peak_kernel_rss_mb"],
            record.get("results_seconds"), phases["setup"], phases["run_step"], phases["display"], rest,
            record.get("render_seconds"),
        )  # fmt: skip
        print(f"{step:<20}" + "".join(f"{v:>9.1f}" if v is not None else f"{'n/a':>9}" for v in values))
    steps = manifest["steps"].values()
    total = sum(r["seconds"] for r in steps), sum(r.get("cpu_seconds") or 0.0 for r in steps)
    print(f"{'sum of steps':<20}{total[0]:>9.1f}{total[1]:>9.1f}")
    if manifest.get("overlap_steps"):
        print("steps overlap (run.overlap_steps): each starts after the previous one's results, so the")
        print("sum of the steps' wall exceeds the run's; peak MB is each step's own kernel")
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
    customers: int,
    kernel: str = "shared",
    reruns: tuple[str, ...] = (),
    reference: bool = True,
    data_root: Path = DATA_ROOT,
    outputs: Path = BENCH_OUTPUTS,
) -> Path:
    """Run the workbench on the demo world of `customers` (`<data_root>/raw/bench_<customers>`, its truth
    in `<data_root>/truth/`) with runs under `outputs`; print the figures; return the run folder."""
    overrides = [
        f"demo.customers={customers}",
        f"data.raw_dir={data_root / 'raw' / f'bench_{customers}'}",
        f"demo.truth_dir={data_root / 'truth' / f'bench_{customers}'}",
        f"run.kernel={kernel}",
    ]
    started = time.perf_counter()
    ensure_demo_data(load_config(None, overrides), progress=True)  # not timed below
    generation = time.perf_counter() - started
    load_before = os.getloadavg()
    busy, cpu, started = machine_busy_seconds(), _cpu_seconds(), time.perf_counter()
    result = run_workbench(None, overrides, outputs_dir=outputs, progress=True)
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
    parser.add_argument(
        "--data-root", type=Path, default=DATA_ROOT,
        help="worlds in DATA_ROOT/raw/bench_<N>, their truth in DATA_ROOT/truth/bench_<N> (default: data)",
    )  # fmt: skip
    parser.add_argument(
        "--outputs", type=Path, default=BENCH_OUTPUTS, help="runs go to OUTPUTS/runs (default: outputs/bench)"
    )
    args = parser.parse_args(argv)
    for size in args.sizes or [20000, 100000, 1000000]:
        bench(
            size, args.kernel, tuple(args.rerun), reference=not args.no_reference,
            data_root=args.data_root.resolve(), outputs=args.outputs.resolve(),
        )  # fmt: skip


if __name__ == "__main__":
    main()
