"""CLV model fitting: `helpers.features.clv` (scipy maximum likelihood) against pymc-marketing's MAP
fit (flat priors, its reference), each in a fresh process: import, MBG/NBD and Gamma-Gamma seconds,
the process's CPU seconds, and the largest relative difference between the two fits' parameters.

Usage: python benchmarks/bench_clv.py [RUN_DIR]
Data: the buyers of RUN_DIR's 03_features (default: the newest run under outputs/runs), else the
CDNOW sample of the `lifetimes` package. pymc-marketing compiles its models with pytensor (C code in
pytensor's compile directory: the first process on a machine pays the compile).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

from helpers.core.paths import RUNS_DIR

READ_SUMMARY = r"""
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
"""

FIT_OURS = r"""
transaction = clv.fit_transaction_model(summary, "mbgnbd").params
fitted = time.perf_counter()
spend = clv.fit_spend_model(summary).params
"""

FIT_PYMC = r"""
from pymc_extras.prior import Prior
from pymc_marketing.clv import GammaGammaModel, ModifiedBetaGeoModel
model = ModifiedBetaGeoModel(model_config={n: Prior("HalfFlat") for n in clv.TRANSACTION_PARAMS})
model.build_model(summary[["customer_id", "frequency", "recency", "T"]])
model.fit(method="map", progressbar=False)
transaction = {n: float(model.idata.posterior[n].squeeze()) for n in clv.TRANSACTION_PARAMS}
fitted = time.perf_counter()
gg = GammaGammaModel(model_config={n: Prior("HalfFlat") for n in clv.SPEND_PARAMS})
gg.build_model(summary.loc[summary["frequency"] > 0, ["customer_id", "frequency", "monetary_value"]])
gg.fit(method="map", progressbar=False)
spend = {n: float(gg.idata.posterior[n].squeeze()) for n in clv.SPEND_PARAMS}
"""

REPORT = r"""
done = time.perf_counter()
usage = resource.getrusage(resource.RUSAGE_SELF)
children = resource.getrusage(resource.RUSAGE_CHILDREN)
print(json.dumps({"customers": len(summary), "mbgnbd": fitted - read, "gamma_gamma": done - fitted,
    "params": {**transaction, **spend}, "cpu": usage.ru_utime + usage.ru_stime + children.ru_utime
    + children.ru_stime}))
"""


def data_source(run_dir: Path | None) -> str:
    """RUN_DIR's (or the newest run's) step-03 features, else the CDNOW sample."""
    runs = [run_dir] if run_dir else sorted(RUNS_DIR.glob("*/03_features/features.parquet"))
    if runs:
        path = runs[-1] if runs[-1].suffix == ".parquet" else runs[-1] / "03_features" / "features.parquet"
        return str(path)
    import lifetimes

    return str(Path(lifetimes.__file__).parent / "datasets" / "CDNOW_sample.txt")


def fit_in_fresh_process(source: str, fit: str) -> dict:
    started = time.perf_counter()
    code = READ_SUMMARY + fit + REPORT
    out = subprocess.run([sys.executable, "-c", code, source], capture_output=True, text=True, check=True)
    figures = json.loads(out.stdout.strip().splitlines()[-1])
    return {**figures, "process": time.perf_counter() - started}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "run_dir", nargs="?", type=Path, metavar="RUN_DIR",
        help="a run folder (or a features.parquet); default: the newest run, else CDNOW_sample",
    )  # fmt: skip
    source = data_source(parser.parse_args(argv).run_dir)
    print(f"data: {source}")
    print(f"{'fit':<30}{'customers':>10}{'MBG/NBD s':>11}{'GG s':>8}{'process s':>11}{'CPU s':>8}")
    results = {}
    for name, fit in (("helpers.features.clv (scipy)", FIT_OURS), ("pymc-marketing MAP", FIT_PYMC)):
        f = results[name] = fit_in_fresh_process(source, fit)
        print(f"{name:<30}{f['customers']:>10}{f['mbgnbd']:>11.2f}{f['gamma_gamma']:>8.2f}"
              f"{f['process']:>11.1f}{f['cpu']:>8.1f}")  # fmt: skip
    ours, theirs = (r["params"] for r in results.values())
    relative = {name: abs(ours[name] - theirs[name]) / abs(theirs[name]) for name in ours}
    worst = max(relative, key=relative.get)
    print(f"largest relative parameter difference: {relative[worst]:.2e} ({worst})")


if __name__ == "__main__":
    main()
