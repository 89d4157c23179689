"""The model-ready matrix (helpers.feature_matrix) on the hand-built step-03 fixture."""

import math

import numpy as np
import pytest
from test_features import CROSSWALK, GOLDEN, SETTINGS, make_engine

from helpers import feature_matrix, features


@pytest.fixture(scope="module")
def build() -> features.FeatureBuild:
    return features.build_features(make_engine(), GOLDEN, CROSSWALK, SETTINGS)


def test_model_matrix_weights_groups_and_scales(build):
    matrix, record = feature_matrix.model_matrix(build.features, build.dictionary, SETTINGS.groups)
    assert matrix["customer_id"].tolist() == build.features["customer_id"].tolist()
    numeric = matrix.drop(columns="customer_id")
    assert np.isfinite(numeric.to_numpy()).all()
    assert set(record["groups"]) == {"value", "behaviour", "service", "demographic"}  # firmographic weight 0
    service = record["groups"]["service"]
    assert service["column_scale"] == pytest.approx(0.5 / math.sqrt(service["n_columns"]))
    assert "gender=F" in numeric.columns and "gender=unknown" in numeric.columns
    assert not any(column.startswith(("is_business", "industry")) for column in numeric.columns)
    # Robust scaling centres a scaled column on its median (the median customer sits at 0).
    value_scale = record["groups"]["value"]["column_scale"]
    assert np.median(numeric["monetary_total"] / value_scale) == pytest.approx(0.0)
    assert (numeric.nunique() > 1).all()  # constant columns are dropped


def test_unknown_group_is_rejected(build):
    with pytest.raises(ValueError, match="unknown factor groups"):
        feature_matrix.model_matrix(build.features, build.dictionary, {"valu": 1.0})
