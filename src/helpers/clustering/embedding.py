"""The 2-D UMAP map of step 04 (a picture, not evidence): customers placed on a plane.

UMAP compiles numba code on first use in a process (10-15 s). The compiled code is cached on
disk in `outputs/.numba_cache` (NUMBA_CACHE_DIR, set before umap is imported), so later runs and
kernels reuse it. umap is imported only when an embedding is made.
"""

from __future__ import annotations

import os
import time

import numpy as np
from sklearn.decomposition import PCA

from helpers.core.paths import OUTPUTS_DIR

NUMBA_CACHE = OUTPUTS_DIR / ".numba_cache"
UMAP_MAX_DIMS = 20  # UMAP runs on at most this many principal components


def umap_embedding(
    x: np.ndarray, fit_size: int, max_points: int, seed: int
) -> tuple[np.ndarray, np.ndarray, dict]:
    """2-D UMAP: fitted on `fit_size` random rows, other rows (up to `max_points` in total) transformed.

    Wide matrices are first projected on their leading `UMAP_MAX_DIMS` principal components.

    Returns the row positions shown, their coordinates and timings (import incl. numba cache
    load, fit, transform) in seconds.
    """
    os.environ.setdefault("NUMBA_CACHE_DIR", str(NUMBA_CACHE))
    NUMBA_CACHE.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    import umap

    timings = {"import": time.perf_counter() - started}
    rng = np.random.default_rng(seed)
    shown = np.sort(rng.choice(len(x), size=min(max_points, len(x)), replace=False))
    fit_rows = shown[np.sort(rng.choice(len(shown), size=min(fit_size, len(shown)), replace=False))]
    rest = np.setdiff1d(shown, fit_rows)
    started = time.perf_counter()
    if x.shape[1] > UMAP_MAX_DIMS:  # neighbour search on the leading components: much faster, same picture
        x = PCA(n_components=UMAP_MAX_DIMS, random_state=seed).fit(x[fit_rows]).transform(x)
    reducer = umap.UMAP(
        n_components=2, n_neighbors=15, min_dist=0.1, n_epochs=150, random_state=seed, n_jobs=1
    ).fit(x[fit_rows])
    timings["fit"] = time.perf_counter() - started
    started = time.perf_counter()
    coordinates = np.empty((len(shown), 2))
    position = np.searchsorted(shown, fit_rows)
    coordinates[position] = reducer.embedding_
    if len(rest):
        coordinates[np.searchsorted(shown, rest)] = reducer.transform(x[rest])
    timings["transform"] = time.perf_counter() - started
    return shown, coordinates, timings
