"""Synthetic inputs of step 06 (golden, features, segments, lifecycle) for tests and benchmarks.

Only the columns step 06 reads, with plausible values: five segments of different value and
satisfaction, stages with matching churn risk. Not a demo world: nothing here is planted truth.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd

from helpers.core.config import DEFAULT_CONFIG
from helpers.strategy.plan import STAGES

SEGMENT_NAMES = ["High-value loyal", "Growing regulars", "Price seekers", "Complaint-prone", "New prospects"]
# Per segment: median 12-month CLV (CNY), satisfaction, stage probabilities (STAGES order).
_CLV = np.array([9000.0, 2500.0, 600.0, 1200.0, 150.0])
_CSAT = np.array([4.5, 4.0, 3.6, 2.6, 3.8])
_STAGE_P = np.array(
    [
        [0.00, 0.00, 0.05, 0.30, 0.55, 0.08, 0.02],
        [0.00, 0.05, 0.20, 0.55, 0.10, 0.07, 0.03],
        [0.05, 0.10, 0.15, 0.35, 0.05, 0.15, 0.15],
        [0.00, 0.05, 0.05, 0.30, 0.00, 0.40, 0.20],
        [0.45, 0.35, 0.15, 0.05, 0.00, 0.00, 0.00],
    ]
)
_RISK = {"contact": 0.5, "acquisition": 0.4, "conversion": 0.3, "retention": 0.2, "loyalty": 0.08,
         "at_risk": 0.7, "churned": 0.93}  # fmt: skip
_SURNAMES = list("王李张刘陈杨黄赵吴周")
_GIVEN = list("伟芳娜秀英敏静丽强磊军洋勇艳杰娟涛明超")


def synthetic_inputs(n_customers: int, seed: int = 0) -> dict[str, pd.DataFrame]:
    """Frames `golden`, `features`, `segments`, `lifecycle` for `n_customers` customers."""
    rng = np.random.default_rng(seed)
    ids = pd.Series([f"C{i:09d}" for i in range(n_customers)])
    segment = rng.choice(len(SEGMENT_NAMES), n_customers, p=[0.15, 0.25, 0.25, 0.15, 0.20])
    cumulative = _STAGE_P[segment].cumsum(axis=1)
    stage_index = (rng.random(n_customers)[:, None] > cumulative).sum(axis=1).clip(max=len(STAGES) - 1)
    stage = np.array(STAGES)[stage_index]
    risk = np.clip(pd.Series(stage).map(_RISK).to_numpy() + rng.normal(0, 0.08, n_customers), 0.0, 1.0)
    clv = _CLV[segment] * rng.lognormal(0.0, 0.6, n_customers) * (1.0 - 0.7 * risk)
    tiers = np.where(
        clv >= np.quantile(clv, 0.8), "high", np.where(clv >= np.quantile(clv, 0.4), "middle", "low")
    )
    contacts = rng.poisson(6, n_customers)
    calls = rng.poisson(4, n_customers)
    nps = np.clip(_CSAT[segment] * 2 + rng.normal(0, 1.5, n_customers), 0, 10)
    features = pd.DataFrame(
        {
            "customer_id": ids,
            "recency_days": rng.gamma(2.0, 40.0, n_customers) * (1 + 3 * risk),
            "n_purchases": rng.poisson(_CLV[segment] / 500 + 1),
            "tenure_days": rng.uniform(30, 1500, n_customers),
            "monetary_12m": clv * rng.uniform(0.6, 1.2, n_customers),
            "avg_order_value": rng.gamma(3.0, 100.0, n_customers),
            "clv_12m": np.where(stage == "contact", 0.0, clv),  # prospects have not bought yet
            "value_tier": tiers,
            "n_marketing_contacts": contacts,
            "response_rate": np.where(contacts > 0, rng.beta(2, 8, n_customers), np.nan),
            "conversion_rate": np.where(contacts > 0, rng.beta(1, 20, n_customers), np.nan),
            "n_calls": calls,
            "contacts_per_month": calls / 12,
            "n_complaints": rng.binomial(calls, np.where(segment == 3, 0.35, 0.05)),
            "complaint_rate": np.nan,
            "avg_handle_sec": np.where(calls > 0, rng.gamma(4.0, 60.0, n_customers), np.nan),
            "csat_mean": np.where(
                rng.random(n_customers) < 0.6, np.clip(rng.normal(_CSAT[segment], 0.5), 1, 5), np.nan
            ),
            "nps_mean": np.where(rng.random(n_customers) < 0.4, nps.round(), np.nan),
            "purchases_last_90d": rng.poisson(np.where(risk > 0.6, 0.1, 1.5)),
            "purchases_prev_90d": rng.poisson(1.2, n_customers),
        }
    )
    features["complaint_rate"] = features["n_complaints"] / features["n_calls"].where(features["n_calls"] > 0)
    surname = np.array(_SURNAMES)[rng.integers(0, len(_SURNAMES), n_customers)]
    given = np.array(_GIVEN)[rng.integers(0, len(_GIVEN), (n_customers, 2))]
    golden = pd.DataFrame(
        {
            "customer_id": ids,
            "full_name": np.char.add(np.char.add(surname, given[:, 0]), given[:, 1]),
            "mobile": [f"+861{d:010d}" for d in rng.integers(3_000_000_000, 9_999_999_999, n_customers)],
            "email": "user" + ids.str[1:] + "@example.cn",
            "city": np.array(["北京", "上海", "成都", "武汉"])[rng.integers(0, 4, n_customers)],
        }
    )
    segments = pd.DataFrame(
        {
            "customer_id": ids,
            "segment_id": segment,
            "segment_name": np.array(SEGMENT_NAMES)[segment],
            "distance": rng.uniform(0, 2, n_customers),
            "membership_probability": rng.uniform(0.5, 1, n_customers),
        }
    )
    lifecycle = pd.DataFrame(
        {"customer_id": ids, "stage": stage, "stage_rule": "synthetic", "churn_risk": risk}
    )
    return {"golden": golden, "features": features, "segments": segments, "lifecycle": lifecycle}


def write_synthetic_run(run_dir: Path, n_customers: int, seed: int = 0) -> Path:
    """A run folder with a copy of the demo config and synthetic 02-05 artifacts."""
    frames = synthetic_inputs(n_customers, seed)
    run_dir.mkdir(parents=True, exist_ok=True)
    shutil.copy(DEFAULT_CONFIG, run_dir / "config.yml")
    places = {"golden": "02_identity_merge", "features": "03_features", "segments": "04_clustering",
              "lifecycle": "05_lifecycle"}  # fmt: skip
    for name, frame in frames.items():
        (run_dir / places[name]).mkdir(exist_ok=True)
        frame.to_parquet(run_dir / places[name] / f"{name}.parquet", index=False)
    return run_dir
