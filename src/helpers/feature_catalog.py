"""The feature catalogue of step 03: factor groups, one documented entry per feature column,
and the feature dictionary built from them (what notebook 03 shows and the run folder keeps).

Lifecycle-dependent features (`lifecycle=True`) describe where a customer is in the lifecycle
rather than who the customer is: time since the first or last purchase, counts and sums that grow
with tenure, recent activity and trends, and the CLV model outputs built from them. Two customers
with the same habits differ in them only because one joined later or has lapsed. They stay in
the feature table (step 05 uses them for the lifecycle stage) but form their own pseudo-group
`lifecycle` in the model matrix, left out unless `features.groups.lifecycle` > 0, so segments
describe who the customers are (spend per order, category and channel mix, timing habits, service
style, satisfaction, demographics ...) and not how long they have been buying.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import pandas as pd

GROUPS = (
    "value",
    "lifetime_value",
    "behaviour",
    "service",
    "marketing",
    "demographic",
    "geographic",
    "technographic",
    "psychographic",
    "firmographic",
)
LIFECYCLE = "lifecycle"  # model-matrix pseudo-group of the lifecycle-dependent features
CHANNELS = ("store", "online", "app", "phone")
NO_PURCHASE = "No purchase"


@dataclass(frozen=True)
class Feature:
    """One feature-dictionary entry."""

    name: str
    group: str
    unit: str
    transformation: str  # model-matrix treatment: log | scale | share | onehot | "" (not in the matrix)
    missing: str  # missing-value policy
    definition: str
    lifecycle: bool = False  # lifecycle-dependent: in the matrix only with features.groups.lifecycle > 0


def _f(
    name: str,
    group: str,
    unit: str,
    transformation: str,
    missing: str,
    definition: str,
    lifecycle: bool = False,
) -> Feature:
    return Feature(name, group, unit, transformation, missing, definition, lifecycle)


ZERO = "0 when the customer has no such events"
UNDEFINED = "null when undefined (no events to average over); matrix: median"
UNKNOWN = "'unknown' when the source has no value"

STATIC_FEATURES: tuple[Feature, ...] = (
    # value
    _f(
        "has_purchases",
        "value",
        "0/1",
        "share",
        "never missing",
        "1 when the customer made a purchase",
        lifecycle=True,
    ),
    _f(
        "n_purchases",
        "value",
        "count",
        "log",
        ZERO,
        "Purchase transactions (refunds excluded)",
        lifecycle=True,
    ),
    _f("n_refunds", "value", "count", "", ZERO, "Refund transactions"),
    _f("frequency_repeat", "value", "count", "", ZERO, "Distinct purchase days minus one (repeat purchases)"),
    _f(
        "recency_days",
        "value",
        "days",
        "scale",
        UNDEFINED,
        "Reference date minus last purchase day",
        lifecycle=True,
    ),
    _f(
        "tenure_days",
        "value",
        "days",
        "scale",
        UNDEFINED,
        "Reference date minus first purchase day",
        lifecycle=True,
    ),
    _f("first_purchase_at", "value", "date", "", "null without purchases", "First purchase day"),
    _f("last_purchase_at", "value", "date", "", "null without purchases", "Last purchase day"),
    _f("gross_amount", "value", "CNY", "", ZERO, "Sum of purchase amounts"),
    _f("refund_amount", "value", "CNY", "", ZERO, "Sum of refund amounts"),
    _f("refund_rate", "value", "ratio", "share", "0 without purchases", "Refund amount / purchase amount"),
    _f(
        "monetary_total",
        "value",
        "CNY",
        "log",
        ZERO,
        "Net spend: purchases minus refunds, all time",
        lifecycle=True,
    ),
    _f("monetary_12m", "value", "CNY", "", ZERO, "Net spend in the 365 days up to the reference date"),
    _f("avg_order_value", "value", "CNY", "log", UNDEFINED, "Purchase amount / purchases"),
    _f("items_total", "value", "items", "", ZERO, "Items bought"),
    _f("items_per_order", "value", "items", "log", UNDEFINED, "Items / purchases"),
    _f("rfm_r_score", "value", "1-5", "", "null without purchases", "Recency quintile (5 = most recent)"),
    _f("rfm_f_score", "value", "1-5", "", "null without purchases", "Purchase-count quintile (5 = most)"),
    _f("rfm_m_score", "value", "1-5", "", "null without purchases", "Net-spend quintile (5 = most)"),
    _f("rfm_score", "value", "code", "", "'' without purchases", "R, F and M scores as a 3-digit code"),
    _f(
        "rfm_segment",
        "value",
        "label",
        "",
        f"'{NO_PURCHASE}' without purchases",
        "Classic RFM segment from recency score and mean of frequency and monetary scores",
    ),
    _f(
        "value_tier",
        "value",
        "label",
        "",
        "'low' without purchases",
        "high / middle / low by 12-month CLV quantiles among buyers (features.value_tiers)",
    ),
    _f("loyalty_tier", "value", "label", "onehot", UNKNOWN, "Loyalty program tier"),
    # lifetime value
    _f(
        "clv_recency_weeks",
        "lifetime_value",
        "weeks",
        "",
        "0 without purchases",
        "CLV model input: last minus first purchase day, in days/7",
    ),
    _f(
        "clv_T_weeks",
        "lifetime_value",
        "weeks",
        "",
        "null without purchases",
        "CLV model input: reference date minus first purchase day, in days/7",
    ),
    _f(
        "clv_monetary_repeat",
        "lifetime_value",
        "CNY",
        "",
        "0 without repeat purchases",
        "CLV model input: mean spend per repeat purchase day",
    ),
    _f(
        "p_alive",
        "lifetime_value",
        "probability",
        "",
        "null without purchases",
        "Probability the customer is still active (MBG/NBD)",
    ),
    _f(
        "expected_purchases_next_period",
        "lifetime_value",
        "purchases",
        "log",
        "0 without purchases",
        "Expected purchases in the next period (features.clv_period_days)",
        lifecycle=True,
    ),
    _f(
        "p_no_purchase_next_period",
        "lifetime_value",
        "probability",
        "share",
        "1 without purchases",
        "Probability of no purchase in the next period",
        lifecycle=True,
    ),
    _f(
        "expected_purchases_12m",
        "lifetime_value",
        "purchases",
        "",
        "0 without purchases",
        "Expected purchases over the CLV horizon",
    ),
    _f(
        "expected_spend_per_purchase",
        "lifetime_value",
        "CNY",
        "",
        "null without purchases",
        "Gamma-Gamma expected spend per purchase",
    ),
    _f(
        "clv_12m",
        "lifetime_value",
        "CNY",
        "log",
        "0 without purchases",
        "Expected spend over the CLV horizon (features.clv_horizon_months), undiscounted",
        lifecycle=True,
    ),
    # behaviour
    _f("n_purchase_days", "behaviour", "count", "", ZERO, "Distinct purchase days"),
    _f(
        "mean_interpurchase_days",
        "behaviour",
        "days",
        "log",
        "null with fewer than 2 purchase days",
        "Mean gap between consecutive purchase days",
    ),
    _f(
        "interpurchase_cv",
        "behaviour",
        "ratio",
        "scale",
        "null with fewer than 3 purchase days",
        "Regularity: std / mean of gaps between purchase days (0 = clockwork)",
    ),
    _f(
        "purchases_per_month",
        "behaviour",
        "purchases/month",
        "log",
        "0 without purchases",
        "Purchases / months since first purchase (at least one month)",
        lifecycle=True,
    ),
    _f("weekend_share", "behaviour", "share", "share", UNDEFINED, "Share of purchases on Saturday or Sunday"),
    _f("mean_purchase_hour", "behaviour", "hour", "scale", UNDEFINED, "Mean hour of day of purchases"),
    _f("morning_share", "behaviour", "share", "share", UNDEFINED, "Share of purchases before noon"),
    _f("evening_share", "behaviour", "share", "share", UNDEFINED, "Share of purchases from 18:00"),
    *(
        _f(
            f"season_share_{s}",
            "behaviour",
            "share",
            "share",
            UNDEFINED,
            f"Share of purchases in {s} (northern meteorological seasons)",
            lifecycle=True,
        )
        for s in ("spring", "summer", "autumn", "winter")
    ),
    *(
        _f(f"channel_share_{c}", "behaviour", "share", "share", UNDEFINED, f"Share of purchases through {c}")
        for c in CHANNELS
    ),
    _f(
        "preferred_channel",
        "behaviour",
        "label",
        "",
        "'none' without purchases",
        "Channel with most purchases",
    ),
    _f("category_breadth", "behaviour", "count", "scale", ZERO, "Distinct categories bought", lifecycle=True),
    _f(
        "category_entropy",
        "behaviour",
        "nats",
        "scale",
        UNDEFINED,
        "Shannon entropy of category spend shares (0 = one category)",
        lifecycle=True,
    ),
    _f("purchases_last_90d", "behaviour", "count", "", ZERO, "Purchases in the last 90 days"),
    _f(
        "purchases_prev_90d",
        "behaviour",
        "count",
        "",
        ZERO,
        "Purchases 91-180 days before the reference date",
    ),
    _f("spend_last_90d", "behaviour", "CNY", "", ZERO, "Purchase amount in the last 90 days"),
    _f(
        "spend_prev_90d",
        "behaviour",
        "CNY",
        "",
        ZERO,
        "Purchase amount 91-180 days before the reference date",
    ),
    _f(
        "purchase_trend",
        "behaviour",
        "-1..1",
        "scale",
        "0 without purchases in the last 180 days",
        "(last 90d - previous 90d) / (last 90d + previous 90d), purchase counts",
        lifecycle=True,
    ),
    # service
    _f("has_calls", "service", "0/1", "share", "never missing", "1 when the customer called or was called"),
    _f("n_calls", "service", "count", "log", ZERO, "Calls, all time", lifecycle=True),
    _f("n_calls_12m", "service", "count", "", ZERO, "Calls in the last 365 days"),
    _f("contacts_per_month", "service", "calls/month", "", ZERO, "Calls in the last 365 days / 12"),
    _f("n_inbound", "service", "count", "", ZERO, "Inbound calls"),
    _f("n_outbound", "service", "count", "", ZERO, "Outbound calls"),
    _f("inbound_share", "service", "share", "share", UNDEFINED, "Inbound / all calls"),
    _f("n_complaints", "service", "count", "", ZERO, "Calls with reason complaint"),
    _f("n_inquiries", "service", "count", "", ZERO, "Calls with reason inquiry"),
    _f("n_after_sales", "service", "count", "", ZERO, "Calls with reason after_sales"),
    _f("n_sales_calls", "service", "count", "", ZERO, "Calls with reason sales"),
    _f("complaint_rate", "service", "share", "share", UNDEFINED, "Complaint calls / calls"),
    _f("after_sales_share", "service", "share", "share", UNDEFINED, "After-sales calls / calls"),
    _f(
        "complaints_per_purchase",
        "service",
        "ratio",
        "log",
        "0 without complaints; null without purchases",
        "Complaint calls / purchases",
    ),
    _f(
        "first_contact_resolution",
        "service",
        "share",
        "share",
        UNDEFINED,
        "Share of calls with a known outcome resolved on that call",
    ),
    _f("avg_handle_sec", "service", "seconds", "log", UNDEFINED, "Mean call duration"),
    _f("call_satisfaction_mean", "service", "1-5", "scale", UNDEFINED, "Mean post-call rating"),
    _f(
        "repeat_contact_rate",
        "service",
        "share",
        "share",
        UNDEFINED,
        "Calls within features.repeat_contact_days days of the previous call / calls",
    ),
    _f("first_call_at", "service", "date", "", "null without calls", "First call day"),
    _f("last_call_at", "service", "date", "", "null without calls", "Last call day"),
    _f("n_surveys", "service", "count", "", ZERO, "Survey answers"),
    _f("csat_mean", "service", "1-5", "scale", UNDEFINED, "Mean survey satisfaction"),
    _f("nps_mean", "service", "0-10", "scale", UNDEFINED, "Mean likelihood to recommend"),
    # marketing
    _f("n_marketing_contacts", "marketing", "count", "log", ZERO, "Marketing touches", lifecycle=True),
    _f("n_campaigns", "marketing", "count", "", ZERO, "Distinct campaigns"),
    _f("n_responses", "marketing", "count", "", ZERO, "Touches responded to"),
    _f("n_conversions", "marketing", "count", "", ZERO, "Touches that converted"),
    _f("response_rate", "marketing", "share", "share", UNDEFINED, "Responses / touches"),
    _f("conversion_rate", "marketing", "share", "share", UNDEFINED, "Conversions / touches"),
    _f("last_marketing_at", "marketing", "date", "", "null without touches", "Last marketing touch day"),
    _f(
        "last_contact_at",
        "marketing",
        "date",
        "",
        "null without calls or touches",
        "Latest of last call and last marketing touch",
    ),
    # demographic
    _f(
        "age",
        "demographic",
        "years",
        "scale",
        "null without birth date",
        "Age in full years at the reference date",
    ),
    _f("age_band", "demographic", "label", "onehot", UNKNOWN, "Age band"),
    _f("gender", "demographic", "label", "onehot", UNKNOWN, "M, F"),
    # geographic
    _f("province", "geographic", "label", "", UNKNOWN, "Province (not in the matrix: high cardinality)"),
    _f("city_tier", "geographic", "label", "onehot", UNKNOWN, "City tier"),
    # technographic
    _f("primary_device", "technographic", "label", "onehot", UNKNOWN, "ios, android, pc or mac"),
    _f("app_installed", "technographic", "label", "onehot", UNKNOWN, "yes / no / unknown"),
    _f("sessions_per_month", "technographic", "sessions", "log", UNDEFINED, "Online sessions per month"),
    _f("online_minutes_per_month", "technographic", "minutes", "log", UNDEFINED, "Minutes online per month"),
    _f(
        "online_share",
        "technographic",
        "share",
        "share",
        UNDEFINED,
        "Share of purchases online or in the app",
    ),
    # psychographic
    _f("lifestyle", "psychographic", "label", "onehot", UNKNOWN, "Latest stated lifestyle"),
    _f(
        "stated_need",
        "psychographic",
        "label",
        "",
        UNKNOWN,
        "Latest stated need (free text, not in the matrix)",
    ),
    # firmographic
    _f("is_business", "firmographic", "0/1", "share", "never missing", "1 for business customers"),
    _f("industry", "firmographic", "label", "onehot", "'none' for consumers, else " + UNKNOWN, "Industry"),
    _f("employee_count", "firmographic", "employees", "", "null for consumers or unknown", "Company size"),
    _f(
        "company_size_band",
        "firmographic",
        "label",
        "onehot",
        "'none' for consumers, else " + UNKNOWN,
        "micro <10, small <50, medium <250, large",
    ),
    _f(
        "annual_revenue_cny", "firmographic", "CNY", "log", "null for consumers or unknown", "Company revenue"
    ),
)


def slug(text: str) -> str:
    """A column-name-safe form of a level (unicode letters kept)."""
    return re.sub(r"\W+", "_", str(text).strip().lower()).strip("_") or "blank"


def feature_dictionary(levels: dict[str, list[str]]) -> pd.DataFrame:
    """name, group, definition, unit, transformation and missing-value policy of every column, plus
    `treatment` (the model-matrix treatment, "" for none), `lifecycle_dependent` and `in_matrix`
    (in the model matrix with the default `features.groups`, i.e. treated and not lifecycle-dependent)."""
    entries = [_f("customer_id", "key", "id", "", "never missing", "Merged customer id (02_identity_merge)")]
    entries += list(STATIC_FEATURES)
    for level in levels["category"]:
        entries.append(
            _f(
                f"category_share_{slug(level)}",
                "behaviour",
                "share",
                "share",
                UNDEFINED,
                f"Share of purchase amount in category '{level}'",
            )
        )
    entries.append(
        _f(
            "category_share_other",
            "behaviour",
            "share",
            "share",
            UNDEFINED,
            "Share of purchase amount in categories beyond the most frequent ones",
        )
    )
    for level in levels["interest"]:
        entries.append(
            _f(
                f"interest_{slug(level)}",
                "psychographic",
                "0/1",
                "share",
                "0 without surveys",
                f"1 when a survey answer lists interest '{level}'",
            )
        )
    frame = pd.DataFrame([e.__dict__ for e in entries])
    frame["transformation"] = frame["transformation"].map(
        {
            "log": "winsorized at the top quantile, sign-log1p, standardized",
            "scale": "winsorized at both tail quantiles, standardized",
            "share": "standardized",
            "onehot": "one-hot, standardized",
            "": "not in the matrix",
        }
    )
    frame["treatment"] = [e.transformation for e in entries]
    frame["lifecycle_dependent"] = frame.pop("lifecycle")
    lifecycle = frame["lifecycle_dependent"] & (frame["treatment"] != "")
    frame.loc[lifecycle, "transformation"] += (
        " (lifecycle-dependent: only with features.groups.lifecycle > 0)"
    )
    frame["in_matrix"] = (frame["treatment"] != "") & ~frame["lifecycle_dependent"]
    return frame[
        [
            "name",
            "group",
            "definition",
            "unit",
            "transformation",
            "missing",
            "in_matrix",
            "treatment",
            "lifecycle_dependent",
        ]
    ]
