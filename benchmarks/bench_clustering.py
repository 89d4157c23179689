"""Benchmark of step 04 at scale: the full comparison (all candidates, k sweep, stability), the
assignment of every customer, profiles and the UMAP map on a sample, on the synthetic skewed world.

    .venv/bin/python benchmarks/bench_clustering.py 100000 1000000

Prints wall time and peak memory (max RSS of the process: run one size per process for a clean
figure), seconds per candidate algorithm, UMAP timings (import incl. numba cache load, fit,
transform) and the ARI of the chosen segmentation against the planted segments (buyers only;
prospects are segment 0).
"""

from __future__ import annotations

import argparse
import resource
import time

from sklearn.metrics import adjusted_rand_score

from helpers import clustering, clustering_plots, clustering_profiles
from helpers.clustering_synth import make_world


def peak_rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2


def run(n_customers: int, settings: clustering.ClusteringSettings) -> None:
    started = time.perf_counter()
    world = make_world(n_customers, seed=1)
    generated = time.perf_counter()
    matrix = clustering.validate_model_matrix(world.model_matrix)
    prospects = clustering.prospect_mask(world.features, matrix.index)
    clustered = ~prospects
    scaled, _ = clustering.scale_columns(matrix, clustered, settings.column_scaling)
    business = world.features.set_index("customer_id").reindex(matrix.index).reset_index()
    comparison = clustering.compare(
        scaled.to_numpy()[clustered], business[clustered].reset_index(drop=True), settings
    )
    scored = clustering.combined_scores(comparison.table, settings)
    chosen, _ = clustering.select(scored, settings.choose)
    compared = time.perf_counter()
    segments, _ = clustering.segment_all(comparison.candidates[chosen], scaled, prospects)
    assigned = time.perf_counter()
    profiles = clustering_profiles.segment_profiles(
        segments, matrix, world.features, world.feature_dictionary
    )
    profiled = time.perf_counter()
    _, _, umap_seconds = clustering_plots.umap_embedding(
        scaled.to_numpy()[clustered], settings.umap_fit_size, settings.umap_max_points, settings.seed
    )
    finished = time.perf_counter()
    truth = world.truth.set_index("customer_id")["segment"].reindex(matrix.index).to_numpy()
    ari = adjusted_rand_score(truth[clustered], segments["segment_id"].to_numpy()[clustered])
    alone = clustering.index_choices(scored)
    print(f"\n== {n_customers:,} customers x {matrix.shape[1]} columns ({clustered.sum():,} clustered)")
    print(f"chosen {chosen} ({len(profiles)} segments incl. prospects), ARI vs planted {ari:.3f}")
    print("each criterion alone:", dict(zip(alone["criterion"], alone["choice"], strict=True)))
    print(f"generate world   {generated - started:7.1f} s (not part of the step)")
    print(
        f"compare          {compared - generated:7.1f} s  "
        + ", ".join(f"{name} {seconds:.1f}" for name, seconds in comparison.seconds.items())
    )
    print(f"assign everyone  {assigned - compared:7.1f} s")
    print(f"profiles         {profiled - assigned:7.1f} s")
    print(
        f"UMAP             {finished - profiled:7.1f} s  "
        + ", ".join(f"{name} {seconds:.1f}" for name, seconds in umap_seconds.items())
    )
    print(f"step total       {finished - generated:7.1f} s   peak RSS {peak_rss_gb():.2f} GB")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("sizes", nargs="*", type=int, default=[100_000, 1_000_000])
    arguments = parser.parse_args()
    settings = clustering.ClusteringSettings()
    print(
        f"settings: sample {settings.sample_size}, small sample {settings.small_sample_size}, "
        f"k {settings.k_min}..{settings.k_max}, {settings.stability_refits} stability refits, "
        f"UMAP fit {settings.umap_fit_size} / shown {settings.umap_max_points}, threads {settings.threads}"
    )
    for size in arguments.sizes:
        run(size, settings)


if __name__ == "__main__":
    main()
