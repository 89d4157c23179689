"""A mixed-type latent class model for raw customer matrices: each column modelled by the family of
its data kind, k chosen by ICL (a candidate of `compare_segmentations` on raw matrices).

Within a segment the columns are independent, each with the family of its kind (`column_kinds`):
two-valued columns Bernoulli, one-hot groups (binary columns sharing a name prefix before the last
"=" or "_", exactly one set per row) categorical, non-negative integer counts negative binomial
(dispersion by the method of moments), rates (non-negative, at least `RATE_ZERO_SHARE` zeros) a
hurdle (a zero share, then a Gaussian on the transformed positive values; a rate that is zero
wherever a count column is zero is undefined there, e.g. complaints per call without calls) and
everything else Gaussian with a per-segment variance, after a logit for shares in [0, 1] and a log
for right-skewed positive columns. EM starts from k-means++ draws and, for k > the smallest, from
every segment of the k - 1 fit split in two along its main axis (a small segment merged into a
large one is found by the split); the best start after `SHORT_ITERATIONS` runs to convergence.
ICL (BIC plus twice the classification entropy) chooses k: BIC keeps adding segments to absorb
small departures from the families, ICL does not split overlapping ones.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.special import gammaln, logsumexp
from sklearn.cluster import kmeans_plusplus

RATE_ZERO_SHARE = 0.05  # a non-negative continuous column with at least this share of zeros is a rate
SKEW_LOG = 1.0  # positive columns more right-skewed than this are log-transformed
SHARE_CLIP = 0.002  # shares are clipped to [SHARE_CLIP, 1 - SHARE_CLIP] before the logit
VARIANCE_FLOOR = 1e-3  # added to every Gaussian variance (columns are standardized)
SHORT_ITERATIONS = 20  # EM iterations of every start before the best one is run to convergence
MAX_ITERATIONS = 300
TOLERANCE = 1e-6  # relative log-likelihood change that ends EM


@dataclass(frozen=True)
class MixedData:
    """The columns of a raw matrix grouped by family, transformed for their family."""

    gaussian: np.ndarray  # rows x continuous columns (standardized after logit / log)
    binary: np.ndarray  # rows x two-valued columns (0 / 1)
    groups: list[list[int]]  # positions in `binary` of each one-hot group (categorical)
    single: list[int]  # positions in `binary` modelled as independent Bernoulli
    counts: np.ndarray  # rows x count columns, shifted to start at 0
    rate_zero: np.ndarray  # rows x rate columns: 1 where the rate is zero
    rate_value: np.ndarray  # rows x rate columns: transformed, standardized positive values
    rate_defined: np.ndarray  # rows x rate columns: 0 where the rate is undefined (its count is zero)
    start_space: np.ndarray  # rows in a scaled space for the k-means++ starts
    kinds: dict[str, str]

    def rows(self, positions: np.ndarray) -> MixedData:
        """The same data restricted to `positions`."""
        return MixedData(
            self.gaussian[positions], self.binary[positions], self.groups, self.single,
            self.counts[positions], self.rate_zero[positions], self.rate_value[positions],
            self.rate_defined[positions], self.start_space[positions], self.kinds,
        )  # fmt: skip

    def n_parameters(self, k: int) -> int:
        per_segment = (
            2 * self.gaussian.shape[1]
            + len(self.single)
            + sum(len(group) - 1 for group in self.groups)
            + 2 * self.counts.shape[1]
            + 3 * self.rate_zero.shape[1]
        )
        return k * per_segment + k - 1


def _skewness(values: np.ndarray) -> float:
    centred = values - values.mean()
    sd = centred.std()
    return float((centred**3).mean() / sd**3) if sd > 0 else 0.0


def _transformed(values: np.ndarray) -> np.ndarray:
    """Logit for shares in [0, 1], log for right-skewed positive values, else as is."""
    if values.min() >= 0 and values.max() <= 1:
        clipped = np.clip(values, SHARE_CLIP, 1 - SHARE_CLIP)
        return np.log(clipped / (1 - clipped))
    positive = values[values > 0]
    if values.min() >= 0 and len(positive) and _skewness(positive) > SKEW_LOG:
        return np.log(np.maximum(values, positive.min()))
    return values


def _standardized(values: np.ndarray, rows: np.ndarray | None = None) -> np.ndarray:
    reference = values if rows is None else values[rows]
    sd = reference.std()
    return (values - reference.mean()) / (sd if sd > 0 else 1.0)


def column_kinds(matrix: pd.DataFrame) -> dict[str, str]:
    """binary, count, rate or continuous for every column (see the module docstring)."""
    kinds = {}
    for column in matrix.columns:
        values = matrix[column].to_numpy(dtype=float)
        if len(np.unique(values)) <= 2:
            kinds[column] = "binary"
        elif values.min() >= 0 and np.all(values == np.round(values)):
            kinds[column] = "count"
        elif values.min() >= 0 and (values == 0).mean() >= RATE_ZERO_SHARE:
            kinds[column] = "rate"
        else:
            kinds[column] = "continuous"
    return kinds


def one_hot_groups(binary: pd.DataFrame) -> list[list[int]]:
    """Positions of the binary columns forming one-hot groups: two or more columns sharing the name
    prefix before the last "=" or "_" with exactly one of them set in every row."""
    prefixes: dict[str, list[int]] = {}
    for position, column in enumerate(binary.columns):
        name = str(column)
        separator = next((s for s in ("=", "_") if s in name), None)
        if separator:
            prefixes.setdefault(name.rsplit(separator, 1)[0], []).append(position)
    values = binary.to_numpy()
    return [
        group for group in prefixes.values() if len(group) > 1 and np.all(values[:, group].sum(axis=1) == 1)
    ]


def mixed_data(matrix: pd.DataFrame) -> MixedData:
    """`matrix` (numeric, finite) grouped by column kind and transformed for each family."""
    kinds = column_kinds(matrix)

    def of_kind(kind: str) -> list[str]:
        return [column for column, found in kinds.items() if found == kind]

    n = len(matrix)
    gaussian = np.column_stack(
        [_standardized(_transformed(matrix[c].to_numpy(dtype=float))) for c in of_kind("continuous")]
        or [np.zeros((n, 0))]
    )
    binary_frame = matrix[of_kind("binary")]
    binary = (binary_frame == binary_frame.max()).to_numpy(dtype=float)
    groups = one_hot_groups(binary_frame)
    grouped = {position for group in groups for position in group}
    count_columns = of_kind("count")
    counts = np.column_stack(
        [matrix[c].to_numpy(dtype=float) - matrix[c].min() for c in count_columns] or [np.zeros((n, 0))]
    )
    rates = of_kind("rate")
    rate_zero = np.column_stack([matrix[c].to_numpy() == 0 for c in rates] or [np.zeros((n, 0))]).astype(
        float
    )
    rate_defined = np.ones_like(rate_zero)
    rate_value = np.zeros_like(rate_zero)
    for j, column in enumerate(rates):
        for position in range(counts.shape[1]):
            without = counts[:, position] == 0
            if without.any() and np.all(rate_zero[without, j] == 1):
                rate_defined[without, j] = 0.0  # e.g. complaints per call of a customer without calls
        positive = rate_zero[:, j] == 0
        rate_value[:, j] = _standardized(_transformed(matrix[column].to_numpy(dtype=float)), positive)
    log_counts = np.log1p(counts)
    start_space = np.column_stack(
        [
            gaussian,
            log_counts / np.maximum(log_counts.std(axis=0), 1e-9),
            0.5 * binary,
            rate_value * (1 - rate_zero),
        ]
    )
    single = [position for position in range(binary.shape[1]) if position not in grouped]
    return MixedData(
        gaussian, binary, groups, single, counts, rate_zero, rate_value, rate_defined, start_space, kinds
    )


@dataclass
class LatentClassFit:
    """One fitted model: its parameters, responsibilities of its rows and the criteria."""

    k: int
    parameters: dict[str, np.ndarray]
    responsibilities: np.ndarray
    log_likelihood: float
    bic: float
    icl: float

    @property
    def labels(self) -> np.ndarray:
        return self.responsibilities.argmax(axis=1)


def _gaussian_log_density(
    values: np.ndarray, weights: np.ndarray, mean: np.ndarray, variance: np.ndarray
) -> np.ndarray:
    """Sum over columns of weights x the Gaussian log density (rows x components)."""
    precision = 1 / variance
    return -0.5 * (
        (weights * values**2) @ precision.T
        - 2 * (weights * values) @ (mean * precision).T
        + weights @ (mean**2 * precision + np.log(2 * np.pi * variance)).T
    )


def log_densities(data: MixedData, parameters: dict[str, np.ndarray]) -> np.ndarray:
    """log(weight) + log density of every row under every component (rows x components)."""
    log_weight = np.log(parameters["weight"])
    result = np.tile(log_weight, (len(data.gaussian), 1))
    result += _gaussian_log_density(
        data.gaussian, np.ones_like(data.gaussian), parameters["mean"], parameters["variance"]
    )
    p = parameters["bernoulli"]
    single = data.single
    result += (
        data.binary[:, single] @ np.log(p[:, single]).T
        + (1 - data.binary[:, single]) @ np.log(1 - p[:, single]).T
    )
    for group in data.groups:
        result += data.binary[:, group] @ np.log(p[:, group] / p[:, group].sum(axis=1, keepdims=True)).T
    mean, size = parameters["count_mean"], parameters["count_size"]
    for j in range(data.counts.shape[1]):
        c = data.counts[:, j : j + 1]
        result += (
            gammaln(c + size[:, j]) - gammaln(size[:, j]) - gammaln(c + 1)
            + size[:, j] * np.log(size[:, j] / (size[:, j] + mean[:, j]))
            + c * np.log(mean[:, j] / (size[:, j] + mean[:, j]))
        )  # fmt: skip
    zero = parameters["rate_zero"]
    defined = data.rate_defined
    result += (defined * data.rate_zero) @ np.log(zero).T + (defined * (1 - data.rate_zero)) @ np.log(
        1 - zero
    ).T
    result += _gaussian_log_density(
        data.rate_value, defined * (1 - data.rate_zero), parameters["rate_mean"], parameters["rate_variance"]
    )
    return result


def _weighted_moments(
    values: np.ndarray, weights: np.ndarray, responsibilities: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    total = responsibilities.T @ weights + 1e-10
    mean = responsibilities.T @ (weights * values) / total
    variance = np.maximum(responsibilities.T @ (weights * values**2) / total - mean**2, 0) + VARIANCE_FLOOR
    return mean, variance


def m_step(data: MixedData, responsibilities: np.ndarray) -> dict[str, np.ndarray]:
    """Parameters maximizing the expected log-likelihood (negative binomial size by moments)."""
    r = responsibilities
    mass = r.sum(axis=0) + 1e-10
    mean, variance = _weighted_moments(data.gaussian, np.ones_like(data.gaussian), r)
    count_mean = np.maximum(r.T @ data.counts / mass[:, None], 1e-3)
    count_variance = r.T @ data.counts**2 / mass[:, None] - count_mean**2
    defined = data.rate_defined
    rate_mean, rate_variance = _weighted_moments(data.rate_value, defined * (1 - data.rate_zero), r)
    return {
        "weight": mass / mass.sum(),
        "mean": mean,
        "variance": variance,
        "bernoulli": np.clip((r.T @ data.binary + 0.5) / (mass[:, None] + 1), 1e-4, 1 - 1e-4),
        "count_mean": count_mean,
        "count_size": np.clip(count_mean**2 / np.maximum(count_variance - count_mean, 1e-3), 0.1, 1e3),
        "rate_zero": np.clip((r.T @ (defined * data.rate_zero) + 0.5) / (r.T @ defined + 1), 1e-4, 1 - 1e-4),
        "rate_mean": rate_mean,
        "rate_variance": rate_variance,
    }


def _em(
    data: MixedData, responsibilities: np.ndarray, iterations: int, tolerance: float
) -> tuple[float, np.ndarray, dict[str, np.ndarray]]:
    previous = -np.inf
    for _ in range(iterations):
        parameters = m_step(data, responsibilities)
        densities = log_densities(data, parameters)
        per_row = logsumexp(densities, axis=1)
        log_likelihood = float(per_row.sum())
        responsibilities = np.exp(densities - per_row[:, None])
        if log_likelihood - previous < tolerance * abs(log_likelihood):
            break
        previous = log_likelihood
    return log_likelihood, responsibilities, parameters


def _split_starts(data: MixedData, responsibilities: np.ndarray) -> list[np.ndarray]:
    """One start per component (with 10+ rows): its rows split in two along their main axis."""
    hard = responsibilities.argmax(axis=1)
    starts = []
    for component in range(responsibilities.shape[1]):
        members = np.flatnonzero(hard == component)
        if len(members) < 10:
            continue
        centred = data.start_space[members] - data.start_space[members].mean(axis=0)
        axis = np.linalg.svd(centred, full_matrices=False)[2][0]
        moved = members[centred @ axis > 0]
        start = np.hstack([responsibilities, np.zeros((len(responsibilities), 1))])
        start[moved, -1] = start[moved, component]
        start[moved, component] = 0.0
        starts.append(start)
    return starts


def fit_path(data: MixedData, ks: list[int], seed: int, random_starts: int = 3) -> dict[int, LatentClassFit]:
    """Fit every k of `ks` (consecutive, increasing): `random_starts` k-means++ starts, and for each
    k after the first the splits of the previous fit; the best after `SHORT_ITERATIONS` converges."""
    rng = np.random.default_rng(seed)
    n = len(data.gaussian)
    fits: dict[int, LatentClassFit] = {}
    previous: np.ndarray | None = None
    for k in ks:
        starts = []
        for _ in range(random_starts):
            centres, _ = kmeans_plusplus(data.start_space, k, random_state=int(rng.integers(2**31)))
            distances = ((data.start_space[:, None, :] - centres[None]) ** 2).sum(axis=2)
            starts.append(np.eye(k)[distances.argmin(axis=1)])
        if previous is not None:
            starts += _split_starts(data, previous)
        short = [_em(data, start, SHORT_ITERATIONS, 0.0) for start in starts]
        best_start = max(short, key=lambda result: result[0])[1]
        log_likelihood, responsibilities, parameters = _em(data, best_start, MAX_ITERATIONS, TOLERANCE)
        bic = -2 * log_likelihood + data.n_parameters(k) * np.log(n)
        entropy = float(-(responsibilities * np.log(np.maximum(responsibilities, 1e-300))).sum())
        fits[k] = LatentClassFit(k, parameters, responsibilities, log_likelihood, bic, bic + 2 * entropy)
        previous = responsibilities
    return fits


def predict(data: MixedData, fit: LatentClassFit) -> np.ndarray:
    """The most probable segment of every row of `data` under `fit`."""
    return log_densities(data, fit.parameters).argmax(axis=1)


def best_by_icl(fits: dict[int, LatentClassFit]) -> LatentClassFit:
    """The fit with the lowest ICL."""
    return min(fits.values(), key=lambda fit: fit.icl)
