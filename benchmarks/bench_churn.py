"""Churn risk on real purchases: our score against days-since-last-purchase and Pareto/NBD, at two cuts.

    .venv/bin/python benchmarks/bench_churn.py               # CDNOW_sample, cuts 1997-09-30, 1997-12-31
    .venv/bin/python benchmarks/bench_churn.py --cuts 1997-06-30 1998-03-31 --data master
    .venv/bin/python benchmarks/bench_churn.py --demo-run outputs/runs/<a demo run>   # stage macro F1

Data: CDNOW (`sample`: 2,357 customers, `master`: 23,570) read directly from the file inside the
installed `lifetimes` wheel (its `lifetimes.datasets` module does not import). For each cut the
holdout runs from the cut to the end of the data; the target is "no purchase in the holdout", the
lifecycle horizon is the holdout length, and every figure is about the customers with a purchase on
or before the cut (customers with only zero-amount rows get the `contact` stage and are counted).

Printed per cut: base rate; ROC AUC of our `churn_risk`, of days since the last purchase, of the
Pareto/NBD P(alive) (lifetimes' `ParetoNBDFitter`, 1 - P(alive) as the score) and of the MBG/NBD
P(no purchase in the holdout) alone (`helpers.features.clv`, no backtest); the at_risk + churned
label's precision and realized recall,
the precision of flagging the same number of customers by days since the last purchase, and the
goals (AUC >= recency + 0.03; label precision >= recency-at-same-count + 0.02 at recall >= 0.90).
`--demo-run`: step 05 rerun on a copy of a finished demo run (steps 01-04 kept), its stage macro F1
against the planted stages and its time.
"""

from __future__ import annotations

import argparse
import resource
import shutil
import tempfile
import time
import warnings
from importlib.util import find_spec
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import StratifiedKFold, cross_val_predict
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from helpers.features import clv
from helpers.lifecycle import churn
from helpers.lifecycle.stages import (
    CHURN_STAGES,
    label_from_transactions,
    purchase_days,
    score_churn_risk,
    summarize_purchase_days,
)

CUTS = ["1997-09-30", "1997-12-31"]
AUC_GAIN, PRECISION_GAIN, MIN_RECALL = 0.03, 0.02, 0.90


def cdnow_file(name: str) -> Path:
    """CDNOW_<name>.txt inside the installed lifetimes package (found without importing it)."""
    spec = find_spec("lifetimes")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("lifetimes is not installed (benchmark dependency: pip install lifetimes==0.11.3)")
    return Path(next(iter(spec.submodule_search_locations))) / "datasets" / f"CDNOW_{name}.txt"


def load_cdnow(name: str = "sample") -> pd.DataFrame:
    """CDNOW as a transaction log: customer_id, txn_at, amount (zero-amount rows kept)."""
    if name == "sample":  # master id, sample id, yyyymmdd, quantity, amount; no header
        raw = pd.read_csv(cdnow_file(name), sep=r"\s+", header=None, usecols=[0, 2, 4], dtype={0: str})
    else:
        raw = pd.read_csv(cdnow_file(name), sep=r"\s+", header=0, usecols=[0, 1, 3], dtype={0: str})
    raw.columns = ["customer_id", "date", "amount"]
    raw["txn_at"] = pd.to_datetime(raw["date"].astype(str), format="%Y%m%d")
    return raw[["customer_id", "txn_at", "amount"]]


def pareto_nbd_score(log: pd.DataFrame, cut: pd.Timestamp) -> pd.Series:
    """1 - P(alive) of a Pareto/NBD (lifetimes, MLE) fitted on the purchase days up to the cut."""
    from lifetimes import ParetoNBDFitter

    days = purchase_days(log, cut)
    grouped = days.groupby("customer_id")["day"]
    first, last, count = grouped.min(), grouped.max(), grouped.size()
    frequency = (count - 1).astype(float)
    recency = (last - first).dt.days / 7.0
    age = (cut.normalize() - first).dt.days / 7.0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fitter = ParetoNBDFitter(penalizer_coef=0.0).fit(frequency, recency, age)
        alive = fitter.conditional_probability_alive(frequency, recency, age)
    return pd.Series(1.0 - np.asarray(alive, float), index=frequency.index)


def precision_same_count(truth: np.ndarray, score: np.ndarray, count: int) -> float:
    """Precision of flagging the `count` highest scores; a tie at the cut-off counts at its mean."""
    cutoff = np.sort(score)[::-1][count - 1]
    above, tied = score > cutoff, score == cutoff
    return float((truth[above].sum() + (count - above.sum()) * truth[tied].mean()) / count)


def hindsight_ceiling(summary: pd.DataFrame, truth: np.ndarray, horizon_days: float) -> dict[str, np.ndarray]:
    """Out-of-fold scores (5 folds) of a logistic and a gradient-boosted model of the churn inputs as of
    the cut, fitted on the holdout truth itself: the best these inputs give when the future is known."""
    outlook = churn.model_outlook(
        clv.fit_no_purchase_model(churn.rfm_weeks(summary)), summary, [horizon_days]
    )
    features = churn.churn_features(summary, outlook, horizon_days)
    x = features.loc[:, features.std() > 0].to_numpy(float)
    folds = StratifiedKFold(5, shuffle=True, random_state=0)
    models = {
        "logistic": make_pipeline(StandardScaler(), LogisticRegression(max_iter=3000)),
        "boosted": HistGradientBoostingClassifier(learning_rate=0.05, max_leaf_nodes=8, min_samples_leaf=40),
    }
    return {
        name: cross_val_predict(model, x, truth, cv=folds, method="predict_proba")[:, 1]
        for name, model in models.items()
    }


def history_features(log: pd.DataFrame, reference: pd.Timestamp) -> pd.DataFrame:
    """Per customer, from the whole purchase history up to the cut (one row per purchase day): recency,
    age, count, span, spend (sum, mean, max, last), gaps between purchase days (mean, spread, last,
    longest), how overdue against the own mean gap, and purchases and spend in the last 30/90/180 days."""
    past = log[log["txn_at"] <= reference].assign(day=lambda frame: frame["txn_at"].dt.normalize())
    days = past.groupby(["customer_id", "day"], as_index=False)["amount"].sum()
    days = days.sort_values(["customer_id", "day"])
    days["gap"] = days.groupby("customer_id")["day"].diff().dt.days
    grouped = days.groupby("customer_id")
    features = pd.DataFrame(
        {
            "recency": (reference - grouped["day"].max()).dt.days,
            "age": (reference - grouped["day"].min()).dt.days,
            "purchase_days": grouped.size(),
            "spend": grouped["amount"].sum(),
            "spend_mean": grouped["amount"].mean(),
            "spend_max": grouped["amount"].max(),
            "spend_last": grouped["amount"].last(),
            "gap_mean": grouped["gap"].mean(),
            "gap_std": grouped["gap"].std(),
            "gap_last": grouped["gap"].last(),
            "gap_max": grouped["gap"].max(),
        }
    )
    features["span"] = features["age"] - features["recency"]
    features["overdue"] = features["recency"] / features["gap_mean"]
    for window in (30, 90, 180):
        recent = days[days["day"] > reference - pd.Timedelta(days=window)].groupby("customer_id")
        features[f"purchase_days_{window}"] = recent.size().reindex(features.index, fill_value=0)
        features[f"spend_{window}"] = recent["amount"].sum().reindex(features.index, fill_value=0)
    return features.fillna(-1.0)


def history_ceiling(
    log: pd.DataFrame, reference: pd.Timestamp, ids: pd.Series, truth: np.ndarray
) -> np.ndarray:
    """Out-of-fold scores (5 folds) of a logistic model of `history_features` (signed log) fitted on the
    holdout truth itself: what the purchase history as a whole carries, beyond the churn model's inputs."""
    values = history_features(log, reference).reindex(ids).to_numpy(float)
    x = np.sign(values) * np.log1p(np.abs(values))
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=5000))
    folds = StratifiedKFold(5, shuffle=True, random_state=0)
    return cross_val_predict(model, x, truth, cv=folds, method="predict_proba")[:, 1]


def evaluate_cut(log: pd.DataFrame, cut: str) -> dict[str, float | str | bool]:
    """Every figure of one cut (see the module docstring)."""
    reference = pd.Timestamp(cut)
    end = log["txn_at"].max().normalize()
    holdout = int((end - reference).days)
    start = time.perf_counter()
    labels = label_from_transactions(log, reference, rules={"horizon_days": holdout})
    seconds = time.perf_counter() - start
    days = purchase_days(log, end)
    last = days[days["day"] <= reference].groupby("customer_id")["day"].max()
    buyers = labels[labels["customer_id"].isin(last.index)].reset_index(drop=True)
    ids = buyers["customer_id"]
    truth = ~ids.isin(days.loc[days["day"] > reference, "customer_id"]).to_numpy()
    recency = (reference - last.reindex(ids)).dt.days.to_numpy(float)
    flagged = buyers["stage"].isin(CHURN_STAGES).to_numpy()
    info = labels.attrs["lifecycle"]
    pareto = pareto_nbd_score(log, reference).reindex(ids).to_numpy(float)
    summary = summarize_purchase_days(purchase_days(log, reference), reference)
    mbgnbd = pd.Series(score_churn_risk(summary, holdout).p_none, index=summary["customer_id"])
    order = pd.Index(summary["customer_id"]).get_indexer(ids)
    ceiling = hindsight_ceiling(summary.iloc[order].reset_index(drop=True), truth, float(holdout))
    ceiling["history"] = history_ceiling(log, reference, ids, truth)
    row: dict[str, float | str | bool] = {
        "cut": cut,
        "holdout_days": holdout,
        "buyers": len(buyers),
        "contacts_only": len(labels) - len(buyers),
        "no_purchase_rate": float(truth.mean()),
        "auc_ours": float(roc_auc_score(truth, buyers["churn_risk"])),
        "auc_recency": float(roc_auc_score(truth, recency)),
        "auc_pareto_nbd": float(roc_auc_score(truth, pareto)),
        "auc_mbgnbd": float(roc_auc_score(truth, mbgnbd.reindex(ids).to_numpy(float))),
        "label_precision": float(truth[flagged].mean()),
        "label_recall": float(flagged[truth].mean()),
        "flagged": int(flagged.sum()),
        "recency_precision_same_count": precision_same_count(truth, recency, int(flagged.sum())),
        **{f"ceiling_auc_{name}": float(roc_auc_score(truth, score)) for name, score in ceiling.items()},
        **{
            f"ceiling_precision_same_count_{name}": precision_same_count(truth, score, int(flagged.sum()))
            for name, score in ceiling.items()
        },
        "feature_set": str(info.get("backtest_feature_set", "-")),
        "recall_setting": float(info["recall_calibration"]["setting"]),
        "label_seconds": seconds,
    }
    row["auc_goal_met"] = bool(row["auc_ours"] >= row["auc_recency"] + AUC_GAIN)
    row["precision_goal_met"] = bool(
        row["label_recall"] >= MIN_RECALL
        and row["label_precision"] >= row["recency_precision_same_count"] + PRECISION_GAIN
    )
    return row


def demo_run(run_dir: Path) -> dict[str, float]:
    """Step 05 rerun on a copy of a finished run's steps 01-04: stage macro F1 and time."""
    from helpers.core.context import open_step
    from helpers.lifecycle import run_step
    from helpers.lifecycle.evaluation import evaluate_planted_stages

    with tempfile.TemporaryDirectory(prefix="bench_churn_") as folder:
        copy = Path(folder) / run_dir.name
        copy.mkdir()
        shutil.copy(run_dir / "config.yml", copy / "config.yml")
        for step in ("01_data_audit", "02_identity_merge", "03_features", "04_clustering"):
            shutil.copytree(run_dir / step, copy / step)
        ctx = open_step("05_lifecycle", str(copy))
        start = time.perf_counter()
        result = run_step(ctx)
        seconds = time.perf_counter() - start
        accuracy = evaluate_planted_stages(ctx, result.labeled)
    return {
        "customers": len(result.labeled),
        "stage_macro_f1": float("nan") if accuracy is None else accuracy["macro_f1"],
        "stage_accuracy": float("nan") if accuracy is None else accuracy["accuracy"],
        "step05_seconds": seconds,
        "feature_set": result.model_info.get("backtest_feature_set", "-"),
    }


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="sample", choices=["sample", "master"])
    parser.add_argument("--cuts", nargs="+", default=CUTS)
    parser.add_argument("--demo-run", type=Path, help="a finished demo run: rerun step 05, stage macro F1")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    log = load_cdnow(args.data)
    rows = [evaluate_cut(log, cut) for cut in args.cuts]
    table = pd.DataFrame(rows).set_index("cut").T
    with pd.option_context("display.width", 200, "display.precision", 4):
        print(f"CDNOW_{args.data}: {log['customer_id'].nunique():,} customers, {len(log):,} rows")
        print(table.to_string())
    if args.demo_run:
        print("demo run, step 05 rerun:", demo_run(args.demo_run))
    print(f"wall {time.perf_counter() - start:.1f} s, CPU {cpu_seconds():.1f} s")


if __name__ == "__main__":
    main()
