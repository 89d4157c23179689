"""The model-ready matrix of step 03: selected factor groups, transformed, standardized and weighted.

Each column is transformed by its catalogue treatment (`log`: winsorized at the top quantile, then
sign-log1p; `scale`: winsorized at both tails; `share` and `onehot` as they are), missing values
take the column median, and the column is standardized to mean 0 and sd 1. Standardizing (rather
than centring on the median and dividing by the IQR) keeps zero-heavy columns in proportion: a
column that is 0 for most customers has a tiny IQR, and dividing by it made a few complainers or
refunders hold half of all the variance. Each group's columns are then multiplied by
weight / sqrt(number of the group's columns), so a group's total variance is weight^2 whatever its
column count.

A customer without any value in a profile group (`PROFILE_GROUPS`: who the customer is, known from
identity records; e.g. a customer made from call-log rows alone has no age, gender or city) gets
that group's columns from its nearest customer that has the group, measured on the columns of the
groups it does have (one donor, hot-deck). Otherwise the imputed medians and `unknown` levels put all
such customers in one corner of the space, and they became a segment of their own. Event groups
(purchases, calls, marketing, surveys) keep their own treatment: no events is information there.

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

# Groups describing the person (from identity records), imputed from the nearest customer when absent.
PROFILE_GROUPS = ("demographic", "geographic", "technographic", "firmographic")
DONOR_SAMPLE = 5000  # donors searched for the nearest neighbour (a fixed random sample when more)
MIN_DONORS = 50  # fewer customers having the group: its medians and `unknown` levels stay
DONOR_CHUNK = 4096  # customers whose distances to the donors are computed at a time
MISSING_LEVELS = ("unknown", "nan", "<NA>", "None", "")


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


def _absent(values: pd.Series, treatment: str) -> np.ndarray:
    """Rows without a value: null, or an `unknown` level of a one-hot feature."""
    if treatment == "onehot":
        return (values.isna() | values.astype(str).isin(MISSING_LEVELS)).to_numpy()
    return values.isna().to_numpy()


def _nearest(anchor: np.ndarray, donors: np.ndarray) -> np.ndarray:
    """Index of the nearest donor row (Euclidean, float32) for each anchor row."""
    donors = np.ascontiguousarray(donors, dtype=np.float32)
    norms = (donors**2).sum(axis=1)
    out = np.empty(len(anchor), dtype=np.int64)
    for start in range(0, len(anchor), DONOR_CHUNK):
        block = np.ascontiguousarray(anchor[start : start + DONOR_CHUNK], dtype=np.float32)
        out[start : start + DONOR_CHUNK] = (norms[None, :] - 2.0 * block @ donors.T).argmin(axis=1)
    return out


def _impute_absent_groups(
    out: np.ndarray, spans: dict[str, tuple[int, int]], absent: dict[str, np.ndarray]
) -> dict[str, int]:
    """Copy each absent profile group's columns from the nearest customer having it (in place); the
    distance uses the columns of the groups the customer has. Returns customers imputed per group."""
    imputed: dict[str, int] = {}
    groups = [g for g in absent if absent[g].any() and (~absent[g]).sum() >= MIN_DONORS]
    if not groups:
        return imputed
    pattern = np.zeros(len(out), dtype=np.int64)
    for bit, group in enumerate(groups):
        pattern |= absent[group].astype(np.int64) << bit
    rng = np.random.default_rng(0)
    for code in np.unique(pattern[pattern > 0]):
        missing = [group for bit, group in enumerate(groups) if code >> bit & 1]
        rows = np.flatnonzero(pattern == code)
        donors = np.flatnonzero(~np.logical_or.reduce([absent[group] for group in missing]))
        if len(donors) < MIN_DONORS:
            continue
        if len(donors) > DONOR_SAMPLE:
            donors = np.sort(rng.choice(donors, DONOR_SAMPLE, replace=False))
        skip = [np.arange(*spans[group]) for group in missing]
        anchor = np.setdiff1d(np.arange(out.shape[1]), np.concatenate(skip))
        if len(anchor):
            donor = donors[_nearest(out[np.ix_(rows, anchor)], out[np.ix_(donors, anchor)])]
        else:
            donor = donors[np.zeros(len(rows), dtype=np.int64)]
        for group in missing:
            start, stop = spans[group]
            out[rows, start:stop] = out[donor, start:stop]
            imputed[group] = imputed.get(group, 0) + len(rows)
    return imputed


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
    spans: dict[str, tuple[int, int]] = {}
    absent: dict[str, np.ndarray] = {}
    for group, specs in selected.items():
        start, constant = len(names), []
        if group in PROFILE_GROUPS and len(specs):
            absent[group] = np.logical_and.reduce(
                [
                    _absent(features[name], treatment)
                    for name, treatment in zip(specs["name"], specs["treatment"], strict=True)
                ]
            )
        for name, treatment in zip(specs["name"], specs["treatment"], strict=True):
            for column, values in _columns(features[name], treatment, winsor_quantile):
                if values is None:
                    constant.append(column)
                    continue
                out[:, len(names)] = values
                names.append(column)
        if len(names) == start:
            absent.pop(group, None)
            continue
        spans[group] = (start, len(names))
        scale = groups[group] / np.sqrt(len(names) - start)
        out[:, start : len(names)] *= np.float32(scale)
        record["groups"][group] = {
            "weight": groups[group],
            "n_columns": len(names) - start,
            "column_scale": float(scale),
            "columns": names[start:],
            "dropped_constant": constant,
        }
    imputed = _impute_absent_groups(out[:, : len(names)], spans, absent)
    keep = np.ones(len(names), dtype=bool)
    for group, count in imputed.items():
        # Back to mean 0 and one scale for the group (a column the imputation made constant goes), so
        # the group's total variance stays weight^2.
        entry, columns = record["groups"][group], range(*spans[group])
        live = [column for column in columns if np.ptp(out[:, column]) > 0]
        scale = groups[group] / np.sqrt(len(live)) if live else 0.0
        for column in live:
            values = out[:, column].astype(np.float64)
            out[:, column] = ((values - values.mean()) / values.std(ddof=1) * scale).astype(np.float32)
        keep[[column for column in columns if column not in live]] = False
        entry["dropped_constant"] += [names[column] for column in columns if column not in live]
        entry |= {"n_columns": len(live), "column_scale": float(scale), "imputed_from_nearest": count}
        entry["columns"] = [names[column] for column in live]
    if not keep.all():
        out = np.asfortranarray(out[:, : len(names)][:, keep])
        names = [name for name, kept in zip(names, keep, strict=True) if kept]
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
