"""The clustering algorithms step 04 compares: one registry, one entry per algorithm.

Each `Algorithm` says how it is fitted, whether it is fitted on the smaller sub-sample, whether it
finds its own number of clusters, how it assigns customers outside its fit rows and whether it is a
Gaussian mixture (BIC, posterior membership probabilities). The rest of the package reads these
specs; adding an algorithm is one entry in `REGISTRY` (and its name in the config schema's
`ClusteringAlgorithm`, `helpers.core.settings`; a test keeps the two equal).
"""

from __future__ import annotations

import copy
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from scipy.cluster.hierarchy import fcluster, ward
from sklearn.cluster import HDBSCAN, Birch, KMeans, MiniBatchKMeans
from sklearn.decomposition import PCA
from sklearn.exceptions import ConvergenceWarning
from sklearn.mixture import GaussianMixture
from sklearn.pipeline import make_pipeline

GMM_FULL_MAX_DIMS = 20  # gmm_full is fitted on at most this many principal components

# fit(x, k, seed, min_cluster_share, prepared) -> (model or None, labels of the rows of x; -1: noise)
FitFunction = Callable[[np.ndarray, int, int, float, Any], tuple[Any, np.ndarray]]


@dataclass(frozen=True)
class Algorithm:
    """How one algorithm is fitted and used.

    `prepare` (optional) computes something shared by every k on the same rows (Ward's merge tree,
    BIRCH's CF trees), passed to `fit` as `prepared` (None when fitting alone, e.g. for stability refits).
    """

    name: str
    fit: FitFunction
    small_sample: bool = False  # cost grows fast with rows (or dims): fitted on the smaller sub-sample
    finds_k: bool = False  # the number of clusters is found, not given (compared once, k ignored)
    assigns_by: Literal["predict", "nearest_centroid"] = "predict"  # new rows: model.predict or centre
    mixture: bool = False  # a Gaussian mixture: BIC and the posterior as membership probability
    prepare: Callable[[np.ndarray], Any] | None = None
    # Seconds of its comparison relative to k-means' at the default sample sizes (20k demo world):
    # the comparison's parallel jobs start with the longest.
    cost: float = 1.0


def _kmeans(x: np.ndarray, k: int, seed: int, min_share: float, prepared: Any) -> tuple[Any, np.ndarray]:
    model = KMeans(n_clusters=k, n_init=4, random_state=seed).fit(x)
    return model, model.labels_


def _minibatch_kmeans(
    x: np.ndarray, k: int, seed: int, min_share: float, prepared: Any
) -> tuple[Any, np.ndarray]:
    model = MiniBatchKMeans(n_clusters=k, n_init=3, batch_size=1024, random_state=seed).fit(x)
    return model, model.labels_


def _gmm(covariance_type: str) -> FitFunction:
    def fit(x: np.ndarray, k: int, seed: int, min_share: float, prepared: Any) -> tuple[Any, np.ndarray]:
        mixture = GaussianMixture(
            n_components=k,
            covariance_type=covariance_type,
            n_init=1,
            reg_covar=1e-3,
            max_iter=100,
            random_state=seed,
        )
        # A full covariance costs O(d^2) per component: in many dimensions, fit it on the leading
        # principal components (the pipeline predicts from the original columns).
        steps = (
            [PCA(n_components=GMM_FULL_MAX_DIMS, random_state=seed)]
            if (covariance_type == "full" and x.shape[1] > GMM_FULL_MAX_DIMS)
            else []
        )
        model = make_pipeline(*steps, mixture).fit(x)
        return model, model.predict(x)

    return fit


def _ward(x: np.ndarray, k: int, seed: int, min_share: float, prepared: Any) -> tuple[Any, np.ndarray]:
    tree = ward(x) if prepared is None else prepared
    return None, fcluster(tree, t=k, criterion="maxclust") - 1


def _birch(x: np.ndarray, k: int, seed: int, min_share: float, prepared: Any) -> tuple[Any, np.ndarray]:
    """BIRCH with a subcluster radius scaled to the data, halved once when it gives fewer than 3k
    subclusters. The CF tree depends on the radius only: `prepared` (a cache of trees by radius,
    shared by every k on the same rows) builds it once, and each k refits only the global step."""
    trees: dict[float, Birch] = {} if prepared is None else prepared
    threshold = 0.3 * float(np.sqrt(np.var(x, axis=0).sum()))
    for _ in range(2):
        if threshold not in trees:
            trees[threshold] = Birch(n_clusters=None, threshold=threshold, compute_labels=False).fit(x)
        tree = trees[threshold]
        if len(tree.subcluster_centers_) >= 3 * k:
            break
        threshold /= 2
    model = copy.copy(tree)  # the tree is shared, read only; the global step sets its own labels
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.set_params(n_clusters=k).partial_fit()
    return model, model.predict(x)


def _hdbscan(x: np.ndarray, k: int, seed: int, min_share: float, prepared: Any) -> tuple[Any, np.ndarray]:
    model = HDBSCAN(min_cluster_size=max(10, int(min_share * len(x))), min_samples=10, copy=True)
    labels = model.fit(x).labels_
    if labels.max() < 0:  # everything noise: one cluster
        labels = np.zeros(len(x), dtype=int)
    return model, labels


_SPECS = (
    Algorithm("kmeans", _kmeans),
    Algorithm("minibatch_kmeans", _minibatch_kmeans),
    Algorithm("gmm_diag", _gmm("diag"), mixture=True, cost=1.2),
    Algorithm("gmm_full", _gmm("full"), mixture=True, cost=3.8),
    Algorithm("ward", _ward, small_sample=True, assigns_by="nearest_centroid", prepare=ward, cost=1.1),
    Algorithm("birch", _birch, small_sample=True, prepare=lambda x: {}, cost=2.0),
    Algorithm("hdbscan", _hdbscan, small_sample=True, finds_k=True, assigns_by="nearest_centroid", cost=0.5),
)
# The order is part of the results: it is the comparison order and seeds the stability resamples.
REGISTRY: dict[str, Algorithm] = {spec.name: spec for spec in _SPECS}
