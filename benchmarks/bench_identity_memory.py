"""Step 02 alone on a run folder: wall and CPU seconds, peak resident memory and where it was reached.

Runs `helpers.identity.run_step` in this process on a run folder that holds step 01
(`01_data_audit`), writing `02_identity_merge` there, with a resident-memory timeline
(`helpers.core.measure.MemoryTimeline`: every new peak with the step's innermost frames). Prints
one JSON line: wall, CPU, peak RSS (MiB), the frames at the peak, the load average before, after and
during, the step's phase seconds, and with --reference the step-02 artifacts compared with another
run folder's (columns, Arrow types and values equal, pandas dtypes too). --timeline writes every
sample and peak.

    flock /tmp/heavy.lock .venv/bin/python benchmarks/bench_identity_memory.py \\
        --run-dir /tmp/run1m --set data.raw_dir=/tmp/raw1m --reference /tmp/run1m_before
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import threading
import time
from pathlib import Path

import pyarrow.parquet as pq

from helpers.core.config import load_config
from helpers.core.context import StepContext
from helpers.core.measure import MemoryTimeline, peak_rss_mb
from helpers.core.steps import IDENTITY
from helpers.identity import run_step


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def compare(run_dir: Path, reference: Path) -> dict[str, bool]:
    """Per step-02 artifact of `reference`: whether `run_dir`'s holds the same columns, Arrow types and
    values (one column at a time in Arrow: the 1M row trace as pandas objects would take ~20 GB) and
    reads back with the same pandas dtypes."""
    equal = {}
    for path in sorted((reference / IDENTITY.name).glob("*.parquet")):
        ours = run_dir / IDENTITY.name / path.name
        schema, their_schema = pq.read_schema(ours), pq.read_schema(path)
        same = schema.names == their_schema.names and schema.types == their_schema.types
        for column in schema.names if same else []:
            same = same and pq.read_table(ours, columns=[column])[column].equals(
                pq.read_table(path, columns=[column])[column]
            )
        dtypes = [schema.empty_table().to_pandas().dtypes for schema in (schema, their_schema)]
        equal[path.stem] = bool(same and dtypes[0].equals(dtypes[1]))
    return equal


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--run-dir", type=Path, required=True, help="run folder holding 01_data_audit")
    parser.add_argument("--config", default="config/demo.yml")
    parser.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE")
    parser.add_argument("--reference", type=Path, help="run folder whose step-02 artifacts to compare with")
    parser.add_argument("--timeline", type=Path, help="write every memory sample and peak here (JSON)")
    args = parser.parse_args()
    if not (args.run_dir / "01_data_audit").is_dir():
        parser.error(f"--run-dir {args.run_dir} has no 01_data_audit: run step 01 there first")
    ctx = StepContext(run_dir=args.run_dir, step=IDENTITY.name, config=load_config(args.config, args.set))
    loads, done = [], threading.Event()

    def load_every_10_seconds() -> None:
        while not done.wait(10):
            loads.append(os.getloadavg()[0])

    threading.Thread(target=load_every_10_seconds, daemon=True).start()
    load_before, cpu, clock = os.getloadavg(), cpu_seconds(), time.perf_counter()
    with MemoryTimeline() as timeline:
        result = run_step(ctx)
    done.set()
    wall, cpu = time.perf_counter() - clock, cpu_seconds() - cpu
    peak = max(timeline.peaks, key=lambda p: p[1], default=(0.0, 0, []))
    report = {
        "records": result.stats["records"],
        "customers": result.stats["customers"],
        "wall_seconds": round(wall, 1),
        "cpu_seconds": round(cpu, 1),
        "peak_rss_mib": round(peak_rss_mb()),
        "peak_sampled": {"seconds": peak[0], "rss_mib": peak[1], "where": peak[2]},
        "load_before": [round(x, 2) for x in load_before],
        "load_after": [round(x, 2) for x in os.getloadavg()],
        "load_mean_during": round(sum(loads) / len(loads), 2) if loads else None,
        "phase_seconds": {k: v for k, v in result.stats.items() if k.startswith("seconds_")},
    }
    if args.reference:
        report["artifacts_equal"] = compare(args.run_dir, args.reference)
    if args.timeline:
        args.timeline.write_text(json.dumps({"samples": timeline.samples, "peaks": timeline.peaks}))
    print(json.dumps(report, ensure_ascii=False))


if __name__ == "__main__":
    main()
