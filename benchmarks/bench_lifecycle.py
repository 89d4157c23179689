"""Lifecycle benchmark: churn label and risk quality on real CDNOW data, then speed at scale.

    .venv/bin/python benchmarks/bench_lifecycle.py            # CDNOW quality, all splits
    .venv/bin/python benchmarks/bench_lifecycle.py --scale 100000 1000000

Quality: for several reference dates and holdout lengths, the target is "no purchase in the
holdout" (the holdout length is also the lifecycle `horizon_days`). Printed per split: base rate,
ROC AUC of days-since-last-purchase (baseline) and of `churn_risk`, the baseline's best precision
at recall >= 0.90 (an oracle threshold), and the precision/recall of our at_risk+churned label.
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
from importlib.util import find_spec
from pathlib import Path

import pandas as pd

from helpers.lifecycle import evaluate_against_holdout

# (reference date, holdout weeks): the classic split first, then other dates and lengths.
SPLITS: list[tuple[str, int]] = [
    ("1997-09-30", 39),
    ("1997-06-30", 26),
    ("1997-06-30", 52),
    ("1997-09-30", 13),
    ("1997-12-31", 26),
    ("1998-03-31", 13),
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


def quality(names: list[str]) -> pd.DataFrame:
    rows = []
    for name in names:
        log = load_cdnow(name)
        for reference, weeks in SPLITS:
            start = time.perf_counter()
            row = {"data": f"CDNOW_{name}", "reference": reference, "holdout_weeks": weeks}
            row.update(evaluate_against_holdout(log, reference, weeks * 7))
            row["seconds"] = time.perf_counter() - start
            rows.append(row)
    return pd.DataFrame(rows)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", nargs="+", default=["sample", "master"], choices=["sample", "master"])
    args = parser.parse_args(argv)
    table = quality(args.data)
    with pd.option_context("display.width", 250, "display.max_columns", 20, "display.precision", 3):
        print(table.to_string(index=False))
    print(f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB", file=sys.stderr)


if __name__ == "__main__":
    main()
