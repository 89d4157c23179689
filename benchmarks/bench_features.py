"""Features-step benchmark: all feature groups (incl. the CLV fit) vs a plain pandas groupby of the
value features, wall time and peak memory, on the demo world at each size.

Per size: generate the demo world (not timed), lay out a run folder as steps 01 and 02 leave it:
the four event exports as typed Parquet (DuckDB), crosswalk and golden profile from the planted
truth (not timed: this isolates step 03 from the audit and identity steps). Then two child
processes, each measured on its own: `features` (helpers.features.build.run_step: read, SQL, derive,
CLV fit, model matrix, Parquet writes) and `pandas` (value features only). The `features` child
also samples its resident memory and names the phase (the function run_step or build_features is
in) where the peak occurs. Targets on the 2-core machine: 1M customers < 90 s and < 6 GB.

    nice .venv/bin/python benchmarks/bench_features.py              # 100000 and 1000000
    nice .venv/bin/python benchmarks/bench_features.py 100000
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import duckdb
import pandas as pd
import psutil

from helpers.core.config import load_config, parse_config
from helpers.core.measure import peak_rss_mb
from helpers.core.tables import TABLES
from helpers.demo.world import generate_demo_world

EVENTS = ("transactions", "calls", "surveys", "marketing_contacts")
AUDIT, IDENTITY = "01_data_audit", "02_identity_merge"
DUCKDB_TYPES = {
    "str": "VARCHAR",
    "int": "BIGINT",
    "float": "DOUBLE",
    "bool": "BOOLEAN",
    "date": "DATE",
    "datetime": "TIMESTAMP",
}


def prepare(customers: int, seed: int, folder: Path, world: Path | None = None) -> dict[str, int]:
    """Demo world (generated, or an existing one with raw/ and truth/) -> a run folder with typed
    event Parquet (`01_data_audit/clean_*`), crosswalk and golden from the truth (`02_identity_merge`)."""
    settings = parse_config(load_config())
    audit, identity = folder / AUDIT, folder / IDENTITY
    audit.mkdir(parents=True, exist_ok=True)
    identity.mkdir(parents=True, exist_ok=True)
    if world is None:
        raw, truth = folder / "raw", folder / "truth"
        generate_demo_world(raw, truth, n_customers=customers, seed=seed, progress=False)
    else:
        raw, truth = world / "raw", world / "truth"
    connection = duckdb.connect()
    rows = {}
    for name in EVENTS:
        spec = settings.data.tables[name]
        fmt = spec.datetime_format or "%Y-%m-%d %H:%M:%S"  # the canonical datetime text
        columns = []
        for column in TABLES[name].columns:
            if column.type == "datetime":
                columns.append(f"try_strptime({column.name}, '{fmt}') AS {column.name}")
            else:
                columns.append(f"TRY_CAST({column.name} AS {DUCKDB_TYPES[column.type]}) AS {column.name}")
        required = " AND ".join(f"{c.name} IS NOT NULL" for c in TABLES[name].columns if c.required)
        if name == "transactions":  # the audit's range checks
            required += " AND amount > 0 AND quantity > 0"
        path, target = raw / spec.file, audit / f"clean_{name}.parquet"
        connection.execute(
            f"COPY (SELECT * FROM (SELECT {', '.join(columns)} FROM read_csv('{path}', all_varchar=true)) "
            f"WHERE {required}) TO '{target}' (FORMAT parquet)"
        )
        rows[name] = connection.execute(f"SELECT COUNT(*) FROM '{target}'").fetchone()[0]
    records = pd.read_parquet(truth / "source_records.parquet")
    records.rename(columns={"person_id": "customer_id"}).assign(
        match_method="truth", match_probability=1.0
    ).to_parquet(identity / "crosswalk.parquet")
    persons = pd.read_parquet(truth / "persons.parquet")
    golden = persons.rename(columns={"person_id": "customer_id"})[
        ["customer_id", "gender", "birth_date", "province", "city", "city_tier"]
    ].assign(
        customer_type=persons["is_business"].map({True: "business", False: "consumer"}),
        industry=None,
        employee_count=None,
        annual_revenue_cny=None,
        primary_device=None,
        app_installed=None,
        sessions_per_month=None,
        online_minutes_per_month=None,
        loyalty_tier=None,
    )
    golden.to_parquet(identity / "golden.parquet")
    rows["customers"] = len(golden)
    return rows


class PhaseMemory:
    """Samples resident memory every 50 ms and labels each sample with the phase: the function
    `run_step` (or `build_features`) is calling at that moment, else their own line."""

    def __init__(self) -> None:
        self.peaks: dict[str, int] = {}
        self._main = threading.main_thread().ident
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _phase(self) -> str:
        stack = []
        frame = sys._current_frames().get(self._main)
        while frame is not None:
            stack.append(frame)
            frame = frame.f_back
        stack.reverse()  # outermost first
        names = [f.f_code.co_name for f in stack]
        for outer in ("build_features", "run_step"):
            if outer in names:
                at = len(names) - 1 - names[::-1].index(outer)
                if at + 1 < len(stack):
                    return f"{outer} > {names[at + 1]}"
                return f"{outer}:{stack[at].f_lineno}"
        return "outside run_step"

    def _sample(self) -> None:
        process = psutil.Process()
        while not self._stop.wait(0.05):
            rss = process.memory_info().rss
            phase = self._phase()
            self.peaks[phase] = max(self.peaks.get(phase, 0), rss)

    def __enter__(self) -> PhaseMemory:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()

    def top(self, n: int = 10) -> dict[str, int]:
        """The `n` phases with the highest peak, in MB."""
        ranked = sorted(self.peaks.items(), key=lambda item: -item[1])[:n]
        return {phase: round(rss / 2**20) for phase, rss in ranked}


def measure_features(folder: Path) -> dict:
    from helpers.core.context import StepContext
    from helpers.features import build as features

    ctx = StepContext(run_dir=folder, step="03_features", config=load_config())
    start = time.perf_counter()
    with PhaseMemory() as memory:
        outputs = features.run_step(ctx)
    build = outputs.build
    return {
        "wall_seconds": round(time.perf_counter() - start, 1),
        "step_seconds": {phase: round(value, 1) for phase, value in outputs.seconds.items()},
        "build_seconds": {phase: round(value, 1) for phase, value in build.seconds.items()},
        "clv_fit_seconds": round(build.clv.fit_seconds, 1) if build.clv else None,
        "clv_fit_customers": build.clv.n_fit_customers if build.clv else None,
        "feature_columns": build.features.shape[1] - 1,
        "matrix_columns": outputs.matrix.shape[1] - 1,
        "phase_peak_mb": memory.top(),
    }


def measure_pandas(folder: Path) -> dict:
    """The value features (RFM, spend, refunds, 12 months) with a plain pandas groupby."""
    reference = pd.Timestamp(parse_config(load_config()).run.reference_date)
    start = time.perf_counter()
    txn = pd.read_parquet(
        folder / AUDIT / "clean_transactions.parquet",
        columns=["source_system", "source_customer_id", "txn_at", "amount", "is_refund"],
    )
    crosswalk = pd.read_parquet(
        folder / IDENTITY / "crosswalk.parquet", columns=["source_system", "source_record_id", "customer_id"]
    )
    txn = txn.merge(
        crosswalk,
        left_on=["source_system", "source_customer_id"],
        right_on=["source_system", "source_record_id"],
        how="left",
    )
    txn = txn[txn["txn_at"] < reference + pd.Timedelta(days=1)]
    txn["day"] = txn["txn_at"].dt.floor("D")
    txn["signed"] = txn["amount"].where(~txn["is_refund"], -txn["amount"])
    buys = txn[~txn["is_refund"]]
    value = buys.groupby("customer_id").agg(
        n_purchases=("amount", "size"),
        gross_amount=("amount", "sum"),
        first_purchase_at=("day", "min"),
        last_purchase_at=("day", "max"),
        n_purchase_days=("day", "nunique"),
    )
    value["refund_amount"] = txn[txn["is_refund"]].groupby("customer_id")["amount"].sum()
    recent = txn[txn["day"] > reference - pd.Timedelta(days=365)]
    value["monetary_12m"] = recent.groupby("customer_id")["signed"].sum()
    value["recency_days"] = (reference - value["last_purchase_at"]).dt.days
    value["avg_order_value"] = value["gross_amount"] / value["n_purchases"]
    return {"wall_seconds": round(time.perf_counter() - start, 1), "customers_with_purchases": len(value)}


def child(kind: str, folder: Path) -> dict:
    result = {"features": measure_features, "pandas": measure_pandas}[kind](folder)
    result["peak_rss_mb"] = round(peak_rss_mb())
    return result


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("sizes", nargs="*", type=int, default=[100_000, 1_000_000])
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--workdir", type=Path, help="keep prepared inputs here (reused when present)")
    parser.add_argument(
        "--world", type=Path, help="reuse this demo world (raw/, truth/) for the one size given"
    )
    parser.add_argument("--child", choices=["features", "pandas"], help=argparse.SUPPRESS)
    parser.add_argument("--folder", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.folder)))
        return
    if args.world and len(args.sizes) != 1:
        parser.error("--world needs exactly one size")
    results = {}
    for customers in args.sizes:
        if args.workdir:
            folder = args.workdir / str(customers)
            folder.mkdir(parents=True, exist_ok=True)
            results[customers] = run_size(customers, args.seed, folder, args.world)
        else:
            with tempfile.TemporaryDirectory(prefix="bench_features_") as name:
                results[customers] = run_size(customers, args.seed, Path(name), args.world)
    print("\ncustomers   all feature groups (step 03)   pandas groupby, value features only")
    for customers, measured in results.items():
        features, pandas = measured["features"], measured["pandas"]
        print(
            f"{customers:>9,}   {features['wall_seconds']:>7.1f} s {features['peak_rss_mb']:>7,} MB"
            f"          {pandas['wall_seconds']:>7.1f} s {pandas['peak_rss_mb']:>7,} MB"
        )


def run_size(customers: int, seed: int, folder: Path, world: Path | None = None) -> dict[str, dict]:
    """Prepare the inputs (unless `folder` already has them) and measure both implementations."""
    start = time.perf_counter()
    if not (folder / IDENTITY / "golden.parquet").is_file():
        rows = prepare(customers, seed, folder, world)
        print(
            f"{customers:,} customers: inputs in {time.perf_counter() - start:.0f} s, rows {rows}", flush=True
        )
    measured = {}
    for kind in ("features", "pandas"):
        done = subprocess.run(
            [sys.executable, __file__, "--child", kind, "--folder", str(folder)],
            capture_output=True,
            text=True,
        )
        if done.returncode:
            raise RuntimeError(f"{kind} benchmark failed:\n{done.stderr[-3000:]}")
        measured[kind] = json.loads(done.stdout.strip().splitlines()[-1])
        print(f"  {customers:,} {kind:8s} {json.dumps(measured[kind])}", flush=True)
    return measured


if __name__ == "__main__":
    main()
