"""The 2-D map of step 04 (a picture, not evidence): customers placed on a plane.

The plane is the first two principal components of the clustering space, fitted on `fit_size`
random clustered customers; up to `max_points` customers are shown. No numba and no compile: on the
20k demo the map takes well under a second where UMAP took ~35 s warm (fit 17 s + transform 17 s)
and ~70 s with a cold numba cache; t-SNE on a 3,000 sample took 6 s alone but 23 s inside the
step on the shared machine. Measured on that world (3,000 shown points): neighbourhood
trustworthiness (15 neighbours) PCA 0.84, UMAP 0.98, t-SNE 0.99; segment silhouette in the plane
PCA 0.31, UMAP 0.49-0.56 (0.26 in the clustering space). What the picture loses against UMAP:
segments that are apart only in later components overlap on the plane, and local neighbourhoods are
less faithful; what it keeps: a linear view of the same space the segments were fitted in (no
invented gaps or cluster shapes).
"""

from __future__ import annotations

import time

import numpy as np
from sklearn.decomposition import PCA

MAP_METHOD = "pca"


def map_embedding(
    x: np.ndarray, fit_size: int, max_points: int, seed: int
) -> tuple[np.ndarray, np.ndarray, dict]:
    """2-D PCA of `x`: fitted on `fit_size` random rows of those shown (at most `max_points`).

    Returns the row positions shown, their coordinates and timings in seconds (`import`: 0, no
    library to load; `fit`: the projection on the sample; `transform`: projecting the shown rows).
    """
    timings = {"import": 0.0}
    rng = np.random.default_rng(seed)
    shown = np.sort(rng.choice(len(x), size=min(max_points, len(x)), replace=False))
    fit_rows = shown[np.sort(rng.choice(len(shown), size=min(fit_size, len(shown)), replace=False))]
    started = time.perf_counter()
    projection = PCA(n_components=min(2, x.shape[1]), random_state=seed).fit(x[fit_rows])
    timings["fit"] = time.perf_counter() - started
    started = time.perf_counter()
    coordinates = np.zeros((len(shown), 2))
    coordinates[:, : projection.n_components_] = projection.transform(x[shown])
    timings["transform"] = time.perf_counter() - started
    return shown, coordinates, timings
