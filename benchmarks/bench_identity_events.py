"""Identifier-keyed events benchmark: how many events step 02 gives to their true person.

The export-style demo world (`config/demo_export.yml`, `demo.style: export`) keys calls by the caller
number, orders by the shop account (phone, e-mail or member number) and surveys by phone or e-mail;
its truth (`export_rows`) names the person behind every data row. The benchmark generates that world
(into --root, once), runs steps 01, 02 and 03 in-process and prints, per event file and for the
planted hard cases (household members on a shared landline, company contacts behind a switchboard):
the share of accepted events resolved to their true person, left unlinked, or given to someone else,
and how step 02 resolved them. Step 03's count of events no customer claims checks the downstream join.
Events whose number nobody in the world holds (planted orphans) are counted apart: they should become
new customers. The demo world plants no recycled numbers; the unit tests cover that case.

    .venv/bin/python benchmarks/bench_identity_events.py --customers 1500
    flock /tmp/heavy.lock .venv/bin/python benchmarks/bench_identity_events.py --customers 20000
"""

from __future__ import annotations

import argparse
import resource
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import pandas as pd
import yaml

from helpers.audit import run_step as run_audit
from helpers.core.config import load_config
from helpers.core.context import open_step
from helpers.core.runner import ensure_demo_data
from helpers.demo.truth import customer_person
from helpers.features import run_step as run_features
from helpers.identity import run_step as run_identity

T = TypeVar("T")
EVENT_FILES = ("呼叫记录.csv", "订单明细.csv", "survey_results.csv")


def cpu_seconds() -> float:
    """User + system CPU seconds of this process and its threads so far."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def timed(label: str, function: Callable[..., T], *args: Any) -> T:
    wall, cpu = time.perf_counter(), cpu_seconds()
    result = function(*args)
    print(f"{label}: {time.perf_counter() - wall:.1f} s wall, {cpu_seconds() - cpu:.1f} s CPU")
    return result


def prepare(root: Path, customers: int, seed: int) -> tuple[Path, Path]:
    """The export world's raw and truth folders (generated if missing) and a fresh run folder."""
    raw, truth = root / f"raw_{customers}_{seed}", root / f"truth_{customers}_{seed}"
    config = load_config(
        "config/demo_export.yml",
        [
            f"demo.customers={customers}",
            f"demo.seed={seed}",
            f"data.raw_dir={raw}",
            f"demo.truth_dir={truth}",
        ],
    )
    ensure_demo_data(config, progress=False)
    run_dir = root / f"run_{customers}_{seed}_{time.strftime('%H%M%S')}"
    run_dir.mkdir(parents=True)
    (run_dir / "config.yml").write_text(yaml.safe_dump(config, allow_unicode=True), encoding="utf-8")
    return run_dir, truth


def share_table(frame: pd.DataFrame, by: str) -> pd.DataFrame:
    """Per group: events, and the shares resolved to the true person, to a new customer made from the
    identifier (the person's identity records do not carry it), left unlinked, or given to someone else."""
    outcome = pd.Series("other person", index=frame.index)
    outcome[frame["resolved_by"].eq("new customer").to_numpy()] = "new customer"
    outcome[frame["customer_id"].isna().to_numpy()] = "unlinked"
    outcome[frame["customer_person"].eq(frame["person_id"]).fillna(False).to_numpy()] = "true person"
    table = pd.crosstab(frame[by], outcome, normalize="index").round(4)
    table.insert(0, "events", frame.groupby(by).size())
    columns = ["events", "true person", "new customer", "unlinked", "other person"]
    return table.reindex(columns=columns, fill_value=0.0)


def evaluate(run_dir: Path, truth: Path) -> None:
    trace = pd.read_parquet(run_dir / "02_identity_merge" / "row_trace.parquet")
    rows = pd.read_parquet(truth / "export_rows.parquet")
    persons = pd.read_parquet(truth / "persons.parquet", columns=["person_id", "household_id", "company_id"])
    crosswalk = pd.read_parquet(run_dir / "02_identity_merge" / "crosswalk.parquet")
    resolution = pd.read_parquet(run_dir / "02_identity_merge" / "event_customers.parquet")
    owner = customer_person(crosswalk, pd.read_parquet(truth / "source_records.parquet"))
    events = trace[trace["file"].isin(EVENT_FILES) & (trace["status"] == "accepted")]
    events = events.merge(rows[["file", "row_no", "person_id"]], on=["file", "row_no"], how="left")
    events["customer_person"] = events["customer_id"].map(owner)
    table_of = {file: table for file, table in trace[["file", "table"]].drop_duplicates().to_numpy()}
    rule = resolution.set_index(["event_table", "source_row"])["resolved_by"]
    events["resolved_by"] = rule.reindex(
        pd.MultiIndex.from_arrays([events["file"].map(table_of), events["row_no"]])
    ).to_numpy()
    orphans = events[events["person_id"].fillna("") == ""]
    known = events[events["person_id"].fillna("") != ""].merge(persons, on="person_id", how="left")
    known["case"] = "other"
    known.loc[known["household_id"].fillna("") != "", "case"] = "household member"
    known.loc[known["company_id"].fillna("") != "", "case"] = "switchboard contact"
    with pd.option_context("display.width", 160, "display.max_columns", 20):
        once = not trace.duplicated(["file", "row_no"]).any()
        print(f"\nrow_trace: {len(trace):,} rows; every row once: {once}")
        print("\nEvents of a planted person, by file:")
        print(share_table(known, "file"))
        linked = known[known["customer_person"].notna()]
        right = linked["customer_person"].eq(linked["person_id"]).mean()
        print(
            f"\nall files: true person {known['customer_person'].eq(known['person_id']).mean():.4f}; "
            f"of events given to an existing customer: {right:.4f}"
        )
        hidden = known[known["resolved_by"].eq("new customer")]
        recorded = hidden["person_id"].isin(set(owner.to_numpy())).mean()
        print(
            f"new-customer events whose person has an identity record in the run: {recorded:.4f} "
            "(the others' person is known only to a table the export lacks)"
        )
        print("\nBy planted case:")
        print(share_table(known, "case"))
        print("\nBy how step 02 resolved them:")
        print(share_table(known.assign(resolved_by=known["resolved_by"].fillna("record")), "resolved_by"))
        print(
            f"\nOrphan events (number nobody holds): {len(orphans):,}, of which new customers "
            f"{orphans['resolved_by'].eq('new customer').mean():.4f}; new customers made: "
            f"{int((crosswalk['source_system'] == 'event').sum()):,}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--customers", type=int, default=1500)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--root", type=Path, default=Path("/tmp/bench_identity_events"))
    args = parser.parse_args()
    run_dir, truth = timed("export world", prepare, args.root, args.customers, args.seed)
    timed("step 01", run_audit, open_step("01_data_audit", str(run_dir)))
    timed("step 02", run_identity, open_step("02_identity_merge", str(run_dir)))
    features = timed("step 03", run_features, open_step("03_features", str(run_dir)))
    print(f"step 03 events no customer claims: {features.build.unmatched_events}")
    evaluate(run_dir, truth)


if __name__ == "__main__":
    main()
