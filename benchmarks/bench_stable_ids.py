"""Stable customer ids benchmark: do ids survive a month of new and changed data?

Generates a demo world (--customers, into --root, once) and --months consecutive months of it
(`helpers.demo.months`: new people, new phones, moves, new system records, planted merges and
splits, with truth), runs step 01 once per month and step 02 three ways on it:
`kept` (the default: ids carried over from the month before, unchanged records keep their
links), `relinked` (ids carried over, `identity.keep_previous_links: false`) and `fresh` (no
previous run: today's deterministic ids). Prints per month and way: the share of unchanged people
whose id moved (goal 0), new records of known people that joined their id, planted merges and
splits handled, the id counts step 02 records (kept / new / from splits / retired), pairwise F1
against planted truth, and step 02's wall and CPU seconds.

    .venv/bin/python benchmarks/bench_stable_ids.py --customers 1500
    flock /tmp/heavy.lock .venv/bin/python benchmarks/bench_stable_ids.py --customers 20000
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import time
from pathlib import Path

import pandas as pd
import yaml

from helpers.audit import run_step as run_audit
from helpers.core.config import load_config
from helpers.core.context import open_step
from helpers.core.runner import ensure_demo_data
from helpers.demo.months import next_month, stable_id_report
from helpers.identity import run_step as run_identity

WAYS = {"kept": {}, "relinked": {"identity.keep_previous_links": False}, "fresh": {}}


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def pairwise_f1(crosswalk: pd.DataFrame, truth_dir: Path) -> float:
    truth = pd.read_parquet(truth_dir / "source_records.parquet")
    frame = crosswalk.merge(truth, on=["source_system", "source_record_id"])

    def pairs(sizes: pd.Series) -> int:
        return int((sizes * (sizes - 1) // 2).sum())

    hits = pairs(frame.groupby(["customer_id", "person_id"]).size())
    precision = hits / pairs(frame.groupby("customer_id").size())
    recall = hits / pairs(frame.groupby("person_id").size())
    return 2 * precision * recall / (precision + recall)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=1500)
    parser.add_argument("--months", type=int, default=2)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--root", type=Path, default=Path("/tmp/bench_stable_ids"))
    args = parser.parse_args()
    print(f"load average at start: {os.getloadavg()}")
    base_raw = args.root / f"raw_{args.customers}_{args.seed}"
    base_truth = args.root / f"truth_{args.customers}_{args.seed}"
    config = load_config(
        "config/small.yml",
        [
            f"demo.customers={args.customers}",
            f"demo.seed={args.seed}",
            f"data.raw_dir={base_raw}",
            f"demo.truth_dir={base_truth}",
        ],
    )
    ensure_demo_data(config, progress=False)
    reference = pd.Timestamp(config["run"]["reference_date"])
    worlds = [(base_raw, base_truth, reference)]
    stamp = time.strftime("%H%M%S")
    data = args.root / f"months_{args.customers}_{args.seed}"
    for month in range(1, args.months + 1):
        raw, truth = data / f"month_{month}" / "raw", data / f"month_{month}" / "truth"
        reference = reference + pd.offsets.MonthEnd(1)
        if not (truth / "month_changes.parquet").is_file():
            wall, cpu = time.perf_counter(), cpu_seconds()
            next_month(*worlds[-1][:2], raw, truth, str(reference.date()), seed=args.seed, month=month)
            took = f"{time.perf_counter() - wall:.1f} s wall, {cpu_seconds() - cpu:.1f} s CPU"
            print(f"month {month}: generated in {took}")
        worlds.append((raw, truth, reference))

    runs = args.root / f"runs_{args.customers}_{stamp}"
    rows = []
    previous: dict[str, str] = {}
    for month, (raw, truth, reference) in enumerate(worlds):
        audit_dir = runs / f"m{month}_audit"
        audit_dir.mkdir(parents=True)
        frozen = json.loads(json.dumps(config, default=str))
        frozen["data"]["raw_dir"], frozen["run"]["reference_date"] = str(raw), str(reference.date())
        (audit_dir / "config.yml").write_text(yaml.safe_dump(frozen, allow_unicode=True), encoding="utf-8")
        wall, cpu = time.perf_counter(), cpu_seconds()
        run_audit(open_step("01_data_audit", str(audit_dir)))
        print(
            f"month {month}: step 01 {time.perf_counter() - wall:.1f} s wall, {cpu_seconds() - cpu:.1f} s CPU"
        )
        for way, overrides in WAYS.items():
            if month == 0 and way != "kept":
                continue
            run_dir = runs / f"m{month}_{way}"
            shutil.copytree(audit_dir, run_dir)
            settings = dict(frozen)
            settings["identity"] = {
                **frozen["identity"],
                "previous_run": previous.get(way, "none") if way != "fresh" else "none",
                **{key.split(".")[1]: value for key, value in overrides.items()},
            }
            (run_dir / "config.yml").write_text(
                yaml.safe_dump(settings, allow_unicode=True), encoding="utf-8"
            )
            wall, cpu = time.perf_counter(), cpu_seconds()
            result = run_identity(open_step("02_identity_merge", str(run_dir)))
            seconds, cpu_used = time.perf_counter() - wall, cpu_seconds() - cpu
            row = {
                "month": month,
                "way": way,
                "step02_s": round(seconds, 1),
                "step02_cpu_s": round(cpu_used, 1),
            }
            row.update({k: v for k, v in result.stats.items() if k.startswith("ids_")})
            row["f1"] = round(pairwise_f1(result.crosswalk, truth), 4)
            if month > 0:
                before = runs / f"m{month - 1}_{'kept' if month == 1 else way}"
                if way == "fresh":
                    before = runs / (f"m{month - 1}_fresh" if month > 1 else "m0_kept")
                report = stable_id_report(
                    pd.read_parquet(before / "02_identity_merge" / "crosswalk.parquet"),
                    result.crosswalk,
                    result.id_history,
                    truth,
                    month,
                )
                row.update(report)
            rows.append(row)
            previous[way] = run_dir.name
        if month == 0:
            previous = dict.fromkeys(WAYS, "m0_kept")
    table = pd.DataFrame(rows).set_index(["month", "way"])
    with pd.option_context("display.width", 250, "display.max_columns", 50):
        print(table.T.to_string())
    print(f"load average at end: {os.getloadavg()}")


if __name__ == "__main__":
    main()
