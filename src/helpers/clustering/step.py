"""Step 04 end to end: `run_step(ctx)` compares the candidates, chooses, segments every customer,
profiles and names the segments, writes the step's artifacts and records its values.

Reads `03_features/{model_matrix, feature_dictionary, features}`; writes `segments`,
`segment_profiles`, `comparison`, `centroids`, `scaling` and `models/chosen.joblib`. The notebook
shows the returned `ClusteringResult`; figures are made from it (`helpers.clustering.plots`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

import helpers.clustering.candidates as cl
import helpers.clustering.profiles as cp
from helpers.clustering.embedding import MAP_METHOD, map_embedding
from helpers.core.config import resolve_path
from helpers.core.context import StepContext
from helpers.features import matrix as feature_matrix

SEGMENT_COLUMNS = ["customer_id", "segment_id", "segment_name", "distance", "membership_probability"]


@dataclass
class SegmentMap:
    """The map's points (2-D PCA, `helpers.clustering.embedding`): `rows` (positions among all
    customers), their 2-D coordinates and the seconds spent (import, fit on the sample, transform)."""

    rows: np.ndarray
    coordinates: np.ndarray
    seconds: dict[str, float]


@dataclass
class ClusteringResult:
    """Everything step 04 computed, for the notebook to show."""

    settings: cl.ClusteringSettings
    matrix: pd.DataFrame  # model columns (float32) indexed by customer_id
    features: pd.DataFrame  # the step-03 feature columns step 04 reads
    dictionary: pd.DataFrame
    prospects: np.ndarray  # True: segment 0, not clustered
    clustered: np.ndarray  # ~prospects
    fitted: np.ndarray  # clustered customers the comparison was fitted on (`candidates.fitted_mask`)
    space: cl.Space
    x: np.ndarray  # every customer in the clustering space (float32)
    comparison: cl.Comparison
    scored: pd.DataFrame  # the comparison table with the selection columns (artifact `comparison`)
    chosen: str  # "algorithm:k"
    reason: str
    segments: pd.DataFrame
    centroids: pd.DataFrame
    profiles: pd.DataFrame
    names: dict[int, str]
    segment_stability: pd.DataFrame  # per clustered segment: bootstrap Jaccard, its se, unstable
    suggestions: pd.DataFrame  # merge / split suggestions
    lifecycle_left_out: list[str]
    dominant: pd.DataFrame  # columns holding > 20 % of the step-03 matrix's variance
    index_choices: pd.DataFrame  # what each criterion alone would pick
    segment_map: SegmentMap
    model_path: Path

    @property
    def candidate(self) -> cl.Candidate:
        return self.comparison.candidates[self.chosen]

    @property
    def chosen_row(self) -> pd.Series:
        """The chosen candidate's row of `scored`."""
        keys = self.scored["algorithm"] + ":" + self.scored["k"].astype(str)
        return self.scored[keys == self.chosen].iloc[0]


def run_step(ctx: StepContext) -> ClusteringResult:
    """Run step 04 on the run folder of `ctx` (settings: `ctx.settings.clustering`, `ctx.seed`)."""
    settings = cl.ClusteringSettings.from_context(ctx)
    matrix = cl.validate_model_matrix(ctx.read("03_features", "model_matrix"))
    dictionary = ctx.read("03_features", "feature_dictionary")
    features = ctx.read("03_features", "features", columns=cp.feature_columns(dictionary))
    prospects = cl.prospect_mask(features, matrix.index)
    if settings.prospects == "cluster":
        prospects[:] = False
    clustered = ~prospects
    fitted = cl.fitted_mask(clustered, cl.thin_profile_mask(features, matrix.index))
    space = cl.fit_space(matrix, fitted, settings)
    x = space.transform(matrix.to_numpy())

    business = cl.business_frame(features, matrix.index)
    comparison = cl.compare(x[fitted], business[fitted].reset_index(drop=True), settings)
    scored = cl.combined_scores(comparison.table, settings)
    chosen, reason = cl.select(scored, settings.choose, settings.prefer)
    candidate = comparison.candidates[chosen]
    segments, segment_of_centroid = cl.segment_all_with_ids(candidate, x, prospects, matrix.index)
    stability = cl.segment_stability(candidate, segment_of_centroid, settings.min_segment_jaccard)
    means = cl.segment_means(matrix.to_numpy(), segments["segment_id"].to_numpy())  # one pass, used twice
    centroids = cl.segment_centroids(matrix, segments, space, means)
    described = feature_matrix.standardized_columns(
        features,
        dictionary,
        cp.described_features(dictionary),
        winsor_quantile=ctx.settings.features.winsor_quantile,
    )
    profiles = cp.segment_profiles(segments, matrix, features, dictionary, extra=described, means=means)
    names = cp.name_segments(profiles, cp.load_naming_rules(resolve_path(settings.naming_rules)), ctx.text)
    segments["segment_name"] = segments["segment_id"].map(names)
    profiles.insert(1, "segment_name", profiles["segment_id"].map(names))
    segments = segments[SEGMENT_COLUMNS]
    stability.insert(1, "segment_name", stability["segment_id"].map(names))

    left_out = dictionary.loc[
        dictionary["lifecycle_dependent"]
        & (dictionary["treatment"] != "")
        & ~dictionary["name"].isin(matrix.columns),
        "name",
    ].tolist()
    clustered_rows = clustered.nonzero()[0]
    shown, coordinates, map_seconds = map_embedding(
        x[clustered_rows], settings.map_fit_size, settings.map_max_points, settings.seed
    )
    result = ClusteringResult(
        settings=settings,
        matrix=matrix,
        features=features,
        dictionary=dictionary,
        prospects=prospects,
        clustered=clustered,
        fitted=fitted,
        space=space,
        x=x,
        comparison=comparison,
        scored=scored,
        chosen=chosen,
        reason=reason,
        segments=segments,
        centroids=centroids,
        profiles=profiles,
        names=names,
        segment_stability=stability,
        suggestions=cp.merge_split_suggestions(x, segments["segment_id"].to_numpy()),
        lifecycle_left_out=left_out,
        dominant=cl.dominant_columns(matrix, clustered),
        index_choices=cl.index_choices(scored),
        segment_map=SegmentMap(clustered_rows[shown], coordinates, map_seconds),
        model_path=ctx.step_dir / "models" / "chosen.joblib",
    )
    write_outputs(ctx, result)
    return result


def write_outputs(ctx: StepContext, result: ClusteringResult) -> None:
    """Write the step's artifacts and model bundle and record its values in the step manifest."""
    ctx.write("segments", result.segments)
    ctx.write("segment_profiles", result.profiles)
    ctx.write("comparison", result.scored)
    ctx.write("centroids", result.centroids)
    ctx.write("scaling", result.space.scaling)
    cl.save_model(result.model_path, result.candidate, result.centroids, result.space, result.names)
    alone = result.index_choices
    pca = result.space.pca
    ctx.record(
        chosen=result.chosen,
        reason=result.reason,
        k_max_used=result.comparison.k_max,  # clustering.k_max, or lower when the data is small
        k_note=result.comparison.k_note,  # "" unless k_max was lowered
        n_segments=len(result.names),
        stability=_rounded(result.chosen_row["stability"]),
        stability_se=_rounded(result.chosen_row["stability_se"]),
        stability_refits=0 if result.candidate.stability is None else result.candidate.stability.refits,
        segment_jaccard={
            int(row.segment_id): _rounded(row.jaccard) for row in result.segment_stability.itertuples()
        },
        unstable_segments=result.segment_stability.loc[result.segment_stability["unstable"], "segment_id"]
        .astype(int)
        .tolist(),
        prospects=int(result.prospects.sum()),
        assigned_not_fitted=int((result.clustered & ~result.fitted).sum()),  # known only from events
        components=0 if pca is None else int(pca.n_components_),
        explained_variance=round(result.space.explained_variance, 3),
        lifecycle_left_out=result.lifecycle_left_out,
        index_choices=dict(zip(alone["criterion"], alone["choice"], strict=True)),
        seconds_per_algorithm={key: round(value, 2) for key, value in result.comparison.seconds.items()},
        map_method=MAP_METHOD,
        map_seconds={key: round(value, 2) for key, value in result.segment_map.seconds.items()},
    )


def _rounded(value: float) -> float | None:
    """A figure for the manifest: 3 decimals, None when missing."""
    return None if pd.isna(value) else round(float(value), 3)
