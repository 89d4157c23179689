"""DuckDB vs local Spark, side by side: the whole workbench once per engine on the same demo world,
per step wall, CPU and peak memory, and whether the two runs' artifacts agree.

Usage: python benchmarks/bench_spark.py [--customers N] [--raw-dir DIR] [--outputs DIR]
       python benchmarks/bench_spark.py --compare DUCKDB_RUN SPARK_RUN (two finished runs' artifacts)
(default: the small test world, config/small.yml; --customers N: the demo config's world of N
customers, generated once into --raw-dir, its truth beside it, or by default into data/raw/bench_<N>/
and data/truth/). Wrap it in `flock /tmp/heavy.lock` on a shared machine; it needs the spark extra
(`make setup-spark`).

Per step and engine: wall seconds, CPU seconds of the kernel and everything it runs (the Spark JVM
included, `cpu_seconds` in run.json), peak resident memory of the kernel and its processes (the JVM
included), and which engine ran the step's SQL (`duckdb` for steps not yet behind the seam, `-`
for steps without SQL). Spark's wall includes starting its session in the first step that uses it.
Then the artifacts of `ARTIFACTS` of the two runs are compared (sorted by key, floats to 1e-9,
relative or absolute).
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from helpers.core.config import load_config
from helpers.core.notebook_checks import SMALL_WORLD_CONFIG
from helpers.core.paths import OUTPUTS_DIR
from helpers.core.runner import ensure_demo_data, run_workbench
from helpers.engine.base import ENGINES, PARITY_ARTIFACTS


def run_on(engine: str, config: Path | None, overrides: list[str], outputs: Path) -> tuple[Path, float]:
    """One whole run with `engine.name` set; its run folder and wall seconds."""
    started = time.perf_counter()
    result = run_workbench(config, [*overrides, f"engine.name={engine}"], outputs_dir=outputs, progress=False)
    return result.run_dir, time.perf_counter() - started


def print_side_by_side(steps: dict[str, dict[str, Any]], totals: dict[str, float]) -> None:
    """One line per step: each engine's wall s, CPU s, peak MB, and Spark's wall over DuckDB's."""
    head = "".join(f"{f'{e} {m}':>16}" for e in ENGINES for m in ("wall s", "CPU s", "peak MB"))
    print(f"{'step':<20}{'SQL on':>8}{head}{'wall x':>9}")
    for step in steps[ENGINES[0]]:
        records = [steps[engine][step] for engine in ENGINES]
        sql = records[-1].get("sql_engine") or "-"
        figures = "".join(
            f"{r['seconds']:>16.1f}{r.get('cpu_seconds') or 0.0:>16.1f}{r['peak_kernel_rss_mb']:>16.0f}"
            for r in records
        )
        print(f"{step:<20}{sql:>8}{figures}{records[-1]['seconds'] / records[0]['seconds']:>9.2f}")
    cpu = {engine: sum(r.get("cpu_seconds") or 0.0 for r in steps[engine].values()) for engine in ENGINES}
    peak = {engine: max(r["peak_kernel_rss_mb"] for r in steps[engine].values()) for engine in ENGINES}
    line = "".join(f"{totals[e]:>16.1f}{cpu[e]:>16.1f}{peak[e]:>16.0f}" for e in ENGINES)
    print(f"{'whole run':<20}{'':>8}{line}{totals['spark'] / totals['duckdb']:>9.2f}")


def sorted_artifact(run_dir: Path, artifact: str) -> pa.Table:
    """One of `PARITY_ARTIFACTS` of a run folder as an Arrow table, rows sorted by its key."""
    table = pq.read_table(run_dir / f"{artifact}.parquet")
    return table.take(pc.sort_indices(table, [(key, "ascending") for key in PARITY_ARTIFACTS[artifact]]))


def artifact_difference(duckdb_run: Path, spark_run: Path, artifact: str) -> str | None:
    """How an artifact of the two runs differs (None: equal), one column at a time: floats to 1e-9
    (relative or absolute), everything else exactly. Arrow, not pandas, holds the tables: at 1M people
    a pandas frame of each run's row_trace (27M rows of text) did not fit in 24 GB."""
    duck, spark = (sorted_artifact(run, artifact) for run in (duckdb_run, spark_run))
    columns = [[(field.name, field.type) for field in table.schema] for table in (duck, spark)]
    if columns[0] != columns[1] or duck.num_rows != spark.num_rows:  # NOT NULL flags may differ
        return f"{duck.num_rows:,} vs {spark.num_rows:,} rows; columns {columns[0]} vs {columns[1]}"
    for name in duck.column_names:
        left, right = duck.column(name), spark.column(name)
        if pa.types.is_floating(left.type):
            try:
                pd.testing.assert_series_equal(left.to_pandas(), right.to_pandas(), rtol=1e-9, atol=1e-9)
            except AssertionError as difference:
                return f"{name}: {' '.join(str(difference).split())[:300]}"
        elif not left.equals(right):
            unequal = pc.invert(pc.fill_null(pc.equal(left, right), False))
            row = pc.index(unequal, True).as_py()
            return f"{name}: first at sorted row {row}: {left[row]} vs {right[row]}"
    return None


def compare_artifacts(duckdb_run: Path, spark_run: Path) -> int:
    """Print whether each artifact of the two runs is equal; the number that differ."""
    differing = 0
    for artifact in PARITY_ARTIFACTS:
        difference = artifact_difference(duckdb_run, spark_run, artifact)
        if difference is None:
            rows = pq.ParquetFile(duckdb_run / f"{artifact}.parquet").metadata.num_rows
            print(f"  {artifact}: equal ({rows:,} rows)")
        else:
            differing += 1
            print(f"  {artifact}: DIFFERS: {difference}")
    return differing


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--customers", type=int, help="demo world size (default: the small world)")
    parser.add_argument(
        "--raw-dir", type=Path, help="where the demo world is generated (default data/raw/bench_N)"
    )
    parser.add_argument("--outputs", type=Path, default=OUTPUTS_DIR / "bench_spark", help="run folders")
    parser.add_argument(
        "--compare",
        nargs=2,
        type=Path,
        metavar=("DUCKDB_RUN", "SPARK_RUN"),
        help="only compare the artifacts of two finished run folders",
    )
    args = parser.parse_args(argv)
    if args.compare:
        differing = compare_artifacts(*args.compare)
        print(f"{differing} of {len(PARITY_ARTIFACTS)} artifacts differ")
        return
    if args.customers:
        config = None
        raw_dir = args.raw_dir or Path(f"data/raw/bench_{args.customers}")
        overrides = [f"demo.customers={args.customers}", f"data.raw_dir={raw_dir}"]
        if args.raw_dir:  # the planted truth beside it, not in the checkout's data/truth
            overrides.append(f"demo.truth_dir={raw_dir.parent / (raw_dir.name + '_truth')}")
    else:
        config, overrides = SMALL_WORLD_CONFIG, []
    ensure_demo_data(load_config(config, overrides), progress=True)  # not timed
    load_before = os.getloadavg()[0]
    runs, totals, steps = {}, {}, {}
    for engine in ENGINES:
        runs[engine], totals[engine] = run_on(engine, config, overrides, args.outputs / engine)
        steps[engine] = json.loads((runs[engine] / "run.json").read_text())["steps"]
    world = f"{args.customers:,} customers" if args.customers else "the small world"
    print(f"\n== {world}; load average {load_before:.2f} before, {os.getloadavg()[0]:.2f} after")
    print("\n".join(f"{engine}: {runs[engine]}" for engine in ENGINES))
    print_side_by_side(steps, totals)
    print("artifacts, Spark run vs DuckDB run:")
    differing = compare_artifacts(runs["duckdb"], runs["spark"])
    print(f"{differing} of {len(PARITY_ARTIFACTS)} artifacts differ")


if __name__ == "__main__":
    main()
