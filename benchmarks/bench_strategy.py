"""Step-06 benchmark: the strategy computations on synthetic inputs; wall time per phase and peak memory.

Per size, a child process writes synthetic 02-05 artifacts (helpers.strategy.synthetic) for two runs,
runs step 06's logic on the first (no previous run) and on the second (segments relabelled, so the
migration path runs too), and reports each phase. Kernel start-up and report rendering are not
included (the runner's own timings cover those). Target: steps 05 + 06 under 2 minutes at 1M.

    nice .venv/bin/python benchmarks/bench_strategy.py                # 100000 and 1000000
    nice .venv/bin/python benchmarks/bench_strategy.py 20000
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


def step06(run_dir: Path, previous: Path | None, timings: dict[str, float]) -> None:
    """What notebook 06 computes and writes, phase by phase."""
    import pandas as pd

    from helpers.core.config import load_config, parse_config
    from helpers.core.i18n import catalog
    from helpers.core.paths import PROJECT_ROOT
    from helpers.strategy import migration
    from helpers.strategy import plan as strategy

    def lap(name: str, start: float) -> float:
        now = time.perf_counter()
        timings[name] = round(timings.get(name, 0.0) + now - start, 2)
        return now

    start = time.perf_counter()
    config = parse_config(load_config())
    settings = strategy.StrategySettings.from_config(config.strategy)
    text = catalog(config.report.language)
    playbook = strategy.load_playbook(PROJECT_ROOT / "config" / "playbook.yml", config.report.language)
    features = pd.read_parquet(run_dir / "03_features" / "features.parquet", columns=migration.FEATURE_INPUTS)
    segments = pd.read_parquet(run_dir / "04_clustering" / "segments.parquet")
    lifecycle = pd.read_parquet(run_dir / "05_lifecycle" / "lifecycle.parquet")
    start = lap("read inputs", start)
    moved = None
    if previous is not None:
        moved = migration.compare_with_previous(
            previous,
            features,
            segments,
            lifecycle,
            config.strategy.migration.min_stability,
            config.strategy.migration.max_size_change,
        )
        segments = moved.segments
        start = lap("migration", start)
    customers = strategy.assemble_customers(features, segments, lifecycle)
    start = lap("assemble + validate", start)
    plan = strategy.assign_calls(strategy.build_plan(customers, playbook, settings), settings)
    usage = strategy.team_usage(plan, settings)
    start = lap("plan + call assignment", start)
    metrics = strategy.metric_deltas(
        strategy.segment_metrics(customers, plan, settings), moved.previous_metrics if moved else None
    )
    strategy.recommendations(metrics, plan, playbook, text)
    strategy.decisions(plan, usage, metrics, text)
    strategy.key_numbers(plan, metrics, text)
    strategy.playbook_coverage(playbook, plan)
    start = lap("metrics + recommendations", start)
    golden = pd.read_parquet(
        run_dir / "02_identity_merge" / "golden.parquet", columns=strategy.CONTACT_COLUMNS
    )
    as_of_date, plan_until = strategy.planning_period(config.run.reference_date, settings.period_days)
    calls = strategy.build_call_list(plan, golden, as_of_date, plan_until, text)
    out = run_dir / "06_strategy"
    strategy.write_call_list(calls, out, text)
    start = lap("call list csv + xlsx", start)
    plan.to_parquet(out / "plan.parquet", index=False)
    metrics.to_parquet(out / "segment_metrics.parquet", index=False)
    lap("write plan + metrics", start)
    timings["call_list_rows"] = len(calls)


def child(customers: int) -> dict:
    """Run in a fresh process: inputs for two runs, then step 06 on both."""
    import os

    import pandas as pd

    from helpers.strategy.synthetic import write_synthetic_run

    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        first = write_synthetic_run(Path(tmp) / "run1", customers, seed=1)
        second = write_synthetic_run(Path(tmp) / "run2", customers, seed=1)
        os.utime(first / "config.yml", (time.time() - 60, time.time() - 60))
        path = second / "04_clustering" / "segments.parquet"
        segments = pd.read_parquet(path)
        segments["segment_id"] = (segments["segment_id"] + 2) % 5
        segments["segment_name"] = "Cluster " + segments["segment_id"].astype(str)
        segments.to_parquet(path, index=False)
        generate = round(time.perf_counter() - start, 1)
        first_run: dict[str, float] = {}
        start = time.perf_counter()
        step06(first, None, first_run)
        first_wall = round(time.perf_counter() - start, 1)
        rerun: dict[str, float] = {}
        start = time.perf_counter()
        step06(second, first, rerun)
        rerun_wall = round(time.perf_counter() - start, 1)
    return {"customers": customers, "generate_inputs_seconds": generate, "first_run_seconds": first_wall,
            "first_run_phases": first_run, "rerun_with_migration_seconds": rerun_wall, "rerun_phases": rerun,
            "peak_rss_mb": round(peak_rss_mb())}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("sizes", nargs="*", type=int, default=[100_000, 1_000_000])
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child)))
        return
    for size in args.sizes:
        done = subprocess.run(
            [sys.executable, __file__, "--child", str(size)], capture_output=True, text=True, check=True
        )
        result = json.loads(done.stdout.strip().splitlines()[-1])
        print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
