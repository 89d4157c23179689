"""The model-ready matrix (helpers.features.matrix) on the hand-built step-03 fixture."""

import math

import numpy as np
import pandas as pd
import pytest
from test_features import CROSSWALK, GOLDEN, SETTINGS, make_engine

from helpers.core.factors import LIFECYCLE
from helpers.features import build as features
from helpers.features import matrix as feature_matrix


@pytest.fixture(scope="module")
def build() -> features.FeatureBuild:
    return features.build_features(make_engine(), GOLDEN, CROSSWALK, SETTINGS)


def test_model_matrix_standardizes_weights_groups_and_leaves_lifecycle_out(build):
    matrix, record = feature_matrix.model_matrix(
        build.features, build.dictionary, SETTINGS.groups, SETTINGS.winsor_quantile
    )
    assert matrix["customer_id"].tolist() == build.features["customer_id"].tolist()
    numeric = matrix.drop(columns="customer_id")
    assert (numeric.dtypes == np.float32).all()
    assert np.isfinite(numeric.to_numpy()).all()
    assert set(record["groups"]) == {"value", "behaviour", "service", "demographic"}  # firmographic weight 0
    service = record["groups"]["service"]
    assert service["column_scale"] == pytest.approx(0.5 / math.sqrt(service["n_columns"]))
    assert "gender=F" in numeric.columns and "gender=unknown" in numeric.columns
    assert not any(column.startswith(("is_business", "industry")) for column in numeric.columns)
    # every column: mean 0, sd = its group's column scale; a group's total variance is weight^2
    for group, entry in record["groups"].items():
        block = numeric[entry["columns"]].astype(float)
        assert np.allclose(block.mean(), 0, atol=1e-5)
        assert np.allclose(block.std(), entry["column_scale"], rtol=1e-4)
        assert block.var().sum() == pytest.approx(SETTINGS.groups[group] ** 2, rel=1e-4)
    # lifecycle-dependent features stay out by default, rates and habits stay in
    lifecycle = set(build.dictionary.loc[build.dictionary["lifecycle_dependent"], "name"])
    assert {"recency_days", "tenure_days", "n_purchases", "monetary_total", "clv_12m"} <= lifecycle
    assert not lifecycle & set(numeric.columns)
    assert set(record["lifecycle_left_out"]) == lifecycle & set(
        build.dictionary.query("treatment != ''")["name"]
    )
    assert {"avg_order_value", "weekend_share"} <= set(numeric.columns)


def test_lifecycle_pseudo_group_brings_lifecycle_features_back(build):
    groups = {**SETTINGS.groups, LIFECYCLE: 0.5}
    matrix, record = feature_matrix.model_matrix(
        build.features, build.dictionary, groups, SETTINGS.winsor_quantile
    )
    assert {"recency_days", "tenure_days"} <= set(record["groups"][LIFECYCLE]["columns"])
    assert record["lifecycle_left_out"] == []
    # a lifecycle feature is in its pseudo-group only, never also in its factor group
    assert "recency_days" not in record["groups"]["value"]["columns"]
    assert matrix.columns.is_unique


def test_zero_heavy_column_does_not_dominate():
    """A column that is 0 for 95 % of customers gets the same variance as any other column."""
    rng = np.random.default_rng(0)
    n = 2000
    frame = pd.DataFrame(
        {
            "customer_id": [f"C{i}" for i in range(n)],
            "complaints_per_purchase": np.where(rng.random(n) < 0.95, 0.0, rng.exponential(2, n)),
            "avg_order_value": rng.lognormal(5, 1, n),
            "weekend_share": rng.random(n),
        }
    )
    dictionary = pd.DataFrame(
        {
            "name": ["complaints_per_purchase", "avg_order_value", "weekend_share"],
            "group": ["service", "value", "behaviour"],
            "treatment": ["log", "log", "share"],
            "lifecycle_dependent": False,
        }
    )
    matrix, _ = feature_matrix.model_matrix(
        frame, dictionary, {"value": 1, "service": 1, "behaviour": 1}, SETTINGS.winsor_quantile
    )
    variance = matrix.drop(columns="customer_id").astype(float).var()
    assert np.allclose(variance, 1.0, rtol=1e-4)


def test_unknown_group_is_rejected(build):
    with pytest.raises(ValueError, match="unknown factor groups"):
        feature_matrix.model_matrix(build.features, build.dictionary, {"valu": 1.0}, SETTINGS.winsor_quantile)
