"""CLV model fitting: pytensor compile + fit seconds, cold (empty compile directory) vs warm.

Usage: python benchmarks/bench_clv.py [RUN_DIR]
Fits the MBG/NBD and Gamma-Gamma models of `helpers.features.clv` in fresh processes: twice with a
new, empty compile directory (cold, then warm: what `.cache/pytensor` gives every later process),
and once with the project's `.cache/pytensor`. Data: the buyers of RUN_DIR's 03_features (default:
the newest run under outputs/runs), else the CDNOW sample of the `lifetimes` package.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from helpers.core.paths import RUNS_DIR

CHILD = r"""
import json, resource, sys, time
started = time.perf_counter()
import pandas as pd
from helpers.features import build, clv
source = sys.argv[1]
if source.endswith(".parquet"):
    summary = build.clv_summary(pd.read_parquet(source))
else:
    names = ["id", "i", "date", "q", "spend"]
    raw = pd.read_csv(source, sep=r"\s+", header=None, names=names, dtype={"id": str})
    raw["date"] = pd.to_datetime(raw["date"].astype(str), format="%Y%m%d")
    from lifetimes.utils import summary_data_from_transaction_data
    s = summary_data_from_transaction_data(raw, "id", "date", monetary_value_col="spend",
        observation_period_end="1997-09-30", freq="D", freq_multiplier=7)
    summary = s.reset_index().rename(columns={"id": "customer_id"})
read = time.perf_counter()
clv._quiet()
import pymc_marketing.clv  # noqa: F401
imported = time.perf_counter()
clv.fit_transaction_model(summary, "mbgnbd")
transaction = time.perf_counter()
clv.fit_spend_model(summary)
spend = time.perf_counter()
usage = resource.getrusage(resource.RUSAGE_SELF)
children = resource.getrusage(resource.RUSAGE_CHILDREN)
print(json.dumps({"customers": len(summary), "import": imported - read, "mbgnbd": transaction - imported,
    "gamma_gamma": spend - transaction, "cpu": usage.ru_utime + usage.ru_stime + children.ru_utime
    + children.ru_stime}))
"""


def data_source(argv: list[str]) -> str:
    runs = [Path(argv[1])] if len(argv) > 1 else sorted(RUNS_DIR.glob("*/03_features/features.parquet"))
    if runs:
        path = runs[-1] if runs[-1].suffix == ".parquet" else runs[-1] / "03_features" / "features.parquet"
        return str(path)
    import lifetimes

    return str(Path(lifetimes.__file__).parent / "datasets" / "CDNOW_sample.txt")


def fit_in_fresh_process(source: str, compiledir: str | None) -> dict:
    env = dict(os.environ)
    if compiledir:
        env["PYTENSOR_FLAGS"] = f"compiledir={compiledir}"
    started = time.perf_counter()
    out = subprocess.run(
        [sys.executable, "-c", CHILD, source], env=env, capture_output=True, text=True, check=True
    )
    figures = json.loads(out.stdout.strip().splitlines()[-1])
    return {**figures, "process": time.perf_counter() - started}


if __name__ == "__main__":
    source = data_source(sys.argv)
    print(f"data: {source}")
    print(
        f"{'case':<28}{'customers':>10}{'import s':>10}{'MBG/NBD s':>11}{'GG s':>8}"
        f"{'process s':>11}{'CPU s':>8}"
    )
    with tempfile.TemporaryDirectory() as empty:
        cases = [
            ("cold (empty compile dir)", empty),
            ("warm (same dir again)", empty),
            ("project .cache/pytensor", None),
        ]
        for name, directory in cases:
            f = fit_in_fresh_process(source, directory)
            print(f"{name:<28}{f['customers']:>10}{f['import']:>10.1f}{f['mbgnbd']:>11.1f}{f['gamma_gamma']:>8.1f}"
                  f"{f['process']:>11.1f}{f['cpu']:>8.1f}")  # fmt: skip
