"""Step 04's comparison and selection on any numeric matrix: `compare_segmentations`.

The step itself works on step 03's model matrix (already transformed and scaled). An outside
matrix is raw: money with heavy tails, counts, shares, one-hot flags. `raw_space` makes it
comparable the way step 03 would: log1p on skewed non-negative columns, every column to sd 1,
two-valued columns (flags, one-hot levels) to sd `BINARY_WEIGHT` (a standardized rare flag would
otherwise jump several sd between 0 and 1 and split segments by itself), then the leading
principal components (`clustering.components`). Before that, `noise_columns` screens out the
columns that share no structure with any other column (step 03 chooses its columns by factor group;
an outside matrix has had no such choice, and a column of noise blurs every distance). Business
columns (value, churn risk, service load: `candidates.BUSINESS_AREAS`) are optional; without them
the business gate is not applied.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.decomposition import PCA

import helpers.clustering.candidates as cl

SKEW_LOG = 1.0  # non-negative columns more skewed than this are log1p-transformed
BINARY_WEIGHT = 0.5  # sd of a two-valued column after scaling (continuous columns: 1)
# A column whose largest absolute rank correlation with any other column is below this is noise:
# segments show in several columns at once (a segment that spends more also orders more, is older,
# ...), so a column unrelated to every other one does not describe them. Noise columns reach ~0.03
# at 10,000 rows; the weakest real column of the planted skewed matrices 0.2.
NOISE_CORRELATION = 0.1
NOISE_SCREEN_ROWS = 50_000  # the rank correlations are computed on at most this many rows


@dataclass
class SegmentationComparison:
    """What `compare_segmentations` returns: the chosen labels for every row, the comparison table
    (one row per algorithm x k, every score and gate), the chosen candidate and why."""

    labels: np.ndarray  # 0..k-1 for every row of the matrix, 0 = the largest segment
    table: pd.DataFrame
    chosen: str  # "algorithm:k"
    reason: str
    comparison: cl.Comparison
    x: np.ndarray  # the rows in the space the candidates were fitted in
    segment_of_centroid: np.ndarray  # label (as in `labels`) of each of the chosen candidate's centroids
    min_segment_jaccard: float
    noise_columns: list[str]  # columns screened out before the comparison (`noise_columns`)

    @property
    def k(self) -> int:
        return self.comparison.candidates[self.chosen].k

    @property
    def segment_stability(self) -> pd.DataFrame:
        """Per chosen segment (`labels` numbering): share, mean bootstrap Jaccard, its se, unstable flag."""
        candidate = self.comparison.candidates[self.chosen]
        table = cl.segment_stability(candidate, self.segment_of_centroid, self.min_segment_jaccard)
        shares = np.bincount(self.labels, minlength=len(table)) / len(self.labels)
        table.insert(1, "share", shares[table["segment_id"].to_numpy()])
        return table


def raw_space(matrix: pd.DataFrame, components: int, seed: int) -> np.ndarray:
    """The rows of a raw numeric matrix as float32 in the clustering space (see the module docstring)."""
    values = _check_numeric(matrix)
    x = np.empty_like(values)
    for j in range(values.shape[1]):
        column = values[:, j]
        binary = len(np.unique(column)) <= 2
        if not binary and column.min() >= 0 and _skewness(column) > SKEW_LOG:
            column = np.log1p(column)
        sd = column.std()
        scaled = (column - column.mean()) / (sd if sd > 0 else 1.0)
        x[:, j] = scaled * (BINARY_WEIGHT if binary else 1.0)
    if components and components < x.shape[1]:
        rows = cl.sample_rows(len(x), cl.PCA_FIT_ROWS, seed + 3)
        x = PCA(n_components=components, random_state=seed).fit(x[rows]).transform(x)
    return x.astype(np.float32)


def noise_columns(matrix: pd.DataFrame, seed: int) -> list[str]:
    """The columns whose largest absolute Spearman correlation with any other column is below
    `NOISE_CORRELATION` (on a sample of `NOISE_SCREEN_ROWS` rows; a constant column has none).

    None (an empty list) when fewer than two columns would remain: nothing to tell noise by."""
    rows = cl.sample_rows(len(matrix), NOISE_SCREEN_ROWS, seed + 4)
    correlation = matrix.iloc[rows].rank().corr().abs().to_numpy()
    np.fill_diagonal(correlation, 0.0)
    strongest = np.nan_to_num(correlation).max(axis=1)
    noise = [
        column for column, value in zip(matrix.columns, strongest, strict=True) if value < NOISE_CORRELATION
    ]
    return noise if matrix.shape[1] - len(noise) >= 2 else []


def _check_numeric(matrix: pd.DataFrame) -> np.ndarray:
    """The matrix as float64; `ClusteringInputError` for no columns, non-numeric or missing values."""
    if matrix.shape[1] == 0:
        raise cl.ClusteringInputError("compare_segmentations: the matrix has no columns")
    non_numeric = [c for c in matrix.columns if not pd.api.types.is_numeric_dtype(matrix[c])]
    if non_numeric:
        raise cl.ClusteringInputError(
            f"compare_segmentations: columns must be numeric; not numeric: {non_numeric}"
        )
    values = matrix.to_numpy(dtype=np.float64, na_value=np.nan)
    bad = ~np.isfinite(values)
    if bad.any():
        column = matrix.columns[int(np.flatnonzero(bad.any(axis=0))[0])]
        raise cl.ClusteringInputError(
            f"compare_segmentations: {int(bad.sum())} missing or infinite values (e.g. column {column})"
        )
    return values


def _skewness(column: np.ndarray) -> float:
    centred = column - column.mean()
    sd = centred.std()
    return float((centred**3).mean() / sd**3) if sd > 0 else 0.0


def compare_segmentations(
    matrix: pd.DataFrame | np.ndarray,
    settings: cl.ClusteringSettings,
    business: pd.DataFrame | None = None,
    transform: bool = True,
    screen_noise: bool = True,
) -> SegmentationComparison:
    """Compare every candidate (algorithm x k) on any numeric matrix and choose one, as step 04 does.

    `matrix`: one row per customer, numeric columns (a DataFrame or an array). `business`: optional
    columns aligned with the rows that measure value, churn risk and service load
    (`candidates.BUSINESS_AREAS` names, e.g. monetary_total, recency_days, n_calls); when absent,
    those found among the matrix's own columns are used, and with none the business gate and
    score are left out. `transform`: False when the matrix is already scaled (e.g. step 03's model
    matrix); then only the principal components are applied. With `transform`, `noise_columns` are
    left out first (`screen_noise`: False keeps every column). Returns the chosen labels for every
    row (0 = the largest segment), the comparison table with the selection columns and the reasons.
    """
    frame = matrix if isinstance(matrix, pd.DataFrame) else pd.DataFrame(np.asarray(matrix))
    frame = frame.reset_index(drop=True)
    noise: list[str] = []
    if transform:
        _check_numeric(frame)
        noise = noise_columns(frame, settings.seed) if screen_noise else []
        x = raw_space(frame.drop(columns=noise), settings.components, settings.seed)
    else:
        x = frame.to_numpy(dtype=np.float32)
        if settings.components and settings.components < x.shape[1]:
            rows = cl.sample_rows(len(x), cl.PCA_FIT_ROWS, settings.seed + 3)
            pca = PCA(n_components=settings.components, random_state=settings.seed).fit(x[rows])
            x = pca.transform(x).astype(np.float32)
    if business is None:
        found = list(dict.fromkeys(cl.business_columns(frame).values()))
        business = frame[found]
    business = business.reset_index(drop=True)
    if len(business) != len(x):
        raise cl.ClusteringInputError(
            f"compare_segmentations: business has {len(business)} rows, the matrix {len(x)}"
        )
    comparison = cl.compare(x, business, settings)
    table = cl.combined_scores(comparison.table, settings)
    chosen, reason = cl.select(table, settings.choose, settings.prefer)
    candidate = comparison.candidates[chosen]
    labels = cl.predict_labels(candidate, x)
    order = cl.segment_order(labels, len(candidate.centroids)) - 1
    return SegmentationComparison(
        order[labels], table, chosen, reason, comparison, x, order, settings.min_segment_jaccard, noise
    )
