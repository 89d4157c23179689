"""Step 03: one row of multi-factor features per merged customer, a feature dictionary, and the
model-ready matrix clustering uses.

Event aggregation is SQL (`engine/queries/features/*.sql`, one pass per source table) on the
configured engine (`engine.name`: DuckDB runs the text as written, Spark gets it through
`helpers.engine.dialect`); this module adds per-customer derivations (RFM scores and segment names,
shares, entropy, profile bands) and the lifetime-value predictions (`helpers.features.clv`). The
feature catalogue lives in `helpers.features.catalog`, the matrix transformations in
`helpers.features.matrix`. `tests/test_engines.py` runs every features query (with the columns
generated here) on both engines and compares the frames.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

import helpers.features.clv as clv
from helpers.core.context import ArtifactMissingError, StepContext
from helpers.core.factors import GROUP_NAMES
from helpers.core.settings import FeaturesSettings
from helpers.engine.base import SqlEngine, connect_configured
from helpers.features.catalog import CHANNELS, NO_PURCHASE, VALUE_TIERS, feature_dictionary, slug
from helpers.features.matrix import model_matrix

STEP = "features"
EVENT_TABLES = ("transactions", "calls", "surveys", "marketing_contacts")
QUERY_OF_TABLE = {
    "transactions": "transactions",
    "calls": "calls",
    "surveys": "surveys",
    "marketing_contacts": "marketing",
}
ONLINE_CHANNELS = ("online", "app")
SHARE_NOISE = 1e-9  # a share remainder below this is rounding noise (category_share_other)
AGE_BINS = [0, 25, 35, 45, 55, 65, 200]
AGE_LABELS = ["<25", "25-34", "35-44", "45-54", "55-64", "65+"]
SIZE_BINS = [0, 10, 50, 250, np.inf]
SIZE_LABELS = ["micro", "small", "medium", "large"]
TIERS = np.array(VALUE_TIERS, dtype=object)
RFM_CODES = [f"{r}{f}{m}" for r in range(1, 6) for f in range(1, 6) for m in range(1, 6)]
RFM_CODES_OR_BLANK = np.array([*RFM_CODES, ""], dtype=object)  # shared string objects, "" without purchases
RFM_SEGMENTS = (  # (recency scores, frequency-monetary scores, name): the classic R x FM grid
    ((1, 2), (1, 2), "Hibernating"),
    ((1, 2), (3, 4), "At risk"),
    ((1, 2), (5,), "Can't lose them"),
    ((3,), (1, 2), "About to sleep"),
    ((3,), (3,), "Need attention"),
    ((3, 4), (4, 5), "Loyal customers"),
    ((4,), (1,), "Promising"),
    ((5,), (1,), "New customers"),
    ((4, 5), (2, 3), "Potential loyalists"),
    ((5,), (4, 5), "Champions"),
)


@dataclass(frozen=True)
class FeatureSettings:
    """The knobs of the step: config section `features` (`FeaturesSettings`, where the defaults
    live) plus the run's reference date and seed."""

    reference_date: pd.Timestamp
    seed: int
    value_tiers: dict[str, float]
    groups: dict[str, float]
    clv_model: clv.TransactionModelName
    clv_period_days: int
    clv_horizon_months: int
    clv_sample_size: int
    clv_min_repeat_customers: int
    repeat_contact_days: int
    max_levels: int
    winsor_quantile: float
    duckdb_memory_limit: str | None
    duckdb_threads: int | None

    @classmethod
    def from_config(cls, features: FeaturesSettings, reference_date: Any, seed: int) -> FeatureSettings:
        """From the typed `features` section, e.g. `ctx.settings.features`."""
        return cls(
            reference_date=pd.Timestamp(reference_date).normalize(), seed=seed, **features.model_dump()
        )


@dataclass
class FeatureBuild:
    """Everything the step produces before writing."""

    features: pd.DataFrame
    dictionary: pd.DataFrame
    clv: clv.ClvResult | None
    unmatched_events: dict[str, int]
    levels: dict[str, list[str]]
    tier_thresholds: dict[str, Any]
    seconds: dict[str, float]


def _sql_literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def query_params(reference_date: pd.Timestamp) -> dict[str, pd.Timestamp]:
    """Window bounds as day timestamps: events up to the end of the reference date count."""
    day = pd.Timestamp(reference_date).normalize()
    return {
        "as_of_end": day + pd.Timedelta(days=1),
        "start_12m": day - pd.Timedelta(days=364),
        "start_90d": day - pd.Timedelta(days=89),
        "start_180d": day - pd.Timedelta(days=179),
    }


def find_levels(
    engine: SqlEngine, tables: dict[str, str], settings: FeatureSettings
) -> tuple[dict[str, list[str]], bool]:
    """The most frequent purchase categories and survey interests (up to `max_levels` each), and
    whether purchases have categories beyond those levels."""
    params = query_params(settings.reference_date)
    found = engine.run(STEP, "levels", tables=tables, as_of_end=params["as_of_end"])
    levels = {}
    for kind in ("category", "interest"):
        rows = found[found["kind"] == kind].sort_values(["n", "level"], ascending=[False, True])
        levels[kind] = rows["level"].astype(str).head(settings.max_levels).tolist()
    return levels, int((found["kind"] == "category").sum()) > len(levels["category"])


def _other_category_breadth(levels: list[str], other_categories: bool) -> str:
    """SQL for the number of distinct purchase categories outside `levels` (0 when there are none:
    the category spend columns then give the breadth without a DISTINCT aggregation)."""
    if not other_categories:
        return "0"
    outside = f"AND category NOT IN ({', '.join(map(_sql_literal, levels))}) " if levels else ""
    return f"COUNT(DISTINCT CASE WHEN NOT is_refund {outside}THEN category END)"


def _level_columns(levels: list[str], prefix: str, expression: str) -> str:
    if not levels:
        return f"NULL AS {prefix}none_"  # keeps the SELECT list valid; dropped afterwards
    return ",\n        ".join(
        expression.format(level=_sql_literal(level)) + f' AS "{prefix}{slug(level)}"' for level in levels
    )


COUNT_COLUMN = {
    "transactions": "n_transactions",
    "calls": "n_calls",
    "surveys": "n_surveys",
    "marketing_contacts": "n_marketing_contacts",
}
QUERY_NEEDS = {
    "transactions": ("as_of_end", "start_12m", "start_90d", "start_180d"),
    "calls": ("as_of_end", "start_12m"),
    "surveys": ("as_of_end",),
    "marketing": ("as_of_end",),
}


def aggregate_table(
    engine: SqlEngine,
    table: str,
    tables: dict[str, str],
    settings: FeatureSettings,
    levels: dict[str, list[str]],
    index: pd.Index,
    other_categories: bool = True,
) -> tuple[pd.DataFrame, int]:
    """Run the aggregation query of one event table and align it to the customers of `index`.

    Returns the aggregate (one row per customer of `index`, null where the customer has no such
    events) and the number of events no crosswalk record claims (the query's customer_id NULL row).
    Raises when the query yields a customer_id that is not in `index`. `other_categories`: whether
    purchases have categories beyond `levels["category"]` (see `find_levels`).
    """
    params = query_params(settings.reference_date)
    query = QUERY_OF_TABLE[table]
    generated = {
        "category_columns": _level_columns(
            levels["category"],
            "category_spend_",
            "COALESCE(SUM(CASE WHEN NOT is_refund AND category = {level} THEN amount END), 0)",
        ),
        "interest_columns": _level_columns(
            levels["interest"],
            "interest_",
            "MAX(CASE WHEN list_contains(interest_list, {level}) THEN 1 ELSE 0 END)",
        ),
        "other_category_breadth": _other_category_breadth(levels["category"], other_categories),
    }
    query_params_ = {name: params[name] for name in QUERY_NEEDS[query]}
    if query == "calls":
        query_params_["repeat_days"] = settings.repeat_contact_days
    frame = engine.run(STEP, query, tables={**tables, **generated}, **query_params_)
    frame.set_index("customer_id", inplace=True)
    count = COUNT_COLUMN[table]
    orphan = frame.index.isna()
    unmatched = int(frame.loc[orphan, count].sum())
    placeholders = [c for c in frame.columns if c.endswith("none_")]
    if placeholders:
        frame.drop(columns=placeholders, inplace=True)
    aligned = frame.reindex(index)
    n_claimed = len(frame) - int(orphan.sum())
    if int(aligned[count].notna().sum()) != n_claimed:
        stray = frame.index[~orphan].difference(index)
        raise ValueError(f"{table}: customer_id values not in golden, e.g. {list(stray[:5])}")
    return aligned, unmatched


def _days_between(later: pd.Timestamp, earlier: pd.Series) -> pd.Series:
    return (later - earlier).dt.days.astype(float)


def _ratio(numerator: pd.Series, denominator: pd.Series) -> pd.Series:
    """numerator / denominator, null where the denominator is 0 or null."""
    denominator = denominator.astype("float64")
    return (numerator.astype("float64") / denominator.where(denominator > 0)).astype("float64")


def rfm_scores(frame: pd.DataFrame) -> pd.DataFrame:
    """Quintile scores 1-5 among buyers (ties broken by order) and classic segment names."""
    buyers = frame["n_purchases"] > 0

    def quintile(values: pd.Series, ascending: bool) -> pd.Series:
        ranks = values[buyers].rank(method="first", ascending=ascending, pct=True)
        return np.ceil(ranks * 5).clip(1, 5).astype("Int64").reindex(frame.index)

    r = quintile(-frame["recency_days"].astype(float), True)
    f = quintile(frame["n_purchases"].astype(float), True)
    m = quintile(frame["monetary_total"].astype(float), True)
    fm = np.floor((f.astype("Float64") + m.astype("Float64")) / 2 + 0.5).astype("Int64")
    segment = pd.Series(NO_PURCHASE, index=frame.index, dtype=object)
    for r_scores, fm_scores, name in RFM_SEGMENTS:
        segment[(r.isin(r_scores) & fm.isin(fm_scores)).fillna(False).astype(bool)] = name
    position = ((r - 1) * 25 + (f - 1) * 5 + (m - 1)).fillna(len(RFM_CODES)).to_numpy(dtype=np.int64)
    code = pd.Series(RFM_CODES_OR_BLANK[position], index=frame.index)
    return pd.DataFrame(
        {"rfm_r_score": r, "rfm_f_score": f, "rfm_m_score": m, "rfm_score": code, "rfm_segment": segment},
        index=frame.index,
    )


def value_tiers(values: pd.Series, buyers: pd.Series, tiers: dict[str, float]) -> tuple[pd.Series, dict]:
    """high / middle / low by quantiles of `values` (CLV, or 12-month net spend when CLV could not
    be fitted) among buyers; non-buyers are low."""
    base = values[buyers]
    high = float(base.quantile(tiers["high"])) if len(base) else np.inf
    middle = float(base.quantile(tiers["middle"])) if len(base) else np.inf
    tier = np.where(buyers & (values >= high), 0, np.where(buyers & (values >= middle), 1, 2))
    return pd.Series(TIERS[tier], index=values.index), {"high_min": high, "middle_min": middle}


def _entropy(frame: pd.DataFrame, share_columns: list[str]) -> pd.Series:
    """Shannon entropy (natural log) over the share columns; null where every share is null."""
    entropy = np.zeros(len(frame))
    any_share = np.zeros(len(frame), dtype=bool)
    for column in share_columns:
        values = frame[column].to_numpy(float)
        any_share |= ~np.isnan(values)
        with np.errstate(divide="ignore", invalid="ignore"):
            entropy += np.where(values > 0, -values * np.log(values), 0.0)
    return pd.Series(np.where(any_share, entropy, np.nan), index=frame.index)


def _label(values: pd.Series, missing: str = "unknown") -> pd.Series:
    """Values as stripped text, `missing` for null or blank (cleaned once per distinct value)."""
    codes, uniques = pd.factorize(values, use_na_sentinel=True)
    cleaned = np.array([str(value).strip() or missing for value in uniques] + [missing], dtype=object)
    return pd.Series(cleaned[codes], index=values.index)  # code -1 (null) picks the trailing `missing`


def derive_value_behaviour(
    txn: pd.DataFrame, reference_date: pd.Timestamp, category_levels: list[str]
) -> pd.DataFrame:
    """Per-customer value and behaviour features from the transactions aggregate."""
    out = pd.DataFrame(index=txn.index)
    counts = ["n_purchases", "n_refunds", "items_total", "purchases_last_90d", "purchases_prev_90d"]
    for column in counts:
        out[column] = txn[column].fillna(0).astype("int64")
    for column in ("gross_amount", "refund_amount", "monetary_12m", "spend_last_90d", "spend_prev_90d"):
        out[column] = txn[column].fillna(0.0).astype(float)
    out["has_purchases"] = (out["n_purchases"] > 0).astype("int64")
    out["frequency_repeat"] = txn["frequency_repeat"].fillna(0).astype("int64")
    out["n_purchase_days"] = (out["frequency_repeat"] + out["has_purchases"]).astype("int64")
    out["first_purchase_at"] = pd.to_datetime(txn["first_purchase_at"])
    out["last_purchase_at"] = pd.to_datetime(txn["last_purchase_at"])
    out["recency_days"] = _days_between(reference_date, out["last_purchase_at"])
    out["tenure_days"] = _days_between(reference_date, out["first_purchase_at"])
    out["monetary_total"] = out["gross_amount"] - out["refund_amount"]
    out["refund_rate"] = _ratio(out["refund_amount"], out["gross_amount"]).fillna(0.0)
    out["avg_order_value"] = _ratio(out["gross_amount"], out["n_purchases"])
    out["items_per_order"] = _ratio(out["items_total"], out["n_purchases"])
    out["clv_recency_weeks"] = (_days_between(out["last_purchase_at"], out["first_purchase_at"]) / 7).fillna(
        0.0
    )
    out["clv_T_weeks"] = out["tenure_days"] / 7
    out["clv_monetary_repeat"] = txn["clv_monetary_repeat"].fillna(0.0).astype(float)
    out["mean_interpurchase_days"] = txn["mean_interpurchase_days"].astype(float)
    out["interpurchase_cv"] = _ratio(txn["sd_interpurchase_days"], txn["mean_interpurchase_days"])
    months = np.maximum(out["tenure_days"].astype(float) / 30.4375, 1.0)
    out["purchases_per_month"] = (out["n_purchases"] / months).fillna(0.0)
    shares = [
        "weekend_share",
        "mean_purchase_hour",
        "morning_share",
        "evening_share",
        *(f"season_share_{s}" for s in ("spring", "summer", "autumn", "winter")),
        *(f"channel_share_{c}" for c in CHANNELS),
    ]
    for column in shares:
        out[column] = txn[column].astype(float)
    channel_shares = out[[f"channel_share_{c}" for c in CHANNELS]]
    preferred = channel_shares.fillna(-1).to_numpy().argmax(axis=1)
    out["preferred_channel"] = np.array([*CHANNELS, "none"], dtype=object)[
        np.where(out["has_purchases"] > 0, preferred, len(CHANNELS))
    ]
    out["online_share"] = channel_shares[[f"channel_share_{c}" for c in ONLINE_CHANNELS]].sum(
        axis=1, min_count=1
    )
    gross = out["gross_amount"].where(out["gross_amount"] > 0)
    share_names = [f"category_share_{slug(level)}" for level in category_levels]
    for level, name in zip(category_levels, share_names, strict=True):
        out[name] = txn[f"category_spend_{slug(level)}"].astype(float) / gross
    named = np.zeros(len(out))
    for name in share_names:
        named += out[name].fillna(0.0).to_numpy()
    # Below one part in 10^9 the remainder is float noise of the sum (every category a level), which
    # standardizing would blow up to order 1 and whose value depends on the engine's summation order.
    other = 1 - named
    out["category_share_other"] = np.where(other < SHARE_NOISE, 0.0, other)
    out.loc[gross.isna(), "category_share_other"] = np.nan
    breadth = txn["other_category_breadth"].fillna(0).to_numpy(dtype="int64")
    for level in category_levels:  # amounts are positive: spend > 0 means a purchase in the category
        breadth += txn[f"category_spend_{slug(level)}"].fillna(0).to_numpy() > 0
    out["category_breadth"] = breadth
    out["category_entropy"] = _entropy(out, [*share_names, "category_share_other"])
    trend_total = out["purchases_last_90d"] + out["purchases_prev_90d"]
    out["purchase_trend"] = _ratio(out["purchases_last_90d"] - out["purchases_prev_90d"], trend_total).fillna(
        0.0
    )
    return out


def derive_service(calls: pd.DataFrame, surveys: pd.DataFrame, index: pd.Index) -> pd.DataFrame:
    """Per-customer service features from the calls and surveys aggregates (aligned to `index`)."""
    out = pd.DataFrame(index=index)
    for column in (
        "n_calls",
        "n_calls_12m",
        "n_inbound",
        "n_outbound",
        "n_complaints",
        "n_inquiries",
        "n_after_sales",
        "n_sales_calls",
        "n_repeat_contacts",
    ):
        out[column] = calls[column].fillna(0).astype("int64")
    out["has_calls"] = (out["n_calls"] > 0).astype("int64")
    out["contacts_per_month"] = out["n_calls_12m"] / 12.0
    out["inbound_share"] = _ratio(out["n_inbound"], out["n_calls"])
    out["complaint_rate"] = _ratio(out["n_complaints"], out["n_calls"])
    out["after_sales_share"] = _ratio(out["n_after_sales"], out["n_calls"])
    out["repeat_contact_rate"] = _ratio(out.pop("n_repeat_contacts"), out["n_calls"])
    for column in ("first_contact_resolution", "avg_handle_sec", "call_satisfaction_mean"):
        out[column] = calls[column].astype(float)
    out["first_call_at"] = pd.to_datetime(calls["first_call_at"])
    out["last_call_at"] = pd.to_datetime(calls["last_call_at"])
    out["n_surveys"] = surveys["n_surveys"].fillna(0).astype("int64")
    out["csat_mean"] = surveys["csat_mean"].astype(float)
    out["nps_mean"] = surveys["nps_mean"].astype(float)
    return out


def derive_marketing(marketing: pd.DataFrame, index: pd.Index) -> pd.DataFrame:
    """Per-customer marketing-response features from its aggregate (aligned to `index`)."""
    out = pd.DataFrame(index=index)
    for column in ("n_marketing_contacts", "n_campaigns", "n_responses", "n_conversions"):
        out[column] = marketing[column].fillna(0).astype("int64")
    out["response_rate"] = _ratio(out["n_responses"], out["n_marketing_contacts"])
    out["conversion_rate"] = _ratio(out["n_conversions"], out["n_marketing_contacts"])
    out["last_marketing_at"] = pd.to_datetime(marketing["last_marketing_at"])
    return out


def derive_profile(
    golden: pd.DataFrame, surveys: pd.DataFrame, reference_date: pd.Timestamp, interest_levels: list[str]
) -> pd.DataFrame:
    """Demographic, geographic, technographic, psychographic and firmographic features
    (`surveys` aligned to the index of `golden`)."""
    out = pd.DataFrame(index=golden.index)
    birth = pd.to_datetime(golden["birth_date"])
    years = reference_date.year - birth.dt.year
    before_birthday = (reference_date.month < birth.dt.month) | (
        (reference_date.month == birth.dt.month) & (reference_date.day < birth.dt.day)
    )
    out["age"] = (years - before_birthday.astype(int)).astype("Float64").where(birth.notna()).astype(float)
    band = pd.cut(out["age"], AGE_BINS, right=False, labels=AGE_LABELS)
    out["age_band"] = _label(band)
    out["gender"] = _label(golden["gender"])
    out["province"] = _label(golden["province"])
    out["city_tier"] = _label(golden["city_tier"])
    out["primary_device"] = _label(golden["primary_device"])
    installed = golden["app_installed"].astype("boolean")
    out["app_installed"] = np.array(["no", "yes", "unknown"], dtype=object)[
        np.where(installed.isna(), 2, installed.fillna(False).astype(int))
    ]
    out["sessions_per_month"] = golden["sessions_per_month"].astype(float)
    out["online_minutes_per_month"] = golden["online_minutes_per_month"].astype(float)
    out["loyalty_tier"] = _label(golden["loyalty_tier"], "none")
    out["lifestyle"] = _label(surveys["lifestyle"])
    out["stated_need"] = _label(surveys["stated_need"])
    for level in interest_levels:
        column = f"interest_{slug(level)}"
        out[column] = surveys[column].fillna(0).astype("int64") if column in surveys else 0
    codes, uniques = pd.factorize(golden["customer_type"], use_na_sentinel=True)
    is_business = [str(value).strip().lower() == "business" for value in uniques]
    business = np.array([*is_business, False])[codes]  # code -1 (null) picks the trailing False
    out["is_business"] = business.astype("int64")
    out["industry"] = _label(golden["industry"]).where(business, "none")
    employees = golden["employee_count"].astype("Float64")
    out["employee_count"] = employees.where(business).astype(float)
    size = _label(pd.cut(out["employee_count"], SIZE_BINS, right=False, labels=SIZE_LABELS))
    out["company_size_band"] = size.where(business, "none")
    out["annual_revenue_cny"] = golden["annual_revenue_cny"].astype(float).where(business)
    return out


def clv_summary(features: pd.DataFrame) -> pd.DataFrame:
    """Buyers' RFM summary in the pymc-marketing convention (weeks = days / 7)."""
    buyers = features[features["n_purchases"] > 0]
    return pd.DataFrame(
        {
            "customer_id": buyers.index.to_numpy(),
            "frequency": buyers["frequency_repeat"].to_numpy(float),
            "recency": buyers["clv_recency_weeks"].to_numpy(float),
            "T": buyers["clv_T_weeks"].to_numpy(float),
            "monetary_value": buyers["clv_monetary_repeat"].to_numpy(float),
        }
    )


CLV_INPUTS = ("frequency_repeat", "clv_recency_weeks", "clv_T_weeks", "clv_monetary_repeat")
CLV_DEFAULTS = {  # the values of customers without purchases, and of everyone when the fit is skipped
    "p_alive": np.nan,
    "expected_purchases_next_period": 0.0,
    "p_no_purchase_next_period": 1.0,
    "expected_purchases_12m": 0.0,
    "expected_spend_per_purchase": np.nan,
    "clv_12m": 0.0,
}


def lifetime_value(
    value: pd.DataFrame, settings: FeatureSettings
) -> tuple[clv.ClvResult | None, dict[str, pd.Series]]:
    """Fit the CLV models on buyers and predict for them; the lifetime-value columns for every row
    of `value` (which needs `n_purchases` and the CLV_INPUTS columns).

    The result is None, with the CLV_DEFAULTS for everyone, when fewer than
    `clv_min_repeat_customers` buyers have repeat purchases: the models cannot be estimated from so few.
    """
    summary = clv_summary(value)
    columns = {name: np.full(len(value), default) for name, default in CLV_DEFAULTS.items()}
    result = None
    if int((summary["frequency"] > 0).sum()) >= settings.clv_min_repeat_customers:
        result = clv.fit_and_predict(
            summary,
            model=settings.clv_model,
            period_days=settings.clv_period_days,
            horizon_months=settings.clv_horizon_months,
            sample_size=settings.clv_sample_size,
            seed=settings.seed,
        )
        predicted = result.predictions.rename(
            columns={"expected_purchases_horizon": "expected_purchases_12m"}
        )
        if not np.array_equal(predicted["customer_id"].to_numpy(), summary["customer_id"].to_numpy()):
            raise ValueError("CLV predictions are not in the order of the buyers' summary")
        buyer_rows = np.flatnonzero(value["n_purchases"].to_numpy() > 0)
        for name in CLV_DEFAULTS:
            columns[name][buyer_rows] = predicted[name].to_numpy(float)
    return result, {name: pd.Series(values, index=value.index) for name, values in columns.items()}


def _check_inputs(golden: pd.DataFrame, crosswalk: pd.DataFrame) -> None:
    duplicated = golden[golden["customer_id"].duplicated(keep=False)]
    if not duplicated.empty:
        raise ValueError(f"golden has duplicate customer_id, e.g.:\n{duplicated.head()}")
    missing = crosswalk[~crosswalk["customer_id"].isin(golden["customer_id"])]
    if not missing.empty:
        raise ValueError(f"crosswalk has customer_id values missing from golden, e.g.:\n{missing.head()}")


def build_features(
    engine: SqlEngine,
    golden: pd.DataFrame,
    crosswalk: pd.DataFrame,
    settings: FeatureSettings,
    tables: dict[str, str] | None = None,
) -> FeatureBuild:
    """All feature groups for every golden customer.

    `engine` must have the event tables registered (names in `tables`, default the canonical
    names) and the crosswalk registered as `crosswalk`; `crosswalk` needs only `customer_id`.
    Each event table is aggregated, derived and released before the next; the feature columns are
    collected and put into one frame at the end without copying them.
    """
    _check_inputs(golden, crosswalk)
    tables = tables or {**{name: name for name in EVENT_TABLES}, "crosswalk": "crosswalk"}
    clock = time.perf_counter()
    seconds: dict[str, float] = {}
    index = pd.Index(golden["customer_id"], name="customer_id")
    levels, other_categories = find_levels(engine, tables, settings)
    columns: dict[str, pd.Series] = {}
    unmatched: dict[str, int] = {}

    def lap(phase: str) -> None:
        seconds[phase] = seconds.get(phase, 0.0) + time.perf_counter() - clock - sum(seconds.values())

    txn, unmatched["transactions"] = aggregate_table(
        engine, "transactions", tables, settings, levels, index, other_categories
    )
    lap("sql")
    columns.update(derive_value_behaviour(txn, settings.reference_date, levels["category"]).items())
    del txn
    lap("derive")
    calls, unmatched["calls"] = aggregate_table(engine, "calls", tables, settings, levels, index)
    surveys, unmatched["surveys"] = aggregate_table(engine, "surveys", tables, settings, levels, index)
    marketing, unmatched["marketing_contacts"] = aggregate_table(
        engine, "marketing_contacts", tables, settings, levels, index
    )
    lap("sql")
    columns.update(derive_service(calls, surveys, index).items())
    columns.update(derive_marketing(marketing, index).items())
    del calls, marketing
    columns.update(
        derive_profile(
            golden.set_index("customer_id"), surveys, settings.reference_date, levels["interest"]
        ).items()
    )
    del surveys
    columns["complaints_per_purchase"] = _ratio(columns["n_complaints"], columns["n_purchases"])
    contacts = pd.DataFrame({"call": columns["last_call_at"], "marketing": columns["last_marketing_at"]})
    columns["last_contact_at"] = contacts.max(axis=1)
    lap("derive")
    value = pd.DataFrame(
        {name: columns[name] for name in ("n_purchases", "recency_days", "monetary_total", *CLV_INPUTS)},
        index=index,
        copy=False,
    )
    result, lifetime = lifetime_value(value, settings)
    columns.update(lifetime)
    lap("clv")
    columns.update(rfm_scores(value).items())
    buyers = columns["n_purchases"] > 0
    basis = "clv_12m" if result is not None else "monetary_12m"
    columns["value_tier"], thresholds = value_tiers(columns[basis], buyers, settings.value_tiers)
    thresholds["basis"] = basis
    dictionary = feature_dictionary(levels)
    columns["customer_id"] = pd.Series(index.to_numpy(), index=index)
    features = pd.DataFrame({name: columns.pop(name) for name in dictionary["name"]}, index=index, copy=False)
    features.index = pd.RangeIndex(len(features))
    lap("scores_and_order")
    return FeatureBuild(features, dictionary, result, unmatched, levels, thresholds, seconds)


def coverage(features: pd.DataFrame, dictionary: pd.DataFrame) -> pd.DataFrame:
    """Per factor group (`helpers.core.factors`, in order): share of customers with any non-missing,
    non-default value in the group."""
    indicator = {
        "value": features["n_purchases"] > 0,
        "lifetime_value": features["p_alive"].notna(),
        "behaviour": features["n_purchases"] > 0,
        "service": (features["n_calls"] > 0) | (features["n_surveys"] > 0),
        "marketing": features["n_marketing_contacts"] > 0,
        "demographic": features["age"].notna() | (features["gender"] != "unknown"),
        "geographic": (features["province"] != "unknown") | (features["city_tier"] != "unknown"),
        "technographic": features["primary_device"].ne("unknown") | features["sessions_per_month"].notna(),
        "psychographic": features["lifestyle"].ne("unknown")
        | features.filter(like="interest_").sum(axis=1).gt(0),
        "firmographic": features["is_business"] == 1,
    }
    rows = [
        {
            "group": group,
            "customers_covered": int(indicator[group].sum()),
            "share_covered": float(indicator[group].mean()),
            "n_features": int((dictionary["group"] == group).sum()),
        }
        for group in GROUP_NAMES
    ]
    return pd.DataFrame(rows)


def value_concentration(monetary: pd.Series, top_share: float = 0.2) -> float:
    """Share of positive net revenue brought by the top `top_share` of customers."""
    values = monetary.clip(lower=0).sort_values(ascending=False).to_numpy()
    total = values.sum()
    if total <= 0:
        return float("nan")
    top_n = int(np.ceil(top_share * len(values)))
    return float(values[:top_n].sum() / total)


AUDIT_STEP = "01_data_audit"
IDENTITY_STEP = "02_identity_merge"
GOLDEN_COLUMNS = [  # what derive_profile reads of the golden records (not names, phones, lineage)
    "customer_id",
    "gender",
    "birth_date",
    "province",
    "city_tier",
    "customer_type",
    "industry",
    "employee_count",
    "annual_revenue_cny",
    "primary_device",
    "app_installed",
    "sessions_per_month",
    "online_minutes_per_month",
    "loyalty_tier",
]


@dataclass
class StepOutputs:
    """What notebook 03 shows: the settings used, the build, the matrix and the recorded choices."""

    settings: FeatureSettings
    build: FeatureBuild
    matrix: pd.DataFrame
    matrix_record: dict[str, Any]
    coverage: pd.DataFrame
    seconds: dict[str, float]


def run_step(ctx: StepContext) -> StepOutputs:
    """Step 03: read the audit and identity artifacts, build and write `features`, `feature_dictionary`
    and `model_matrix` with the settings of config section `features`, and record the choices in the
    step manifest.

    The configured engine reads the event tables and the crosswalk straight from their Parquet files; pandas
    holds only the golden columns the profile features use and the crosswalk's customer ids.
    """
    from helpers.identity.events import register_events  # here: steps 04-06 import this module, not step 02's

    settings = FeatureSettings.from_config(ctx.settings.features, ctx.reference_date, ctx.seed)
    seconds: dict[str, float] = {}
    start = time.perf_counter()
    golden = ctx.read(IDENTITY_STEP, "golden", columns=GOLDEN_COLUMNS)
    crosswalk = ctx.read(IDENTITY_STEP, "crosswalk", columns=["customer_id"])
    engine = connect_configured(
        ctx.settings, memory_limit=settings.duckdb_memory_limit, threads=settings.duckdb_threads
    )
    try:
        for step, name in [
            *((AUDIT_STEP, f"clean_{table}") for table in EVENT_TABLES),
            (IDENTITY_STEP, "crosswalk"),
        ]:
            path = ctx.path(f"{name}.parquet", step)
            if not path.is_file():
                raise ArtifactMissingError(f"{path} is missing: run step {step} first.")
        # Events keyed by record or by an identifier both reach their customer through the crosswalk.
        register_events(engine, ctx, {**{table: table for table in EVENT_TABLES}, "crosswalk": "crosswalk"})
        seconds["read"] = time.perf_counter() - start
        build = build_features(engine, golden, crosswalk, settings)
    finally:
        engine.close()
    del golden, crosswalk
    seconds.update(build.seconds)
    clock = time.perf_counter()
    matrix, matrix_record = model_matrix(
        build.features, build.dictionary, settings.groups, settings.winsor_quantile
    )
    seconds["model_matrix"] = time.perf_counter() - clock
    covered = coverage(build.features, build.dictionary)
    clock = time.perf_counter()
    ctx.write("features", build.features)
    ctx.write("feature_dictionary", build.dictionary)
    ctx.write("model_matrix", matrix)
    seconds["write"] = time.perf_counter() - clock
    seconds["total"] = time.perf_counter() - start
    fitted = build.clv
    ctx.record(
        reference_date=settings.reference_date,
        n_customers=len(build.features),
        n_features=build.features.shape[1] - 1,
        unmatched_events=build.unmatched_events,
        levels=build.levels,
        value_tiers=build.tier_thresholds,
        clv=None
        if fitted is None
        else {
            "model": fitted.model,
            "transaction_params": fitted.transaction_params,
            "spend_params": fitted.spend_params,
            "n_fit_customers": fitted.n_fit_customers,
            "n_fit_repeat_customers": fitted.n_fit_repeat_customers,
            "fit_seconds": fitted.fit_seconds,
        },
        model_matrix=matrix_record,
        revenue_share_top20=value_concentration(build.features["monetary_total"]),
        seconds=seconds,
    )
    return StepOutputs(settings, build, matrix, matrix_record, covered, seconds)
