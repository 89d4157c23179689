"""The model-ready matrix of step 03: selected factor groups, transformed, standardized and weighted.

Each column is transformed by its catalogue treatment (`log`: winsorized at the top quantile, then
sign-log1p; `scale`: winsorized at both tails; `share` and `onehot` as they are), missing values
take the column median, and the column is standardized to mean 0 and sd 1. Standardizing (rather
than centring on the median and dividing by the IQR) keeps zero-heavy columns in proportion: a
column that is 0 for most customers has a tiny IQR, and dividing by it made a few complainers or
refunders hold half of all the variance. Each group's columns are then multiplied by
weight / sqrt(number of the group's columns), so a group's total variance is weight^2 whatever its
column count.

Lifecycle-dependent features (see `helpers.features.catalog`) form the pseudo-group `lifecycle`,
weighted by `features.groups.lifecycle`; absent or 0 (the default) leaves them out, so segments
describe who the customers are and the lifecycle stage stays step 05's job.

The matrix is written column by column into one float32 array (column-major, so every column is
contiguous): at 1M customers x 144 columns that is 0.58 GB, with no per-column Series copies.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pandas as pd

from helpers.core.factors import GROUP_NAMES, LIFECYCLE


def _numeric(values: pd.Series, treatment: str, winsor_quantile: float) -> np.ndarray:
    """One column as float64 with its treatment applied (NaN kept)."""
    x = values.to_numpy(dtype=np.float64, na_value=np.nan)
    if np.isnan(x).all():
        return x
    if treatment == "log":
        x = np.minimum(x, np.nanquantile(x, winsor_quantile))
        return np.sign(x) * np.log1p(np.abs(x))
    if treatment == "scale":
        low, high = np.nanquantile(x, [1 - winsor_quantile, winsor_quantile])
        return np.clip(x, low, high)
    return x


def _standardized(x: np.ndarray) -> np.ndarray | None:
    """Median-imputed, mean 0, sd 1 (float32); None for a constant (or all-missing) column."""
    missing = np.isnan(x)
    if missing.all():
        return None
    if missing.any():
        x = np.where(missing, np.median(x[~missing]), x)
    sd = x.std(ddof=1) if len(x) > 1 else 0.0
    if not sd > 0:
        return None
    return ((x - x.mean()) / sd).astype(np.float32)


def _columns(
    values: pd.Series, treatment: str, winsor_quantile: float
) -> Iterator[tuple[str, np.ndarray | None]]:
    """(column name, standardized float32 values) of one feature; one-hot gives one per level."""
    if treatment == "onehot":
        codes, levels = pd.factorize(values.astype(str), sort=True)
        for code, level in enumerate(levels):
            yield f"{values.name}={level}", _standardized((codes == code).astype(np.float64))
    else:
        yield str(values.name), _standardized(_numeric(values, treatment, winsor_quantile))


def model_matrix(
    features: pd.DataFrame, dictionary: pd.DataFrame, groups: dict[str, float], winsor_quantile: float
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """The weighted, standardized float32 matrix for clustering, and a record of the choices.

    `groups` maps factor groups (and the pseudo-group `lifecycle`) to weights; groups with weight
    0 or absent are left out. Constant columns are dropped. Returns customer_id + the columns.
    """
    unknown = set(groups) - {*GROUP_NAMES, LIFECYCLE}
    if unknown:
        raise ValueError(
            f"features.groups names unknown factor groups {sorted(unknown)}; "
            f"known: {[*GROUP_NAMES, LIFECYCLE]}"
        )
    treated = dictionary[(dictionary["treatment"] != "") & dictionary["name"].isin(features.columns)]
    selected = {
        group: treated[treated["lifecycle_dependent"]]
        if group == LIFECYCLE
        else treated[(treated["group"] == group) & ~treated["lifecycle_dependent"]]
        for group, weight in groups.items()
        if weight and weight > 0
    }
    width = sum(
        features[name].astype(str).nunique() if treatment == "onehot" else 1
        for specs in selected.values()
        for name, treatment in zip(specs["name"], specs["treatment"], strict=True)
    )
    out = np.empty((len(features), width), dtype=np.float32, order="F")
    names: list[str] = []
    record: dict[str, Any] = {
        "groups": {},
        "winsor_quantile": winsor_quantile,
        "scaling": "standardized (mean 0, sd 1), then x weight / sqrt(columns in the group)",
        "lifecycle_left_out": []
        if groups.get(LIFECYCLE, 0) > 0
        else sorted(set(treated.loc[treated["lifecycle_dependent"], "name"])),
    }
    for group, specs in selected.items():
        start, constant = len(names), []
        for name, treatment in zip(specs["name"], specs["treatment"], strict=True):
            for column, values in _columns(features[name], treatment, winsor_quantile):
                if values is None:
                    constant.append(column)
                    continue
                out[:, len(names)] = values
                names.append(column)
        if len(names) == start:
            continue
        scale = groups[group] / np.sqrt(len(names) - start)
        out[:, start : len(names)] *= np.float32(scale)
        record["groups"][group] = {
            "weight": groups[group],
            "n_columns": len(names) - start,
            "column_scale": float(scale),
            "columns": names[start:],
            "dropped_constant": constant,
        }
    matrix = pd.DataFrame(out[:, : len(names)], columns=names, index=features.index, copy=False)
    matrix.insert(0, "customer_id", features["customer_id"].to_numpy())
    return matrix, record


def standardized_columns(
    features: pd.DataFrame, dictionary: pd.DataFrame, names: list[str], winsor_quantile: float = 0.99
) -> pd.DataFrame:
    """The named features transformed as in the matrix and standardized, without group weights
    (float32, indexed by customer_id; constant columns skipped). For describing segments by
    features the matrix leaves out, e.g. the lifecycle-dependent ones."""
    treatments = dict(zip(dictionary["name"], dictionary["treatment"], strict=True))
    columns = {
        column: values
        for name in names
        if treatments.get(name)
        for column, values in _columns(features[name], treatments[name], winsor_quantile)
        if values is not None
    }
    index = pd.Index(features["customer_id"].to_numpy(), name="customer_id")
    return pd.DataFrame(columns, index=index)
