"""Lifecycle labeling: the Pareto/NBD model, each stage rule, the transaction-only helper, CDNOW."""

from __future__ import annotations

import importlib.util
import os
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from helpers.lifecycle import (
    LIFECYCLE_ARTIFACT,
    LifecycleInputError,
    ParetoNBD,
    assign_stages,
    auto_risk_threshold,
    backtest_from_days,
    customer_person,
    evaluate_against_holdout,
    find_previous_run,
    fit_pareto_nbd,
    funnel,
    label_customers,
    label_from_transactions,
    load_purchase_summaries,
    load_rules,
    purchase_days,
    stage_accuracy,
    stage_flows,
    summarize_purchase_days,
)
from helpers.sql import connect

BENCH = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_lifecycle.py"
REFERENCE = pd.Timestamp("2024-06-30")


def _bench_module():
    spec = importlib.util.spec_from_file_location("bench_lifecycle", BENCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _simulate_pareto_nbd(truth: ParetoNBD, customers: int, age: float, horizon: float, seed: int):
    """Purchase histories from a known Pareto/NBD: (x, t_x, age) at `age` and bought-in-horizon."""
    rng = np.random.default_rng(seed)
    rate = rng.gamma(truth.r, 1 / truth.alpha, customers)
    lifetime = rng.exponential(1 / rng.gamma(truth.s, 1 / truth.beta, customers))
    ages = rng.uniform(0.3 * age, age, customers)
    x = np.zeros(customers)
    t_x = np.zeros(customers)
    bought_later = np.zeros(customers, dtype=bool)
    for i in range(customers):
        end = min(lifetime[i], ages[i] + horizon)
        n = rng.poisson(rate[i] * end)
        times = np.sort(rng.uniform(0, end, n))
        past = times[times <= ages[i]]
        x[i] = len(past)
        t_x[i] = past[-1] if len(past) else 0.0
        bought_later[i] = bool((times > ages[i]).any())
    return x, t_x, ages, bought_later


@pytest.fixture(scope="module")
def simulated():
    truth = ParetoNBD(r=0.6, alpha=8.0, s=0.5, beta=10.0, unit_days=7.0)
    return truth, _simulate_pareto_nbd(truth, customers=4000, age=40.0, horizon=26.0, seed=3)


def test_pareto_nbd_recovers_known_parameters_and_calibrated_no_purchase(simulated) -> None:
    truth, (x, t_x, age, bought_later) = simulated
    fitted = fit_pareto_nbd(x, t_x, age)
    assert fitted.r == pytest.approx(truth.r, rel=0.25)
    assert fitted.alpha == pytest.approx(truth.alpha, rel=0.35)
    assert fitted.s == pytest.approx(truth.s, rel=0.4)
    p_none = fitted.p_no_purchase(x, t_x, age, 26.0)
    # Calibrated overall and by decile of predicted risk.
    assert p_none.mean() == pytest.approx((~bought_later).mean(), abs=0.02)
    deciles = pd.qcut(p_none, 5, labels=False)
    observed = pd.Series(~bought_later).groupby(deciles).mean()
    predicted = pd.Series(p_none).groupby(deciles).mean()
    assert np.abs(observed - predicted).max() < 0.06


def test_no_purchase_probability_limits(simulated) -> None:
    truth, (x, t_x, age, _) = simulated
    short = truth.p_no_purchase(x, t_x, age, 1e-6)
    week, year, forever = (truth.p_no_purchase(x, t_x, age, h) for h in (1.0, 52.0, 1e7))
    assert np.allclose(short, 1.0, atol=1e-4)
    assert np.all(week >= year - 1e-12)
    # Never buying again = dead now, or alive but dying before the next purchase.
    assert np.all(forever >= 1 - truth.p_alive(x, t_x, age) - 1e-9)
    assert np.all(forever <= year)
    # One-time buyers are not assumed alive (unlike BG/NBD), and a long silence lowers P(alive).
    one_timer = truth.p_alive(np.array([0.0, 0.0]), np.array([0.0, 0.0]), np.array([5.0, 50.0]))
    assert one_timer[0] < 1.0 and one_timer[1] < one_timer[0]


def test_pareto_nbd_matches_lifetimes_reference_implementation() -> None:
    lifetimes_fitters = pytest.importorskip("lifetimes.fitters.pareto_nbd_fitter")
    log = _bench_module().load_cdnow("sample")
    cut = pd.Timestamp("1997-09-30")
    summary = summarize_purchase_days(purchase_days(log, cut), cut)
    x = summary["n_purchases"].to_numpy(float) - 1
    age = summary["tenure_days"].to_numpy(float) / 7
    t_x = age - summary["recency_days"].to_numpy(float) / 7
    ours = fit_pareto_nbd(x, t_x, age, prior_sd=100.0)  # near-flat prior: the MLE
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        reference = lifetimes_fitters.ParetoNBDFitter().fit(x, t_x, age)
    for name in ("r", "alpha", "s", "beta"):
        assert getattr(ours, name) == pytest.approx(reference.params_[name], rel=0.01)
    # The default prior (sd 3 on log-parameters) moves along a flat ridge, not the fit.
    default = fit_pareto_nbd(x, t_x, age)
    assert default.log_likelihood(x, t_x, age).sum() > ours.log_likelihood(x, t_x, age).sum() - 0.1
    assert np.allclose(
        ours.p_alive(x, t_x, age), reference.conditional_probability_alive(x, t_x, age), atol=0.02
    )


# --------------------------------------------------------------------------- rules, hand-built


def _customer(**values: float) -> dict[str, float]:
    base = {
        "n_purchases": 6,
        "recency_days": 20,
        "tenure_days": 400,
        "mean_interpurchase_days": 60,
        "churn_risk": 0.2,
    }
    return {**base, **values}


RULE_CASES = {
    "contact": (
        {"n_purchases": 0, "recency_days": np.nan, "tenure_days": np.nan, "n_inquiries": 0},
        "contact",
    ),
    "acquisition by inquiry": ({"n_purchases": 0, "recency_days": np.nan, "n_inquiries": 2}, "acquisition"),
    "acquisition by inbound call": (
        {"n_purchases": 0, "recency_days": np.nan, "n_inbound": 1},
        "acquisition",
    ),
    "churned": ({"recency_days": 300, "churn_risk": 0.99}, "churned"),
    "conversion, recent first purchase": (
        {"n_purchases": 1, "tenure_days": 30, "recency_days": 30},
        "conversion",
    ),
    "at_risk by churn risk": ({"churn_risk": 0.8}, "at_risk"),
    "at_risk by own rhythm": ({"recency_days": 100, "mean_interpurchase_days": 40}, "at_risk"),
    "at_risk by complaints": (
        {"recency_days": 70, "complaints_recent": 3, "complaints_before": 0},
        "at_risk",
    ),
    "complaints need overdue": ({"complaints_recent": 3, "complaints_before": 0}, "retention"),
    "at_risk by satisfaction": (
        {"recency_days": 70, "satisfaction_recent": 2.5, "satisfaction_before": 4.5},
        "at_risk",
    ),
    "loyalty": ({"tenure_days": 900, "n_purchases": 20, "nps_mean": 9.5}, "loyalty"),
    "loyalty without NPS answer": ({"tenure_days": 900, "n_purchases": 20, "nps_mean": np.nan}, "loyalty"),
    "loyalty needs tenure": ({"tenure_days": 600, "n_purchases": 20, "nps_mean": 10}, "retention"),
    "retention": ({}, "retention"),
    "loyalty needs promoter NPS": ({"tenure_days": 900, "n_purchases": 20, "nps_mean": 7}, "retention"),
    "rhythm needs 3 purchases": (
        {"n_purchases": 2, "recency_days": 100, "mean_interpurchase_days": 40},
        "retention",
    ),
    "one-time buyer, not risky": ({"n_purchases": 1, "tenure_days": 200, "recency_days": 200}, "conversion"),
    "contact after one outbound call": ({"n_purchases": 0, "recency_days": np.nan, "n_calls": 1}, "contact"),
    "acquisition by repeated calls": (
        {"n_purchases": 0, "recency_days": np.nan, "n_calls": 2},
        "acquisition",
    ),
}


@pytest.mark.parametrize("case", list(RULE_CASES))
def test_each_rule_on_a_hand_built_customer(case: str) -> None:
    values, expected = RULE_CASES[case]
    frame = pd.DataFrame([_customer(**values)])
    result = assign_stages(frame, load_rules(), risk_threshold=0.6)
    assert result.loc[0, "stage"] == expected
    assert result.loc[0, "stage_rule"].startswith(f"{expected}: ")


def test_first_matching_rule_wins_and_every_row_gets_one_stage() -> None:
    frame = pd.DataFrame([_customer(**values) for values, _ in RULE_CASES.values()])
    result = assign_stages(frame, load_rules(), risk_threshold=0.6)
    assert result["stage"].tolist() == [stage for _, stage in RULE_CASES.values()]
    churned_rule = result.loc[3, "stage_rule"]  # also risky, but churned comes first
    assert churned_rule == "churned: no purchase for 270+ days"


def test_auto_threshold_reaches_expected_recall() -> None:
    risk = np.array([0.9, 0.8, 0.5, 0.2, 0.1])
    # Flagging the top 3 catches (0.9+0.8+0.5)/2.5 = 88% of expected non-buyers, top 4 96%.
    assert auto_risk_threshold(risk, 0.85) == 0.5
    assert auto_risk_threshold(risk, 0.9) == 0.2


# --------------------------------------------------------------------------- transaction log helper


def _tiny_log() -> pd.DataFrame:
    rows = []
    for k in range(12):  # "steady": every 30 days, last one 10 days ago
        rows.append(("steady", REFERENCE - pd.Timedelta(days=10 + 30 * k), 50.0))
    for k in range(8):  # "lapsing": every 30 days, then silent for 120 days
        rows.append(("lapsing", REFERENCE - pd.Timedelta(days=120 + 30 * k), 40.0))
    rows += [
        ("gone", REFERENCE - pd.Timedelta(days=400), 30.0),
        ("gone", REFERENCE - pd.Timedelta(days=420), 30.0),
        ("new", REFERENCE - pd.Timedelta(days=20), 99.0),
        ("new", REFERENCE - pd.Timedelta(days=20, hours=-3), 1.0),  # same day: one occasion
        ("new", REFERENCE + pd.Timedelta(days=5), 10.0),  # after the reference date
        ("refund_only", REFERENCE - pd.Timedelta(days=50), -20.0),
    ]
    return pd.DataFrame(rows, columns=["cust", "ts", "value"])


def test_purchase_summary_on_a_tiny_log() -> None:
    days = purchase_days(_tiny_log(), REFERENCE, "cust", "ts", "value")
    summary = summarize_purchase_days(days, REFERENCE).set_index("customer_id")
    assert sorted(summary.index) == ["gone", "lapsing", "new", "steady"]
    assert summary.loc["new", "n_purchases"] == 1 and summary.loc["new", "monetary_total"] == 100.0
    assert summary.loc["steady", ["n_purchases", "recency_days", "tenure_days"]].tolist() == [12, 10, 340]
    assert summary.loc["lapsing", "mean_interpurchase_days"] == 30.0
    assert np.isnan(summary.loc["new", "mean_interpurchase_days"])


def test_the_whole_reference_day_counts() -> None:
    log = pd.DataFrame(
        {
            "customer_id": ["a", "a", "a"],
            "txn_at": [REFERENCE + pd.Timedelta(hours=h) for h in (-48, 15, 30)],
            "amount": 5.0,
        }
    )
    summary = summarize_purchase_days(purchase_days(log, REFERENCE), REFERENCE)
    assert summary[["n_purchases", "recency_days", "tenure_days"]].iloc[0].tolist() == [2, 0, 2]


def test_label_from_transactions_tiny_log_known_answers() -> None:
    labels = label_from_transactions(
        _tiny_log(),
        REFERENCE,
        customer_col="cust",
        time_col="ts",
        amount_col="value",
        rules={"at_risk": {"min_churn_risk": 0.95}},
    ).set_index("customer_id")
    assert list(labels.columns) == ["stage", "stage_rule", "churn_risk"]
    assert labels["stage"].to_dict() == {
        "gone": "churned",
        "lapsing": "at_risk",
        "new": "conversion",
        "steady": "retention",
    }
    assert labels.loc["lapsing", "stage_rule"] == "at_risk: gap >= 1.5x own purchase rhythm"
    risk = labels["churn_risk"]
    assert risk.between(0, 1).all()
    assert risk["steady"] < risk["lapsing"] < risk["gone"]
    assert labels.attrs["lifecycle"]["method"] == "pareto_nbd"  # too little history to backtest


@pytest.mark.parametrize(
    ("column", "bad_value", "message"),
    [
        ("ts", "not a date", "unparseable 'ts'"),
        ("value", "abc", "non-numeric 'value'"),
        ("cust", None, "empty 'cust'"),
    ],
)
def test_bad_input_names_frame_column_and_rows(column: str, bad_value: object, message: str) -> None:
    log = _tiny_log().astype({column: object})
    log.loc[15, column] = bad_value
    with pytest.raises(LifecycleInputError, match=message) as error:
        label_from_transactions(log, REFERENCE, customer_col="cust", time_col="ts", amount_col="value")
    assert "transactions" in str(error.value)
    assert "lapsing" in str(error.value) or column == "cust"  # the example row is shown


def test_missing_column_is_named() -> None:
    expected = r"transactions: missing column\(s\) \['txn_at', 'amount'\]"
    with pytest.raises(LifecycleInputError, match=expected):
        label_from_transactions(_tiny_log().rename(columns={"cust": "customer_id"}), REFERENCE)


# --------------------------------------------------------------------------- real data: CDNOW


@pytest.fixture(scope="module")
def cdnow() -> pd.DataFrame:
    pytest.importorskip("lifetimes")
    return _bench_module().load_cdnow("sample")


def test_cdnow_classic_split_beats_days_since_last_purchase(cdnow: pd.DataFrame) -> None:
    """Calibration to 1997-09-30, holdout 39 weeks: the split of the CLV literature."""
    scores = evaluate_against_holdout(cdnow, "1997-09-30", 39 * 7)
    assert scores["auc_churn_risk"] >= 0.77
    assert scores["auc_churn_risk"] > scores["auc_recency"] + 0.005
    # The score supports the bar: with the right threshold, precision >= 0.80 at recall 0.90 ...
    assert scores["risk_precision_at_recall_0.90"] >= 0.80
    assert scores["risk_precision_at_recall_0.90"] > scores["recency_precision_at_recall_0.90"]
    # ... but the label's threshold is chosen without hindsight: recall overshoots to ~0.93, and
    # precision lands at ~0.78, below the 0.80 bar (see the closing note of issue 6).
    assert scores["label_recall"] >= 0.90
    assert scores["label_precision"] >= 0.77


def test_cdnow_other_split_beats_baseline(cdnow: pd.DataFrame) -> None:
    scores = evaluate_against_holdout(cdnow, "1997-12-31", 26 * 7)
    assert scores["auc_churn_risk"] > scores["auc_recency"]
    assert scores["label_recall"] >= 0.90 and scores["label_precision"] >= 0.80


# --------------------------------------------------------------------------- full-data path


def _event_tables(log: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The tiny log as clean transactions in two source systems, plus a crosswalk and a refund row."""
    transactions = pd.DataFrame(
        {
            "source_system": np.where(log.index % 2 == 0, "crm", "shop"),
            "source_customer_id": log["cust"].str.upper() + np.where(log.index % 2 == 0, "-crm", "-shop"),
            "txn_at": log["ts"],
            "amount": log["value"].abs(),
            "is_refund": log["value"] < 0,
        }
    )
    records = transactions[["source_system", "source_customer_id"]].drop_duplicates()
    crosswalk = records.rename(columns={"source_customer_id": "source_record_id"}).assign(
        customer_id=records["source_customer_id"].str.split("-").str[0].str.lower()
    )
    return transactions, crosswalk


def test_sql_purchase_summary_matches_the_pandas_path() -> None:
    log = _tiny_log()
    transactions, crosswalk = _event_tables(log)
    with connect() as engine:
        engine.register("transactions", transactions)
        engine.register("crosswalk", crosswalk)
        summary, backtest = load_purchase_summaries(
            engine, REFERENCE, 91, {"transactions": "transactions", "crosswalk": "crosswalk"}
        )
    days = purchase_days(log, REFERENCE, "cust", "ts", "value")
    expected_summary = summarize_purchase_days(days, REFERENCE)
    expected_backtest = backtest_from_days(days, REFERENCE, 91)
    columns = ["customer_id", "n_purchases", "recency_days", "tenure_days", "mean_interpurchase_days"]
    got = summary.sort_values("customer_id")[columns].reset_index(drop=True)
    pd.testing.assert_frame_equal(got, expected_summary[columns], check_dtype=False)
    assert backtest.days == expected_backtest.days == 91
    got_past = backtest.past.assign(no_purchase=backtest.no_purchase_since).sort_values("customer_id")
    want_past = expected_backtest.past.assign(no_purchase=expected_backtest.no_purchase_since)
    assert (
        got_past["customer_id"].tolist() == want_past["customer_id"].tolist() == ["gone", "lapsing", "steady"]
    )
    assert got_past["no_purchase"].tolist() == want_past["no_purchase"].tolist() == [True, True, False]
    assert got_past["recency_days"].tolist() == want_past["recency_days"].tolist()


def test_label_customers_from_features_alone() -> None:
    features = pd.DataFrame(
        {
            "customer_id": ["p1", "p2", "steady", "gone", "new"],
            "n_purchases": [0, 0, 12, 2, 1],
            "first_purchase_at": [
                pd.NaT,
                pd.NaT,
                REFERENCE - pd.Timedelta(days=340),
                REFERENCE - pd.Timedelta(days=420),
                REFERENCE - pd.Timedelta(days=20),
            ],
            "last_purchase_at": [
                pd.NaT,
                pd.NaT,
                REFERENCE - pd.Timedelta(days=10),
                REFERENCE - pd.Timedelta(days=400),
                REFERENCE - pd.Timedelta(days=20),
            ],
            "n_calls": [1, 3, 0, 0, 0],
            "n_inbound": [0, 1, 0, 0, 0],
            "n_inquiries": [0, 2, 0, 0, 0],
        }
    )
    labeled = label_customers(features, REFERENCE, rules={"at_risk": {"min_churn_risk": 0.95}}).set_index(
        "customer_id"
    )
    assert labeled["stage"].to_dict() == {
        "p1": "contact", "p2": "acquisition", "steady": "retention", "gone": "churned", "new": "conversion",
    }  # fmt: skip
    assert labeled.loc[["p1", "p2"], "churn_risk"].tolist() == [0.0, 0.0]
    assert labeled.loc["steady", "churn_risk"] < labeled.loc["gone", "churn_risk"]
    with pytest.raises(LifecycleInputError, match="customer_id must be unique"):
        label_customers(pd.concat([features, features.head(1)]), REFERENCE)


def test_funnel_counts_and_rates() -> None:
    labeled = pd.DataFrame(
        {
            "stage": [
                "contact",
                "acquisition",
                "conversion",
                "retention",
                "loyalty",
                "at_risk",
                "churned",
                "retention",
            ],
            "n_purchases": [0, 0, 1, 5, 30, 4, 1, 2],
        }
    )
    table = funnel(labeled).set_index("step")
    assert table["customers"].tolist() == [8, 7, 6, 4, 1]
    assert table["rate_from_previous"].iloc[1:].tolist() == [0.875, 0.857, 0.667, 0.25]


def test_stage_flows_follow_customers_and_mark_new_and_gone() -> None:
    before = pd.DataFrame({"customer_id": ["a", "b", "c"], "stage": ["retention", "retention", "at_risk"]})
    now = pd.DataFrame({"customer_id": ["a", "b", "d"], "stage": ["retention", "at_risk", "conversion"]})
    flows = stage_flows(before, now)
    assert flows.loc["retention", "retention"] == 1 and flows.loc["retention", "at_risk"] == 1
    assert flows.loc["at_risk", "(gone)"] == 1 and flows.loc["(new)", "conversion"] == 1
    assert flows.to_numpy().sum() == 4


def test_find_previous_run_picks_newest_earlier_run_on_the_same_data(tmp_path: Path) -> None:
    from helpers.migration import PREVIOUS_ARTIFACTS

    runs = tmp_path / "runs"

    def make_run(name: str, age: float, raw_dir: str = "data/raw/demo", complete: bool = True) -> Path:
        run = runs / name
        artifacts = [*PREVIOUS_ARTIFACTS, LIFECYCLE_ARTIFACT] if complete else [LIFECYCLE_ARTIFACT]
        for artifact in artifacts:
            (run / artifact).parent.mkdir(parents=True, exist_ok=True)
            (run / artifact).write_bytes(b"")
        (run / "config.yml").write_text(f"data: {{raw_dir: {raw_dir}}}\n")
        os.utime(run / "config.yml", (time.time() - age, time.time() - age))
        return run

    make_run("old", 300)
    make_run("recent", 200)
    make_run("other_data", 150, raw_dir="data/raw/small")  # newer, but another raw data folder
    make_run("incomplete", 100, complete=False)
    current = make_run("current", 0, complete=False)
    assert find_previous_run(current).name == "recent"
    os.utime(current / "config.yml", (time.time() - 250, time.time() - 250))
    assert find_previous_run(current).name == "old"
    only_other = make_run("alone", 0, raw_dir="data/raw/elsewhere", complete=False)
    assert find_previous_run(only_other) is None


def test_stage_accuracy_against_planted_persons() -> None:
    crosswalk = pd.DataFrame(
        {
            "source_system": ["crm", "shop", "crm"],
            "source_record_id": ["1", "2", "3"],
            "customer_id": ["A", "A", "B"],
        }
    )
    records = pd.DataFrame(
        {
            "source_system": ["crm", "shop", "crm"],
            "source_record_id": ["1", "2", "3"],
            "person_id": ["P1", "P1", "P2"],
        }
    )
    persons = pd.DataFrame({"person_id": ["P1", "P2"], "stage": ["loyalty", "churned"]})
    person = customer_person(crosswalk, records)
    assert person.to_dict() == {"A": "P1", "B": "P2"}
    right = pd.DataFrame({"customer_id": ["A", "B"], "stage": ["loyalty", "churned"]})
    wrong = pd.DataFrame({"customer_id": ["A", "B"], "stage": ["loyalty", "at_risk"]})
    assert stage_accuracy(right, person, persons)["accuracy"] == 1.0
    scored = stage_accuracy(wrong, person, persons)
    assert scored["accuracy"] == 0.5 and scored["confusion"].loc["churned", "at_risk"] == 1
