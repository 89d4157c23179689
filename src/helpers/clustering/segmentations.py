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

A raw matrix also gets the mixed-type latent class model (`helpers.clustering.latent_class`) as a
candidate, `latent_class:k`: fitted on the comparison's fit rows of the screened raw columns (each
column modelled by its own family), k by ICL, scored like the others in the common space, its
stability from bootstrap refits of the model by its own path, k_min up to k (the estimator the fit
is: a refit at k - 1 and k alone lost a 2 % segment in 5 of 10 refits of a planted matrix, each at a
lower likelihood than EM started from the fit's own segments reaches on the same resample, so it
measured the shortcut's optimizer, not the data). It is chosen when it passes every gate and every
segment comes back on all refits: a model of the columns as they are, with k by a likelihood
criterion, rather than the geometric indices of a transformed space, which favour few segments on
skewed data (measured in `benchmarks/bench_clustering.py --planted`). Step 04 does not fit it: its
input is step 03's model matrix, already log-transformed, winsorized and z-scored, with the counts,
rates and one-hot groups the families need no longer raw; and on 6,000 fit rows (step 04's default
sample) of the 16 planted columns its path and refits take most of the ~27 s wall (36 CPU s) of
`compare_segmentations`, the seven other algorithms ~7 s together, while step 04 at 20k has ~2 s to
spare.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

import numpy as np
import pandas as pd
from sklearn.decomposition import PCA
from sklearn.metrics import adjusted_rand_score

import helpers.clustering.candidates as cl
import helpers.clustering.latent_class as lc
from helpers.clustering.workers import run_jobs

SKEW_LOG = 1.0  # non-negative columns more skewed than this are log1p-transformed
BINARY_WEIGHT = 0.5  # sd of a two-valued column after scaling (continuous columns: 1)
# A column whose largest absolute rank correlation with any other column is below this is noise:
# segments show in several columns at once (a segment that spends more also orders more, is older,
# ...), so a column unrelated to every other one does not describe them. Noise columns reach ~0.03
# at 10,000 rows; the weakest real column of the planted skewed matrices 0.2.
NOISE_CORRELATION = 0.1
NOISE_SCREEN_ROWS = 50_000  # the rank correlations are computed on at most this many rows
T = TypeVar("T")
LATENT_CLASS = "latent_class"  # the latent class candidate's algorithm name in the comparison table
# The latent class model's bootstrap refits use at least this many reference rows: a 2 % segment
# needs ~60 rows to be refitted as a segment of its own (at 1,000 rows its Jaccard is ~0.5).
LATENT_CLASS_STABILITY_ROWS = 3_000


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
    latent_class: LatentClassCandidate | None = None  # raw matrices only (`latent_class_candidate`)

    @property
    def k(self) -> int:
        return int(self.chosen.split(":")[1])

    @property
    def segment_stability(self) -> pd.DataFrame:
        """Per chosen segment (`labels` numbering): share, mean bootstrap Jaccard, its se, unstable flag."""
        if self.latent_class is not None and self.chosen == self.latent_class.key:
            candidate = self.latent_class.candidate
        else:
            candidate = self.comparison.candidates[self.chosen]
        table = cl.segment_stability(candidate, self.segment_of_centroid, self.min_segment_jaccard)
        shares = np.bincount(self.labels, minlength=len(table)) / len(self.labels)
        table.insert(1, "share", shares[table["segment_id"].to_numpy()])
        return table


@dataclass
class LatentClassCandidate:
    """The latent class model's candidate: its ICL choice, the labels of every row and the
    comparison-table row (`candidate`: centroids in the common space, stability, for the table)."""

    fit: lc.LatentClassFit
    labels: np.ndarray  # most probable segment of every row of the matrix
    candidate: cl.Candidate
    row: dict[str, object]

    @property
    def key(self) -> str:
        return f"{LATENT_CLASS}:{self.fit.k}"


def latent_class_stability(
    data: lc.MixedData, fit: lc.LatentClassFit, settings: cl.ClusteringSettings
) -> cl.Stability:
    """Bootstrap stability of `fit` (fpc::clusterboot, as `candidates.bootstrap_stability`): the model
    refitted by the same method as `fit`, its path from `settings.k_min` up to k (`lc.fit_path`), on
    `settings.stability_refits` resamples of a reference sample of `data`'s rows
    (`settings.stability_sample_size`, at least `LATENT_CLASS_STABILITY_ROWS`), each refit compared
    with `fit`'s labels on the resampled rows."""
    k, refits = fit.k, settings.stability_refits
    base = settings.seed + 1000 * k + len(cl.ALGORITHMS)
    rng = np.random.default_rng(base)
    size = min(max(settings.stability_sample_size, LATENT_CLASS_STABILITY_ROWS), len(data.gaussian))
    reference = data.rows(np.sort(rng.choice(len(data.gaussian), size=size, replace=False)))
    own = lc.predict(reference, fit)
    aris, jaccards = [], []
    for refit in range(refits):
        resample = np.random.default_rng([base, refit]).choice(size, size=size, replace=True)
        ks = list(range(settings.k_min, k + 1))
        refitted = lc.fit_path(reference.rows(resample), ks, settings.seed + 7919 * (refit + 1))[k]
        inside = np.unique(resample)
        new = lc.predict(reference.rows(inside), refitted)
        aris.append(adjusted_rand_score(own[inside], new))
        jaccards.append(cl.best_jaccard(own[inside], new, k))
    return cl.summarize_stability(
        np.array(aris), np.array(jaccards).reshape(len(aris), k), settings.stability_z
    )


def latent_class_candidate(
    raw: pd.DataFrame,
    x: np.ndarray,
    business: pd.DataFrame,
    fit_rows: np.ndarray,
    settings: cl.ClusteringSettings,
) -> LatentClassCandidate:
    """The latent class model on the raw columns `raw` (every k of `settings.ks` on `fit_rows`, the
    lowest ICL chosen), its bootstrap stability and its comparison-table row, scored as the other
    candidates on the same fit rows of `x` (the common space) and `business` (aligned with `x`)."""
    started = time.perf_counter()
    data = lc.mixed_data(raw)
    fit = lc.best_by_icl(lc.fit_path(data.rows(fit_rows), settings.ks, settings.seed))
    labels = lc.predict(data, fit)
    x_fit, own = x[fit_rows], labels[fit_rows]
    kept = np.unique(own)  # a component that owns no fit row has no centroid
    centroids = np.stack([x_fit[own == label].mean(axis=0) for label in kept])
    label_map = np.full(fit.k, -1)
    label_map[kept] = np.arange(len(kept))
    fit_labels = label_map[own]
    candidate = cl.Candidate(
        LATENT_CLASS, fit.k, fit, centroids, fit_labels, 0.0, label_map,
        float(((x_fit - centroids[fit_labels]) ** 2).mean()),
    )  # fmt: skip
    candidate.shares = np.bincount(fit_labels, minlength=len(kept)) / len(fit_rows)
    stability = latent_class_stability(data.rows(fit_rows), fit, settings)
    candidate.stability = dataclasses.replace(
        stability, jaccard=stability.jaccard[kept], jaccard_se=stability.jaccard_se[kept],
        jaccards=stability.jaccards[:, kept],
    )  # fmt: skip
    business_fit = business.iloc[fit_rows].reset_index(drop=True)
    score_rows = cl.sample_rows(len(fit_rows), settings.score_sample_size, settings.seed + 2)
    row = {"algorithm": LATENT_CLASS, "k": fit.k, "n_segments": len(kept)}
    row |= cl.partition_scores(fit_labels, x_fit, business_fit, settings, score_rows)
    candidate.fit_seconds = time.perf_counter() - started
    row |= {"fit_seconds": candidate.fit_seconds, "fit_rows": len(fit_rows)}
    row |= cl.stability_columns(candidate, settings)
    candidate.labels = None
    return LatentClassCandidate(fit, labels, candidate, row)


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
    latent_class: bool = True,
) -> SegmentationComparison:
    """Compare every candidate (algorithm x k) on any numeric matrix and choose one, as step 04 does.

    `matrix`: one row per customer, numeric columns (a DataFrame or an array). `business`: optional
    columns aligned with the rows that measure value, churn risk and service load
    (`candidates.BUSINESS_AREAS` names, e.g. monetary_total, recency_days, n_calls); when absent,
    those found among the matrix's own columns are used, and with none the business gate and
    score are left out. `transform`: False when the matrix is already scaled (e.g. step 03's model
    matrix); then only the principal components are applied. With `transform`, `noise_columns` are
    left out first (`screen_noise`: False keeps every column), and with `latent_class` the latent
    class model is a candidate too (see the module docstring; fitted while the others are, in the
    second process). Returns the chosen labels for every row (0 = the largest segment), the
    comparison table with the selection columns and the reasons.
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
    latent = None
    if transform and latent_class:
        # the longest job first: here; the comparison in the worker process (its own jobs in order)
        raw = frame.drop(columns=noise)
        fit_rows = cl.sample_rows(len(x), settings.sample_size, settings.seed)
        k_max, _ = cl.supported_k_max(len(x), settings)
        latent_settings = settings.model_copy(update={"k_max": k_max})
        jobs = [
            (latent_class_candidate, (raw, x, business, fit_rows, latent_settings)),
            (cl.compare, (x, business, settings)),
        ]
        (latent, _), (comparison, _) = run_jobs(_call, jobs, settings.threads)
        comparison.table = pd.concat([comparison.table, pd.DataFrame([latent.row])], ignore_index=True)
        comparison.seconds[LATENT_CLASS] = latent.candidate.fit_seconds
    else:
        comparison = cl.compare(x, business, settings)
    table = cl.combined_scores(comparison.table, settings)
    chosen, reason = cl.select(table, settings.choose, settings.prefer)
    if latent is not None:
        chosen, reason = prefer_latent_class(table, latent.key, chosen, reason, settings.choose)
    if latent is not None and chosen == latent.key:
        labels = latent.candidate.label_map[latent.labels]
        orphans = labels < 0
        labels[orphans] = cl.nearest_centroid(x[orphans], latent.candidate.centroids)[0]
        n_centroids = len(latent.candidate.centroids)
    else:
        candidate = comparison.candidates[chosen]
        labels = cl.predict_labels(candidate, x)
        n_centroids = len(candidate.centroids)
    order = cl.segment_order(labels, n_centroids) - 1
    return SegmentationComparison(
        order[labels],
        table,
        chosen,
        reason,
        comparison,
        x,
        order,
        settings.min_segment_jaccard,
        noise,
        latent,
    )


def _call(function: Callable[..., T], arguments: tuple[object, ...]) -> T:
    """`function(*arguments)`: one job of `run_jobs` that may be any function."""
    return function(*arguments)


def prefer_latent_class(
    table: pd.DataFrame, key: str, chosen: str, reason: str, choose: str = "auto"
) -> tuple[str, str]:
    """The latent class candidate `key` instead of the automatic choice when its row of `table`
    (scored by `candidates.combined_scores`) passes every gate and every segment comes back on all
    refits (`stable_choice`); an analyst's `choose` stands."""
    if choose and choose != "auto":
        return chosen, reason
    keys = table["algorithm"] + ":" + table["k"].astype(str)
    row = table[keys == key].iloc[0]
    if row["admissible"] and row["stable_choice"]:
        return key, (
            "the latent class model of the raw columns (k by ICL) passes every gate and every segment "
            "comes back on all bootstrap refits"
        )
    return chosen, reason
