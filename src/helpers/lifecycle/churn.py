"""Churn risk beyond recency: the customer's own rhythm, the CLV model and service signals, in one model.

The churn risk of a buyer is the probability of **no purchase in the following `horizon_days`**.
It is a logistic regression fitted on a **backtest inside the history**: the customers' state as
of a cut `w` days before the reference date (w = the horizon, or half the history when it is
shorter), labelled by what followed (no purchase between the cut and the reference date). Its
inputs, per customer and as of the date scored (`churn_features`):

- recency, repeat purchases and age (log days / counts): the classic RFM part;
- the customer's own rhythm: days since the last purchase over their mean gap between purchases,
  and its trend: the last gap against the mean gap (slowing down) and the purchases of the last
  `RECENT_DAYS` days against what their overall rate predicts (when the purchase history gives them);
- the MBG/NBD CLV model (`helpers.features.clv`) fitted at that date: logit P(no purchase in `w`
  days), log expected purchases in `w` days and logit P(alive);
- service signals where present: recent complaints and their rise, falling satisfaction (recent
  mean rating below the earlier one), and contacts without a purchase (zero-amount rows).

A column that is constant in the backtest (e.g. no service data) is left out of the fit. The
fitted probability is for the backtest window `w`; the MBG/NBD carries it to the horizon by adding
logit P0(horizon) - logit P0(w) per customer. With `at_risk.calibrate_recall: true` in the lifecycle
rules (off by default; otherwise the backtest recall is only measured) the label's threshold is
**recall-calibrated**
(`calibrate_recall_target`): the at_risk + churned rules are replayed on the backtest with
out-of-fold risks, and the expected-recall target is raised until the replay's *realized* recall
reaches the chosen one (less one standard error: a shortfall within the noise is accepted), so
the recall asked for is the recall obtained, not an expectation that
holds only when the risk is a perfectly calibrated probability.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy.special import expit, logit
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import StratifiedKFold, cross_val_predict
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler

from helpers.features import clv

RECENT_DAYS = 90  # "recent purchases" window of the rhythm trend
EPS = 1e-6
FEATURES: tuple[str, ...] = (
    "log_recency",
    "log_frequency",
    "log_age",
    "log_gap_ratio",
    "gap_trend",
    "recent_rate_ratio",
    "logit_p_none",
    "log_expected_purchases",
    "logit_p_alive",
    "complaints_recent",
    "complaints_rising",
    "satisfaction_drop",
    "log_contacts",
)
CORE_FEATURES: tuple[str, ...] = ("logit_p_none", "log_recency", "log_frequency", "log_age", "log_gap_ratio")
MIN_GAIN = 0.002  # out-of-fold backtest AUC the full feature set must add to be chosen over the core
SERVICE_COLUMNS = ("complaints_recent", "complaints_before", "satisfaction_recent", "satisfaction_before")


def _numeric(frame: pd.DataFrame, name: str) -> np.ndarray:
    if name not in frame.columns:
        return np.full(len(frame), np.nan)
    return pd.to_numeric(frame[name], errors="coerce").to_numpy(float)


def rfm_weeks(summary: pd.DataFrame) -> pd.DataFrame:
    """A purchase summary in the `helpers.features.clv` convention: repeat purchase days, recency and
    age in weeks."""
    tenure = summary["tenure_days"].to_numpy(float)
    return pd.DataFrame(
        {
            "customer_id": summary["customer_id"].to_numpy(),
            "frequency": summary["n_purchases"].to_numpy(float) - 1.0,
            "recency": (tenure - summary["recency_days"].to_numpy(float)) / clv.DAYS_PER_WEEK,
            "T": tenure / clv.DAYS_PER_WEEK,
        }
    )


def model_outlook(model: Any, summary: pd.DataFrame, horizons_days: list[float]) -> dict[str, np.ndarray]:
    """The fitted MBG/NBD's view per summary row: P(alive), and per horizon h (days) P(no purchase in h)
    (`p_none_<h>`) and expected purchases in h (`expected_<h>`)."""
    outlook = clv.purchase_outlook(model, rfm_weeks(summary), [h / clv.DAYS_PER_WEEK for h in horizons_days])
    result = {"p_alive": np.clip(outlook["p_alive"], EPS, 1 - EPS)}
    for h, p_none, expected in zip(
        horizons_days, outlook["p_no_purchase"], outlook["expected_purchases"], strict=True
    ):
        result[f"p_none_{h:g}"] = np.clip(p_none, EPS, 1 - EPS)
        result[f"expected_{h:g}"] = np.maximum(expected, 0.0)
    return result


def churn_features(summary: pd.DataFrame, outlook: dict[str, np.ndarray], window_days: float) -> pd.DataFrame:
    """The model inputs (`FEATURES`) per row of a purchase summary as of the date scored.

    `summary`: `recency_days, n_purchases, tenure_days, mean_interpurchase_days` and, when known,
    `last_gap_days` (days between the last two purchases), `n_recent_purchases` (purchase days in the
    last `RECENT_DAYS`), `n_contacts` (days with rows but no purchase: zero-amount rows) and the
    service trend columns (`SERVICE_COLUMNS`). Unknown inputs become neutral values (0: "no sign").
    `outlook`: `model_outlook` for `window_days`.
    """
    recency = _numeric(summary, "recency_days")
    n = _numeric(summary, "n_purchases")
    tenure = _numeric(summary, "tenure_days")
    rhythm = _numeric(summary, "mean_interpurchase_days")
    has_rhythm = np.isfinite(rhythm) & (rhythm > 0)
    gap_ratio = np.divide(recency, rhythm, out=np.zeros_like(recency), where=has_rhythm)
    last_gap = _numeric(summary, "last_gap_days")
    trend_known = has_rhythm & np.isfinite(last_gap) & (n >= 3)
    gap_trend = np.where(
        trend_known, np.log((np.nan_to_num(last_gap) + 1.0) / (np.nan_to_num(rhythm) + 1.0)), 0.0
    )
    recent = _numeric(summary, "n_recent_purchases")
    expected_recent = n * np.minimum(RECENT_DAYS, tenure + 1.0) / (tenure + 1.0)
    recent_ratio = np.where(
        np.isfinite(recent) & (n >= 2), np.log((np.nan_to_num(recent) + 0.5) / (expected_recent + 0.5)), 0.0
    )
    complaints_now = np.nan_to_num(_numeric(summary, "complaints_recent"))
    complaints_before = np.nan_to_num(_numeric(summary, "complaints_before"))
    drop = _numeric(summary, "satisfaction_before") - _numeric(summary, "satisfaction_recent")
    window = f"{window_days:g}"
    return pd.DataFrame(
        {
            "log_recency": np.log1p(recency),
            "log_frequency": np.log1p(n - 1.0),
            "log_age": np.log1p(tenure),
            "log_gap_ratio": np.log1p(gap_ratio),
            "gap_trend": gap_trend,
            "recent_rate_ratio": recent_ratio,
            "logit_p_none": logit(outlook[f"p_none_{window}"]),
            "log_expected_purchases": np.log(outlook[f"expected_{window}"] + 0.01),
            "logit_p_alive": logit(outlook["p_alive"]),
            "complaints_recent": np.log1p(complaints_now),
            "complaints_rising": (complaints_now > complaints_before).astype(float),
            "satisfaction_drop": np.nan_to_num(drop),
            "log_contacts": np.log1p(np.nan_to_num(_numeric(summary, "n_contacts"))),
        },
        index=summary.index,
    )[list(FEATURES)]


@dataclass
class ChurnModel:
    """The backtest-fitted churn model: which features it uses, the pipeline, and how it was fitted."""

    columns: list[str]
    pipeline: Pipeline
    window_days: int
    backtest_customers: int
    no_purchase_share: float
    out_of_fold: np.ndarray = field(repr=False)  # backtest risks (window w) from 5-fold refits
    feature_set: str = "core"  # "core" or "full" (see fit_churn_model)
    backtest_auc: dict[str, float] = field(default_factory=dict)  # out-of-fold AUC per candidate set

    def weights(self) -> dict[str, float]:
        """Standardized logistic weights per feature (positive: more risk)."""
        coef = self.pipeline[-1].coef_[0]
        return {name: round(float(w), 4) for name, w in zip(self.columns, coef, strict=True)}

    def predict(self, features: pd.DataFrame) -> np.ndarray:
        """P(no purchase in `window_days`) per row of `churn_features` output."""
        return self.pipeline.predict_proba(features[self.columns].to_numpy(float))[:, 1]


def _fit_one(x: np.ndarray, y: np.ndarray, seed: int, folds: int) -> tuple[Pipeline, np.ndarray]:
    """A standardized logistic regression and its out-of-fold probabilities."""

    def pipeline() -> Pipeline:
        return make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))

    splits = min(folds, int(y.sum()), int((~y).sum()))
    if splits >= 2:
        cv = StratifiedKFold(splits, shuffle=True, random_state=seed)
        out_of_fold = cross_val_predict(pipeline(), x, y, cv=cv, method="predict_proba")[:, 1]
    else:
        out_of_fold = np.full(len(y), y.mean())
    return pipeline().fit(x, y), out_of_fold


def fit_churn_model(
    features: pd.DataFrame, outcome: np.ndarray, window_days: int, seed: int = 0, folds: int = 5
) -> ChurnModel:
    """Logistic regression (standardized inputs) of `outcome` (no purchase in the window after the
    cut) on the backtest's `churn_features`; columns constant in the backtest are left out.

    Two candidates: the core inputs (`CORE_FEATURES`: MBG/NBD P(no purchase), recency, frequency,
    age, gap ratio) and all of them (rhythm trend, expected purchases, P(alive), service, contacts).
    The full set is chosen when its out-of-fold backtest AUC (`folds`-fold refits) is higher by
    `MIN_GAIN`: in irregular buying (CDNOW's CDs) the extra inputs only add noise, in rhythmic buying
    and with service data they carry signal. The chosen model's out-of-fold risks are kept for the
    recall calibration.
    """
    y = np.asarray(outcome, bool)
    values = features.to_numpy(float)
    varying = [
        name for name, column in zip(features.columns, values.T, strict=True) if np.ptp(column) > 1e-12
    ]
    candidates = {"core": [c for c in varying if c in CORE_FEATURES], "full": varying}
    fits = {
        name: _fit_one(features[cols].to_numpy(float), y, seed, folds) for name, cols in candidates.items()
    }
    auc = {
        name: float(roc_auc_score(y, oof)) if 0 < y.sum() < len(y) else 0.5 for name, (_, oof) in fits.items()
    }
    chosen = "full" if auc["full"] >= auc["core"] + MIN_GAIN else "core"
    pipeline, out_of_fold = fits[chosen]
    return ChurnModel(
        columns=candidates[chosen],
        pipeline=pipeline,
        window_days=int(window_days),
        backtest_customers=len(y),
        no_purchase_share=float(y.mean()),
        out_of_fold=out_of_fold,
        feature_set=chosen,
        backtest_auc=auc,
    )


def to_horizon(risk_window: np.ndarray, p_none_window: np.ndarray, p_none_horizon: np.ndarray) -> np.ndarray:
    """Carry P(no purchase in w days) to the horizon with the CLV model's own ratio, on the logit
    scale: logit risk + logit P0(horizon) - logit P0(w)."""
    shifted = logit(np.clip(risk_window, EPS, 1 - EPS)) + logit(p_none_horizon) - logit(p_none_window)
    return expit(shifted)


def calibrate_recall_target(
    realized_recall: Callable[[float], float],
    target: float,
    tolerance: float = 0.0,
    ceiling: float = 0.995,
    steps: int = 14,
) -> dict[str, float]:
    """The expected-recall setting whose realized backtest recall reaches `target` (less `tolerance`).

    `realized_recall(setting)`: the recall of non-buyers the label reaches on the backtest when its
    threshold is chosen for expected recall `setting` (monotone in the setting). `tolerance`: the
    shortfall the backtest cannot tell from sampling noise (one standard error of a recall), which
    is accepted rather than flagging more customers. Bisects between `target` and `ceiling`; when
    the target already reaches it, the target is kept (no lowering: the label never asks for less
    than the chosen recall).
    """
    goal = target - tolerance
    at_target = realized_recall(target)
    if at_target >= goal:
        return {"setting": target, "backtest_recall_at_target": at_target, "backtest_recall": at_target}
    low, high = target, ceiling
    reached = realized_recall(high)
    if reached < goal:
        return {"setting": high, "backtest_recall_at_target": at_target, "backtest_recall": reached}
    for _ in range(steps):
        middle = (low + high) / 2
        value = realized_recall(middle)
        if value >= goal:
            high, reached = middle, value
        else:
            low = middle
    return {"setting": high, "backtest_recall_at_target": at_target, "backtest_recall": reached}
