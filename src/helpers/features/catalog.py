"""The feature catalogue of step 03: one documented entry per feature column, in the factor groups of
`helpers.core.factors`, and the feature dictionary built from them (what notebook 03 shows and the
run folder keeps).

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

CHANNELS = ("store", "online", "app", "phone")
NO_PURCHASE = "No purchase"
VALUE_TIERS = ("high", "middle", "low")  # value_tier levels, best first


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


ZERO = "0 when the customer has no such events"
UNDEFINED = "null when undefined (no events to average over); matrix: median"
UNKNOWN = "'unknown' when the source has no value"

STATIC_FEATURES: tuple[Feature, ...] = (
    # value
    Feature(
        "has_purchases",
        "value",
        "0/1",
        "share",
        "never missing",
        "1 when the customer made a purchase",
        lifecycle=True,
    ),
    Feature(
        "n_purchases",
        "value",
        "count",
        "log",
        ZERO,
        "Purchase transactions (refunds excluded)",
        lifecycle=True,
    ),
    Feature("n_refunds", "value", "count", "", ZERO, "Refund transactions"),
    Feature(
        "frequency_repeat", "value", "count", "", ZERO, "Distinct purchase days minus one (repeat purchases)"
    ),
    Feature(
        "recency_days",
        "value",
        "days",
        "scale",
        UNDEFINED,
        "Reference date minus last purchase day",
        lifecycle=True,
    ),
    Feature(
        "tenure_days",
        "value",
        "days",
        "scale",
        UNDEFINED,
        "Reference date minus first purchase day",
        lifecycle=True,
    ),
    Feature("first_purchase_at", "value", "date", "", "null without purchases", "First purchase day"),
    Feature("last_purchase_at", "value", "date", "", "null without purchases", "Last purchase day"),
    Feature("gross_amount", "value", "CNY", "", ZERO, "Sum of purchase amounts"),
    Feature("refund_amount", "value", "CNY", "", ZERO, "Sum of refund amounts"),
    Feature(
        "refund_rate", "value", "ratio", "share", "0 without purchases", "Refund amount / purchase amount"
    ),
    Feature(
        "monetary_total",
        "value",
        "CNY",
        "log",
        ZERO,
        "Net spend: purchases minus refunds, all time",
        lifecycle=True,
    ),
    Feature("monetary_12m", "value", "CNY", "", ZERO, "Net spend in the 365 days up to the reference date"),
    Feature("avg_order_value", "value", "CNY", "log", UNDEFINED, "Purchase amount / purchases"),
    Feature("items_total", "value", "items", "", ZERO, "Items bought"),
    Feature("items_per_order", "value", "items", "log", UNDEFINED, "Items / purchases"),
    Feature(
        "rfm_r_score", "value", "1-5", "", "null without purchases", "Recency quintile (5 = most recent)"
    ),
    Feature(
        "rfm_f_score", "value", "1-5", "", "null without purchases", "Purchase-count quintile (5 = most)"
    ),
    Feature("rfm_m_score", "value", "1-5", "", "null without purchases", "Net-spend quintile (5 = most)"),
    Feature("rfm_score", "value", "code", "", "'' without purchases", "R, F and M scores as a 3-digit code"),
    Feature(
        "rfm_segment",
        "value",
        "label",
        "",
        f"'{NO_PURCHASE}' without purchases",
        "Classic RFM segment from recency score and mean of frequency and monetary scores",
    ),
    Feature(
        "value_tier",
        "value",
        "label",
        "",
        "'low' without purchases",
        "high / middle / low by 12-month CLV quantiles among buyers (features.value_tiers)",
    ),
    Feature("loyalty_tier", "value", "label", "onehot", UNKNOWN, "Loyalty program tier"),
    # lifetime value
    Feature(
        "clv_recency_weeks",
        "lifetime_value",
        "weeks",
        "",
        "0 without purchases",
        "CLV model input: last minus first purchase day, in days/7",
    ),
    Feature(
        "clv_T_weeks",
        "lifetime_value",
        "weeks",
        "",
        "null without purchases",
        "CLV model input: reference date minus first purchase day, in days/7",
    ),
    Feature(
        "clv_monetary_repeat",
        "lifetime_value",
        "CNY",
        "",
        "0 without repeat purchases",
        "CLV model input: mean spend per repeat purchase day",
    ),
    Feature(
        "p_alive",
        "lifetime_value",
        "probability",
        "",
        "null without purchases",
        "Probability the customer is still active (MBG/NBD)",
    ),
    Feature(
        "expected_purchases_next_period",
        "lifetime_value",
        "purchases",
        "log",
        "0 without purchases",
        "Expected purchases in the next period (features.clv_period_days)",
        lifecycle=True,
    ),
    Feature(
        "p_no_purchase_next_period",
        "lifetime_value",
        "probability",
        "share",
        "1 without purchases",
        "Probability of no purchase in the next period",
        lifecycle=True,
    ),
    Feature(
        "expected_purchases_12m",
        "lifetime_value",
        "purchases",
        "",
        "0 without purchases",
        "Expected purchases over the CLV horizon",
    ),
    Feature(
        "expected_spend_per_purchase",
        "lifetime_value",
        "CNY",
        "",
        "null without purchases",
        "Gamma-Gamma expected spend per purchase",
    ),
    Feature(
        "clv_12m",
        "lifetime_value",
        "CNY",
        "log",
        "0 without purchases",
        "Expected spend over the CLV horizon (features.clv_horizon_months), undiscounted",
        lifecycle=True,
    ),
    # behaviour
    Feature("n_purchase_days", "behaviour", "count", "", ZERO, "Distinct purchase days"),
    Feature(
        "mean_interpurchase_days",
        "behaviour",
        "days",
        "log",
        "null with fewer than 2 purchase days",
        "Mean gap between consecutive purchase days",
    ),
    Feature(
        "interpurchase_cv",
        "behaviour",
        "ratio",
        "scale",
        "null with fewer than 3 purchase days",
        "Regularity: std / mean of gaps between purchase days (0 = clockwork)",
    ),
    Feature(
        "purchases_per_month",
        "behaviour",
        "purchases/month",
        "log",
        "0 without purchases",
        "Purchases / months since first purchase (at least one month)",
        lifecycle=True,
    ),
    Feature(
        "weekend_share", "behaviour", "share", "share", UNDEFINED, "Share of purchases on Saturday or Sunday"
    ),
    Feature("mean_purchase_hour", "behaviour", "hour", "scale", UNDEFINED, "Mean hour of day of purchases"),
    Feature("morning_share", "behaviour", "share", "share", UNDEFINED, "Share of purchases before noon"),
    Feature("evening_share", "behaviour", "share", "share", UNDEFINED, "Share of purchases from 18:00"),
    *(
        Feature(
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
        Feature(
            f"channel_share_{c}", "behaviour", "share", "share", UNDEFINED, f"Share of purchases through {c}"
        )
        for c in CHANNELS
    ),
    Feature(
        "preferred_channel",
        "behaviour",
        "label",
        "",
        "'none' without purchases",
        "Channel with most purchases",
    ),
    Feature(
        "category_breadth", "behaviour", "count", "scale", ZERO, "Distinct categories bought", lifecycle=True
    ),
    Feature(
        "category_entropy",
        "behaviour",
        "nats",
        "scale",
        UNDEFINED,
        "Shannon entropy of category spend shares (0 = one category)",
        lifecycle=True,
    ),
    Feature("purchases_last_90d", "behaviour", "count", "", ZERO, "Purchases in the last 90 days"),
    Feature(
        "purchases_prev_90d",
        "behaviour",
        "count",
        "",
        ZERO,
        "Purchases 91-180 days before the reference date",
    ),
    Feature("spend_last_90d", "behaviour", "CNY", "", ZERO, "Purchase amount in the last 90 days"),
    Feature(
        "spend_prev_90d",
        "behaviour",
        "CNY",
        "",
        ZERO,
        "Purchase amount 91-180 days before the reference date",
    ),
    Feature(
        "purchase_trend",
        "behaviour",
        "-1..1",
        "scale",
        "0 without purchases in the last 180 days",
        "(last 90d - previous 90d) / (last 90d + previous 90d), purchase counts",
        lifecycle=True,
    ),
    # service
    Feature(
        "has_calls", "service", "0/1", "share", "never missing", "1 when the customer called or was called"
    ),
    Feature("n_calls", "service", "count", "log", ZERO, "Calls, all time", lifecycle=True),
    Feature("n_calls_12m", "service", "count", "", ZERO, "Calls in the last 365 days"),
    Feature("contacts_per_month", "service", "calls/month", "", ZERO, "Calls in the last 365 days / 12"),
    Feature("n_inbound", "service", "count", "", ZERO, "Inbound calls"),
    Feature("n_outbound", "service", "count", "", ZERO, "Outbound calls"),
    Feature("inbound_share", "service", "share", "share", UNDEFINED, "Inbound / all calls"),
    Feature("n_complaints", "service", "count", "", ZERO, "Calls with reason complaint"),
    Feature("n_inquiries", "service", "count", "", ZERO, "Calls with reason inquiry"),
    Feature("n_after_sales", "service", "count", "", ZERO, "Calls with reason after_sales"),
    Feature("n_sales_calls", "service", "count", "", ZERO, "Calls with reason sales"),
    Feature("complaint_rate", "service", "share", "share", UNDEFINED, "Complaint calls / calls"),
    Feature("after_sales_share", "service", "share", "share", UNDEFINED, "After-sales calls / calls"),
    Feature(
        "complaints_per_purchase",
        "service",
        "ratio",
        "log",
        "0 without complaints; null without purchases",
        "Complaint calls / purchases",
    ),
    Feature(
        "first_contact_resolution",
        "service",
        "share",
        "share",
        UNDEFINED,
        "Share of calls with a known outcome resolved on that call",
    ),
    Feature("avg_handle_sec", "service", "seconds", "log", UNDEFINED, "Mean call duration"),
    Feature("call_satisfaction_mean", "service", "1-5", "scale", UNDEFINED, "Mean post-call rating"),
    Feature(
        "repeat_contact_rate",
        "service",
        "share",
        "share",
        UNDEFINED,
        "Calls within features.repeat_contact_days days of the previous call / calls",
    ),
    Feature("first_call_at", "service", "date", "", "null without calls", "First call day"),
    Feature("last_call_at", "service", "date", "", "null without calls", "Last call day"),
    Feature("n_surveys", "service", "count", "", ZERO, "Survey answers"),
    Feature("csat_mean", "service", "1-5", "scale", UNDEFINED, "Mean survey satisfaction"),
    Feature("nps_mean", "service", "0-10", "scale", UNDEFINED, "Mean likelihood to recommend"),
    # marketing
    Feature("n_marketing_contacts", "marketing", "count", "log", ZERO, "Marketing touches", lifecycle=True),
    Feature("n_campaigns", "marketing", "count", "", ZERO, "Distinct campaigns"),
    Feature("n_responses", "marketing", "count", "", ZERO, "Touches responded to"),
    Feature("n_conversions", "marketing", "count", "", ZERO, "Touches that converted"),
    Feature("response_rate", "marketing", "share", "share", UNDEFINED, "Responses / touches"),
    Feature("conversion_rate", "marketing", "share", "share", UNDEFINED, "Conversions / touches"),
    Feature("last_marketing_at", "marketing", "date", "", "null without touches", "Last marketing touch day"),
    Feature(
        "last_contact_at",
        "marketing",
        "date",
        "",
        "null without calls or touches",
        "Latest of last call and last marketing touch",
    ),
    # demographic
    Feature(
        "age",
        "demographic",
        "years",
        "scale",
        "null without birth date",
        "Age in full years at the reference date",
    ),
    Feature("age_band", "demographic", "label", "onehot", UNKNOWN, "Age band"),
    Feature("gender", "demographic", "label", "onehot", UNKNOWN, "M, F"),
    # geographic
    Feature("province", "geographic", "label", "", UNKNOWN, "Province (not in the matrix: high cardinality)"),
    Feature("city_tier", "geographic", "label", "onehot", UNKNOWN, "City tier"),
    # technographic
    Feature("primary_device", "technographic", "label", "onehot", UNKNOWN, "ios, android, pc or mac"),
    Feature("app_installed", "technographic", "label", "onehot", UNKNOWN, "yes / no / unknown"),
    Feature("sessions_per_month", "technographic", "sessions", "log", UNDEFINED, "Online sessions per month"),
    Feature(
        "online_minutes_per_month", "technographic", "minutes", "log", UNDEFINED, "Minutes online per month"
    ),
    Feature(
        "online_share",
        "technographic",
        "share",
        "share",
        UNDEFINED,
        "Share of purchases online or in the app",
    ),
    # psychographic
    Feature("lifestyle", "psychographic", "label", "onehot", UNKNOWN, "Latest stated lifestyle"),
    Feature(
        "stated_need",
        "psychographic",
        "label",
        "",
        UNKNOWN,
        "Latest stated need (free text, not in the matrix)",
    ),
    # firmographic
    Feature("is_business", "firmographic", "0/1", "share", "never missing", "1 for business customers"),
    Feature(
        "industry", "firmographic", "label", "onehot", "'none' for consumers, else " + UNKNOWN, "Industry"
    ),
    Feature(
        "employee_count", "firmographic", "employees", "", "null for consumers or unknown", "Company size"
    ),
    Feature(
        "company_size_band",
        "firmographic",
        "label",
        "onehot",
        "'none' for consumers, else " + UNKNOWN,
        "micro <10, small <50, medium <250, large",
    ),
    Feature(
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
    entries = [
        Feature("customer_id", "key", "id", "", "never missing", "Merged customer id (02_identity_merge)")
    ]
    entries += list(STATIC_FEATURES)
    for level in levels["category"]:
        entries.append(
            Feature(
                f"category_share_{slug(level)}",
                "behaviour",
                "share",
                "share",
                UNDEFINED,
                f"Share of purchase amount in category '{level}'",
            )
        )
    entries.append(
        Feature(
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
            Feature(
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
