"""Lifecycle benchmark: churn label and risk quality on real CDNOW data, then speed at scale.

    .venv/bin/python benchmarks/bench_lifecycle.py            # CDNOW quality, all splits
    .venv/bin/python benchmarks/bench_lifecycle.py --demo data/raw/demo data/truth/demo 2026-06-30
    .venv/bin/python benchmarks/bench_lifecycle.py --data --scale 100000 1000000 --notebook

Quality: for several reference dates and holdout lengths, the target is "no purchase in the
holdout" (the holdout length is also the lifecycle `horizon_days`); `--demo` adds a demo world's
own purchase log (per planted person) scored on its planted 90-day future. Printed per split: base rate,
ROC AUC of days-since-last-purchase (baseline) and of `churn_risk`, the baseline's best precision
at recall >= 0.90 (an oracle threshold), and the precision/recall of our at_risk+churned label.

Speed: synthetic run folders (upstream artifacts as steps 01-04 write them) at each `--scale`; the
step's work (SQL summaries, labeling, artifact write) is timed in a child process that also reports
its peak memory; `--notebook` also times the whole notebook with papermill (plots included).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from importlib.util import find_spec
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from helpers.core.context import open_step
from helpers.core.measure import peak_rss_mb
from helpers.core.paths import NOTEBOOKS_DIR, PROJECT_ROOT
from helpers.lifecycle import run_step
from helpers.lifecycle.stages import evaluate_against_holdout

# (reference date, holdout days): the classic split (39 weeks) first, then other dates and lengths.
SPLITS: list[tuple[str, int]] = [
    ("1997-09-30", 39 * 7),
    ("1997-06-30", 26 * 7),
    ("1997-06-30", 52 * 7),
    ("1997-09-30", 13 * 7),
    ("1997-12-31", 26 * 7),
    ("1998-03-31", 13 * 7),
]


def cdnow_path(name: str = "sample") -> Path:
    """The CDNOW file shipped in the `lifetimes` wheel (`sample`: 2,357 customers, `master`: 23,570)."""
    spec = find_spec("lifetimes")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            "The lifetimes package (dev dependency) is not installed; it ships the CDNOW data."
        )
    return Path(next(iter(spec.submodule_search_locations))) / "datasets" / f"CDNOW_{name}.txt"


def load_cdnow(name: str = "sample") -> pd.DataFrame:
    """CDNOW as a transaction log: customer_id, txn_at, quantity, amount."""
    path = cdnow_path(name)
    if name == "sample":  # master id, sample id, date, quantity, amount; no header
        raw = pd.read_csv(path, sep=r"\s+", header=None, usecols=[0, 2, 3, 4], dtype={0: str})
    else:  # customer_id, date, number_of_cds, dollar_value; header
        raw = pd.read_csv(path, sep=r"\s+", header=0, dtype={0: str})
    raw.columns = ["customer_id", "date", "quantity", "amount"]
    raw["txn_at"] = pd.to_datetime(raw["date"].astype(str), format="%Y%m%d")
    return raw[["customer_id", "txn_at", "quantity", "amount"]]


def load_demo_log(raw_dir: Path, truth_dir: Path, reference: str) -> pd.DataFrame:
    """A demo world's purchases per planted person, up to the reference date from the raw export and
    after it from the truth: person_id, txn_at, amount. Refunds, rows with unparseable values and
    (planted) export rows dated after the reference are left out."""
    raw = pd.read_csv(raw_dir / "transactions.csv", dtype=str)
    person = pd.read_parquet(truth_dir / "source_records.parquet")
    raw = raw.merge(
        person,
        left_on=["source_system", "source_customer_id"],
        right_on=["source_system", "source_record_id"],
    )
    past = pd.DataFrame(
        {
            "person_id": raw["person_id"],
            "txn_at": pd.to_datetime(raw["txn_at"], errors="coerce", format="mixed"),
            "amount": pd.to_numeric(raw["amount"], errors="coerce"),
        }
    )[raw["is_refund"].str.lower().eq("false").to_numpy()]
    past = past.dropna()
    past = past[past["txn_at"] < pd.Timestamp(reference) + pd.Timedelta(days=1)]
    future = pd.read_parquet(truth_dir / "future_transactions.parquet")
    return pd.concat([past, future], ignore_index=True)


def quality(names: list[str], demo: list[tuple[Path, Path, str]] | None = None) -> pd.DataFrame:
    """Churn label and risk against the holdout, per data set and split (see the module docstring);
    `demo`: (raw dir, truth dir, reference date) of demo worlds, scored on their 90-day future."""
    runs = [(f"CDNOW_{name}", load_cdnow(name), "customer_id", SPLITS) for name in names]
    for raw_dir, truth_dir, reference in demo or []:
        runs.append(
            (
                f"demo:{raw_dir.name}",
                load_demo_log(raw_dir, truth_dir, reference),
                "person_id",
                [(reference, 90)],
            )
        )
    rows = []
    for data, log, customer_col, splits in runs:
        for reference, days in splits:
            start = time.perf_counter()
            row = {"data": data, "reference": reference, "holdout_days": days}
            row.update(evaluate_against_holdout(log, reference, days, customer_col=customer_col))
            row["seconds"] = time.perf_counter() - start
            rows.append(row)
    return pd.DataFrame(rows)


# ---------------------------------------------------------------------------------------------
# Scale: synthetic run folders with 100k / 1M customers
# ---------------------------------------------------------------------------------------------


def _strings(codes: np.ndarray, vocabulary: list[str] | np.ndarray) -> pa.DictionaryArray:
    """Dictionary-encoded strings (light to build for millions of rows; Parquet keeps them as text)."""
    return pa.DictionaryArray.from_arrays(pa.array(codes, pa.int32()), pa.array(vocabulary, pa.string()))


def synthetic_run(run_dir: Path, customers: int, seed: int = 0) -> None:
    """Upstream artifacts of a run for `customers` synthetic customers, as steps 01-04 would write them.

    Purchases follow a per-customer rhythm (lognormal mean gap ~40 days) in five states: active,
    lapsing (1.6-3x their rhythm overdue), churned (9-24 months silent), new (first purchase in the
    last 60 days) and prospects; calls and surveys ~3 and ~0.5 per customer.
    """
    rng = np.random.default_rng(seed)
    reference = pd.Timestamp("2026-06-30")
    ids = np.char.add("C", np.char.zfill(np.arange(customers).astype(str), 8))
    records = np.char.add("R", np.char.zfill(np.arange(customers).astype(str), 8))
    state = rng.choice(
        5, customers, p=[0.55, 0.13, 0.11, 0.08, 0.13]
    )  # active, lapsing, churned, new, prospect
    rhythm = np.exp(rng.normal(np.log(40), 0.5, customers))
    tenure = rng.uniform(90, 1200, customers)
    gap = np.select(
        [state == 0, state == 1, state == 2, state == 3],
        [rng.uniform(0, 0.9, customers) * rhythm, rng.uniform(1.6, 3.0, customers) * rhythm,
         rng.uniform(270, 730, customers), rng.uniform(0, 50, customers)],
        0.0,
    )  # fmt: skip
    count = np.where(state == 3, 1, np.minimum(1 + (tenure / rhythm).astype(int), 60))
    count = np.where(state == 4, 0, count)
    owner = np.repeat(np.arange(customers), count)
    rank = np.arange(len(owner)) - np.repeat(np.cumsum(count) - count, count)
    days_ago = gap[owner] + rank * rhythm[owner] * rng.uniform(0.8, 1.2, len(owner))
    keep = days_ago < 1400
    owner, days_ago = owner[keep], days_ago[keep]
    txn_at = reference.to_datetime64() - (days_ago * 86400).astype("timedelta64[s]")
    step01, step02 = run_dir / "01_data_audit", run_dir / "02_identity_merge"
    step03, step04 = run_dir / "03_features", run_dir / "04_clustering"
    for folder in (step01, step02, step03, step04):
        folder.mkdir(parents=True, exist_ok=True)
    crm = _strings(np.zeros(len(owner), np.int32), ["crm"])
    pq.write_table(
        pa.table(
            {
                "source_system": crm,
                "source_customer_id": _strings(owner.astype(np.int32), records),
                "txn_at": txn_at,
                "amount": rng.gamma(2.0, 150.0, len(owner)),
                "is_refund": rng.random(len(owner)) < 0.02,
            }
        ),
        step01 / "clean_transactions.parquet",
    )
    n_calls = rng.poisson(np.where(state == 4, 1.0, 3.0))
    caller = np.repeat(np.arange(customers), n_calls)
    pq.write_table(
        pa.table(
            {
                "cti_id": _strings(caller.astype(np.int32), records),
                "call_at": reference.to_datetime64()
                - (rng.uniform(0, 700, len(caller)) * 86400).astype("timedelta64[s]"),
                "direction": _strings(
                    (rng.random(len(caller)) < 0.7).astype(np.int32), ["outbound", "inbound"]
                ),
                "reason": _strings(
                    rng.integers(0, 4, len(caller)).astype(np.int32),
                    ["inquiry", "complaint", "after_sales", "sales"],
                ),
                "satisfaction": rng.integers(1, 6, len(caller)).astype(float),
            }
        ),
        step01 / "clean_calls.parquet",
    )
    n_surveys = rng.poisson(0.5, customers)
    answerer = np.repeat(np.arange(customers), n_surveys)
    pq.write_table(
        pa.table(
            {
                "source_system": _strings(np.zeros(len(answerer), np.int32), ["crm"]),
                "source_customer_id": _strings(answerer.astype(np.int32), records),
                "answered_at": reference.to_datetime64()
                - (rng.uniform(0, 700, len(answerer)) * 86400).astype("timedelta64[s]"),
                "csat": rng.integers(1, 6, len(answerer)).astype(float),
                "nps": rng.integers(0, 11, len(answerer)).astype(float),
            }
        ),
        step01 / "clean_surveys.parquet",
    )
    crosswalk = pa.table(
        {
            "source_system": np.concatenate([np.full(customers, "crm"), np.full(customers, "cti")]),
            "source_record_id": np.concatenate([records, records]),
            "customer_id": np.concatenate([ids, ids]),
        }
    )
    pq.write_table(crosswalk, step02 / "crosswalk.parquet")
    first = pd.Series(txn_at).groupby(owner).min().reindex(range(customers))
    last = pd.Series(txn_at).groupby(owner).max().reindex(range(customers))
    n_purchases = np.bincount(owner, minlength=customers)
    features = pd.DataFrame(
        {
            "customer_id": ids,
            "n_purchases": n_purchases,
            "first_purchase_at": first.to_numpy(),
            "last_purchase_at": last.to_numpy(),
            "n_calls": n_calls,
            "n_inbound": rng.binomial(n_calls, 0.3),
            "n_inquiries": rng.binomial(n_calls, 0.25),
            "csat_mean": np.where(n_surveys > 0, rng.uniform(1, 5, customers), np.nan),
            "nps_mean": np.where(n_surveys > 0, rng.uniform(0, 10, customers), np.nan),
        }
    )
    features.to_parquet(step03 / "features.parquet", index=False)
    segment = rng.integers(0, 6, customers)
    pd.DataFrame(
        {
            "customer_id": ids,
            "segment_id": segment,
            "segment_name": np.array([f"segment {k}" for k in range(6)])[segment],
        }
    ).to_parquet(step04 / "segments.parquet", index=False)
    (run_dir / "config.yml").write_text(
        (PROJECT_ROOT / "config" / "demo.yml").read_text(encoding="utf-8"), encoding="utf-8"
    )


def time_labeling(run_dir: Path) -> dict[str, float]:
    """Wall time of the step's work (`helpers.lifecycle.run_step`: SQL summaries, labeling, artifact
    writes) on a synthetic run."""
    context = open_step("05_lifecycle", str(run_dir))
    start = time.perf_counter()
    result = run_step(context)
    done = time.perf_counter()
    labeled = result.labeled
    return {
        "customers": len(labeled),
        "purchase_summary_s": result.seconds["purchase_summary"],
        "service_trends_s": result.seconds["service_trends"],
        "labeling_s": result.seconds["labeling"],
        "total_s": done - start,
        "process_cpu_s": resource.getrusage(resource.RUSAGE_SELF).ru_utime
        + resource.getrusage(resource.RUSAGE_SELF).ru_stime,
        "at_risk_share": float((labeled["stage"] == "at_risk").mean()),
        "method": result.model_info["method"],
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", nargs="*", default=["sample", "master"], choices=["sample", "master"])
    parser.add_argument(
        "--demo",
        nargs=3,
        action="append",
        metavar=("RAW_DIR", "TRUTH_DIR", "REFERENCE"),
        help="also score a demo world's purchase log against its planted 90-day future",
    )
    parser.add_argument("--scale", nargs="*", type=int, default=[], help="customer counts for the speed test")
    parser.add_argument(
        "--notebook", action="store_true", help="also run notebook 05 with papermill at each scale"
    )
    parser.add_argument("--time-run", type=Path, help=argparse.SUPPRESS)  # child process: time one run folder
    args = parser.parse_args(argv)
    if args.time_run:
        print(json.dumps({**time_labeling(args.time_run), "peak_rss_mb": peak_rss_mb()}))
        return
    if args.data or args.demo:
        demo = [(Path(raw), Path(truth), reference) for raw, truth, reference in args.demo or []]
        table = quality(args.data, demo)
        with pd.option_context("display.width", 250, "display.max_columns", 20, "display.precision", 3):
            print(table.to_string(index=False))
        print(f"CDNOW evaluation peak RSS {peak_rss_mb():.0f} MB")
    for customers in args.scale:
        with tempfile.TemporaryDirectory(prefix="bench_lifecycle_") as folder:
            run_dir = Path(folder) / "run"
            start = time.perf_counter()
            synthetic_run(run_dir, customers)
            elapsed = time.perf_counter() - start
            print(f"{customers:,} customers: synthetic upstream artifacts in {elapsed:.1f} s")
            child = subprocess.run(
                [sys.executable, __file__, "--data", "--time-run", str(run_dir)],
                check=True, capture_output=True, text=True,
            )  # fmt: skip
            print("  step 05 work:", child.stdout.strip().splitlines()[-1])
            if args.notebook:
                start = time.perf_counter()
                subprocess.run(
                    [sys.executable, "-m", "papermill", "-k", "python3", "--log-level", "ERROR",
                     str(NOTEBOOKS_DIR / "05_lifecycle.ipynb"), str(run_dir / "05_out.ipynb"),
                     "-p", "run_dir", str(run_dir)],
                    check=True, capture_output=True,
                )  # fmt: skip
                print(
                    f"  notebook 05 end to end (papermill, with plots): {time.perf_counter() - start:.1f} s"
                )


if __name__ == "__main__":
    main()
