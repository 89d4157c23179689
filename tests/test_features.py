"""Feature values on a tiny hand-built world, computed by hand; the model matrix; bad input."""

from __future__ import annotations

import math
import typing

import numpy as np
import pandas as pd
import pytest

from helpers.core.factors import GROUP_NAMES, LIFECYCLE
from helpers.core.settings import FeaturesSettings
from helpers.engine.base import connect
from helpers.features import build as features

REFERENCE = "2026-06-30"
TS = pd.Timestamp


def _txn(txn_id, system, customer, at, amount, quantity, category, channel, refund=False):
    return (txn_id, system, customer, TS(at), amount, quantity, category, channel, refund)


TRANSACTIONS = pd.DataFrame(
    [
        # C1: crm K1 + shop S1, merged. Two purchases on 2026-01-10 are one purchase day.
        _txn("t6", "crm", "K1", "2025-06-30 10:00", 40.0, 1, "books", "phone"),  # before the 12-month window
        _txn("t1", "crm", "K1", "2026-01-10 09:00", 100.0, 1, "books", "store"),
        _txn("t2", "shop", "S1", "2026-01-10 20:00", 50.0, 2, "toys", "online"),
        _txn("t5", "crm", "K1", "2026-03-01 12:00", 30.0, 1, "books", "store", True),
        _txn("t3", "shop", "S1", "2026-06-29 23:59:59", 200.0, 1, "books", "online"),  # 1 day, not 0
        _txn("t4", "crm", "K1", "2026-07-01 00:00", 999.0, 1, "books", "store"),  # after the reference date
        # C3: only a refund.
        _txn("t7", "crm", "K3", "2026-02-01 10:00", 80.0, 1, "toys", "store", True),
        # C4: two app purchases, never calls.
        _txn("t8", "shop", "S4", "2026-06-01 08:00", 60.0, 1, "toys", "app"),
        _txn("t9", "shop", "S4", "2026-06-15 08:00", 40.0, 1, "toys", "app"),
        # C5: one purchase.
        _txn("t10", "crm", "K5", "2026-04-15 11:00", 500.0, 5, "office", "store"),
        # Nobody's: no crosswalk record claims K99.
        _txn("t11", "crm", "K99", "2026-04-15 11:00", 10.0, 1, "books", "store"),
    ],
    columns=[
        "txn_id",
        "source_system",
        "source_customer_id",
        "txn_at",
        "amount",
        "quantity",
        "category",
        "channel",
        "is_refund",
    ],
)
CALLS = pd.DataFrame(
    [
        ("c1", "T2", TS("2026-05-01 10:00"), "inbound", "complaint", 300, True, 2),
        ("c2", "T2", TS("2026-05-05 09:00"), "inbound", "complaint", 200, False, None),
        ("c3", "T2", TS("2026-06-20 15:00"), "outbound", "sales", 100, None, 4),
        ("c4", "T5", TS("2026-06-01 10:00"), "inbound", "inquiry", 60, True, 5),
        ("c5", "T99", TS("2026-06-01 10:00"), "inbound", "inquiry", 60, True, 5),
    ],
    columns=[
        "call_id",
        "cti_id",
        "call_at",
        "direction",
        "reason",
        "duration_sec",
        "resolved",
        "satisfaction",
    ],
).astype({"resolved": "boolean", "satisfaction": "Int64"})
SURVEYS = pd.DataFrame(
    [
        ("s1", "shop", "S1", TS("2026-03-01"), 4, 9, "sports; travel", "urban", "delivery"),
        ("s2", "crm", "K1", TS("2026-05-01"), 2, 7, "travel", None, None),
    ],
    columns=[
        "survey_id",
        "source_system",
        "source_customer_id",
        "answered_at",
        "csat",
        "nps",
        "interests",
        "lifestyle",
        "stated_need",
    ],
)
MARKETING = pd.DataFrame(
    [
        ("m1", "crm", "K1", TS("2026-05-01"), "spring", "sms", True, True),
        ("m2", "crm", "K1", TS("2026-06-01"), "summer", "email", True, False),
        ("m3", "shop", "S1", TS("2026-06-25 18:00"), "summer", "email", False, False),
    ],
    columns=[
        "contact_id",
        "source_system",
        "source_customer_id",
        "sent_at",
        "campaign",
        "channel",
        "responded",
        "converted",
    ],
)
CROSSWALK = pd.DataFrame(
    [
        ("crm", "K1", "C1"),
        ("shop", "S1", "C1"),
        ("cti", "T1", "C1"),
        ("crm", "K2", "C2"),
        ("cti", "T2", "C2"),
        ("crm", "K3", "C3"),
        ("shop", "S4", "C4"),
        ("crm", "K5", "C5"),
        ("cti", "T5", "C5"),
    ],
    columns=["source_system", "source_record_id", "customer_id"],
).assign(match_method="deterministic", match_probability=1.0)
GOLDEN = pd.DataFrame(
    {
        "customer_id": ["C1", "C2", "C3", "C4", "C5"],
        "gender": ["F", None, "M", "F", "M"],
        "birth_date": pd.to_datetime(["1990-07-01", None, "1970-01-15", "2001-06-30", "1980-03-03"]),
        "province": ["广东", "上海", None, "北京", "浙江"],
        "city": ["深圳", "上海", None, "北京", "杭州"],
        "city_tier": ["1", "1", None, "1", "2"],
        "customer_type": ["consumer", "consumer", "consumer", "consumer", "business"],
        "industry": [None, None, None, None, "retail"],
        "employee_count": pd.array([None, None, None, None, 120], dtype="Int64"),
        "annual_revenue_cny": [None, None, None, None, 5e6],
        "primary_device": ["ios", None, "pc", "android", "pc"],
        "app_installed": pd.array([True, None, False, True, False], dtype="boolean"),
        "sessions_per_month": [12.0, None, 1.0, 30.0, 2.0],
        "online_minutes_per_month": [300.0, None, 10.0, 900.0, 20.0],
        "loyalty_tier": ["gold", None, None, "basic", None],
    }
)


def make_engine(transactions: pd.DataFrame = TRANSACTIONS, crosswalk: pd.DataFrame = CROSSWALK):
    engine = connect()
    for name, frame in {
        "transactions": transactions,
        "calls": CALLS,
        "surveys": SURVEYS,
        "marketing_contacts": MARKETING,
        "crosswalk": crosswalk,
    }.items():
        engine.register(name, frame)
    return engine


SETTINGS = features.FeatureSettings.from_config(
    FeaturesSettings(
        groups={"value": 1.0, "behaviour": 1.0, "service": 0.5, "demographic": 0.5, "firmographic": 0.0}
    ),
    REFERENCE,
    seed=1,
)


@pytest.fixture(scope="module")
def build() -> features.FeatureBuild:
    return features.build_features(make_engine(), GOLDEN, CROSSWALK, SETTINGS)


@pytest.fixture(scope="module")
def table(build) -> pd.DataFrame:
    return build.features.set_index("customer_id")


def test_every_golden_customer_once_in_order(build):
    assert build.features["customer_id"].tolist() == GOLDEN["customer_id"].tolist()


def test_dictionary_covers_every_column(build):
    assert build.dictionary["name"].tolist() == build.features.columns.tolist()
    assert build.dictionary["definition"].str.len().gt(0).all()
    assert set(build.dictionary["group"]) == {"key", *GROUP_NAMES}


def test_unclaimed_events_are_counted_not_lost(build):
    assert build.unmatched_events == {"transactions": 1, "calls": 1, "surveys": 0, "marketing_contacts": 0}


def test_value_features_of_a_merged_customer(table):
    c1 = table.loc["C1"]
    assert c1["n_purchases"] == 4  # t4 falls after the reference date
    assert c1["n_refunds"] == 1
    assert c1["gross_amount"] == 390.0
    assert c1["refund_amount"] == 30.0
    assert c1["monetary_total"] == 360.0
    assert c1["monetary_12m"] == 320.0  # t6 on 2025-06-30 is outside the 365 days
    assert c1["avg_order_value"] == pytest.approx(390 / 4)
    assert c1["items_per_order"] == pytest.approx(5 / 4)
    assert c1["frequency_repeat"] == 2  # three purchase days
    assert c1["recency_days"] == 1  # 23:59:59 the day before is truncated, not rounded
    assert c1["tenure_days"] == 365
    assert c1["clv_recency_weeks"] == pytest.approx(364 / 7)
    assert c1["clv_T_weeks"] == pytest.approx(365 / 7)
    assert c1["clv_monetary_repeat"] == pytest.approx((150 + 200) / 2)
    assert c1["first_purchase_at"] == TS("2025-06-30")
    assert c1["last_purchase_at"] == TS("2026-06-29")
    assert c1["refund_rate"] == pytest.approx(30 / 390)


def test_behaviour_features_of_a_merged_customer(table):
    c1 = table.loc["C1"]
    assert c1["mean_interpurchase_days"] == pytest.approx(182.0)  # gaps 194 and 170
    assert c1["interpurchase_cv"] == pytest.approx(np.std([194, 170], ddof=1) / 182)
    assert c1["weekend_share"] == pytest.approx(0.5)  # 2026-01-10 is a Saturday
    assert c1["mean_purchase_hour"] == pytest.approx((10 + 9 + 20 + 23) / 4)
    assert c1["morning_share"] == pytest.approx(0.5)
    assert c1["evening_share"] == pytest.approx(0.5)
    assert c1["season_share_summer"] == pytest.approx(0.5)
    assert c1["season_share_winter"] == pytest.approx(0.5)
    assert c1["channel_share_online"] == pytest.approx(0.5)
    assert c1["channel_share_store"] == pytest.approx(0.25)
    assert c1["preferred_channel"] == "online"
    assert c1["online_share"] == pytest.approx(0.5)
    assert c1["category_share_books"] == pytest.approx(340 / 390)
    assert c1["category_share_toys"] == pytest.approx(50 / 390)
    assert c1["category_share_other"] == pytest.approx(0.0)
    shares = np.array([340, 50]) / 390
    assert c1["category_entropy"] == pytest.approx(-(shares * np.log(shares)).sum())
    assert c1["category_breadth"] == 2
    assert c1["purchases_last_90d"] == 1
    assert c1["purchases_prev_90d"] == 2
    assert c1["purchase_trend"] == pytest.approx(-1 / 3)


def test_customer_without_purchases(table):
    c2 = table.loc["C2"]
    assert c2["n_purchases"] == 0 and c2["has_purchases"] == 0
    assert c2["monetary_total"] == 0.0
    assert math.isnan(c2["recency_days"]) and pd.isna(c2["first_purchase_at"])
    assert math.isnan(c2["avg_order_value"])
    assert c2["rfm_segment"] == features.NO_PURCHASE and c2["rfm_score"] == ""
    assert c2["value_tier"] == "low"
    assert c2["preferred_channel"] == "none"
    assert c2["clv_12m"] == 0.0 and c2["p_no_purchase_next_period"] == 1.0
    assert math.isnan(c2["category_share_books"])


def test_customer_with_only_refunds(table):
    c3 = table.loc["C3"]
    assert c3["n_purchases"] == 0 and c3["n_refunds"] == 1
    assert c3["refund_amount"] == 80.0
    assert c3["monetary_total"] == -80.0
    assert c3["refund_rate"] == 0.0
    assert c3["rfm_segment"] == features.NO_PURCHASE


def test_service_features(table):
    c2 = table.loc["C2"]
    assert c2["n_calls"] == 3 and c2["n_inbound"] == 2 and c2["n_outbound"] == 1
    assert c2["n_complaints"] == 2 and c2["n_sales_calls"] == 1
    assert c2["complaint_rate"] == pytest.approx(2 / 3)
    assert c2["first_contact_resolution"] == pytest.approx(0.5)  # one unknown outcome left out
    assert c2["avg_handle_sec"] == pytest.approx(200.0)
    assert c2["call_satisfaction_mean"] == pytest.approx(3.0)
    assert c2["repeat_contact_rate"] == pytest.approx(1 / 3)  # 4 days apart: repeat; 46 days: not
    assert c2["contacts_per_month"] == pytest.approx(3 / 12)
    assert c2["last_call_at"] == TS("2026-06-20")
    assert math.isnan(c2["complaints_per_purchase"])


def test_customer_without_calls(table):
    c4 = table.loc["C4"]
    assert c4["n_calls"] == 0 and c4["has_calls"] == 0 and c4["n_complaints"] == 0
    assert math.isnan(c4["complaint_rate"]) and math.isnan(c4["avg_handle_sec"])
    assert c4["complaints_per_purchase"] == 0.0
    assert pd.isna(c4["last_contact_at"])
    assert c4["channel_share_app"] == 1.0 and c4["online_share"] == 1.0


def test_survey_and_marketing_features(table):
    c1 = table.loc["C1"]
    assert c1["csat_mean"] == pytest.approx(3.0) and c1["nps_mean"] == pytest.approx(8.0)
    assert c1["lifestyle"] == "urban"  # latest non-empty answer
    assert c1["interest_travel"] == 1 and c1["interest_sports"] == 1
    assert c1["n_marketing_contacts"] == 3 and c1["n_campaigns"] == 2
    assert c1["response_rate"] == pytest.approx(2 / 3)
    assert c1["conversion_rate"] == pytest.approx(1 / 3)
    assert c1["last_contact_at"] == TS("2026-06-25")
    assert table.loc["C2", "interest_travel"] == 0 and table.loc["C2", "lifestyle"] == "unknown"


def test_profile_features(table):
    assert table.loc["C1", "age"] == 35  # turns 36 the day after the reference date
    assert table.loc["C4", "age"] == 25  # birthday on the reference date
    assert table.loc["C1", "age_band"] == "35-44"
    assert table.loc["C2", "age_band"] == "unknown" and table.loc["C2", "gender"] == "unknown"
    assert table.loc["C2", "app_installed"] == "unknown" and table.loc["C3", "app_installed"] == "no"
    assert table.loc["C5", "is_business"] == 1
    assert table.loc["C5", "company_size_band"] == "medium"
    assert table.loc["C5", "industry"] == "retail"
    assert table.loc["C1", "industry"] == "none" and math.isnan(table.loc["C1", "annual_revenue_cny"])
    assert table.loc["C2", "loyalty_tier"] == "none"


def test_too_few_repeat_buyers_leave_clv_unfitted_and_tier_by_spend(build, table):
    assert build.clv is None
    assert build.tier_thresholds["basis"] == "monetary_12m"
    buyers = table[table["n_purchases"] > 0]
    # 12-month net spend C1 320, C4 100, C5 500: the 0.8 quantile is 428, the 0.4 quantile 276.
    assert buyers["value_tier"].tolist() == ["middle", "low", "high"]
    assert build.tier_thresholds["high_min"] == pytest.approx(428.0)


def test_rfm_scores_and_classic_segments():
    frame = pd.DataFrame(
        {
            "n_purchases": [10, 1, 0, 2, 8],
            "recency_days": [1.0, 2.0, np.nan, 300.0, 200.0],
            "monetary_total": [1000.0, 10.0, 0.0, 30.0, 900.0],
        }
    )
    scores = features.rfm_scores(frame)
    assert scores["rfm_r_score"].tolist()[:2] == [5, 4]
    # R 5,4,-,2,3; F and M 5,2,-,3,4 (quintiles of rank among the four buyers).
    assert scores["rfm_score"].tolist() == ["555", "422", "", "233", "344"]
    assert scores["rfm_segment"].tolist() == [
        "Champions",
        "Potential loyalists",
        features.NO_PURCHASE,
        "At risk",
        "Loyal customers",
    ]


def test_crosswalk_customer_missing_from_golden_is_an_error():
    with pytest.raises(ValueError, match="C5"):
        features.build_features(make_engine(), GOLDEN[GOLDEN["customer_id"] != "C5"], CROSSWALK, SETTINGS)


def test_value_concentration_by_hand():
    assert features.value_concentration(pd.Series([100.0, 0, 0, 0, 0, 0, 0, 0, 0, 0])) == 1.0
    assert features.value_concentration(pd.Series([50.0, 30, 10, 10, 0])) == pytest.approx(0.5)


def test_weekend_is_saturday_and_sunday():
    sunday = pd.DataFrame([_txn("t12", "crm", "K5", "2026-04-19 23:30", 20.0, 1, "office", "store")])
    sunday.columns = TRANSACTIONS.columns
    engine = make_engine(transactions=pd.concat([TRANSACTIONS, sunday], ignore_index=True))
    table = features.build_features(engine, GOLDEN, CROSSWALK, SETTINGS).features.set_index("customer_id")
    assert table.loc["C5", "weekend_share"] == pytest.approx(0.5)  # Wednesday + Sunday
    assert table.loc["C4", "weekend_share"] == 0.0  # two Mondays


@pytest.mark.parametrize("max_levels", [1, 20])
def test_category_breadth_counts_categories_beyond_the_levels(max_levels):
    settings = features.FeatureSettings.from_config(
        FeaturesSettings(max_levels=max_levels), REFERENCE, seed=1
    )
    build = features.build_features(make_engine(), GOLDEN, CROSSWALK, settings)
    table = build.features.set_index("customer_id")
    assert build.levels["category"] == ["books", "toys", "office"][:max_levels]
    assert table["category_breadth"].to_dict() == {"C1": 2, "C2": 0, "C3": 0, "C4": 1, "C5": 1}
    assert table.loc["C4", "category_share_other"] == (1.0 if max_levels == 1 else 0.0)


def test_schema_feature_groups_are_the_factor_groups_and_lifecycle():
    """`features.groups` in the config schema names exactly the factor groups of helpers.core.factors, in
    order, plus the pseudo-group lifecycle: both as the keys the schema accepts and as its defaults."""
    expected = [*GROUP_NAMES, LIFECYCLE]
    assert list(FeaturesSettings().groups) == expected
    key_type = typing.get_args(FeaturesSettings.model_fields["groups"].annotation)[0]
    assert list(typing.get_args(key_type)) == expected


def test_coverage_and_catalogue_use_the_factor_groups(build):
    assert build.dictionary["group"].drop_duplicates().tolist() == ["key", *GROUP_NAMES]
    covered = features.coverage(build.features, build.dictionary)
    assert covered["group"].tolist() == list(GROUP_NAMES)
    assert covered["n_features"].gt(0).all()
