"""The model-ready matrix of step 03: selected factor groups, transformed, scaled and weighted."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from helpers.feature_catalog import GROUPS


def _robust(values: pd.Series) -> pd.Series:
    """(x - median) / IQR; falls back to 1.349 sd, then 1, when the IQR is 0; nulls become 0 (the median)."""
    q1, median, q3 = values.quantile([0.25, 0.5, 0.75])
    spread = q3 - q1
    if not spread > 0:
        spread = 1.349 * values.std()
    if not spread > 0:
        spread = 1.0
    return ((values - median) / spread).fillna(0.0)


def model_matrix(
    features: pd.DataFrame, dictionary: pd.DataFrame, groups: dict[str, float], winsor_quantile: float = 0.99
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """The weighted, transformed numeric matrix for clustering, and a record of the choices.

    Each selected group (weight > 0) contributes its in-matrix columns, each multiplied by
    weight / sqrt(number of the group's matrix columns), so a group's total influence follows its
    weight and not its column count.
    """
    unknown = set(groups) - set(GROUPS)
    if unknown:
        raise ValueError(f"features.groups names unknown factor groups {sorted(unknown)}; known: {GROUPS}")
    columns: dict[str, pd.Series] = {}
    record: dict[str, Any] = {"groups": {}, "winsor_quantile": winsor_quantile}
    lower_q = 1 - winsor_quantile
    for group, weight in groups.items():
        if not weight or weight <= 0:
            continue
        specs = dictionary[
            (dictionary["group"] == group)
            & dictionary["in_matrix"]
            & dictionary["name"].isin(features.columns)
        ]
        block: dict[str, pd.Series] = {}
        for name, treatment in zip(specs["name"], specs["treatment"], strict=True):
            values = features[name]
            if treatment == "onehot":
                dummies = pd.get_dummies(values.astype(str), prefix=name, prefix_sep="=", dtype=float)
                block.update({column: dummies[column] for column in dummies.columns})
            elif treatment == "share":
                block[name] = values.astype(float).fillna(0.0)
            elif treatment == "log":
                values = values.astype(float)
                values = values.clip(upper=values.quantile(winsor_quantile))
                block[name] = _robust(np.sign(values) * np.log1p(values.abs()))
            else:
                values = values.astype(float)
                block[name] = _robust(values.clip(values.quantile(lower_q), values.quantile(winsor_quantile)))
        constant = [name for name, series in block.items() if series.nunique() <= 1]
        block = {name: series for name, series in block.items() if name not in constant}
        if not block:
            continue
        scale = weight / np.sqrt(len(block))
        columns.update({name: series * scale for name, series in block.items()})
        record["groups"][group] = {
            "weight": weight,
            "n_columns": len(block),
            "column_scale": scale,
            "columns": list(block),
            "dropped_constant": constant,
        }
    matrix = pd.DataFrame(columns, index=features.index)
    matrix.insert(0, "customer_id", features["customer_id"].to_numpy())
    return matrix, record
