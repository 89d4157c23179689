"""A synthetic, skewed customer world shaped like the outputs of step 03, with planted segments.

Used by tests, benchmarks and hand-made run folders while no real feature table exists. The
planted truth is returned separately and must never reach the clustering logic.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from helpers.core.settings import EngineSettings
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
    crosswalk: pd.DataFrame | Path,
    source_records: pd.DataFrame | Path,
    persons: pd.DataFrame,
    engine: EngineSettings | None = None,
) -> pd.DataFrame:
    """Planted segment per merged customer of a demo world (evaluation only, never step logic).

    A customer's records map to persons through the truth's source_records (frames or Parquet files,
    `helpers.demo.truth.customer_person` on `engine`); the customer takes the segment of the person
    owning most of its records. Returns customer_id, segment, stage.
    """
    owner = customer_person(crosswalk, source_records, engine).rename("person_id").reset_index()
    return owner.merge(persons[["person_id", "segment", "stage"]], on="person_id")[
        ["customer_id", "segment", "stage"]
    ]


# ----------------------------------------------------------------------------- planted skewed matrix

SKEWED_SHARES: tuple[float, ...] = (0.30, 0.22, 0.15, 0.12, 0.09, 0.06, 0.04, 0.02)
# Per planted segment (order of SKEWED_SHARES): spend log-mean, orders mean, calls mean, complaint
# share, age, sessions per month, discount share, P(app), channel weights (app, web, store, phone),
# city tier weights (1, 2, 3).
SKEWED_SEGMENTS: tuple[tuple[Any, ...], ...] = (
    (5.4, 1.5, 0.3, 0.05, 48, 2, 0.15, 0.10, (0.05, 0.15, 0.75, 0.05), (0.1, 0.3, 0.6)),  # occasional
    (6.4, 6.0, 0.5, 0.05, 25, 40, 0.35, 0.95, (0.85, 0.10, 0.03, 0.02), (0.5, 0.4, 0.1)),  # young digital
    (7.4, 9.0, 1.5, 0.08, 38, 10, 0.20, 0.50, (0.20, 0.65, 0.10, 0.05), (0.3, 0.5, 0.2)),  # families
    (6.2, 4.0, 7.0, 0.55, 44, 6, 0.40, 0.30, (0.10, 0.20, 0.15, 0.55), (0.2, 0.4, 0.4)),  # complainers
    (5.0, 3.0, 0.5, 0.10, 66, 1, 0.70, 0.05, (0.02, 0.08, 0.60, 0.30), (0.05, 0.25, 0.7)),  # bargain seniors
    (9.0, 12.0, 4.0, 0.10, 46, 5, 0.10, 0.40, (0.05, 0.70, 0.05, 0.20), (0.7, 0.3, 0.0)),  # business bulk
    (7.0, 2.5, 2.0, 0.15, 31, 18, 0.05, 0.85, (0.55, 0.40, 0.03, 0.02), (0.85, 0.15, 0.0)),  # new urban
    (9.8, 30.0, 2.0, 0.02, 52, 20, 0.05, 0.95, (0.50, 0.30, 0.20, 0.00), (0.95, 0.05, 0.0)),  # VIP (2 %)
)
SKEWED_BUSINESS = {"monetary_total": "spend", "recency_days": "recency_days", "n_calls": "calls"}


@dataclass(frozen=True)
class PlantedMatrix:
    """A raw numeric customer matrix with planted segments (`truth`, evaluation only)."""

    matrix: pd.DataFrame  # numeric columns as a business would export them (heavy tails, counts, one-hots)
    truth: np.ndarray  # planted segment per row, 0 = the largest

    @property
    def business(self) -> pd.DataFrame:
        """The business columns (spend, recency, calls) under step 03's names."""
        return pd.DataFrame({name: self.matrix[column] for name, column in SKEWED_BUSINESS.items()})


def make_skewed_matrix(
    n_rows: int = 10_000,
    seed: int = 0,
    shares: tuple[float, ...] = SKEWED_SHARES,
    n_noise: int = 3,
    tail: float = 0.5,
) -> PlantedMatrix:
    """Customers in 8 planted segments of unequal shares (30 % down to 2 %): log-normal spend
    (spread `tail`), negative-binomial order and call counts, shares, age, one-hot channel and city
    tier, an app flag and `n_noise` columns unrelated to the segments (normal, log-normal, uniform).

    The columns are raw, untransformed; segments overlap (the best possible ARI is below 1).
    """
    rng = np.random.default_rng(seed)
    k = len(shares)
    profile = SKEWED_SEGMENTS[:k]
    p = np.asarray(shares, dtype=float)
    truth = rng.choice(k, size=n_rows, p=p / p.sum())

    def param(position: int) -> np.ndarray:
        return np.array([segment[position] for segment in profile], dtype=float)[truth]

    def counts(mean: np.ndarray, dispersion: float = 8.0) -> np.ndarray:
        return rng.negative_binomial(dispersion, dispersion / (dispersion + mean)).astype(float)

    def one_hot(position: int, levels: list[str], prefix: str) -> dict[str, np.ndarray]:
        weights = np.array([segment[position] for segment in profile], dtype=float)
        cumulative = np.cumsum(weights / weights.sum(axis=1, keepdims=True), axis=1)[truth]
        level = (rng.random(n_rows)[:, None] > cumulative).sum(axis=1)
        return {f"{prefix}={name}": (level == j).astype(float) for j, name in enumerate(levels)}

    orders = 1 + counts(param(1))
    spend = np.exp(param(0) + rng.normal(0, tail, n_rows)) * np.sqrt(orders)
    calls = counts(param(2), dispersion=4.0)
    complaint = rng.beta(1 + 20 * param(3), 20 * (1 - param(3)) + 1)
    columns: dict[str, np.ndarray] = {
        "spend": spend,
        "orders": orders,
        "recency_days": np.clip(np.exp(rng.normal(np.log(400 / orders), 0.8)), 1, 1500),
        "calls": calls,
        "complaint_rate": np.where(calls > 0, complaint, 0.0),
        "age": np.clip(rng.normal(param(4), 6), 16, 90),
        "sessions_per_month": np.exp(np.log(param(5)) + rng.normal(0, tail, n_rows)),
        "discount_share": rng.beta(1 + 10 * param(6), 10 * (1 - param(6)) + 1),
        "app_installed": (rng.random(n_rows) < param(7)).astype(float),
        **one_hot(8, ["app", "web", "store", "phone"], "channel"),
        **one_hot(9, ["1", "2", "3"], "city_tier"),
    }
    noise = {
        0: lambda: rng.normal(0, 1, n_rows),
        1: lambda: np.exp(rng.normal(3, 1, n_rows)),
        2: lambda: rng.uniform(0, 100, n_rows),
    }
    for column in range(n_noise):
        columns[f"noise_{column}"] = noise[column % 3]()
    return PlantedMatrix(pd.DataFrame(columns), truth)
