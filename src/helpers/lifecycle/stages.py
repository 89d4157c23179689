"""Lifecycle labeling (step 05): one stage per customer, the rule that assigned it and a churn risk.

Two entry points share one rule engine:

- `label_from_transactions` works on a plain transaction log (customer, timestamp, amount) and a
  reference date, so the labels can be evaluated on outside purchase data.
- `label_customers` works on the step-03 `features` table and adds the non-purchase stages
  (contact, acquisition) and the service signals (complaints, satisfaction, NPS).

The churn risk is the probability of **no purchase in the following period** (`horizon_days`,
by default 39 weeks) under an MBG/NBD model (`helpers.features.clv`, pymc-marketing's model fitted
by maximum likelihood) on the customers' (frequency, recency, age) summaries. Unlike BG/NBD,
MBG/NBD lets one-time buyers drop out, so a customer who bought once long ago is not treated as
certainly alive. A backtest inside the customers' own history (same score, `h` days earlier,
checked against who bought since) re-weights the model score with log recency, frequency and age,
so the data's own rhythm corrects the model. The at-risk threshold is chosen, without looking
past the reference date, so that the at_risk + churned label's expected recall (risk read as a
probability) reaches the rules' `target_recall`.

Evaluate on your own purchase log (it must extend past the reference date by the holdout):

    from helpers.lifecycle.stages import label_from_transactions, evaluate_against_holdout
    labels = label_from_transactions(log, "2024-06-30", customer_col="cust", time_col="ts")
    scores = evaluate_against_holdout(log, "2024-06-30", holdout_days=273, customer_col="cust", time_col="ts")

`at_risk` + `churned` is the "no purchase in the following `horizon_days`" label.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml
from sklearn.metrics import precision_recall_curve, roc_auc_score

import helpers.lifecycle.churn as churn
from helpers.core import runs
from helpers.core.config import resolve_path
from helpers.core.context import StepContext
from helpers.core.i18n import Catalog
from helpers.engine.base import SqlEngine, connect_configured
from helpers.features import clv

STAGES: tuple[str, ...] = (
    "contact",
    "acquisition",
    "conversion",
    "retention",
    "loyalty",
    "at_risk",
    "churned",
)
CHURN_STAGES: frozenset[str] = frozenset({"at_risk", "churned"})


def stage_label(stage: str, text: Catalog) -> str:
    """A stage code (English in the data) as readers see it: `lifecycle.stages.<stage>` (留存 / retention)."""
    return text(f"lifecycle.stages.{stage}")


def stage_labels(text: Catalog) -> dict[str, str]:
    """Every stage code -> its label, in lifecycle order (for `Series.map`, legends, table headers)."""
    return {stage: stage_label(stage, text) for stage in STAGES}


DEFAULT_RULES_PATH = "config/lifecycle_rules.yml"
LIFECYCLE_COLUMNS = ["customer_id", "stage", "stage_rule", "churn_risk"]


class LifecycleInputError(ValueError):
    """Input to the lifecycle labeling is missing columns or has invalid values."""


# ---------------------------------------------------------------------------------------------
# Rules file
# ---------------------------------------------------------------------------------------------


def load_rules(path: str | Path | None = None) -> dict[str, Any]:
    """The lifecycle rules (thresholds) from YAML; default `config/lifecycle_rules.yml`."""
    rules_path = resolve_path(path or DEFAULT_RULES_PATH)
    if not rules_path.is_file():
        raise FileNotFoundError(f"Lifecycle rules file not found: {rules_path}")
    return yaml.safe_load(rules_path.read_text(encoding="utf-8"))


def _rules(rules: dict[str, Any] | None) -> dict[str, Any]:
    """Defaults from the rules file, overridden key by key (one level deep) by `rules`."""
    merged = load_rules()
    for key, value in (rules or {}).items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = {**merged[key], **value}
        else:
            merged[key] = value
    return merged


# ---------------------------------------------------------------------------------------------
# Purchase summaries from a transaction log
# ---------------------------------------------------------------------------------------------


def _examples(frame: pd.DataFrame, mask: pd.Series | np.ndarray, columns: list[str]) -> str:
    return frame.loc[np.asarray(mask), columns].head(3).to_string()


def _parse_times(values: pd.Series) -> pd.Series:
    """Timestamps from a log column; whole numbers of 8 digits (20240630) are read as YYYYMMDD dates,
    not as nanoseconds since 1970."""
    numeric = pd.to_numeric(values, errors="coerce")
    if (
        pd.api.types.is_numeric_dtype(values)
        and numeric.notna().all()
        and numeric.between(1e7, 1e8 - 1).all()
    ):
        return pd.to_datetime(numeric.astype("int64").astype(str), format="%Y%m%d", errors="coerce")
    if pd.api.types.is_object_dtype(values) or pd.api.types.is_string_dtype(values):
        return pd.to_datetime(values, errors="coerce", format="mixed")  # each value in its own format
    return pd.to_datetime(values, errors="coerce")


def daily_log(
    transactions: pd.DataFrame,
    reference_date: Any,
    customer_col: str = "customer_id",
    time_col: str = "txn_at",
    amount_col: str | None = "amount",
    frame_name: str = "transactions",
) -> pd.DataFrame:
    """Every customer-day with rows as of `reference_date` (inclusive): `customer_id, day, amount`
    (the day's net amount). Days with a positive total are purchases (`purchase_days`); the others
    (zero-amount rows, refunds only) are contacts. Raises `LifecycleInputError` naming the frame,
    column and example rows on missing columns, empty ids, unparseable timestamps or non-numeric
    amounts."""
    needed = [customer_col, time_col] + ([amount_col] if amount_col else [])
    missing = [c for c in needed if c not in transactions.columns]
    if missing:
        raise LifecycleInputError(
            f"{frame_name}: missing column(s) {missing}; it has {list(transactions.columns)}. "
            f"Pass customer_col/time_col/amount_col to name yours."
        )
    null_ids = transactions[customer_col].isna()
    if null_ids.any():
        raise LifecycleInputError(
            f"{frame_name}: {int(null_ids.sum())} row(s) with empty {customer_col!r}, e.g.\n"
            + _examples(transactions, null_ids, needed)
        )
    times = _parse_times(transactions[time_col])
    bad_times = times.isna()
    if bad_times.any():
        raise LifecycleInputError(
            f"{frame_name}: {int(bad_times.sum())} row(s) with an empty or unparseable {time_col!r}, e.g.\n"
            + _examples(transactions, bad_times, needed)
        )
    if amount_col:
        amounts = pd.to_numeric(transactions[amount_col], errors="coerce")
        bad_amounts = amounts.isna()
        if bad_amounts.any():
            raise LifecycleInputError(
                f"{frame_name}: {int(bad_amounts.sum())} row(s) with an empty or non-numeric "
                f"{amount_col!r}, e.g.\n" + _examples(transactions, bad_amounts, needed)
            )
    else:
        amounts = pd.Series(1.0, index=transactions.index)
    keep = (times < pd.Timestamp(reference_date).normalize() + pd.Timedelta(days=1)).to_numpy()
    log = pd.DataFrame(
        {
            "customer_id": transactions[customer_col].to_numpy()[keep],
            "day": times.dt.normalize().to_numpy()[keep],
            "amount": amounts.to_numpy(float)[keep],
        }
    )
    return log.groupby(["customer_id", "day"], sort=False)["amount"].sum().reset_index()


def purchase_days(
    transactions: pd.DataFrame,
    reference_date: Any,
    customer_col: str = "customer_id",
    time_col: str = "txn_at",
    amount_col: str | None = "amount",
    frame_name: str = "transactions",
) -> pd.DataFrame:
    """Validated purchase occasions as of `reference_date` (inclusive): `customer_id, day, amount`.

    A purchase occasion is a calendar day with transactions of positive total amount (several
    purchases the same day count once, as in the CLV literature; a day whose amounts net to zero
    or less, e.g. zero-amount rows or refunds only, is not a purchase: `daily_log` keeps those days
    as contacts). The whole reference day counts; later rows are ignored. Raises
    `LifecycleInputError` naming the frame, column and example rows on missing columns, empty
    ids, unparseable timestamps or non-numeric amounts.
    """
    days = daily_log(transactions, reference_date, customer_col, time_col, amount_col, frame_name)
    return days[days["amount"] > 0].reset_index(drop=True)


def summarize_purchase_days(days: pd.DataFrame, reference_date: Any) -> pd.DataFrame:
    """Per-customer purchase history from `purchase_days` output, as of `reference_date`.

    One row per customer with a purchase on or before the date: `customer_id, first_purchase_at,
    last_purchase_at, n_purchases, monetary_total, last_gap_days` (days between the last two
    purchases), `n_recent_purchases` (in the last `churn.RECENT_DAYS` days), `recency_days,
    tenure_days, mean_interpurchase_days` (tenure counts from the first purchase; NaN rhythm and
    last gap for one-timers).
    """
    reference = pd.Timestamp(reference_date).normalize()
    upto = days[days["day"] <= reference].sort_values(["customer_id", "day"])
    grouped = upto.groupby("customer_id", sort=True)
    summary = grouped.agg(
        first_purchase_at=("day", "min"),
        last_purchase_at=("day", "max"),
        n_purchases=("day", "size"),
        monetary_total=("amount", "sum"),
    )
    gaps = upto["day"].diff().dt.days.where(upto["customer_id"].eq(upto["customer_id"].shift()))
    summary["last_gap_days"] = gaps.groupby(upto["customer_id"]).last().reindex(summary.index)
    recent = upto["day"] > reference - pd.Timedelta(days=churn.RECENT_DAYS)
    summary["n_recent_purchases"] = recent.groupby(upto["customer_id"]).sum().reindex(summary.index)
    return finish_summary(summary.reset_index(), reference)


def finish_summary(summary: pd.DataFrame, reference_date: Any) -> pd.DataFrame:
    """Add `recency_days, tenure_days, mean_interpurchase_days` to first/last purchase and count."""
    reference = pd.Timestamp(reference_date).normalize()
    first = pd.to_datetime(summary["first_purchase_at"])
    last = pd.to_datetime(summary["last_purchase_at"])
    n = summary["n_purchases"].astype(float)
    span = (last - first).dt.days.astype(float)
    return summary.assign(
        recency_days=(reference - last).dt.days.astype(float),
        tenure_days=(reference - first).dt.days.astype(float),
        mean_interpurchase_days=(span / (n - 1)).where(n > 1),
    )


@dataclass(frozen=True)
class Backtest:
    """The purchase history as of `days` before the reference date, and who bought since."""

    days: int
    past: pd.DataFrame  # purchase summary as of the cut (finish_summary columns)
    no_purchase_since: np.ndarray  # per row of `past`: no purchase between the cut and the reference


def backtest_days(first_purchase: Any, reference_date: Any, horizon_days: float) -> int:
    """Backtest window: the horizon, or half the history when the history is shorter than 2 horizons."""
    history = (pd.Timestamp(reference_date).normalize() - pd.Timestamp(first_purchase).normalize()).days
    return int(min(horizon_days, history // 2))


def backtest_from_days(days: pd.DataFrame, reference_date: Any, horizon_days: float) -> Backtest:
    """`Backtest` from a `purchase_days` log."""
    reference = pd.Timestamp(reference_date).normalize()
    window = backtest_days(days["day"].min(), reference, horizon_days)
    cut = reference - pd.Timedelta(days=window)
    past = summarize_purchase_days(days, cut)
    later = days.loc[(days["day"] > cut) & (days["day"] <= reference), "customer_id"].unique()
    return Backtest(window, past, ~past["customer_id"].isin(later).to_numpy())


def _rfm(summary: pd.DataFrame) -> pd.DataFrame:
    """A purchase summary in the `helpers.features.clv` convention (see `churn.rfm_weeks`)."""
    return churn.rfm_weeks(summary)


# ---------------------------------------------------------------------------------------------
# Churn risk: a backtest-fitted model of the customer's rhythm, the MBG/NBD outlook and service signals
# (helpers.lifecycle.churn)
# ---------------------------------------------------------------------------------------------


@dataclass
class ChurnScore:
    """`score_churn_risk` output: the risk per summary row and what the recall calibration replays."""

    risk: np.ndarray  # P(no purchase in the horizon)
    p_none: np.ndarray  # the MBG/NBD alone: P(no purchase in the horizon)
    info: dict[str, Any]  # for the manifest
    past: pd.DataFrame | None = None  # backtest customers at the cut (None: no backtest model)
    past_outcome: np.ndarray | None = None  # no purchase between the cut and the reference date
    past_risk: np.ndarray | None = None  # their out-of-fold risk for the backtest window


def score_churn_risk(
    summary: pd.DataFrame,
    horizon_days: float,
    backtest: Backtest | None = None,
    min_backtest_days: int = 28,
    min_backtest_class: int = 30,
    max_fit_customers: int = 50_000,
    max_backtest_customers: int = 200_000,
    seed: int = 0,
    params: dict[str, float] | None = None,
) -> ChurnScore:
    """Churn risk = probability of no purchase in the next `horizon_days`, per summary row.

    1. MBG/NBD (`helpers.features.clv`, maximum likelihood, fitted on at most
       `max_fit_customers` customers): P(alive), expected purchases and P(no purchase) per customer;
       unlike BG/NBD it lets one-time buyers drop out.
    2. With a `backtest` long enough (the history as of `reference - w`, w = min(horizon, half the
       history), outcome = no purchase in the following w days), `churn.fit_churn_model` fits a
       logistic model of `churn.churn_features` (recency, frequency, age, own rhythm and its trend,
       the MBG/NBD outlook refitted at the cut, service signals: whatever columns the summary and
       `backtest.past` carry) on that outcome.
    3. Its probability is for w days; the MBG/NBD carries it to the horizon (`churn.to_horizon`).

    Without a usable backtest the risk is the MBG/NBD's P(no purchase in the horizon).
    `params`: MBG/NBD parameters already fitted on this same summary (step 03's fit): used instead
    of fitting again (the backtest, an earlier date, is always fitted).
    """
    if params is None:
        model = clv.fit_no_purchase_model(_rfm(summary), max_fit_customers, seed)
    else:
        model = clv.TransactionModel("mbgnbd", dict(params))
    info: dict[str, Any] = {
        "method": "mbgnbd",
        "mbgnbd": dict(model.params),
        "mbgnbd_reused": params is not None,
        "horizon_days": float(horizon_days),
    }
    skip = None
    if backtest is None:
        skip = "no backtest requested"
    elif backtest.days < min_backtest_days:
        skip = f"history shorter than {2 * min_backtest_days} days"
    elif min(backtest.no_purchase_since.sum(), (~backtest.no_purchase_since).sum()) < min_backtest_class:
        skip = f"fewer than {min_backtest_class} buyers or non-buyers in the backtest"
    if skip is not None:
        p_none = churn.model_outlook(model, summary, [horizon_days])[f"p_none_{horizon_days:g}"]
        info["backtest_skipped"] = skip
        return ChurnScore(p_none, p_none, info)
    past, outcome = backtest.past.reset_index(drop=True), backtest.no_purchase_since
    if len(past) > max_backtest_customers:  # a dozen weights need far fewer rows than a big base has
        rows = np.sort(np.random.default_rng(seed).choice(len(past), max_backtest_customers, replace=False))
        past, outcome = past.iloc[rows].reset_index(drop=True), outcome[rows]
    window = float(backtest.days)
    past_model = clv.fit_no_purchase_model(_rfm(past), max_fit_customers, seed)
    past_features = churn.churn_features(past, churn.model_outlook(past_model, past, [window]), window)
    fitted = churn.fit_churn_model(past_features, outcome, backtest.days, seed)
    outlook = churn.model_outlook(model, summary, [window, horizon_days])
    risk_window = fitted.predict(churn.churn_features(summary, outlook, window))
    p_none = outlook[f"p_none_{horizon_days:g}"]
    risk = churn.to_horizon(risk_window, outlook[f"p_none_{window:g}"], p_none)
    info.update(
        method="backtest model (rhythm, MBG/NBD outlook, service)",
        backtest_days=backtest.days,
        backtest_customers=len(past),
        backtest_no_purchase_share=float(outcome.mean()),
        backtest_weights=fitted.weights(),
        backtest_feature_set=fitted.feature_set,
        backtest_auc={name: round(value, 4) for name, value in fitted.backtest_auc.items()},
    )
    return ChurnScore(risk, p_none, info, past, np.asarray(outcome, bool), fitted.out_of_fold)


def auto_risk_threshold(
    risk: np.ndarray,
    target_recall: float,
    flagged: np.ndarray | None = None,
    candidates: np.ndarray | None = None,
) -> float:
    """Highest risk threshold at which the churn label's expected recall of next-period non-buyers
    reaches the target.

    Treats `risk` as calibrated probabilities: a label catches, in expectation, the risk summed over
    the customers it flags divided by the risk summed over the customers it can flag. `flagged`:
    customers the label holds whatever the threshold (other rules); `candidates`: customers the
    threshold decides on (default: everyone not flagged). Customers in neither (e.g. new customers,
    whom an earlier rule keeps in conversion) do not count. When the flagged alone reach the
    target, the threshold is just above every candidate's risk.
    """
    risk = np.asarray(risk, dtype=float)
    flagged = np.zeros(len(risk), bool) if flagged is None else np.asarray(flagged, bool)
    candidates = ~flagged if candidates is None else np.asarray(candidates, bool) & ~flagged
    ordered = np.sort(risk[candidates])[::-1]
    total, caught = risk[flagged | candidates].sum(), risk[flagged].sum()
    if len(ordered) == 0 or total <= 0:
        return 1.0
    if caught >= target_recall * total:
        return float(np.nextafter(ordered[0], np.inf))
    reached = (caught + np.cumsum(ordered)) / total
    return float(ordered[min(int(np.searchsorted(reached, target_recall)), len(ordered) - 1)])


# ---------------------------------------------------------------------------------------------
# Stage rules
# ---------------------------------------------------------------------------------------------


def _column(frame: pd.DataFrame, name: str, fill: float = np.nan) -> pd.Series:
    """A numeric column, or `fill` when the frame lacks it (its rules are then skipped)."""
    if name not in frame.columns:
        return pd.Series(fill, index=frame.index, dtype=float)
    return pd.to_numeric(frame[name], errors="coerce").astype(float)


def check_rhythm_rule(
    backtest: Backtest | None, rules: dict[str, Any], min_flagged: int = 30
) -> dict[str, Any]:
    """Is "a gap far beyond the customer's own rhythm" a churn signal in this data?

    In the backtest, the customers the rule flags at the cut must have stayed without purchase at
    least `at_risk.rhythm_min_backtest_lift` times as often as all customers did. In regular
    buying (subscriptions, replenishment) it is a strong signal; in irregular buying such as CDNOW's
    music purchases an overdue repeat buyer is *more* likely to buy again than the average customer,
    and the rule would only add false alarms. Kept (`use` True) when no backtest can judge it.
    """
    if backtest is None:
        return {"use": True, "reason": "no backtest"}
    past = backtest.past.assign(churn_risk=np.nan)
    flagged = assign_stages(past, rules, np.inf)["stage"].eq("at_risk").to_numpy()
    if flagged.sum() < min_flagged:
        return {"use": True, "reason": f"fewer than {min_flagged} customers overdue in the backtest"}
    precision, base = (
        float(backtest.no_purchase_since[flagged].mean()),
        float(backtest.no_purchase_since.mean()),
    )
    return {
        "use": precision >= float(rules["at_risk"]["rhythm_min_backtest_lift"]) * base,
        "backtest_days": backtest.days,
        "backtest_flagged": int(flagged.sum()),
        "backtest_no_purchase_share_flagged": precision,
        "backtest_no_purchase_share_all": base,
    }


def resolve_risk_threshold(
    customers: pd.DataFrame, rules: dict[str, Any], rhythm_rule: bool = True, target: float | None = None
) -> float:
    """The at-risk churn-risk threshold: a number from the rules, or `auto`: `auto_risk_threshold`
    for the whole churn label (at_risk + churned), counting the customers its other rules flag
    anyway and deciding only on those the churn-risk rule reaches (`customers` as for `assign_stages`);
    customers an earlier rule keeps out of at_risk (new customers in conversion) do not count.
    `target`: the expected recall to reach (default the rules' `target_recall`; see
    `calibrate_recall`)."""
    setting_value = rules["at_risk"]["min_churn_risk"]
    if setting_value != "auto":
        return float(setting_value)
    never, always = _threshold_masks(customers, rules, rhythm_rule)
    return auto_risk_threshold(
        _column(customers, "churn_risk", 0.0).fillna(0.0).to_numpy(),
        float(rules["at_risk"]["target_recall"] if target is None else target),
        flagged=never,
        candidates=always,
    )


def _threshold_masks(
    customers: pd.DataFrame, rules: dict[str, Any], rhythm_rule: bool
) -> tuple[np.ndarray, np.ndarray]:
    """Customers in the churn label whatever the threshold, and those it can reach at all."""
    never = assign_stages(customers, rules, np.inf, rhythm_rule)["stage"].isin(CHURN_STAGES).to_numpy()
    always = assign_stages(customers, rules, -np.inf, rhythm_rule)["stage"].isin(CHURN_STAGES).to_numpy()
    return never, always


def calibrate_recall(score: ChurnScore, rules: dict[str, Any], rhythm_rule: bool = True) -> dict[str, Any]:
    """The expected-recall setting at which the label's *realized* recall on the backtest reaches the
    rules' `target_recall` (`churn.calibrate_recall_target`), less one standard error of that recall
    (a shortfall the backtest cannot tell from noise does not move the threshold). The setting is
    moved only with `at_risk.calibrate_recall: true` in the rules (default off: on the demo world the
    raised setting flags more customers than its planted at-risk stage holds, macro F1 0.923 -> 0.900);
    otherwise the backtest recall at the target is measured and reported only.

    Replays the stage rules on the backtest customers as of the cut, with their out-of-fold churn
    risks, for a candidate setting, and counts the share of the customers who then bought nothing
    that the at_risk + churned label flags, among those the label can reach (as the expected recall
    does: new customers an earlier rule keeps in conversion do not count). Without a backtest model
    (or with a fixed threshold in the rules) the setting is the target itself.
    """
    target = float(rules["at_risk"]["target_recall"])
    if rules["at_risk"]["min_churn_risk"] != "auto" or score.past is None:
        return {"setting": target, "calibrated": False}
    past = score.past.assign(churn_risk=score.past_risk)
    outcome = np.asarray(score.past_outcome, bool)
    never, always = _threshold_masks(past, rules, rhythm_rule)
    risk = past["churn_risk"].to_numpy(float)
    reachable = never | always  # as for the expected recall: an earlier rule keeps the others out
    if not (outcome & reachable).any():
        return {"setting": target, "calibrated": False}

    def realized(setting: float) -> float:
        threshold = auto_risk_threshold(risk, setting, flagged=never, candidates=always)
        flagged = never | (always & (risk >= threshold))
        return float(flagged[outcome & reachable].mean())

    tolerance = float(np.sqrt(target * (1 - target) / (outcome & reachable).sum()))  # one standard error
    if not rules["at_risk"].get("calibrate_recall", False):  # measured and reported, the setting kept
        at_target = realized(target)
        return {
            "setting": target,
            "backtest_recall_at_target": at_target,
            "backtest_recall": at_target,
            "tolerance": tolerance,
            "calibrated": False,
        }
    return {
        **churn.calibrate_recall_target(realized, target, tolerance),
        "tolerance": tolerance,
        "calibrated": True,
    }


def assign_stages(
    customers: pd.DataFrame, rules: dict[str, Any], risk_threshold: float, rhythm_rule: bool = True
) -> pd.DataFrame:
    """One stage and the rule that assigned it per row; the first matching rule wins.

    Uses the columns present (`n_purchases, recency_days, tenure_days, mean_interpurchase_days,
    churn_risk`, and when available the service signals `n_inquiries, n_inbound, n_calls, nps_mean,
    complaints_recent, complaints_before, satisfaction_recent, satisfaction_before`); a rule
    whose inputs are missing never matches. Order: no purchase (acquisition, contact), churned,
    conversion, at_risk, loyalty, retention, one-time buyer (conversion). `rhythm_rule=False` turns
    the own-rhythm at-risk rule off (see `check_rhythm_rule`).
    """
    purchases = _column(customers, "n_purchases", 0.0).fillna(0.0)
    recency = _column(customers, "recency_days")
    tenure = _column(customers, "tenure_days")
    rhythm = _column(customers, "mean_interpurchase_days")
    risk = _column(customers, "churn_risk")
    gap_ratio = recency / rhythm.where(rhythm > 0)
    per_year = purchases / np.maximum(tenure, 1.0) * 365.25
    engaged = (
        (_column(customers, "n_inquiries", 0.0).fillna(0) >= rules["acquisition"]["min_inquiries"])
        | (_column(customers, "n_inbound", 0.0).fillna(0) >= rules["acquisition"]["min_inbound_calls"])
        | (_column(customers, "n_calls", 0.0).fillna(0) >= rules["acquisition"]["min_calls"])
    )
    complaints_now, complaints_before = (
        _column(customers, "complaints_recent"),
        _column(customers, "complaints_before"),
    )
    csat_now, csat_before = (
        _column(customers, "satisfaction_recent"),
        _column(customers, "satisfaction_before"),
    )
    at = rules["at_risk"]
    loyal = rules["loyalty"]
    buyer = purchases > 0
    overdue = gap_ratio >= at["service_min_gap_ratio"]
    nps = _column(customers, "nps_mean")
    sustained = (tenure >= loyal["min_tenure_days"]) & (per_year >= loyal["min_purchases_per_year"])
    ordered_rules: list[tuple[str, str, pd.Series]] = [
        ("acquisition", "no purchase, engaged (inquiry, inbound call or repeated calls)", ~buyer & engaged),
        ("contact", "no purchase, known but not engaged", ~buyer),
        (
            "churned",
            f"no purchase for {rules['churned']['min_recency_days']}+ days",
            recency >= rules["churned"]["min_recency_days"],
        ),
        (
            "conversion",
            f"first purchase within {rules['conversion']['window_days']} days",
            tenure <= rules["conversion"]["window_days"],
        ),
        ("at_risk", f"churn risk >= {risk_threshold:.2f}", risk >= risk_threshold),
        (
            "at_risk",
            f"gap >= {at['gap_ratio']}x own purchase rhythm",
            (purchases >= at["min_purchases_for_rhythm"]) & (gap_ratio >= at["gap_ratio"]) & rhythm_rule,
        ),
        (
            "at_risk",
            f"complaints rising, overdue (gap >= {at['service_min_gap_ratio']}x rhythm)",
            overdue
            & (complaints_now >= at["min_recent_complaints"])
            & (complaints_now > complaints_before.fillna(0)),
        ),
        (
            "at_risk",
            f"satisfaction falling, overdue (gap >= {at['service_min_gap_ratio']}x rhythm)",
            overdue & ((csat_before - csat_now) >= at["satisfaction_drop"]),
        ),
        (
            "loyalty",
            f"NPS promoter (>= {loyal['min_nps']}), {loyal['min_tenure_days']}+ days, "
            f"{loyal['min_purchases_per_year']}+ purchases/year",
            sustained & (nps >= loyal["min_nps"]),
        ),
        (
            "loyalty",
            f"{loyal['min_tenure_days']}+ days, {loyal['min_purchases_per_year']}+ purchases/year, "
            "no NPS answer",
            sustained & nps.isna(),
        ),
        ("retention", "repeat buyer, active", purchases >= 2),
        ("conversion", "one purchase, not yet repeated", buyer),
    ]
    stage = pd.Series(pd.NA, index=customers.index, dtype=object)
    stage_rule = pd.Series(pd.NA, index=customers.index, dtype=object)
    for name, rule, mask in ordered_rules:
        hit = mask.fillna(False).to_numpy(bool) & stage.isna().to_numpy()
        stage[hit] = name
        stage_rule[hit] = f"{name}: {rule}"
    return pd.DataFrame(
        {"stage": stage.astype(str), "stage_rule": stage_rule.astype(str)}, index=customers.index
    )


def label_from_transactions(
    transactions: pd.DataFrame,
    reference_date: Any,
    customer_col: str = "customer_id",
    time_col: str = "txn_at",
    amount_col: str | None = "amount",
    rules: dict[str, Any] | None = None,
    seed: int = 0,
) -> pd.DataFrame:
    """Lifecycle stage, rule and churn risk for every customer in a plain transaction log.

    `transactions`: one row per transaction (customer id, timestamp, amount; rows after
    `reference_date` are ignored; timestamps may also be whole numbers like 20240630). `rules`
    overrides `config/lifecycle_rules.yml` key by key, e.g. `{"horizon_days": 91}`.

    A day whose rows total a positive amount is a purchase. Rows that are not purchases (zero
    amounts, refunds only) count as **contacts**: a customer with only such rows is labelled
    `contact` (rule "no purchase, known but not engaged") with `churn_risk` 0, like step 05's
    prospects (there is no purchasing relationship to lose); for buyers, the number of such contact
    days is one of the churn model's inputs.

    Returns `customer_id, stage, stage_rule, churn_risk`, one row per customer with a row on or
    before the reference date, sorted by id. `churn_risk` is the probability of no purchase in the
    `horizon_days` after the reference date (default 273 days = 39 weeks), from a model fitted on a
    backtest inside the log (`score_churn_risk`); stages `at_risk` and `churned` together are the
    "will not buy in that period" label, their threshold set so that the label's realized recall
    on the backtest reaches `at_risk.target_recall` (`calibrate_recall`). Model details (MBG/NBD
    parameters, backtest weights, the threshold and the recall calibration) are in
    `result.attrs["lifecycle"]`.
    """
    merged = _rules(rules)
    log = daily_log(transactions, reference_date, customer_col, time_col, amount_col)
    purchases = log[log["amount"] > 0].reset_index(drop=True)
    if purchases.empty:
        raise LifecycleInputError(
            f"transactions: no purchase (a day with a positive {amount_col!r} total) on or before "
            f"{pd.Timestamp(reference_date).date()}; nothing to model"
        )
    summary = summarize_purchase_days(purchases, reference_date)
    horizon = float(merged["horizon_days"])
    backtest = backtest_from_days(purchases, reference_date, horizon) if merged["backtest"] else None
    contacts = log[log["amount"] <= 0]
    summary = summary.merge(_contact_counts(contacts, reference_date), on="customer_id", how="left")
    if backtest is not None:
        cut = pd.Timestamp(reference_date).normalize() - pd.Timedelta(days=backtest.days)
        past = backtest.past.merge(_contact_counts(contacts, cut), on="customer_id", how="left")
        backtest = Backtest(backtest.days, past, backtest.no_purchase_since)
    score = score_churn_risk(summary, horizon, backtest=backtest, seed=seed)
    summary["churn_risk"] = score.risk
    rhythm = check_rhythm_rule(backtest, merged)
    calibration = calibrate_recall(score, merged, rhythm["use"])
    threshold = resolve_risk_threshold(summary, merged, rhythm["use"], calibration["setting"])
    stages = assign_stages(summary, merged, threshold, rhythm["use"])
    buyers = pd.concat([summary[["customer_id"]], stages, summary[["churn_risk"]]], axis=1)
    prospects = pd.DataFrame(
        {"customer_id": np.setdiff1d(log["customer_id"].unique(), summary["customer_id"])}
    )
    prospects = pd.concat(
        [prospects, assign_stages(prospects.assign(n_purchases=0), merged, threshold)], axis=1
    ).assign(churn_risk=0.0)
    result = pd.concat([buyers, prospects], ignore_index=True).sort_values("customer_id", ignore_index=True)
    result.attrs["lifecycle"] = {
        **score.info,
        "rhythm_rule": rhythm,
        "risk_threshold": threshold,
        "recall_calibration": calibration,
        "contacts_only": len(prospects),
    }
    return result[LIFECYCLE_COLUMNS]


def _contact_counts(contacts: pd.DataFrame, as_of: Any) -> pd.DataFrame:
    """Days with rows but no purchase, per customer, on or before `as_of`: `customer_id, n_contacts`."""
    upto = contacts[contacts["day"] <= pd.Timestamp(as_of).normalize()]
    return upto.groupby("customer_id").size().rename("n_contacts").reset_index()


def evaluate_against_holdout(
    transactions: pd.DataFrame,
    reference_date: Any,
    holdout_days: int,
    customer_col: str = "customer_id",
    time_col: str = "txn_at",
    amount_col: str | None = "amount",
    rules: dict[str, Any] | None = None,
) -> dict[str, float]:
    """Score `label_from_transactions` on a log that extends past the reference date.

    Labels as of `reference_date` with `horizon_days = holdout_days`; the truth is "no purchase
    in (reference, reference + holdout]". Scored on the customers with a purchase on or before the
    reference date (the churn label is about them; contacts-only customers are counted in
    `contacts_only`). Reports the baseline (days since last purchase) next to ours: ROC AUC, the
    best precision either score reaches at recall >= 0.90 with a hindsight threshold, the
    precision/recall of the at_risk+churned label, and the precision of flagging the same number
    of customers by days since the last purchase (`recency_precision_same_count`).
    """
    reference = pd.Timestamp(reference_date)
    labels = label_from_transactions(
        transactions,
        reference,
        customer_col,
        time_col,
        amount_col,
        rules={**(rules or {}), "horizon_days": holdout_days},
    )
    days = purchase_days(
        transactions, reference + pd.Timedelta(days=holdout_days), customer_col, time_col, amount_col
    )
    last = days[days["day"] <= reference].groupby("customer_id")["day"].max()
    contacts_only = int((~labels["customer_id"].isin(last.index)).sum())
    labels = labels[labels["customer_id"].isin(last.index)].reset_index(drop=True)
    bought = days.loc[days["day"] > reference.normalize(), "customer_id"].unique()
    no_purchase = ~labels["customer_id"].isin(bought).to_numpy()
    recency = (reference.normalize() - last.reindex(labels["customer_id"])).dt.days.to_numpy(float)
    flagged = labels["stage"].isin(CHURN_STAGES).to_numpy()
    return {
        "customers": len(labels),
        "contacts_only": contacts_only,
        "no_purchase_rate": float(no_purchase.mean()),
        "auc_recency": float(roc_auc_score(no_purchase, recency)),
        "auc_churn_risk": float(roc_auc_score(no_purchase, labels["churn_risk"])),
        "recency_precision_at_recall_0.90": _best_precision_at_recall(no_purchase, recency, 0.9),
        "risk_precision_at_recall_0.90": _best_precision_at_recall(no_purchase, labels["churn_risk"], 0.9),
        "label_precision": float(no_purchase[flagged].mean()) if flagged.any() else float("nan"),
        "label_recall": float(flagged[no_purchase].mean()),
        "label_flagged": int(flagged.sum()),
        "recency_precision_same_count": _precision_of_top(no_purchase, recency, int(flagged.sum())),
        "risk_threshold": float(labels.attrs["lifecycle"]["risk_threshold"]),
    }


def _precision_of_top(truth: np.ndarray, score: np.ndarray, count: int) -> float:
    """Precision of flagging the `count` highest scores (a tie at the cut-off counts at its mean)."""
    if count <= 0:
        return float("nan")
    score, truth = np.asarray(score, float), np.asarray(truth, bool)
    cutoff = np.sort(score)[::-1][min(count, len(score)) - 1]
    above, tied = score > cutoff, score == cutoff  # customers tied at the cut-off count by their mean
    hits = truth[above].sum() + (count - above.sum()) * truth[tied].mean()
    return float(hits / count)


def _best_precision_at_recall(truth: np.ndarray, score: np.ndarray, min_recall: float) -> float:
    precision, recall, _ = precision_recall_curve(truth, score)
    return float(precision[recall >= min_recall].max())


# ---------------------------------------------------------------------------------------------
# Full-data labeling (step 05 on the features table)
# ---------------------------------------------------------------------------------------------


def load_purchase_summaries(
    engine: SqlEngine, reference_date: Any, horizon_days: float, tables: dict[str, str]
) -> tuple[pd.DataFrame, Backtest | None]:
    """Purchase summary as of the reference date and the `Backtest`, from clean transactions +
    crosswalk in one SQL scan (no per-day log in memory). Backtest is None without purchases."""
    reference = pd.Timestamp(reference_date).normalize()
    rows = engine.run(
        "lifecycle",
        "purchase_summary",
        tables,
        as_of_end=reference + pd.Timedelta(days=1),
        horizon_days=int(horizon_days),
    )
    summary = finish_summary(
        rows[["customer_id", "first_purchase_at", "last_purchase_at", "n_purchases", "monetary_total"]],
        reference,
    )
    if rows.empty:
        return summary, None
    window = int(rows["backtest_days"].iloc[0])
    earlier = rows[rows["cut_n_purchases"] > 0]
    past = finish_summary(
        pd.DataFrame(
            {
                "customer_id": earlier["customer_id"],
                "first_purchase_at": earlier["cut_first_purchase_at"],
                "last_purchase_at": earlier["cut_last_purchase_at"],
                "n_purchases": earlier["cut_n_purchases"],
            }
        ),
        reference - pd.Timedelta(days=window),
    )
    return summary, Backtest(window, past, (earlier["n_purchases_after_cut"] == 0).to_numpy())


def load_service_trends(
    engine: SqlEngine, reference_date: Any, window_days: int, tables: dict[str, str]
) -> pd.DataFrame:
    """Complaints and mean satisfaction in the last `window_days` and in the window before, per customer."""
    as_of_end = pd.Timestamp(reference_date).normalize() + pd.Timedelta(days=1)
    recent_start = as_of_end - pd.Timedelta(days=window_days)
    return engine.run(
        "lifecycle",
        "service_trends",
        tables,
        as_of_end=as_of_end,
        recent_start=recent_start,
        before_start=recent_start - pd.Timedelta(days=window_days),
    )


FEATURE_INPUTS = [  # what step 05 reads of 03_features/features
    "customer_id", "n_purchases", "first_purchase_at", "last_purchase_at",
    "n_calls", "n_inbound", "n_inquiries", "csat_mean", "nps_mean",
]  # fmt: skip
STEP_TABLES = {  # query placeholder -> registered table name
    "transactions": "clean_transactions",
    "calls": "clean_calls",
    "surveys": "clean_surveys",
    "crosswalk": "crosswalk",
}


@dataclass
class StepInputs:
    """What step 05 labels from: the features it uses, the purchase summary + backtest, the trends."""

    features: pd.DataFrame
    purchases: tuple[pd.DataFrame, Backtest | None]
    trends: pd.DataFrame
    seconds: dict[str, float]


def load_step_inputs(ctx: StepContext, rules: dict[str, Any]) -> StepInputs:
    """Read step 05's inputs from the run folder: 03's features, and the purchase summaries and
    service trends aggregated in SQL over 01's clean events through 02's crosswalk. The backtest's
    customers carry their service trends as of the backtest cut (the churn model's service inputs)."""
    import pyarrow.parquet as pq

    from helpers.identity.events import register_events  # here: step 06 imports this module, not step 02's

    path = ctx.path("features.parquet", "03_features")
    available = set(pq.read_schema(path).names) if path.is_file() else set()
    extra = [c for c in CLV_FIT_COLUMNS if c in available and c not in FEATURE_INPUTS]  # step 03's fit
    features = ctx.read("03_features", "features", columns=FEATURE_INPUTS + extra)
    seconds: dict[str, float] = {}
    with connect_configured(ctx.settings) as engine:  # the config's engine (duckdb or spark)
        # Events keyed by record or by an identifier both reach their customer through the crosswalk.
        names = {**{t: f"clean_{t}" for t in ("transactions", "calls", "surveys")}, "crosswalk": "crosswalk"}
        register_events(engine, ctx, names)
        start = time.perf_counter()
        purchases = load_purchase_summaries(engine, ctx.reference_date, rules["horizon_days"], STEP_TABLES)
        seconds["purchase_summary"] = time.perf_counter() - start
        start = time.perf_counter()
        window = int(rules["at_risk"]["trend_window_days"])
        trends = load_service_trends(engine, ctx.reference_date, window, STEP_TABLES)
        summary, backtest = purchases
        if backtest is not None:  # the service signals as of the backtest cut, for the churn model's fit
            cut = pd.Timestamp(ctx.reference_date).normalize() - pd.Timedelta(days=backtest.days)
            past = backtest.past.merge(
                load_service_trends(engine, cut, window, STEP_TABLES), on="customer_id", how="left"
            )
            purchases = (summary, Backtest(backtest.days, past, backtest.no_purchase_since))
        seconds["service_trends"] = time.perf_counter() - start
    return StepInputs(features, purchases, trends, seconds)


def label_customers(
    features: pd.DataFrame,
    reference_date: Any,
    rules: dict[str, Any] | None = None,
    purchases: tuple[pd.DataFrame, Backtest | None] | None = None,
    trends: pd.DataFrame | None = None,
    seed: int = 0,
    mbgnbd_params: dict[str, float] | None = None,
    trends_past: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Stage, rule and churn risk for every customer of the step-03 `features` table.

    `purchases` (summary and backtest from `load_purchase_summaries`) gives the purchase history used
    for the rhythm, the model and its backtest; without it the history comes from the features'
    `n_purchases, first_purchase_at, last_purchase_at` (no backtest). `trends` (from
    `load_service_trends`) adds the complaint and satisfaction rules and, with `trends_past` (the
    same as of the backtest cut), the service signals of the churn model. Prospects (no purchase) get
    `churn_risk` 0: there is no purchasing relationship to lose; their stage (contact or
    acquisition) says where they are. `mbgnbd_params` (step 03's fit of the same purchase summary,
    see `reusable_clv_params`) replaces the current-date fit.
    Returns `customer_id, stage, stage_rule, churn_risk` plus the signals the rules used.
    """
    merged = _rules(rules)
    required = ["customer_id", "n_purchases"] + (
        [] if purchases is not None else ["first_purchase_at", "last_purchase_at"]
    )
    missing = [c for c in required if c not in features.columns]
    if missing:
        raise LifecycleInputError(f"03_features/features: missing column(s) {missing}")
    duplicated = features["customer_id"].duplicated(keep=False)
    if duplicated.any():
        raise LifecycleInputError(
            f"03_features/features: customer_id must be unique; {int(duplicated.sum())} rows share one, "
            "e.g.\n" + features.loc[duplicated, ["customer_id", "n_purchases"]].head(4).to_string()
        )
    reference = pd.Timestamp(reference_date).normalize()
    backtest = None
    if purchases is not None:
        summary, backtest = purchases
        summary = summary[summary["customer_id"].isin(features["customer_id"])].reset_index(drop=True)
    else:
        summary = _summary_from_features(features, reference)
    backtest = backtest if merged["backtest"] else None
    if trends is not None:
        summary = summary.merge(trends, on="customer_id", how="left")
    if backtest is not None and trends_past is not None:
        backtest = Backtest(
            backtest.days,
            backtest.past.merge(trends_past, on="customer_id", how="left"),
            backtest.no_purchase_since,
        )
    score = score_churn_risk(
        summary, float(merged["horizon_days"]), backtest=backtest, seed=seed, params=mbgnbd_params
    )
    summary["churn_risk"] = score.risk
    summary["p_no_purchase_model"] = score.p_none
    service = [
        c for c in ("n_inquiries", "n_inbound", "n_calls", "nps_mean", "csat_mean") if c in features.columns
    ]
    customers = features[["customer_id", *service]].merge(summary, on="customer_id", how="left")
    if trends is not None:  # prospects' service trends too (the summary carries the buyers')
        customers = customers.drop(columns=[c for c in trends if c != "customer_id"]).merge(
            trends, on="customer_id", how="left"
        )
    customers["n_purchases"] = customers["n_purchases"].fillna(0).astype("int64")
    customers["churn_risk"] = customers["churn_risk"].fillna(0.0)
    rhythm = check_rhythm_rule(backtest, merged)
    calibration = calibrate_recall(score, merged, rhythm["use"])
    threshold = resolve_risk_threshold(customers, merged, rhythm["use"], calibration["setting"])
    customers[["stage", "stage_rule"]] = assign_stages(customers, merged, threshold, rhythm["use"])
    customers["gap_ratio"] = customers["recency_days"] / customers["mean_interpurchase_days"]
    customers.attrs["lifecycle"] = {
        **score.info,
        "rhythm_rule": rhythm,
        "risk_threshold": threshold,
        "recall_calibration": calibration,
    }
    return customers[LIFECYCLE_COLUMNS + [c for c in customers.columns if c not in LIFECYCLE_COLUMNS]]


CLV_FIT_COLUMNS = ["customer_id", "n_purchases", "frequency_repeat", "clv_recency_weeks", "clv_T_weeks"]


def reusable_clv_params(
    clv_record: dict[str, Any] | None,
    features: pd.DataFrame,
    summary: pd.DataFrame,
    max_fit_customers: int = 50_000,
) -> dict[str, float] | None:
    """Step 03's MBG/NBD parameters when step 05 would fit the same model on the same data, else None.

    Same data: step 03 fitted an MBG/NBD (`clv_record`, its manifest's `clv`) on as many customers as
    step 05 would (all buyers, or samples of the same size), and its buyers' (frequency, recency, T)
    in `features` (`CLV_FIT_COLUMNS`) equal step 05's purchase `summary` at the same reference date,
    customer for customer.
    """
    if not clv_record or clv_record.get("model") != "mbgnbd" or not set(CLV_FIT_COLUMNS) <= set(features):
        return None
    buyers = features[features["n_purchases"].fillna(0) > 0].set_index("customer_id")
    ours = _rfm(summary[summary["customer_id"].isin(features["customer_id"])]).set_index("customer_id")
    if len(ours) != len(buyers) or not ours.index.isin(buyers.index).all():
        return None
    if int(clv_record["n_fit_customers"]) != min(len(ours), max_fit_customers):
        return None
    theirs = buyers.loc[ours.index, ["frequency_repeat", "clv_recency_weeks", "clv_T_weeks"]].to_numpy(float)
    if not np.allclose(theirs, ours[["frequency", "recency", "T"]].to_numpy(float), rtol=0, atol=1e-9):
        return None
    return {name: float(clv_record["transaction_params"][name]) for name in ("r", "alpha", "a", "b")}


def _summary_from_features(features: pd.DataFrame, reference: pd.Timestamp) -> pd.DataFrame:
    buyers = features[features["n_purchases"].fillna(0) > 0]
    first = pd.to_datetime(buyers["first_purchase_at"]).dt.normalize()
    last = pd.to_datetime(buyers["last_purchase_at"]).dt.normalize()
    bad = first.isna() | last.isna() | (last < first) | (last > reference)
    if bad.any():
        raise LifecycleInputError(
            "03_features/features: buyers need first_purchase_at <= last_purchase_at <= the reference date; "
            f"{int(bad.sum())} rows do not, e.g.\n"
            + buyers.loc[bad, ["customer_id", "n_purchases", "first_purchase_at", "last_purchase_at"]]
            .head(3)
            .to_string()
        )
    frame = pd.DataFrame(
        {
            "customer_id": buyers["customer_id"].to_numpy(),
            "first_purchase_at": first.to_numpy(),
            "last_purchase_at": last.to_numpy(),
            "n_purchases": buyers["n_purchases"].astype(float).to_numpy(),
        }
    )
    return finish_summary(frame, reference)


# ---------------------------------------------------------------------------------------------
# Reporting: funnel, stage by segment, flows from the previous run, accuracy on planted truth
# (the plots are in helpers.lifecycle.plots)
# ---------------------------------------------------------------------------------------------

LIFECYCLE_ARTIFACT = Path("05_lifecycle") / "lifecycle.parquet"
FUNNEL_STEPS: tuple[tuple[str, str], ...] = (
    ("known", "known (all customers)"),
    ("engaged", "engaged (not just a contact)"),
    ("bought", "bought at least once"),
    ("repeat", "bought again"),
    ("loyal", "loyal"),
)


def find_previous_run(run_dir: Path) -> Path | None:
    """The run to compare lifecycle stages with: `helpers.core.runs.find_previous_run`'s choice
    (the newest earlier complete run on the same raw data folder), if it has a
    `05_lifecycle/lifecycle.parquet`; else None (a run on other data is never picked)."""
    previous = runs.find_previous_run(Path(run_dir), "auto")
    if previous is None or not (previous / LIFECYCLE_ARTIFACT).is_file():
        return None
    return previous


def funnel(labeled: pd.DataFrame) -> pd.DataFrame:
    """Customers who reached each funnel step, and the conversion rate from the step before.

    Steps: known -> engaged (everyone but `contact`) -> bought (any purchase) -> bought again
    (2+ purchases) -> loyal. Needs `stage` and `n_purchases`.
    """
    purchases = labeled["n_purchases"].fillna(0)
    reached = {
        "known": len(labeled),
        "engaged": int((labeled["stage"] != "contact").sum()),
        "bought": int((purchases > 0).sum()),
        "repeat": int((purchases >= 2).sum()),
        "loyal": int((labeled["stage"] == "loyalty").sum()),
    }
    table = pd.DataFrame(
        {"step": [label for _, label in FUNNEL_STEPS], "customers": [reached[key] for key, _ in FUNNEL_STEPS]}
    )
    table["rate_from_previous"] = (table["customers"] / table["customers"].shift(1)).round(3)
    table["share_of_known"] = (table["customers"] / max(len(labeled), 1)).round(3)
    return table


def stage_by_segment(labeled: pd.DataFrame, segments: pd.DataFrame) -> pd.DataFrame:
    """Customers per segment (rows, by name) and stage (columns, every stage in order)."""
    joined = labeled.merge(segments, on="customer_id")
    return pd.crosstab(joined["segment_name"].astype(str), joined["stage"]).reindex(
        columns=list(STAGES), fill_value=0
    )


def stage_flows(previous: pd.DataFrame, current: pd.DataFrame) -> pd.DataFrame:
    """Customer counts from the previous run's stage (rows) to this run's (columns).

    Customers only in this run come from `(new)`, customers only in the previous run go to `(gone)`.
    """
    joined = previous[["customer_id", "stage"]].merge(
        current[["customer_id", "stage"]], on="customer_id", how="outer", suffixes=("_before", "_now")
    )
    before = joined["stage_before"].astype(object).where(joined["stage_before"].notna(), "(new)")
    now = joined["stage_now"].astype(object).where(joined["stage_now"].notna(), "(gone)")
    table = pd.crosstab(before.rename("before"), now.rename("now"))
    rows = [s for s in (*STAGES, "(new)") if s in table.index]
    columns = [s for s in (*STAGES, "(gone)") if s in table.columns]
    return table.loc[rows, columns]


def stage_accuracy(
    lifecycle: pd.DataFrame, person_of_customer: pd.Series, persons: pd.DataFrame
) -> dict[str, Any]:
    """Macro F1, accuracy, per-stage report and confusion matrix against planted stages.

    Precision, recall and F1 per stage come from the confusion matrix (zero where undefined, as
    scikit-learn's `zero_division=0`): one pass over the customers instead of one per metric.
    """
    truth = person_of_customer.map(persons.set_index("person_id")["stage"]).rename("planted")
    joined = lifecycle.set_index("customer_id")[["stage"]].join(truth, how="inner").dropna()
    confusion = pd.crosstab(joined["planted"], joined["stage"]).reindex(
        index=list(STAGES), columns=list(STAGES), fill_value=0
    )
    hits = np.diag(confusion.to_numpy()).astype(float)
    predicted, actual = confusion.sum(axis=0).to_numpy(float), confusion.sum(axis=1).to_numpy(float)

    def ratio(top: np.ndarray, bottom: np.ndarray) -> np.ndarray:
        return np.divide(top, bottom, out=np.zeros_like(top), where=bottom > 0)

    f1 = ratio(2 * hits, predicted + actual)
    report = pd.DataFrame(
        {"precision": ratio(hits, predicted), "recall": ratio(hits, actual), "f1": f1}, index=list(STAGES)
    )
    return {
        "customers_evaluated": len(joined),
        "macro_f1": float(f1.mean()),
        "accuracy": float((joined["planted"] == joined["stage"]).mean()),
        "report": report.round(3),
        "confusion": confusion,
    }
