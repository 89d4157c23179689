"""A synthetic, skewed customer world shaped like the outputs of step 03, with planted segments.

Used by tests, benchmarks and hand-made run folders while no real feature table exists. The
planted truth is returned separately and must never reach the clustering logic.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from helpers.demo.truth import customer_person

# name: (share, monetary log-mean, purchases mean, recency days, aov log-mean, calls mean,
#        complaint share, age, sessions/month, business, response rate)
PLANTED: dict[str, tuple[float, ...]] = {
    "occasional_gifters": (0.28, 6.2, 2.0, 200, 6.7, 0.8, 0.05, 45, 3, 0, 0.05),
    "young_digital": (0.24, 7.0, 9.0, 40, 4.7, 1.0, 0.08, 24, 40, 0, 0.25),
    "family_planners": (0.18, 8.0, 10.0, 60, 5.7, 2.0, 0.08, 38, 12, 0, 0.15),
    "complaint_prone_price_seekers": (0.12, 6.8, 5.0, 90, 5.4, 8.0, 0.55, 42, 12, 0, 0.08),
    "lapsed_bargain_hunters": (0.08, 6.0, 3.0, 420, 4.5, 0.5, 0.10, 58, 2, 0, 0.03),
    "business_bulk": (0.06, 10.0, 12.0, 50, 7.9, 6.0, 0.10, 45, 6, 1, 0.10),
    "vip_loyal": (0.04, 10.2, 25.0, 15, 7.7, 3.0, 0.03, 50, 15, 0, 0.30),
}

GROUPS: dict[str, str] = {
    "monetary_total": "value",
    "avg_order_value": "value",
    "clv_12m": "value",
    "n_purchases": "behaviour",
    "recency_days": "behaviour",
    "refund_rate": "behaviour",
    "n_calls": "service",
    "complaint_rate": "service",
    "avg_handle_sec": "service",
    "response_rate": "marketing",
    "age": "demographic",
    "sessions_per_month": "technographic",
    "app_installed": "technographic",
    "is_business": "firmographic",
    "employee_count": "firmographic",
}
LOG_COLUMNS = (
    "monetary_total",
    "avg_order_value",
    "clv_12m",
    "n_purchases",
    "recency_days",
    "n_calls",
    "avg_handle_sec",
    "sessions_per_month",
    "employee_count",
)


@dataclass(frozen=True)
class SyntheticWorld:
    """Step-03-shaped tables plus the planted truth (`truth`: customer_id, segment)."""

    features: pd.DataFrame
    model_matrix: pd.DataFrame
    feature_dictionary: pd.DataFrame
    truth: pd.DataFrame


def make_world(
    n_customers: int = 20_000, seed: int = 0, prospect_share: float = 0.08, tail: float = 0.6
) -> SyntheticWorld:
    """Skewed customers in 7 planted segments (4 % to 30 %), heavy-tailed money and counts.

    `prospect_share` of customers never bought (segment `prospect`); `tail` is the log-normal
    spread of money and counts, the source of the heavy tails.
    """
    rng = np.random.default_rng(seed)
    names = list(PLANTED)
    shares = np.array([PLANTED[name][0] for name in names])
    n_prospects = round(n_customers * prospect_share)
    segment = rng.choice(len(names), size=n_customers - n_prospects, p=shares / shares.sum())
    params = np.array([PLANTED[name][1:] for name in names])[segment]
    n = len(segment)

    def lognormal(log_mean: np.ndarray, spread: float = tail) -> np.ndarray:
        return np.exp(log_mean + rng.normal(0, spread, len(log_mean)))

    purchases = 1 + rng.poisson(lognormal(np.log(params[:, 1])))
    aov = lognormal(params[:, 3])
    calls = rng.poisson(lognormal(np.log(params[:, 4] + 0.2)))
    complaints = rng.binomial(calls, params[:, 5])
    business = params[:, 8] > 0
    buyers = pd.DataFrame(
        {
            "n_purchases": purchases.astype(float),
            "avg_order_value": aov,
            "monetary_total": purchases * aov,
            "recency_days": np.clip(lognormal(np.log(params[:, 2])), 1, 1500),
            "refund_rate": rng.beta(1 + 10 * params[:, 5], 20),
            "n_calls": calls.astype(float),
            "complaint_rate": np.where(calls > 0, complaints / np.maximum(calls, 1), 0.0),
            "avg_handle_sec": lognormal(np.log(240 + 200 * params[:, 5]), 0.3) * (calls > 0),
            "response_rate": rng.beta(1 + 20 * params[:, 9], 20 * (1 - params[:, 9]) + 1),
            "age": np.clip(rng.normal(params[:, 6], 7), 16, 90),
            "sessions_per_month": lognormal(np.log(params[:, 7])),
            "app_installed": (rng.random(n) < np.where(params[:, 7] >= 10, 0.92, 0.08)).astype(float),
            "is_business": business.astype(float),
            "employee_count": np.where(business, lognormal(np.full(n, 4.0), 1.0), 0.0),
        }
    )
    buyers["clv_12m"] = buyers["monetary_total"] * np.exp(-buyers["recency_days"] / 365) * 0.8
    prospects = pd.DataFrame({column: np.zeros(n_prospects) for column in buyers.columns})
    prospects["age"] = np.clip(rng.normal(38, 12, n_prospects), 16, 90)
    prospects["recency_days"] = np.nan
    prospects["n_calls"] = rng.poisson(0.5, n_prospects).astype(float)
    prospects["sessions_per_month"] = lognormal(np.full(n_prospects, 1.0))[:n_prospects]
    features = pd.concat([buyers, prospects], ignore_index=True)
    truth_segment = [names[i] for i in segment] + ["prospect"] * n_prospects
    order = rng.permutation(n_customers)
    features = features.iloc[order].reset_index(drop=True)
    truth_segment = np.array(truth_segment)[order]
    features.insert(0, "customer_id", [f"C{i:07d}" for i in range(n_customers)])
    features["p_no_purchase_next_period"] = np.where(
        features["n_purchases"] > 0,
        1 - np.exp(-features["recency_days"].fillna(999) / 180) * 0.9,
        1.0,
    )
    tier_cut = features["clv_12m"].quantile([0.4, 0.8]).to_numpy()
    features["value_tier"] = np.select(
        [features["clv_12m"] >= tier_cut[1], features["clv_12m"] >= tier_cut[0]], ["high", "middle"], "low"
    )
    return SyntheticWorld(
        features=features,
        model_matrix=_model_matrix(features),
        feature_dictionary=pd.DataFrame(
            {
                "name": list(GROUPS),
                "group": list(GROUPS.values()),
                "definition": [f"synthetic {name}" for name in GROUPS],
                "unit": "",
                "transformation": ["log1p, z-score" if name in LOG_COLUMNS else "z-score" for name in GROUPS],
            }
        ),
        truth=pd.DataFrame({"customer_id": features["customer_id"], "segment": truth_segment}),
    )


def _model_matrix(features: pd.DataFrame) -> pd.DataFrame:
    """log1p the heavy-tailed columns, z-score everything (missing recency -> the maximum)."""
    matrix = pd.DataFrame({"customer_id": features["customer_id"]})
    for column in GROUPS:
        values = features[column].astype(float)
        if column == "recency_days":
            values = values.fillna(values.max())
        if column in LOG_COLUMNS:
            values = np.log1p(values)
        matrix[column] = (values - values.mean()) / values.std()
    return matrix


def planted_segments(
    crosswalk: pd.DataFrame, source_records: pd.DataFrame, persons: pd.DataFrame
) -> pd.DataFrame:
    """Planted segment per merged customer of a demo world (evaluation only, never step logic).

    A customer's records map to persons through the truth's source_records; the customer takes
    the segment of the person owning most of its records. Returns customer_id, segment, stage.
    """
    owner = customer_person(crosswalk, source_records).rename("person_id").reset_index()
    return owner.merge(persons[["person_id", "segment", "stage"]], on="person_id")[
        ["customer_id", "segment", "stage"]
    ]
