"""Step 04: compare clustering algorithms on the model matrix and choose a segmentation.

The model matrix is standardized per column and projected on its leading principal components
(`Space`); every candidate (algorithm x k) is fitted on the same sample in that space, scored
(internal indices, BIC, segment sizes, business separation) and its stability measured as R's
fpc::clusterboot does (`bootstrap_stability`: refits on bootstrap resamples against the
candidate's own segments; ARI with a standard error, mean Jaccard per segment; every candidate
screened with `SCREENING_REFITS`, the contenders given all `clustering.stability_refits`). One is
chosen by transparent gates and a preference (`select`), or by the analyst (`clustering.choose:
"algorithm:k"`). The chosen model then assigns every customer, in chunks. Customers without
purchases ("prospects") get the rule-based segment 0. `helpers.clustering.compare_segmentations`
runs the same comparison on any numeric matrix.

Why principal components: a customer matrix has many weakly informative columns (one-hot levels,
interest flags, sparse shares). In 100+ standardized dimensions their noise swamps the distances
between customers; the leading components keep the directions along which many columns vary
together, which is where groups of customers differ. It also makes the comparison affordable at
1M customers (1M x 20 float32 is 80 MB). `clustering.components: 0` clusters the columns directly.
"""

from __future__ import annotations

import sys
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import joblib
import numpy as np
import pandas as pd
from scipy.optimize import linear_sum_assignment
from sklearn.decomposition import PCA
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import (
    adjusted_rand_score,
    calinski_harabasz_score,
    davies_bouldin_score,
    pairwise_distances,
    silhouette_score,
)
from threadpoolctl import threadpool_limits

from helpers.clustering.algorithms import REGISTRY, Algorithm
from helpers.clustering.workers import run_jobs
from helpers.core.settings import ClusteringSettingsSection

if TYPE_CHECKING:
    from helpers.core.context import StepContext

ALGORITHMS: tuple[str, ...] = tuple(REGISTRY)  # names, in registry order
PCA_FIT_ROWS = 50_000  # the principal components are fitted on at most this many clustered customers
MIN_ROWS_PER_SEGMENT = 5  # k is capped so every segment can hold this many fitted customers
CHUNK = 100_000  # rows per block when scaling, projecting and assigning everyone
SILHOUETTE_MATRIX_ROWS = 5_000  # up to this many score rows, their distances are computed once (<= 100 MB)
PROSPECT_ID = 0
STABILITY_COLUMNS = (
    "min_small_jaccard", "stability", "stability_se", "stability_lower", "stability_refits", "min_jaccard",
    "min_jaccard_lower", "n_unstable_segments",
)  # fmt: skip
SCREENING_REFITS = 2  # every candidate's stability is screened with this many bootstrap refits
SCREENING_MARGIN = 0.1  # candidates this close to the stability gates are contenders
STABILITY_CONTENDERS = 10  # the best contenders get all `clustering.stability_refits`
SCORE_TIE = 0.05  # prefer more_segments: combined scores this close to the best count as a tie
# Features that say who a customer is (step 03's demographic and geographic coverage): a customer
# with none of them known is known only from events (e.g. a caller number or a shop account).
PROFILE_COLUMNS = ("age", "gender", "age_band", "city_tier", "province")
# Segments are fitted on the profiled customers when they are at least this share of the clustered
# ones; the customers known only from events are then assigned to the nearest segment.
MIN_PROFILED_SHARE = 0.25
# Business areas and the feature columns that measure them (first one present is used).
BUSINESS_AREAS: dict[str, tuple[str, ...]] = {
    "value": ("clv_12m", "monetary_total"),
    "churn_risk": ("p_no_purchase_next_period", "recency_days"),
    "service_load": ("n_calls", "complaint_rate"),
}


class ClusteringInputError(ValueError):
    """The model matrix or the feature table cannot be clustered as given."""


class ClusteringSettings(ClusteringSettingsSection):
    """The validated `clustering:` section of the run config plus the run's seed.

    Keys, types, defaults and checks (known algorithms, k range, choices) are those of the
    schema (`helpers.core.settings.ClusteringSettingsSection`); build it with `from_context`
    in a step, or with keyword arguments (and a seed) in tests and benchmarks.
    """

    seed: int

    @classmethod
    def from_section(cls, section: ClusteringSettingsSection, seed: int) -> ClusteringSettings:
        """Settings from the validated config section and the run's seed."""
        return cls(**section.model_dump(), seed=seed)

    @classmethod
    def from_context(cls, ctx: StepContext) -> ClusteringSettings:
        """Settings of a step context (`ctx.settings.clustering`, notebook overrides applied; `ctx.seed`)."""
        return cls.from_section(ctx.settings.clustering, ctx.seed)

    @property
    def ks(self) -> list[int]:
        return list(range(self.k_min, self.k_max + 1))


# ----------------------------------------------------------------------------- input


def validate_model_matrix(matrix: pd.DataFrame, table: str = "03_features/model_matrix") -> pd.DataFrame:
    """Check the model matrix: unique customer_id, numeric finite columns.

    Returns the float32 columns indexed by customer_id (one block, no float64 copy)."""
    if "customer_id" not in matrix.columns:
        raise ClusteringInputError(f"{table}: column customer_id is missing")
    duplicated = matrix["customer_id"].duplicated(keep=False)
    if duplicated.any():
        rows = (np.flatnonzero(duplicated.to_numpy())[:5] + 1).tolist()
        raise ClusteringInputError(
            f"{table}: customer_id must be unique; {int(duplicated.sum())} rows share ids, e.g. rows {rows}"
        )
    columns = [c for c in matrix.columns if c != "customer_id"]
    if not columns:
        raise ClusteringInputError(f"{table}: no feature columns besides customer_id")
    non_numeric = [c for c in columns if not pd.api.types.is_numeric_dtype(matrix[c])]
    if non_numeric:
        raise ClusteringInputError(f"{table}: columns must be numeric; not numeric: {non_numeric}")
    values = np.empty((len(matrix), len(columns)), dtype=np.float32, order="F")
    for position, column in enumerate(columns):
        values[:, position] = matrix[column].to_numpy(dtype=np.float32, na_value=np.nan)
        bad = ~np.isfinite(values[:, position])
        if bad.any():
            rows = (np.flatnonzero(bad)[:3] + 1).tolist()  # 1-based row numbers, never customer ids
            raise ClusteringInputError(
                f"{table}: column {column} has {int(bad.sum())} missing or infinite values, e.g. rows {rows}"
            )
    index = pd.Index(matrix["customer_id"].to_numpy(), name="customer_id")
    return pd.DataFrame(values, index=index, columns=columns, copy=False)


def column_moments(values: np.ndarray, rows: np.ndarray, chunk: int = CHUNK) -> tuple[np.ndarray, np.ndarray]:
    """Mean and sd (ddof 1) of every column over the rows where `rows` is True, in float64, by chunks."""
    total = np.zeros(values.shape[1])
    squares = np.zeros(values.shape[1])
    count = 0
    for start in range(0, len(values), chunk):
        block = values[start : start + chunk][rows[start : start + chunk]].astype(np.float64)
        total += block.sum(axis=0)
        squares += (block**2).sum(axis=0)
        count += len(block)
    mean = total / max(count, 1)
    variance = (squares - count * mean**2) / max(count - 1, 1)
    return mean, np.sqrt(np.maximum(variance, 0.0))


@dataclass
class Space:
    """The space candidates are fitted in: scaled model columns, projected on principal components.

    `standardize` scales every column to mean 0 and sd 1 over the clustered customers (every column
    counts equally: step 03's group weights only decide which groups are in); `as_is` keeps step
    03's scaling and group weights. `pca` (None when `components` is 0) projects on the leading
    principal components.
    """

    columns: list[str]
    mean: np.ndarray
    sd: np.ndarray
    pca: PCA | None

    @property
    def scaling(self) -> pd.DataFrame:
        """column, mean, sd: the scaling applied before the projection (an artifact)."""
        return pd.DataFrame({"column": self.columns, "mean": self.mean, "sd": self.sd})

    @property
    def explained_variance(self) -> float:
        """Share of the scaled columns' variance the components keep (1 without projection)."""
        return 1.0 if self.pca is None else float(self.pca.explained_variance_ratio_.sum())

    def scale(self, values: np.ndarray) -> np.ndarray:
        """Rows of the model matrix scaled (float32)."""
        return ((values - self.mean) / self.sd).astype(np.float32)

    def transform(self, values: np.ndarray, chunk: int = CHUNK) -> np.ndarray:
        """Rows of the model matrix (in its column order) in the clustering space, float32, by chunks."""
        width = len(self.columns) if self.pca is None else self.pca.n_components_
        out = np.empty((len(values), width), dtype=np.float32)
        for start in range(0, len(values), chunk):
            block = self.scale(values[start : start + chunk])
            out[start : start + chunk] = block if self.pca is None else self.pca.transform(block)
        return out


def fit_space(matrix: pd.DataFrame, rows: np.ndarray, settings: ClusteringSettings) -> Space:
    """Scaling over the clustered customers (`rows` True) and, with `settings.components` > 0, the
    principal components fitted on a sample of them (at most `PCA_FIT_ROWS`)."""
    values = matrix.to_numpy()
    if settings.column_scaling == "as_is":
        mean, sd = np.zeros(values.shape[1]), np.ones(values.shape[1])
    else:
        mean, sd = column_moments(values, rows)
        sd = np.where(sd > 0, sd, 1.0)
    space = Space(list(matrix.columns), mean, sd, None)
    n_components = min(settings.components, values.shape[1], int(rows.sum()))
    if settings.components and n_components < values.shape[1]:
        clustered = np.flatnonzero(rows)
        sample = clustered[sample_rows(len(clustered), PCA_FIT_ROWS, settings.seed + 3)]
        space.pca = PCA(n_components=n_components, random_state=settings.seed).fit(
            space.scale(values[sample])
        )
    return space


def business_frame(features: pd.DataFrame, customer_ids: pd.Index) -> pd.DataFrame:
    """The business-area columns of `features` (see `business_columns`), aligned with `customer_ids`."""
    columns = list(dict.fromkeys(business_columns(features).values()))
    return features.set_index("customer_id")[columns].reindex(customer_ids).reset_index(drop=True)


def prospect_mask(features: pd.DataFrame, customer_ids: pd.Index) -> np.ndarray:
    """True for customers without any purchase (features.n_purchases 0 or missing)."""
    if "n_purchases" not in features.columns:
        raise ClusteringInputError(
            "03_features/features: column n_purchases is missing (needed for prospects)"
        )
    purchases = features.set_index("customer_id")["n_purchases"].reindex(customer_ids)
    missing = purchases.index[purchases.isna() & ~customer_ids.isin(features["customer_id"])]
    if len(missing):
        raise ClusteringInputError(
            f"03_features/features: {len(missing)} model-matrix customers have no feature row, "
            f"e.g. model-matrix rows {(np.flatnonzero(customer_ids.isin(missing))[:3] + 1).tolist()}"
        )
    return purchases.fillna(0).to_numpy(dtype=float) <= 0


def thin_profile_mask(features: pd.DataFrame, customer_ids: pd.Index) -> np.ndarray:
    """True for customers of whom nothing is known beyond their events: no value in any of the
    `PROFILE_COLUMNS` present in `features` (missing, or the level "unknown"). All False when
    `features` has none of those columns (the data cannot tell)."""
    present = [column for column in PROFILE_COLUMNS if column in features.columns]
    if not present:
        return np.zeros(len(customer_ids), dtype=bool)
    table = features.set_index("customer_id")[present].reindex(customer_ids)
    known = np.zeros(len(customer_ids), dtype=bool)
    for column in present:
        values = table[column]
        if pd.api.types.is_numeric_dtype(values):
            known |= values.notna().to_numpy()
        else:
            text = values.astype("string").str.strip().str.lower()
            known |= (text.notna() & ~text.isin(["", "unknown"])).to_numpy(dtype=bool)
    return ~known


def fitted_mask(clustered: np.ndarray, thin: np.ndarray) -> np.ndarray:
    """The clustered customers the segments are fitted on: those with a profile (`thin` False) when
    they are at least `MIN_PROFILED_SHARE` of the clustered ones, else every clustered customer.

    Customers known only from events have every profile column imputed; fitted with the others they
    form segments of their own ("nobody knows who they are") instead of joining the segment their
    behaviour matches. Fitted without them, they are assigned to the nearest segment like anyone."""
    profiled = clustered & ~thin
    if profiled.sum() >= MIN_PROFILED_SHARE * clustered.sum():
        return profiled
    return clustered.copy()


def sample_rows(n_rows: int, size: int, seed: int, strata: np.ndarray | None = None) -> np.ndarray:
    """Sorted row positions of a random sample (proportionally stratified when `strata` is given)."""
    if size >= n_rows:
        return np.arange(n_rows)
    rng = np.random.default_rng(seed)
    if strata is None:
        return np.sort(rng.choice(n_rows, size=size, replace=False))
    chosen = []
    codes, inverse = np.unique(strata, return_inverse=True)
    for code in range(len(codes)):
        members = np.flatnonzero(inverse == code)
        take = max(1, round(size * len(members) / n_rows))
        chosen.append(rng.choice(members, size=min(take, len(members)), replace=False))
    return np.sort(np.concatenate(chosen))


# ----------------------------------------------------------------------------- candidates


@dataclass
class Candidate:
    """One fitted candidate: the model (or None), its centroids and the labels of its fit rows."""

    algorithm: str
    k: int
    model: Any
    centroids: np.ndarray
    labels: np.ndarray | None
    fit_seconds: float
    label_map: np.ndarray  # model label -> centroid row (-1: the model's cluster owns no fit row)
    variance: float  # pooled within-segment variance per dimension
    stability: Stability | None = None  # bootstrap stability (`bootstrap_stability`), once computed
    shares: np.ndarray | None = None  # share of the fit rows per centroid row

    @property
    def key(self) -> str:
        return f"{self.algorithm}:{self.k}"


def _centroids(x: np.ndarray, labels: np.ndarray, n_labels: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean of each non-empty label (noise -1 ignored), labels renumbered 0..k-1 (noise stays -1)
    and the map old label -> new label (-1 for labels without rows)."""
    kept = np.unique(labels[labels >= 0])
    label_map = np.full(max(n_labels, labels.max() + 1, 1), -1)
    label_map[kept] = np.arange(len(kept))
    relabelled = np.where(labels >= 0, label_map[np.maximum(labels, 0)], -1)
    inside = relabelled >= 0
    sums = label_sums(relabelled[inside], x[inside], len(kept))
    counts = np.bincount(relabelled[inside], minlength=len(kept))
    return sums / counts[:, None], relabelled, label_map


def label_sums(labels: np.ndarray, values: np.ndarray, n_labels: int) -> np.ndarray:
    """Column sums of `values` per label 0..n_labels-1, in float64 (np.bincount per column: the same
    sums, in the same order, as np.add.at, ~20x faster)."""
    return np.stack(
        [np.bincount(labels, weights=values[:, j], minlength=n_labels) for j in range(values.shape[1])],
        axis=1,
    ).reshape(n_labels, values.shape[1])


def squared_distances(block: np.ndarray, centroids: np.ndarray) -> np.ndarray:
    """Squared Euclidean distance of every row of `block` to every centroid (rows x centroids)."""
    block = block.astype(np.float64)
    squared = (block**2).sum(axis=1)[:, None] - 2 * block @ centroids.T + (centroids**2).sum(axis=1)[None, :]
    return np.maximum(squared, 0.0)


def nearest_centroid(
    x: np.ndarray, centroids: np.ndarray, chunk: int = CHUNK
) -> tuple[np.ndarray, np.ndarray]:
    """Index of and Euclidean distance to the nearest centroid, in chunks to bound memory."""
    labels = np.empty(len(x), dtype=np.int64)
    distances = np.empty(len(x))
    for start in range(0, len(x), chunk):
        squared = squared_distances(x[start : start + chunk], centroids)
        labels[start : start + chunk] = squared.argmin(axis=1)
        distances[start : start + chunk] = np.sqrt(squared.min(axis=1))
    return labels, distances


def algorithm_spec(algorithm: str) -> Algorithm:
    """The registry entry of `algorithm` (`helpers.clustering.algorithms.REGISTRY`)."""
    try:
        return REGISTRY[algorithm]
    except KeyError:
        raise ClusteringInputError(f"Unknown algorithm {algorithm!r}; known: {list(REGISTRY)}") from None


def fit_candidate(
    algorithm: str,
    k: int,
    x: np.ndarray,
    seed: int,
    min_cluster_share: float = 0.03,
    prepared: Any = None,
) -> Candidate:
    """Fit one algorithm with k clusters on the rows `x` (k is ignored by those that find their own).

    `prepared`: the algorithm's `prepare(x)` result, if already computed for these rows (Ward's tree)."""
    spec = algorithm_spec(algorithm)
    started = time.perf_counter()
    model, labels = spec.fit(x, k, seed, min_cluster_share, prepared)
    centroids, labels, label_map = _centroids(x, np.asarray(labels), k)
    if spec.finds_k:
        k = len(centroids)
    noise = labels < 0
    if noise.any():
        labels[noise] = nearest_centroid(x[noise], centroids)[0]
    variance = float(((x - centroids[labels]) ** 2).mean())
    return Candidate(
        algorithm, k, model, centroids, labels, time.perf_counter() - started, label_map, variance
    )


def predict_labels(candidate: Candidate, x: np.ndarray, chunk: int = CHUNK) -> np.ndarray:
    """Centroid row of every row of `x`: the model's predict where it has one, else the nearest centroid.

    Rows the model puts in a cluster that owned no fit row go to the nearest centroid.
    """
    if candidate.model is None or algorithm_spec(candidate.algorithm).assigns_by == "nearest_centroid":
        return nearest_centroid(x, candidate.centroids, chunk)[0]
    labels = np.concatenate([candidate.model.predict(x[s : s + chunk]) for s in range(0, len(x), chunk)])
    labels = candidate.label_map[labels]
    orphans = labels < 0
    if orphans.any():
        labels[orphans] = nearest_centroid(x[orphans], candidate.centroids)[0]
    return labels


def assign(
    candidate: Candidate, x: np.ndarray, chunk: int = CHUNK
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Labels, distance to the segment centroid and membership probability for every row of `x`.

    Mixtures and k-means-type models predict; Ward and HDBSCAN (no predict) use the nearest
    centroid. Probabilities are the mixture's posterior, or for the others a spherical
    equal-weight mixture around the centroids with the pooled within-segment variance.
    Works through `x` in chunks, so memory stays bounded at any number of customers.
    """
    labels = predict_labels(candidate, x, chunk)
    mixture = algorithm_spec(candidate.algorithm).mixture
    distance = np.empty(len(x))
    probability = np.empty(len(x))
    for start in range(0, len(x), chunk):
        block, own = x[start : start + chunk], labels[start : start + chunk]
        squared = squared_distances(block, candidate.centroids)
        rows = np.arange(len(block))
        distance[start : start + chunk] = np.sqrt(squared[rows, own])
        if mixture:
            probability[start : start + chunk] = candidate.model.predict_proba(block).max(axis=1)
            continue
        logits = -squared / (2 * candidate.variance)
        logits -= logits.max(axis=1, keepdims=True)
        weights = np.exp(logits)
        probability[start : start + chunk] = weights[rows, own] / weights.sum(axis=1)
    return labels, distance, probability


# ----------------------------------------------------------------------------- scores


def business_separation(labels: np.ndarray, business: pd.DataFrame) -> dict[str, float]:
    """Per business area, eta-squared of the ranks between segments (0: no difference, 1: all).

    Ranks make the measure robust to the heavy tails of money and counts.
    """
    scores = {}
    for area, column in business_columns(business).items():
        ranks = business[column].rank().fillna(business[column].rank().mean()).to_numpy()
        total = ((ranks - ranks.mean()) ** 2).sum()
        counts = np.bincount(labels)
        sums = np.bincount(labels, weights=ranks)
        present = counts > 0
        between = (counts[present] * (sums[present] / counts[present] - ranks.mean()) ** 2).sum()
        scores[area] = float(between / total) if total > 0 else 0.0
    return scores


def matrix_separation(labels: np.ndarray, x: np.ndarray) -> float:
    """Mean over the columns of `x` of the eta-squared of their ranks between segments: the
    business separation's stand-in when there are no business columns (it grows with k as the
    business separation does, the counterweight to indices that favour few segments)."""
    ranks = pd.DataFrame(x).rank().to_numpy()
    centred = ranks - ranks.mean(axis=0)
    total = (centred**2).sum(axis=0)
    counts = np.bincount(labels)
    sums = label_sums(labels, centred, len(counts))
    present = counts > 0
    between = (sums[present] ** 2 / counts[present, None]).sum(axis=0)
    return float(np.mean(np.where(total > 0, between / np.where(total > 0, total, 1), 0.0)))


def business_columns(features: pd.DataFrame) -> dict[str, str]:
    """The feature column measuring each business area (areas without any column are skipped)."""
    found = {}
    for area, candidates in BUSINESS_AREAS.items():
        present = [c for c in candidates if c in features.columns]
        if present:
            found[area] = present[0]
    return found


@dataclass
class Stability:
    """How reproducible a candidate is (fpc::clusterboot): refits on bootstrap resamples of a
    reference sample, each compared with the candidate's own partition of the resampled points.

    `mean` / `se`: adjusted Rand index over the refits and its standard error; `lower` = mean -
    z x se, the figure selection uses. `jaccard`: per segment (centroid row order), the mean over
    refits of its best Jaccard similarity with a refit cluster (1: always found again; below 0.5:
    it dissolves); NaN for a segment without reference rows. `jaccard_se`: its standard error.
    """

    mean: float
    se: float
    lower: float
    jaccard: np.ndarray
    jaccard_se: np.ndarray
    refits: int
    aris: np.ndarray  # per refit
    jaccards: np.ndarray  # refits x segments

    @property
    def min_jaccard(self) -> float:
        present = self.jaccard[~np.isnan(self.jaccard)]
        return float(present.min()) if len(present) else np.nan


def best_jaccard(own: np.ndarray, new: np.ndarray, n_own: int) -> np.ndarray:
    """For every own label 0..n_own-1, its largest Jaccard similarity with a label of `new` (NaN: absent)."""
    new_codes = np.unique(new, return_inverse=True)[1]
    table = np.zeros((n_own, new_codes.max() + 1))
    np.add.at(table, (own, new_codes), 1)
    own_sizes, new_sizes = table.sum(axis=1), table.sum(axis=0)
    union = own_sizes[:, None] + new_sizes[None, :] - table
    with np.errstate(invalid="ignore", divide="ignore"):
        best = (table / union).max(axis=1)
    return np.where(own_sizes > 0, best, np.nan)


def bootstrap_stability(
    candidate: Candidate,
    x: np.ndarray,
    settings: ClusteringSettings,
    refits: int | None = None,
    previous: Stability | None = None,
) -> Stability:
    """Refit `candidate`'s algorithm and k on `refits` (default `settings.stability_refits`) bootstrap
    resamples of a reference sample of `x` (`settings.stability_sample_size` rows) and compare each
    refit with the candidate's own labels on the resampled points (adjusted Rand index overall,
    best Jaccard per segment).

    Resample b depends only on the seed, k, the algorithm and b, so `previous` (the first refits,
    e.g. a screening) is extended to `refits` without refitting it."""
    refits = settings.stability_refits if refits is None else refits
    algorithm, k = candidate.algorithm, candidate.k
    base = settings.seed + 1000 * k + ALGORITHMS.index(algorithm)
    rng = np.random.default_rng(base)
    size = min(settings.stability_sample_size, len(x))
    reference = x[np.sort(rng.choice(len(x), size=size, replace=False))]
    own = predict_labels(candidate, reference)
    n_own = len(candidate.centroids)
    aris = [] if previous is None else list(previous.aris)
    jaccards = [] if previous is None else list(previous.jaccards)
    for refit in range(len(aris), refits):
        resample = np.random.default_rng([base, refit]).choice(size, size=size, replace=True)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            fitted = fit_candidate(
                algorithm,
                k,
                reference[resample],
                settings.seed + 7919 * (refit + 1),
                settings.min_segment_share,
            )
        inside = np.unique(resample)
        new = predict_labels(fitted, reference[inside])
        aris.append(adjusted_rand_score(own[inside], new))
        jaccards.append(best_jaccard(own[inside], new, n_own))
    return summarize_stability(
        np.array(aris), np.array(jaccards).reshape(len(aris), n_own), settings.stability_z
    )


def summarize_stability(aris: np.ndarray, jaccards: np.ndarray, z: float) -> Stability:
    """Mean, se and lower bound of the refits' ARIs; mean and se of each segment's Jaccard."""
    n_own = jaccards.shape[1]
    if not len(aris):
        empty = np.full(n_own, np.nan)
        return Stability(np.nan, np.nan, np.nan, empty, empty, 0, aris, jaccards)
    mean = float(aris.mean())
    se = float(aris.std(ddof=1) / np.sqrt(len(aris))) if len(aris) > 1 else np.nan
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a segment absent from every resample
        jaccard = np.nanmean(jaccards, axis=0)
        counts = (~np.isnan(jaccards)).sum(axis=0)
        jaccard_se = np.nanstd(jaccards, axis=0, ddof=1) / np.sqrt(np.maximum(counts, 1))
    lower = mean - z * (0.0 if np.isnan(se) else se)
    return Stability(mean, se, lower, jaccard, jaccard_se, len(aris), aris, jaccards)


def stability(algorithm: str, k: int, x: np.ndarray, settings: ClusteringSettings) -> float:
    """Mean adjusted Rand index of bootstrap refits against a fit of `algorithm` with k on `x`
    (`bootstrap_stability` of that fit)."""
    candidate = fit_candidate(algorithm, k, x, settings.seed, settings.min_segment_share)
    return bootstrap_stability(candidate, x, settings).mean


def score_candidate(
    candidate: Candidate,
    x: np.ndarray,
    business: pd.DataFrame,
    settings: ClusteringSettings,
    score_rows: np.ndarray,
    score_distances: np.ndarray | None = None,
) -> dict[str, Any]:
    """Internal indices, BIC, size balance and business separation of a candidate on its fit rows
    (`partition_scores` of its labels, the mixture's BIC, its fit seconds)."""
    n_found = len(np.unique(candidate.labels))
    row: dict[str, Any] = {"algorithm": candidate.algorithm, "k": candidate.k, "n_segments": n_found}
    row |= partition_scores(candidate.labels, x, business, settings, score_rows, score_distances)
    row["bic"] = mixture_bic(candidate, x)
    row["fit_seconds"] = candidate.fit_seconds
    return row


def partition_scores(
    labels: np.ndarray,
    x: np.ndarray,
    business: pd.DataFrame,
    settings: ClusteringSettings,
    score_rows: np.ndarray,
    score_distances: np.ndarray | None = None,
) -> dict[str, Any]:
    """Internal indices, size balance and business separation of the partition `labels` of the rows
    `x` (`business` aligned with them); `bic` NaN (a mixture's own, see `score_candidate`).

    `score_distances`: the Euclidean distances between the `score_rows` (shared by every candidate
    fitted on the same rows), for the silhouette; None: computed by chunks for this candidate."""
    n_found = len(np.unique(labels))
    row: dict[str, Any] = {}
    if n_found < 2:
        row.update(silhouette=np.nan, calinski_harabasz=np.nan, davies_bouldin=np.nan)
    else:
        sub = labels[score_rows]
        if len(np.unique(sub)) < 2:
            row["silhouette"] = np.nan
        elif score_distances is None:
            row["silhouette"] = float(silhouette_score(x[score_rows], sub))
        else:
            row["silhouette"] = silhouette_from_distances(score_distances, sub)
        row["calinski_harabasz"] = float(calinski_harabasz_score(x, labels))
        row["davies_bouldin"] = float(davies_bouldin_score(x, labels))
    row["bic"] = np.nan
    counts = np.bincount(labels)
    shares = counts / len(labels)
    row["smallest_share"] = float(shares.min())
    row["smallest_size"] = int(counts.min())
    row["n_small_segments"] = int(
        ((shares < settings.min_segment_share) | (counts < settings.min_segment_size)).sum()
    )
    separation = business_separation(labels, business)
    row.update({f"separation_{area}": value for area, value in separation.items()})
    row["business_separation"] = float(np.mean(list(separation.values()))) if separation else np.nan
    # Without business columns, how much the segments differ in the clustered columns themselves.
    row["matrix_separation"] = np.nan if separation else matrix_separation(labels, x)
    return row


def silhouette_from_distances(distances: np.ndarray, labels: np.ndarray) -> float:
    """Mean silhouette (Rousseeuw 1987, as sklearn's silhouette_score) from the square matrix of
    distances between the rows: each row's summed distance to every cluster in one matrix product
    instead of sklearn's per-row reduction (~15x faster at 2,000 rows). A row alone in its
    cluster scores 0."""
    codes = np.unique(labels, return_inverse=True)[1]
    members = np.zeros((len(codes), codes.max() + 1), dtype=distances.dtype)
    members[np.arange(len(codes)), codes] = 1
    summed = (distances @ members).astype(np.float64)  # row x cluster: sum of distances
    sizes = members.sum(axis=0).astype(np.float64)
    rows = np.arange(len(codes))
    own_size = sizes[codes]
    within = summed[rows, codes] / np.maximum(own_size - 1, 1)
    mean_other = summed / sizes
    mean_other[rows, codes] = np.inf
    nearest = mean_other.min(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        score = (nearest - within) / np.maximum(within, nearest)
    return float(np.where(own_size > 1, np.nan_to_num(score), 0.0).mean())


def mixture_bic(candidate: Candidate, x: np.ndarray) -> float:
    """BIC of a Gaussian-mixture candidate on `x` (in the space its mixture was fitted in); NaN otherwise."""
    if not algorithm_spec(candidate.algorithm).mixture:
        return np.nan
    reduced = candidate.model[0].transform(x) if len(candidate.model) > 1 else x
    return float(candidate.model[-1].bic(reduced))


def stability_columns(candidate: Candidate, settings: ClusteringSettings) -> dict[str, float]:
    """The comparison-table columns of a candidate's bootstrap stability (NaN when there is none).

    `min_small_jaccard`: the lowest Jaccard among the segments smaller than
    `clustering.small_segment_share` (NaN when there is none): the size rule's noise check."""
    result = candidate.stability
    if result is None:
        return dict.fromkeys(STABILITY_COLUMNS, np.nan)
    min_jaccard, z = settings.min_segment_jaccard, settings.stability_z
    lower = result.jaccard - z * np.nan_to_num(result.jaccard_se)
    small = (
        result.jaccard[candidate.shares < settings.small_segment_share]
        if candidate.shares is not None
        else []
    )
    small = np.asarray(small)[~np.isnan(small)]
    return {
        "min_small_jaccard": float(small.min()) if len(small) else np.nan,
        "stability": result.mean,
        "stability_se": result.se,
        "stability_lower": result.lower,
        "stability_refits": float(result.refits),
        "min_jaccard": result.min_jaccard,
        "min_jaccard_lower": float(np.nanmin(lower)) if (~np.isnan(lower)).any() else np.nan,
        "n_unstable_segments": float(np.sum(result.jaccard < min_jaccard)),
    }


@dataclass
class Comparison:
    """The comparison table and the fitted candidates (keyed "algorithm:k")."""

    table: pd.DataFrame
    candidates: dict[str, Candidate]
    fit_rows: np.ndarray
    seconds: dict[str, float]
    k_max: int = 0  # the largest k compared (clustering.k_max, or lower when the data is too small)
    k_note: str = ""  # why k_max was lowered ("" when it was not)


def compare(
    x: np.ndarray, business: pd.DataFrame, settings: ClusteringSettings, strata: np.ndarray | None = None
) -> Comparison:
    """Fit and score every candidate (algorithm x k) on a sample of `x`; `business` aligns with `x`."""
    with threadpool_limits(limits=settings.threads):
        return _compare(x, business, settings, strata)


def supported_k_max(n_rows: int, settings: ClusteringSettings) -> tuple[int, str]:
    """The largest k the data supports (`MIN_ROWS_PER_SEGMENT` fit rows per segment) and, when that
    lowers `clustering.k_max`, the one-line note saying so.

    Raises `ClusteringInputError` naming `clustering.k_min` and the count when not even k_min fits.
    """
    uses_small = any(algorithm_spec(name).small_sample for name in settings.algorithms)
    fit = min(n_rows, settings.sample_size, settings.small_sample_size if uses_small else n_rows)
    supported = fit // MIN_ROWS_PER_SEGMENT
    if supported < settings.k_min:
        raise ClusteringInputError(
            f"clustering: {n_rows} customers to cluster support at most {supported} segments "
            f"({MIN_ROWS_PER_SEGMENT} customers each), fewer than clustering.k_min = {settings.k_min}: "
            "add data, or lower clustering.k_min and clustering.k_max"
        )
    if supported >= settings.k_max:
        return settings.k_max, ""
    return supported, (
        f"clustering.k_max lowered from {settings.k_max} to {supported}: {n_rows} customers to cluster "
        f"({fit} fitted) support at most {supported} segments of {MIN_ROWS_PER_SEGMENT} customers"
    )


def _compare(
    x: np.ndarray, business: pd.DataFrame, settings: ClusteringSettings, strata: np.ndarray | None
) -> Comparison:
    k_max, k_note = supported_k_max(len(x), settings)
    if k_note:
        print(f"WARNING {k_note}", file=sys.stderr, flush=True)
        settings = settings.model_copy(update={"k_max": k_max})
    fit_rows = sample_rows(len(x), settings.sample_size, settings.seed, strata)
    small_rows = fit_rows[sample_rows(len(fit_rows), settings.small_sample_size, settings.seed + 1)]
    screen = min(SCREENING_REFITS, settings.stability_refits)
    fitted_on = {
        algorithm: small_rows if algorithm_spec(algorithm).small_sample else fit_rows
        for algorithm in settings.algorithms
    }
    # Every algorithm is one job (fitted, scored and screened for every k), the longest first.
    order = sorted(settings.algorithms, key=lambda name: -algorithm_spec(name).cost)
    jobs = [
        (name, x[fitted_on[name]], business.iloc[fitted_on[name]].reset_index(drop=True), settings, screen)
        for name in order
    ]
    done = dict(zip(order, run_jobs(_compare_algorithm, jobs, settings.threads), strict=True))
    rows, candidates, seconds = [], {}, {}
    for algorithm in settings.algorithms:  # registry order: the table's and the candidates' order
        (algorithm_rows, algorithm_candidates), seconds[algorithm] = done[algorithm]
        rows += algorithm_rows
        candidates |= algorithm_candidates
    table = pd.DataFrame(rows)

    def refit_fully(positions: list[int]) -> None:
        """Every stability refit for the candidates at `positions` of `table` (in parallel)."""
        keys = [f"{table.at[position, 'algorithm']}:{table.at[position, 'k']}" for position in positions]
        refits = [
            (candidate, x[fitted_on[candidate.algorithm]], settings, None, candidate.stability)
            for candidate in (candidates[key] for key in keys)
        ]
        for position, key, (result, spent) in zip(
            positions, keys, run_jobs(bootstrap_stability, refits, settings.threads), strict=True
        ):
            candidate = candidates[key]
            candidate.stability = result
            for column, value in stability_columns(candidate, settings).items():
                table.at[position, column] = value
            seconds[candidate.algorithm] += spent

    # Screening done: the contenders get every refit (a standard error worth selecting on).
    refit_fully(stability_contenders(table, settings))
    if settings.prefer == "more_segments":
        # most segments first: refit until one keeps every segment on all refits and ties the best
        for position in most_segments_contenders(table, settings):
            refit_fully([position])
            scored = combined_scores(table, settings)
            best = scored.loc[scored["admissible"], "score"].max()
            if scored.at[position, "stable_choice"] and scored.at[position, "score"] >= best - SCORE_TIE:
                break
    return Comparison(table, candidates, fit_rows, seconds, k_max, k_note)


def _compare_algorithm(
    algorithm: str, x_fit: np.ndarray, business_fit: pd.DataFrame, settings: ClusteringSettings, screen: int
) -> tuple[list[dict[str, Any]], dict[str, Candidate]]:
    """Fit, score and screen (`screen` bootstrap refits) one algorithm for every k on its fit rows
    `x_fit` (`business_fit` aligned with them): the comparison-table rows and the candidates by key."""
    spec = algorithm_spec(algorithm)
    score_rows = sample_rows(len(x_fit), settings.score_sample_size, settings.seed + 2)
    prepared = spec.prepare(x_fit) if spec.prepare else None
    score_distances = (  # one distance matrix for every k's silhouette, when it is small enough
        pairwise_distances(x_fit[score_rows]) if len(score_rows) <= SILHOUETTE_MATRIX_ROWS else None
    )
    rows, candidates = [], {}
    for k in [0] if spec.finds_k else settings.ks:
        candidate = fit_candidate(algorithm, k, x_fit, settings.seed, settings.min_segment_share, prepared)
        if candidate.key in candidates:  # e.g. Ward cut into fewer distinct clusters than asked
            continue
        row = score_candidate(candidate, x_fit, business_fit, settings, score_rows, score_distances)
        row["fit_rows"] = len(x_fit)
        candidate.shares = np.bincount(candidate.labels, minlength=len(candidate.centroids)) / len(x_fit)
        if candidate.k > 1:
            candidate.stability = bootstrap_stability(candidate, x_fit, settings, refits=screen)
        row.update(stability_columns(candidate, settings))
        rows.append(row)
        candidate.labels = None  # only needed for scoring
        candidates[candidate.key] = candidate
    return rows, candidates


def screening_settings(settings: ClusteringSettings) -> ClusteringSettings:
    """`settings` with the stability and segment-Jaccard gates lowered by `SCREENING_MARGIN`, for
    judging candidates on the screening refits' means."""
    return settings.model_copy(
        update={
            "min_stability": max(settings.min_stability - SCREENING_MARGIN, 0.0),
            "min_segment_jaccard": max(settings.min_segment_jaccard - SCREENING_MARGIN, 0.0),
        }
    )


def stability_contenders(table: pd.DataFrame, settings: ClusteringSettings) -> list[int]:
    """Rows of `table` (screened with `SCREENING_REFITS` refits) that get every stability refit:
    those passing every gate on the screening means (stability and segment Jaccard within
    `SCREENING_MARGIN` of their gates), the `STABILITY_CONTENDERS` best by combined score."""
    if table.empty or settings.stability_refits <= min(SCREENING_REFITS, settings.stability_refits):
        return []
    lenient = screening_settings(settings)
    screened = combined_scores(table.assign(stability_lower=table["stability"]), lenient)
    passing = screened[screened["admissible"]].sort_values("score", ascending=False, kind="stable")
    return passing.index[:STABILITY_CONTENDERS].tolist()


def most_segments_contenders(table: pd.DataFrame, settings: ClusteringSettings) -> list[int]:
    """Rows of `table` that may be the `prefer: more_segments` choice, most segments first (ties:
    highest combined score): passing every gate on the screening means with every segment's Jaccard
    within `SCREENING_MARGIN` of `min_segment_jaccard` and a combined score within twice
    `SCORE_TIE` of the best. Rows already refitted fully come too (they are not refitted again)."""
    if table.empty or settings.stability_refits < 2:
        return []
    lenient = screening_settings(settings)
    screened = combined_scores(table.assign(stability_lower=table["stability"]), lenient)
    admissible = screened[screened["admissible"]]
    hopeful = admissible[
        (admissible["min_jaccard"] >= lenient.min_segment_jaccard)
        & (admissible["score"] >= admissible["score"].max() - 2 * SCORE_TIE)
    ]
    ordered = hopeful.sort_values(["n_segments", "score"], ascending=False, kind="stable")
    return ordered.index.tolist()


# ----------------------------------------------------------------------------- selection


def combined_scores(table: pd.DataFrame, settings: ClusteringSettings) -> pd.DataFrame:
    """Add the selection columns: `failed_gates`, `admissible` (passes every gate), `part_*` and `score`.

    Gates: at least 2 segments; none below `min_segment_share` or `min_segment_size` fitted
    customers; every segment smaller than `small_segment_share` with a mean bootstrap Jaccard >=
    `min_segment_jaccard` (small segments are allowed when they are real, not noise; larger
    segments below it are flagged, not gated); the stability's lower bound (mean - `stability_z` se) >=
    `min_stability`; where business columns exist, business separation >= `min_business_ratio` x
    the best candidate's (segments must differ in value, churn risk or service load, not only
    geometrically; without business columns, `matrix_separation` of the clustered columns stands in
    for it, in the gate and the score, and `separation_basis` says so). Each weighted metric becomes its
    percentile rank across candidates (robust to outliers; Davies-Bouldin: lower ranks higher);
    `score` is the weighted mean of the ranks. `failed_gates` names the gates a candidate failed
    (comma-separated, "" when admissible).
    """
    scored = table.copy()
    gates = {
        "<2 segments": scored["n_segments"] >= 2,
        "small segment": scored["n_small_segments"] == 0,
        "stability": scored["stability_lower"].fillna(0) >= settings.min_stability,
        "unstable small segment": scored["min_small_jaccard"].fillna(1) >= settings.min_segment_jaccard,
    }
    if scored["business_separation"].isna().all() and "matrix_separation" in scored:
        # no business columns: segments must differ in the clustered columns instead
        scored["business_separation"] = scored["matrix_separation"]
        scored["separation_basis"] = "matrix columns"
    else:
        scored["separation_basis"] = "business columns"
    best_business = scored["business_separation"].max()
    gates["business separation"] = (
        scored["business_separation"].fillna(0) >= settings.min_business_ratio * best_business
    )
    passed_by_row = zip(*(passed.to_numpy() for passed in gates.values()), strict=True)
    scored["failed_gates"] = [
        ", ".join(name for name, ok in zip(gates, row, strict=True) if not ok) for row in passed_by_row
    ]
    scored["admissible"] = scored["failed_gates"] == ""
    # every segment comes back on all the refits (fpc::clusterboot's "stable" for each cluster)
    scored["stable_choice"] = (
        scored["admissible"]
        & (scored["min_jaccard"] >= settings.min_segment_jaccard)
        & (scored["stability_refits"] >= max(settings.stability_refits, 2))
    )
    total = sum(settings.weights.values())
    scored["score"] = 0.0
    for metric, weight in settings.weights.items():
        values = scored["stability_lower" if metric == "stability" else metric].astype(float)
        ranks = (-values if metric == "davies_bouldin" else values).rank(pct=True).fillna(0.0)
        scored[f"part_{metric}"] = weight / total * ranks
        scored["score"] += scored[f"part_{metric}"]
    return scored


def select(scored: pd.DataFrame, choose: str = "auto", prefer: str = "score") -> tuple[str, str]:
    """The chosen candidate key ("algorithm:k") and why.

    auto: among the admissible candidates (every gate passed: each segment large enough, small
    ones coming back on bootstrap refits, the whole partition stable on its lower bound), with
    `prefer` "score" the highest combined score. With "more_segments", among the candidates
    scoring within `SCORE_TIE` of the best (a near tie) whose every segment comes back on all
    `clustering.stability_refits` (`stable_choice`: mean Jaccard >= `min_segment_jaccard`, as
    fpc::clusterboot reads it), the most segments (ties: the highest score): the internal indices
    favour few segments on overlapping customer data, so near the top a segment that reproduces
    is structure worth keeping. Without such a candidate, the highest score. If none is
    admissible, the best score among all, flagged. Otherwise `choose` names the candidate.
    """
    keys = scored["algorithm"] + ":" + scored["k"].astype(str)
    if choose and choose != "auto":
        if choose not in set(keys):
            raise ClusteringInputError(
                f"clustering.choose={choose!r} is not a compared candidate; e.g. {list(keys[:5])}"
            )
        return choose, "analyst override (clustering.choose)"
    admissible = scored[scored["admissible"]]
    if admissible.empty:
        best = scored["score"].idxmax()
        return keys[best], "no candidate passed the gates; best combined score taken (review!)"
    if prefer == "more_segments":
        tied = admissible["score"] >= admissible["score"].max() - SCORE_TIE
        stable = admissible[admissible["stable_choice"] & tied]
        if not stable.empty:
            most = stable[stable["n_segments"] == stable["n_segments"].max()]
            best = most["score"].idxmax()
            return keys[best], (
                "most segments among the admissible candidates within the score tie of the best whose "
                "every segment comes back on all bootstrap refits (ties: highest combined score)"
            )
    best = admissible["score"].idxmax()
    return keys[best], "highest combined score among admissible candidates"


def index_choices(table: pd.DataFrame) -> pd.DataFrame:
    """What each single criterion alone would pick: (criterion, choice, value)."""
    picks = []
    for criterion, best in (
        ("silhouette", "max"),
        ("calinski_harabasz", "max"),
        ("davies_bouldin", "min"),
        ("bic", "min"),
        ("stability", "max"),
        ("business_separation", "max"),
    ):
        values = table[criterion].dropna()
        if values.empty:
            continue
        row = table.loc[values.idxmax() if best == "max" else values.idxmin()]
        picks.append(
            {
                "criterion": criterion,
                "choice": f"{row['algorithm']}:{row['k']}",
                "value": float(row[criterion]),
            }
        )
    return pd.DataFrame(picks)


def agreement(comparison: Comparison, x: np.ndarray, reference: np.ndarray) -> pd.Series:
    """Adjusted Rand index of every candidate against `reference` labels (aligned with `x`; missing
    labels skipped) on the comparison's fit rows, indexed by "algorithm:k". For evaluation against
    a known truth (e.g. the demo world's planted segments), never for choosing."""
    rows = comparison.fit_rows[pd.notna(reference[comparison.fit_rows])]
    return pd.Series(
        {
            key: adjusted_rand_score(reference[rows], predict_labels(candidate, x[rows]))
            for key, candidate in comparison.candidates.items()
        },
        name="ari",
    )


# ----------------------------------------------------------------------------- final segmentation


def segment_order(labels: np.ndarray, k: int) -> np.ndarray:
    """Map cluster label -> segment_id 1..k, largest segment first (ties by label)."""
    counts = np.bincount(labels, minlength=k)
    order = sorted(range(k), key=lambda label: (-counts[label], label))
    mapping = np.empty(k, dtype=np.int64)
    mapping[order] = np.arange(1, k + 1)
    return mapping


def segment_all(
    candidate: Candidate, x: np.ndarray, prospects: np.ndarray, customer_ids: pd.Index
) -> pd.DataFrame:
    """Every customer exactly once: prospects -> segment 0, the rest assigned by the chosen model.

    `x` holds every customer in the clustering space (row order of `customer_ids`). Returns
    customer_id, segment_id (1 = the largest segment), distance and membership_probability.
    """
    return segment_all_with_ids(candidate, x, prospects, customer_ids)[0]


def segment_all_with_ids(
    candidate: Candidate, x: np.ndarray, prospects: np.ndarray, customer_ids: pd.Index
) -> tuple[pd.DataFrame, np.ndarray]:
    """`segment_all` and the segment_id of each of the candidate's centroid rows."""
    segment_id = np.full(len(x), PROSPECT_ID, dtype=np.int64)
    distance = np.full(len(x), np.nan)
    probability = np.ones(len(x))
    clustered = np.flatnonzero(~prospects)
    labels, distance[clustered], probability[clustered] = assign(candidate, x[clustered])
    mapping = segment_order(labels, len(candidate.centroids))
    segment_id[clustered] = mapping[labels]
    frame = pd.DataFrame(
        {
            "customer_id": customer_ids.to_numpy(),
            "segment_id": segment_id,
            "distance": distance,
            "membership_probability": probability,
        }
    )
    return frame, mapping


def segment_stability(candidate: Candidate, segment_ids: np.ndarray, min_jaccard: float) -> pd.DataFrame:
    """Per segment of `candidate` (`segment_ids`: the id of each centroid row), sorted by id: its mean
    bootstrap Jaccard over the refits (fpc::clusterboot), the standard error and `unstable` (below
    `min_jaccard`, `clustering.min_segment_jaccard`; a segment without a figure is not flagged)."""
    result = candidate.stability
    n = len(candidate.centroids)
    jaccard = np.full(n, np.nan) if result is None else result.jaccard
    jaccard_se = np.full(n, np.nan) if result is None else result.jaccard_se
    table = pd.DataFrame(
        {
            "segment_id": segment_ids,
            "jaccard": jaccard,
            "jaccard_se": jaccard_se,
            "unstable": jaccard < min_jaccard,
        }
    )
    return table.sort_values("segment_id").reset_index(drop=True)


def segment_means(values: np.ndarray, segment_id: np.ndarray, chunk: int = CHUNK) -> pd.DataFrame:
    """Column means of `values` per segment id (rows: sorted segment ids), in float64, by chunks."""
    ids, codes = np.unique(segment_id, return_inverse=True)
    sums = np.zeros((len(ids), values.shape[1]))
    for start in range(0, len(values), chunk):
        block_codes = codes[start : start + chunk]
        onehot = np.zeros((len(ids), len(block_codes)), dtype=np.float32)
        onehot[block_codes, np.arange(len(block_codes))] = 1.0
        sums += onehot @ values[start : start + chunk]
    counts = np.bincount(codes, minlength=len(ids))
    return pd.DataFrame(sums / counts[:, None], index=pd.Index(ids, name="segment_id"))


def segment_centroids(
    matrix: pd.DataFrame, segments: pd.DataFrame, space: Space, means: pd.DataFrame | None = None
) -> pd.DataFrame:
    """Centre of every clustered segment in the scaled model columns (segment_id + one column each).

    In column space rather than the run's principal components, so a later run (with its own
    components) can map its segments to these with `match_segments`. `means`: the result of
    `segment_means(matrix.to_numpy(), segments["segment_id"].to_numpy())` if already computed
    (e.g. shared with `clustering_profiles.segment_profiles`), to avoid a second pass."""
    if means is None:
        means = segment_means(matrix.to_numpy(), segments["segment_id"].to_numpy())
    means = means.drop(PROSPECT_ID, errors="ignore")
    centroids = pd.DataFrame((means.to_numpy() - space.mean) / space.sd, columns=matrix.columns)
    centroids.insert(0, "segment_id", means.index.to_numpy())
    return centroids


def match_segments(
    old_centroids: pd.DataFrame, new_centroids: pd.DataFrame, max_distance: float | None = None
) -> pd.DataFrame:
    """Map new segments to old ones by the Hungarian assignment on centroid distance.

    Both frames: `segment_id` + model-matrix columns (the `centroids` artifact); only shared
    columns are compared (missing ones count as 0, the population centre). Returns one row per
    new segment: new_segment_id, old_segment_id (<NA> when unmatched, e.g. more new segments than
    old, or farther than `max_distance`) and distance.
    """
    columns = sorted((set(old_centroids.columns) | set(new_centroids.columns)) - {"segment_id"})
    old = old_centroids.reindex(columns=columns, fill_value=0.0).to_numpy(dtype=float)
    new = new_centroids.reindex(columns=columns, fill_value=0.0).to_numpy(dtype=float)
    cost = np.sqrt(((new[:, None, :] - old[None, :, :]) ** 2).sum(axis=2))
    new_rows, old_rows = linear_sum_assignment(cost)
    matched = pd.Series(pd.NA, index=range(len(new)), dtype="Int64")
    distances = pd.Series(np.nan, index=range(len(new)))
    for n_row, o_row in zip(new_rows, old_rows, strict=True):
        if max_distance is None or cost[n_row, o_row] <= max_distance:
            matched[n_row] = int(old_centroids["segment_id"].iloc[o_row])
            distances[n_row] = cost[n_row, o_row]
    return pd.DataFrame(
        {
            "new_segment_id": new_centroids["segment_id"].to_numpy(),
            "old_segment_id": matched.to_numpy(),
            "distance": distances.to_numpy(),
        }
    )


def save_model(
    path: Path, candidate: Candidate, centroids: pd.DataFrame, space: Space, names: dict[int, str]
) -> Path:
    """Write the chosen model bundle (joblib): a later run can assign customers with it
    (`space.transform` of its model matrix, then `assign`) or map its own segments to these
    centroids with `match_segments`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    bundle = {
        "algorithm": candidate.algorithm,
        "k": candidate.k,
        "candidate": candidate,
        "centroids": centroids,
        "space": space,
        "segment_names": names,
    }
    joblib.dump(bundle, path)
    return path


def load_model(path: Path) -> dict[str, Any]:
    """Read a bundle written by `save_model`."""
    return joblib.load(path)


def dominant_columns(matrix: pd.DataFrame, rows: np.ndarray, threshold: float = 0.2) -> pd.DataFrame:
    """Model columns holding more than `threshold` of the total variance over the rows where `rows`
    is True: without standardizing they would decide every distance almost alone."""
    variance = pd.Series(column_moments(matrix.to_numpy(), rows)[1] ** 2, index=matrix.columns)
    share = variance / variance.sum()
    dominant = share[share > threshold].sort_values(ascending=False)
    return pd.DataFrame({"column": dominant.index, "variance_share": dominant.to_numpy()})
