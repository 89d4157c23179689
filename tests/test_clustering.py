"""Step 04 clustering: candidates, stability, assignment, selection, profiles, names, matching,
the algorithm registry, the settings and `run_step` on a synthetic run folder."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from sklearn.metrics import adjusted_rand_score

from helpers.clustering import candidates as cl
from helpers.clustering import compare_segmentations, run_step
from helpers.clustering import profiles as cp
from helpers.clustering.algorithms import REGISTRY
from helpers.clustering.evaluation import evaluate_planted
from helpers.clustering.segmentations import noise_columns
from helpers.clustering.synthetic import SKEWED_SHARES, make_skewed_matrix, make_world, planted_segments
from helpers.core.config import ConfigError, load_config, parse_config
from helpers.core.context import open_step
from helpers.core.i18n import catalog
from helpers.core.settings import ALGORITHM_NAMES

PLANTED_K = 5
SEED = 42


def toy_world(n: int = 1500, seed: int = 0) -> tuple[np.ndarray, pd.DataFrame, np.ndarray]:
    """5 heavy-tailed (Student t) blobs of unequal size (35 % .. 8 %) and spread in 6 dims."""
    rng = np.random.default_rng(seed)
    truth = rng.choice(PLANTED_K, size=n, p=[0.35, 0.25, 0.18, 0.14, 0.08])
    centers = rng.normal(0, 4, size=(PLANTED_K, 6))
    spread = rng.uniform(0.5, 1.5, size=PLANTED_K)[truth][:, None]
    x = centers[truth] + rng.standard_t(5, size=(n, 6)) * spread
    business = pd.DataFrame(
        {
            "clv_12m": np.exp(centers[truth, 0] / 2 + rng.normal(0, 1, n)),
            "p_no_purchase_next_period": 1 / (1 + np.exp(-centers[truth, 1] + rng.normal(0, 1, n))),
            "n_calls": rng.poisson(np.exp(centers[truth, 2] / 3)),
        }
    )
    return x, business, truth


TOY_SETTINGS = cl.ClusteringSettings(
    seed=SEED,
    k_max=8,
    sample_size=1500,
    small_sample_size=800,
    score_sample_size=800,
    stability_sample_size=600,
)


@pytest.fixture(scope="module")
def toy() -> tuple[np.ndarray, pd.DataFrame, np.ndarray]:
    return toy_world()


@pytest.fixture(scope="module")
def toy_comparison(toy) -> tuple[cl.Comparison, pd.DataFrame]:
    x, business, _ = toy
    comparison = cl.compare(x, business, TOY_SETTINGS)
    return comparison, cl.combined_scores(comparison.table, TOY_SETTINGS)


@pytest.mark.parametrize("algorithm", cl.ALGORITHMS)
def test_every_candidate_fits_and_assigns_every_row(toy, algorithm):
    x, _, truth = toy
    candidate = cl.fit_candidate(algorithm, PLANTED_K, x[:600], seed=1)
    labels, distance, probability = cl.assign(candidate, x)
    assert labels.shape == (len(x),) and labels.min() >= 0 and labels.max() < len(candidate.centroids)
    assert np.all(distance >= 0) and np.all((probability > 0) & (probability <= 1 + 1e-12))
    assert adjusted_rand_score(truth, labels) > 0.6  # every method finds the well-separated blobs


def test_stability_is_high_for_separated_blobs_and_low_for_noise(toy):
    x, _, _ = toy
    settings = cl.ClusteringSettings(seed=SEED, stability_sample_size=600, stability_refits=3)
    assert cl.stability("kmeans", PLANTED_K, x, settings) > 0.9
    noise = np.random.default_rng(3).normal(size=(1500, 6))
    assert cl.stability("kmeans", 6, noise, settings) < 0.7
    assert cl.stability("gmm_full", 6, noise, settings) < 0.7


def test_selection_picks_the_planted_k_and_recovers_the_blobs(toy, toy_comparison):
    x, _, truth = toy
    comparison, scored = toy_comparison
    chosen, reason = cl.select(scored)
    assert int(chosen.split(":")[1]) == PLANTED_K, scored.sort_values("score").tail(5)
    assert "admissible" in reason
    assert adjusted_rand_score(truth, cl.predict_labels(comparison.candidates[chosen], x)) > 0.9
    # a candidate failing the size gate is never admissible
    assert not scored.loc[scored["n_small_segments"] > 0, "admissible"].any()
    assert set(scored["algorithm"]) == set(cl.ALGORITHMS)


def test_override_and_unknown_override(toy_comparison):
    _, scored = toy_comparison
    assert cl.select(scored, "kmeans:3") == ("kmeans:3", "analyst override (clustering.choose)")
    with pytest.raises(cl.ClusteringInputError, match="kmeans:40"):
        cl.select(scored, "kmeans:40")


def test_index_choices_name_the_best_value_per_criterion(toy_comparison):
    _, scored = toy_comparison
    picks = cl.index_choices(scored).set_index("criterion")
    assert picks.loc["silhouette", "value"] == pytest.approx(scored["silhouette"].max())
    assert picks.loc["davies_bouldin", "value"] == pytest.approx(scored["davies_bouldin"].min())
    assert picks.loc["bic", "choice"].startswith("gmm_")


def _customer_tables(x: np.ndarray, business: pd.DataFrame, n_prospects: int = 100):
    ids = [f"C{i:05d}" for i in range(len(x))]
    matrix = pd.DataFrame(x, columns=[f"f{j}" for j in range(x.shape[1])]).assign(customer_id=ids)
    features = business.assign(customer_id=ids, n_purchases=1, monetary_total=business["clv_12m"])
    features.loc[: n_prospects - 1, "n_purchases"] = 0
    dictionary = pd.DataFrame(
        {"name": [f"f{j}" for j in range(x.shape[1])], "group": ["value", "service"] * 3}
    )
    return cl.validate_model_matrix(matrix), features, dictionary


def test_validate_model_matrix_gives_float32_indexed_by_customer(toy):
    x, business, _ = toy
    matrix, _, _ = _customer_tables(x, business)
    assert (matrix.dtypes == np.float32).all() and matrix.index.name == "customer_id"
    np.testing.assert_allclose(matrix.to_numpy(), x, rtol=1e-6)


def test_space_standardizes_over_clustered_rows_and_projects_in_chunks(toy):
    x, business, _ = toy
    matrix, features, _ = _customer_tables(x * [1, 10, 100, 1, 1, 1], business)
    clustered = ~cl.prospect_mask(features, matrix.index)
    space = cl.fit_space(matrix, clustered, cl.ClusteringSettings(seed=SEED, components=3))
    np.testing.assert_allclose(space.mean, x[clustered].mean(axis=0) * [1, 10, 100, 1, 1, 1], rtol=1e-4)
    scaled = space.scale(matrix.to_numpy()[clustered])
    np.testing.assert_allclose(scaled.std(axis=0, ddof=1), 1.0, rtol=1e-4)  # no column dominates
    projected = space.transform(matrix.to_numpy(), chunk=128)
    assert projected.shape == (len(x), 3) and projected.dtype == np.float32
    np.testing.assert_allclose(projected, space.transform(matrix.to_numpy()), atol=1e-5)
    assert 0 < space.explained_variance < 1
    unprojected = cl.fit_space(matrix, clustered, cl.ClusteringSettings(seed=SEED, components=0))
    assert unprojected.pca is None and unprojected.transform(matrix.to_numpy()).shape == x.shape


def test_assignment_in_chunks_equals_assignment_at_once(toy, toy_comparison):
    x, _, _ = toy
    candidate = toy_comparison[0].candidates["gmm_diag:5"]
    whole = cl.assign(candidate, x, chunk=len(x))
    chunked = cl.assign(candidate, x, chunk=97)
    for a, b in zip(whole, chunked, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-9)


def test_segment_all_covers_every_customer_once_with_prospects_in_segment_0(toy, toy_comparison):
    x, business, _ = toy
    matrix, features, _ = _customer_tables(x, business)
    prospects = cl.prospect_mask(features, matrix.index)
    assert prospects.sum() == 100
    candidate = toy_comparison[0].candidates["ward:5"]
    segments = cl.segment_all(candidate, x, prospects, matrix.index)
    assert segments["customer_id"].is_unique and set(segments["customer_id"]) == set(matrix.index)
    assert len(segments) == len(matrix)
    assert (segments.loc[prospects, "segment_id"] == cl.PROSPECT_ID).all()
    assert segments.loc[prospects, "distance"].isna().all()
    assert set(segments.loc[~prospects, "segment_id"]) == set(range(1, 6))
    sizes = segments.loc[~prospects, "segment_id"].value_counts().sort_index()
    assert sizes.is_monotonic_decreasing  # segment 1 is the largest
    space = cl.fit_space(
        matrix, ~prospects, cl.ClusteringSettings(seed=SEED, column_scaling="as_is", components=0)
    )
    centroids = cl.segment_centroids(matrix, segments, space)
    assert list(centroids["segment_id"]) == [1, 2, 3, 4, 5]
    first = segments["segment_id"].to_numpy() == 1
    np.testing.assert_allclose(centroids.iloc[0, 1:].to_numpy(dtype=float), x[first].mean(axis=0), rtol=1e-5)


def test_profiles_and_names_are_deterministic_for_a_seed(toy):
    x, business, _ = toy

    def run() -> tuple[pd.DataFrame, dict[int, str]]:
        matrix, features, dictionary = _customer_tables(x, business)
        prospects = cl.prospect_mask(features, matrix.index)
        comparison = cl.compare(x[~prospects], business[~prospects].reset_index(drop=True), TOY_SETTINGS)
        chosen, _ = cl.select(cl.combined_scores(comparison.table, TOY_SETTINGS))
        segments = cl.segment_all(comparison.candidates[chosen], x, prospects, matrix.index)
        profiles = cp.segment_profiles(segments, matrix, features, dictionary)
        rules = [{"name": "High f0", "when": ["z:f0 > 0.5"]}]
        return profiles, cp.name_segments(profiles, rules, catalog("en"))

    first_profiles, first_names = run()
    second_profiles, second_names = run()
    pd.testing.assert_frame_equal(first_profiles, second_profiles)
    assert first_names == second_names
    assert first_names[cl.PROSPECT_ID] == "Prospects"
    assert list(first_names.values()).count("High f0") == 1
    assert len(set(first_names.values())) == len(first_names)  # names are unique
    assert first_profiles["share"].sum() == pytest.approx(1)
    assert first_profiles["top_features"].str.contains("value: ").all()


def test_naming_rule_goes_to_the_segment_with_the_largest_margin():
    profiles = pd.DataFrame(
        {
            "segment_id": [1, 2, 3],
            "share": [0.5, 0.3, 0.2],
            "z:monetary_total": [0.2, 1.5, 2.5],
            "z:complaint_rate": [1.2, 0.0, -0.3],
        }
    )
    rules = [
        {"name": "High value", "when": ["z:monetary_total > 1"]},
        {"name": "Complainers", "when": ["z:complaint_rate >= 1", "share > 0.4"]},
        {"name": "Unused", "when": ["z:not_a_column > 0"]},
    ]
    names = cp.name_segments(profiles, rules, catalog("en"))
    assert names[3] == "High value" and names[1] == "Complainers"
    assert names[2] == "High total spend"  # generated: strongest z-score only one above 0.5
    bilingual = [{"name": {"zh": "高价值客户", "en": "High value"}, "when": ["z:monetary_total > 1"]}]
    zh_names = cp.name_segments(profiles, bilingual, catalog("zh"))
    assert zh_names[3] == "高价值客户" and zh_names[2] == "总消费高" and zh_names[1] == "投诉多"


def test_generated_names_are_plain_language():
    profiles = pd.DataFrame(
        {
            "segment_id": [1, 2, 3, 4, 5],
            "z:category_share_gifts": [2.0, 0.0, 0.0, 0.1, 0.0],
            "z:avg_order_value": [0.9, -1.5, 0.0, 0.0, 0.0],
            "z:channel_share_app": [0.0, 1.2, 0.0, 0.0, 0.0],
            "z:app_installed=unknown": [0.0, 0.0, 3.0, 0.0, 0.0],
            "z:lifestyle=bargain_hunter": [0.0, 0.0, 1.0, 0.2, 0.0],
            "z:category_share_baby": [0.0, 0.0, 0.0, 0.0, 1.5],
            "z:category_share_groceries": [0.0, 0.0, 0.0, 0.0, 1.4],
            "z:category_share_home": [0.0, 0.0, 0.0, 0.0, 1.3],
            "z:weekend_share": [0.0, 0.0, 0.0, 0.0, 1.2],
        }
    )
    names = cp.name_segments(profiles, [], catalog("en"))
    assert names == {
        1: "Buy a lot of gifts, big spend per order",
        2: "Small orders, often buy via app",
        3: "Bargain hunter (lifestyle)",  # an "unknown" level never names a segment
        4: "Average customers",
        5: "Buy a lot of baby and groceries, weekend shoppers",
    }
    assert not any("_" in name or "z:" in name for name in names.values())
    assert cp.name_segments(profiles, [], catalog("zh")) == {
        1: "常买礼品，客单价高",
        2: "客单价低，常通过App购买",
        3: "生活方式：爱比价",
        4: "普通客户",
        5: "常买母婴和日用百货，周末购物",
    }


def test_segment_descriptions_and_display_names_follow_the_page_language():
    profiles = pd.DataFrame(
        {
            "segment_id": [0, 1, 2],
            "z:complaint_rate": [0.0, 1.5, 0.1],
            "z:refund_rate": [0.0, 1.0, 0.0],
            "z:age": [0.0, 0.7, 0.0],
        }
    )
    zh, en = catalog("zh"), catalog("en")
    assert cp.segment_descriptions(profiles, zh) == {
        0: zh("clustering.prospects_description"),
        1: "投诉多，退货多，年龄偏大",
        2: "与其他客户相比没有突出特点",
    }
    assert cp.segment_descriptions(profiles, en, count=2)[1] == "complain often, return a lot"
    rules = cp.load_naming_rules("config/naming_rules.yml")
    assert cp.segment_display_name(en, 4, "投诉较多的价格敏感客户", rules) == "Complaint-prone price seekers"
    assert cp.segment_display_name(zh, 4, "Complaint-prone price seekers") == "投诉较多的价格敏感客户"
    assert cp.segment_display_name(zh, 0, "Prospects") == "潜在客户"
    assert cp.segment_display_name(zh, 5, "Call often") == "Call often"  # generated: unchanged


def test_naming_rules_file_is_readable_and_bad_conditions_are_rejected(tmp_path):
    rules = cp.load_naming_rules("config/naming_rules.yml")
    assert rules and all(rule["when"] for rule in rules)
    assert all(rule["name"]["zh"] and rule["name"]["en"] for rule in rules)  # every name in both languages
    half = tmp_path / "half.yml"
    half.write_text("rules:\n  - name: {zh: 高价值}\n    when: ['share > 0.1']\n")
    with pytest.raises(ValueError, match=r"half.yml: rule 1: `name` needs a text for each of zh, en"):
        cp.load_naming_rules(half)
    bad = tmp_path / "rules.yml"
    bad.write_text("rules:\n  - name: X\n    when: ['monetary_total is big']\n")
    with pytest.raises(ValueError, match="monetary_total is big"):
        cp.load_naming_rules(bad)


def test_match_segments_recovers_a_permutation_and_leaves_extra_segments_unmatched():
    rng = np.random.default_rng(0)
    old = pd.DataFrame(rng.normal(0, 3, size=(4, 5)), columns=list("abcde")).assign(segment_id=[1, 2, 3, 4])
    new = old.iloc[[2, 0, 3, 1]].copy()
    new[list("abcde")] += rng.normal(0, 0.05, size=(4, 5))
    new["segment_id"] = [1, 2, 3, 4]
    extra = pd.DataFrame([[9.0] * 5 + [5]], columns=[*"abcde", "segment_id"])
    matched = cl.match_segments(old, pd.concat([new, extra], ignore_index=True), max_distance=1.0)
    mapping = matched.set_index("new_segment_id")["old_segment_id"]
    assert mapping.iloc[:4].tolist() == [3, 1, 4, 2]
    assert pd.isna(mapping[5]) and np.isnan(matched["distance"].iloc[4])


def test_bad_input_names_table_column_and_rows():
    matrix = pd.DataFrame({"customer_id": ["C1", "C2", "C3"], "f0": [1.0, np.nan, 0.0]})
    # 1-based row numbers, never customer ids (messages end up in management reports of failed runs).
    with pytest.raises(cl.ClusteringInputError, match=r"model_matrix: column f0 .*rows \[2\]$") as error:
        cl.validate_model_matrix(matrix)
    assert "C2" not in str(error.value)
    with pytest.raises(cl.ClusteringInputError, match=r"share ids, e.g. rows \[1, 2\]$") as error:
        cl.validate_model_matrix(matrix.assign(customer_id=["C1", "C1", "C3"], f0=0.0))
    assert "C1" not in str(error.value)
    with pytest.raises(cl.ClusteringInputError, match="not numeric"):
        cl.validate_model_matrix(matrix.assign(f0=["a", "b", "c"]))
    features = pd.DataFrame({"customer_id": ["C1", "C2"], "n_purchases": [1, 0]})
    with pytest.raises(cl.ClusteringInputError, match=r"rows \[3\]$") as error:
        cl.prospect_mask(features, pd.Index(["C1", "C2", "C3"]))
    assert "C3" not in str(error.value)


def test_algorithm_registry_matches_the_config_schema():
    assert tuple(REGISTRY) == ALGORITHM_NAMES == cl.ALGORITHMS
    assert all(name == spec.name for name, spec in REGISTRY.items())
    assert cl.ClusteringSettings(seed=SEED).algorithms == list(ALGORITHM_NAMES)  # default: every one


def test_settings_reject_unknown_algorithms_and_bad_k(tmp_path):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "config.yml").write_text(yaml.safe_dump(load_config("config/small.yml")))
    with pytest.raises(ConfigError, match=r"clustering\.algorithms.*kmedoids"):
        open_step("04_clustering", str(run_dir), overrides={"clustering.algorithms": ["kmeans", "kmedoids"]})
    with pytest.raises(ConfigError, match="k_min"):
        open_step("04_clustering", str(run_dir), overrides={"clustering.k_min": 5, "clustering.k_max": 3})
    ctx = open_step(
        "04_clustering", str(run_dir), overrides={"clustering.k_max": 6, "clustering.choose": "ward:4"}
    )
    settings = cl.ClusteringSettings.from_context(ctx)
    assert (settings.choose, settings.ks, settings.seed) == ("ward:4", [2, 3, 4, 5, 6], ctx.seed)
    assert settings.sample_size == 1500  # the rest from the config (config/small.yml)
    unset = open_step("04_clustering", str(run_dir), overrides={"clustering.choose": None})
    assert cl.ClusteringSettings.from_context(unset).choose == "auto"  # None parameters are ignored


@pytest.mark.slow
@pytest.mark.xdist_group("small_world")
def test_selection_finds_the_planted_segments_of_the_small_demo_world(small_run, small_world_truth_dir):
    """On step 03's output for the small demo world (1,500 people, 6 planted segments among buyers),
    the rule picks 6 segments that recover the planted ones (prospects excluded)."""
    step = small_run.run_dir / "03_features"
    config = parse_config(load_config(small_run.run_dir / "config.yml"))
    settings = cl.ClusteringSettings.from_section(config.clustering, seed=config.run.seed)
    matrix = cl.validate_model_matrix(pd.read_parquet(step / "model_matrix.parquet"))
    dictionary = pd.read_parquet(step / "feature_dictionary.parquet")
    features = pd.read_parquet(step / "features.parquet", columns=cp.feature_columns(dictionary))
    assert not set(cp.described_features(dictionary)) & set(matrix.columns)  # who, not when
    prospects = cl.prospect_mask(features, matrix.index)
    space = cl.fit_space(matrix, ~prospects, settings)
    x = space.transform(matrix.to_numpy())
    business = cl.business_frame(features, matrix.index)[~prospects].reset_index(drop=True)
    comparison = cl.compare(x[~prospects], business, settings)
    chosen, _ = cl.select(cl.combined_scores(comparison.table, settings))
    segments = cl.segment_all(comparison.candidates[chosen], x, prospects, matrix.index)
    planted = planted_segments(
        pd.read_parquet(small_run.run_dir / "02_identity_merge" / "crosswalk.parquet"),
        pd.read_parquet(small_world_truth_dir / "source_records.parquet"),
        pd.read_parquet(small_world_truth_dir / "persons.parquet"),
    ).set_index("customer_id")["segment"]
    planted = planted.reindex(matrix.index).to_numpy()
    known = ~prospects & pd.notna(planted)
    assert pd.Series(planted[known]).nunique() == 6
    assert comparison.candidates[chosen].k == 6, chosen
    assert adjusted_rand_score(planted[known], segments["segment_id"].to_numpy()[known]) >= 0.8


def test_save_model_then_load_model_round_trips_the_chosen_bundle(toy, toy_comparison, tmp_path):
    x, business, _ = toy
    matrix, features, _ = _customer_tables(x, business)
    prospects = cl.prospect_mask(features, matrix.index)
    candidate = toy_comparison[0].candidates["ward:5"]
    segments = cl.segment_all(candidate, x, prospects, matrix.index)
    space = cl.fit_space(
        matrix, ~prospects, cl.ClusteringSettings(seed=SEED, column_scaling="as_is", components=0)
    )
    centroids = cl.segment_centroids(matrix, segments, space)
    names = {cl.PROSPECT_ID: "Prospects", **{i: f"Segment {i}" for i in range(1, 6)}}
    path = cl.save_model(tmp_path / "models" / "chosen.joblib", candidate, centroids, space, names)
    bundle = cl.load_model(path)
    assert (bundle["algorithm"], bundle["k"]) == (candidate.algorithm, candidate.k)
    pd.testing.assert_frame_equal(bundle["centroids"], centroids)
    np.testing.assert_array_equal(bundle["candidate"].centroids, candidate.centroids)
    assert bundle["segment_names"] == names
    np.testing.assert_array_equal(cl.assign(bundle["candidate"], x)[0], cl.assign(candidate, x)[0])


# ----------------------------------------------------------------------------- run_step

LIFECYCLE_COLUMNS = ("monetary_total", "clv_12m")  # lifecycle-dependent: described, not clustered
STEP_OVERRIDES = {
    "clustering.algorithms": ["kmeans", "gmm_diag", "ward", "hdbscan"],
    "clustering.k_max": 8,
    "clustering.sample_size": 1000,
    "clustering.small_sample_size": 600,
    "clustering.score_sample_size": 500,
    "clustering.stability_sample_size": 400,
    "clustering.stability_refits": 2,
    "clustering.components": 6,
    "clustering.map_fit_size": 200,
    "clustering.map_max_points": 400,
}


def synthetic_run_folder(run_dir: Path, truth_dir: Path) -> pd.DataFrame:
    """A run folder holding step 03's artifacts for a synthetic world (and step 02's crosswalk) plus
    the world's planted truth in `truth_dir`, as the demo world keeps it. Returns the truth."""
    world = make_world(1200, seed=3)
    step03 = run_dir / "03_features"
    step03.mkdir(parents=True)
    world.model_matrix.drop(columns=list(LIFECYCLE_COLUMNS)).to_parquet(step03 / "model_matrix.parquet")
    world.features.to_parquet(step03 / "features.parquet")
    dictionary = world.feature_dictionary.assign(
        treatment="scale", lifecycle_dependent=world.feature_dictionary["name"].isin(LIFECYCLE_COLUMNS)
    )
    key = pd.DataFrame(
        {"name": ["customer_id"], "group": ["key"], "treatment": [""], "lifecycle_dependent": [False]}
    )
    pd.concat([key, dictionary], ignore_index=True).to_parquet(step03 / "feature_dictionary.parquet")
    ids = world.features["customer_id"]
    (run_dir / "02_identity_merge").mkdir()
    records = pd.DataFrame({"source_system": "crm", "source_record_id": ids, "customer_id": ids})
    records.to_parquet(run_dir / "02_identity_merge" / "crosswalk.parquet")
    truth_dir.mkdir()
    records.drop(columns="customer_id").assign(person_id=ids).to_parquet(truth_dir / "source_records.parquet")
    persons = world.truth.rename(columns={"customer_id": "person_id"}).assign(stage="active")
    persons.to_parquet(truth_dir / "persons.parquet")
    config = load_config("config/small.yml")
    config["demo"]["truth_dir"] = str(truth_dir)
    (run_dir / "config.yml").write_text(yaml.safe_dump(config))
    return world.truth


@pytest.fixture(scope="module")
def step_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("step04")
    truth = synthetic_run_folder(folder / "run", folder / "truth")
    ctx = open_step("04_clustering", str(folder / "run"), overrides=STEP_OVERRIDES)
    return ctx, run_step(ctx), truth


def test_run_step_segments_every_customer_and_writes_every_artifact(step_run):
    ctx, result, truth = step_run
    segments = result.segments
    assert list(segments.columns) == [
        "customer_id",
        "segment_id",
        "segment_name",
        "distance",
        "membership_probability",
    ]
    assert segments["customer_id"].is_unique and set(segments["customer_id"]) == set(truth["customer_id"])
    prospects = truth.set_index("customer_id")["segment"].reindex(result.matrix.index).eq("prospect")
    np.testing.assert_array_equal(result.prospects, prospects.to_numpy())
    assert (segments.loc[result.prospects, "segment_id"] == cl.PROSPECT_ID).all()
    assert (
        segments["segment_name"].notna().all() and result.names[cl.PROSPECT_ID] == "潜在客户"
    )  # small.yml: zh
    assert result.profiles["share"].sum() == pytest.approx(1)
    assert set(result.scored["algorithm"]) == set(STEP_OVERRIDES["clustering.algorithms"])
    assert result.candidate.key == result.chosen and result.chosen_row["admissible"]
    assert result.lifecycle_left_out == list(LIFECYCLE_COLUMNS)
    assert "z:monetary_total" in result.profiles.columns  # described although not clustered on
    assert result.space.pca is not None and result.x.shape == (len(truth), 6)
    assert len(result.segment_map.rows) == len(result.segment_map.coordinates) == 400
    assert not result.prospects[result.segment_map.rows].any()  # the map shows clustered customers only
    for name in ("segments", "segment_profiles", "comparison", "centroids", "scaling"):
        assert ctx.path(f"{name}.parquet").is_file(), name
    pd.testing.assert_frame_equal(pd.read_parquet(ctx.path("segments.parquet")), segments)
    bundle = cl.load_model(result.model_path)
    assert bundle["algorithm"] == result.candidate.algorithm and bundle["segment_names"] == result.names


def test_run_step_records_the_values_of_the_step(step_run):
    ctx, result, _ = step_run
    manifest = json.loads(ctx.path("step.json").read_text())
    assert manifest["chosen"] == result.chosen and manifest["reason"] == result.reason
    assert manifest["n_segments"] == len(result.names) == result.segments["segment_id"].nunique()
    assert manifest["prospects"] == int(result.prospects.sum()) > 0
    assert manifest["components"] == 6 and 0 < manifest["explained_variance"] <= 1
    assert manifest["lifecycle_left_out"] == list(LIFECYCLE_COLUMNS)
    assert manifest["index_choices"] == dict(
        zip(result.index_choices["criterion"], result.index_choices["choice"], strict=True)
    )
    assert set(manifest["seconds_per_algorithm"]) == set(STEP_OVERRIDES["clustering.algorithms"])
    assert set(manifest["map_seconds"]) == {"import", "fit", "transform"}
    assert (manifest["k_max_used"], manifest["k_note"]) == (result.comparison.k_max, result.comparison.k_note)
    assert manifest["assigned_not_fitted"] == 0 and (result.fitted == result.clustered).all()  # all profiled


def test_evaluate_planted_compares_with_the_truth_and_records_it(step_run):
    ctx, result, truth = step_run
    evaluation = evaluate_planted(ctx, result)
    planted = truth.set_index("customer_id")["segment"].reindex(result.matrix.index).to_numpy()
    clustered = result.clustered
    expected = adjusted_rand_score(planted[clustered], result.segments["segment_id"].to_numpy()[clustered])
    assert evaluation.ari == pytest.approx(expected) and evaluation.n_planted == 7
    assert evaluation.n_known == clustered.sum()
    assert set(evaluation.per_candidate.index) == set(result.comparison.candidates)
    assert evaluation.crosstab.to_numpy().sum() == clustered.sum()
    assert evaluation.lines()[0].startswith(f"Chosen {result.chosen}: ARI {expected:.3f} vs the 7 planted")
    manifest = json.loads(ctx.path("step.json").read_text())
    assert (manifest["planted_ari"], manifest["planted_segments"]) == (round(expected, 3), 7)


def test_evaluate_planted_is_skipped_without_truth_files(step_run, tmp_path):
    ctx, result, _ = step_run
    config = {**ctx.config, "demo": {**ctx.config["demo"], "truth_dir": str(tmp_path / "none")}}
    other = dataclasses.replace(ctx, config=config)
    assert evaluate_planted(other, result) is None


def test_segment_charts_use_the_segment_colours_and_the_page_language():
    import matplotlib.colors as mcolors

    from helpers.clustering import plots as clustering_plots
    from helpers.core.plots import segment_colors, setup

    setup()  # the CJK font
    profiles = pd.DataFrame(
        {
            "segment_id": [0, 1, 2],
            "segment_name": ["潜在客户", "家庭采购客户", "企业批量采购客户"],
            "share": [0.2, 0.5, 0.3],
            "value_share": [0.0, 0.4, 0.6],
        }
    )
    zh = catalog("zh")
    figure = clustering_plots.segment_sizes(profiles, zh)
    axis = figure.axes[0]
    assert axis.get_title() == "各客户群的客户占比与消费额占比"
    assert [t.get_text() for t in axis.get_yticklabels()] == profiles["segment_name"].tolist()
    customers = axis.containers[0]
    assert [mcolors.to_hex(bar.get_facecolor()) for bar in customers] == list(
        segment_colors([0, 1, 2]).values()
    )
    labels = [text.get_text() for text in axis.texts]  # the bar labels
    assert "50.0%" in labels and "60.0%" in labels

    coordinates = np.array([[0.0, 0.0], [1.0, 1.0], [2.0, 2.0]])
    figure = clustering_plots.segment_map(coordinates, np.array([1, 2, 2]), {1: "甲", 2: "乙"}, zh)
    legend = figure.axes[0].get_legend()
    assert [t.get_text() for t in legend.get_texts()] == [
        "甲",
        "乙",
    ] and legend.get_title().get_text() == "客户群"
    colours = [mcolors.to_hex(c.get_facecolor()[0]) for c in figure.axes[0].collections]
    assert colours == [segment_colors([1])[1], segment_colors([2])[2]]
    assert "UMAP" not in figure.axes[0].get_title()


# ----------------------------------------------------------------------------- bootstrap stability, size rule


def blobs_with_small_segment(n: int = 2000, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """4 separated Gaussian blobs (40/30/17/11 %) and a separated 2 % segment, in 5 dims."""
    rng = np.random.default_rng(seed)
    truth = rng.choice(5, size=n, p=[0.40, 0.30, 0.17, 0.11, 0.02])
    centres = np.array([[0, 0, 0, 0, 0], [6, 0, 0, 0, 0], [0, 6, 0, 0, 0], [0, 0, 6, 0, 0], [6, 6, 6, 0, 0]])
    return centres[truth] + rng.normal(0, 1, size=(n, 5)), truth


def test_bootstrap_stability_flags_the_split_segments_and_extends_without_refitting(toy):
    x, _, _ = toy
    settings = cl.ClusteringSettings(seed=SEED, stability_sample_size=600, stability_refits=8)
    planted = cl.fit_candidate("kmeans", PLANTED_K, x, seed=SEED)
    result = cl.bootstrap_stability(planted, x, settings)
    assert result.refits == 8 and len(result.aris) == 8 and result.jaccards.shape == (8, PLANTED_K)
    assert result.mean > 0.95 and 0 <= result.se < 0.05
    assert result.lower == pytest.approx(result.mean - settings.stability_z * result.se)
    assert (result.jaccard > 0.9).all()  # every planted blob comes back on every refit
    split = cl.fit_candidate("kmeans", PLANTED_K + 2, x, seed=SEED)  # two blobs cut in halves
    split_result = cl.bootstrap_stability(split, x, settings)
    assert (split_result.jaccard < settings.min_segment_jaccard).sum() >= 2
    assert split_result.min_jaccard < 0.75 <= result.min_jaccard
    # 3 screening refits extended to 8 give the same figures as 8 at once
    screened = cl.bootstrap_stability(planted, x, settings, refits=3)
    extended = cl.bootstrap_stability(planted, x, settings, previous=screened)
    np.testing.assert_allclose(extended.aris, result.aris)
    np.testing.assert_allclose(extended.jaccard, result.jaccard)


def test_stability_verdict_does_not_depend_on_the_seed(toy):
    """The gates' verdict on the planted and on an over-split candidate is the same for every seed."""
    x, _, _ = toy
    for seed in range(1, 6):
        settings = cl.ClusteringSettings(seed=seed, stability_sample_size=400, stability_refits=5)
        planted = cl.bootstrap_stability(cl.fit_candidate("kmeans", PLANTED_K, x, seed=seed), x, settings)
        split = cl.bootstrap_stability(cl.fit_candidate("kmeans", PLANTED_K + 2, x, seed=seed), x, settings)
        assert planted.lower >= settings.min_stability and planted.min_jaccard >= settings.min_segment_jaccard
        assert split.min_jaccard < settings.min_segment_jaccard, seed


def test_best_jaccard_per_segment():
    own = np.array([0, 0, 0, 0, 1, 1, 2, 2])
    new = np.array([5, 5, 5, 7, 7, 7, 9, 9])
    np.testing.assert_allclose(cl.best_jaccard(own, new, 4), [3 / 4, 2 / 3, 1.0, np.nan])


def test_size_rule_keeps_a_small_real_segment():
    """A separated 2 % segment (40 customers) is kept: the 3 % share gate of old refused it."""
    x, truth = blobs_with_small_segment()
    settings = cl.ClusteringSettings(
        seed=SEED, algorithms=["kmeans", "gmm_diag", "ward"], k_max=8, sample_size=2000,
        small_sample_size=2000, stability_sample_size=1000,
    )  # fmt: skip
    result = compare_segmentations(x, settings, transform=False)
    assert result.k == 5, result.table[["algorithm", "k", "min_jaccard", "failed_gates"]]
    assert adjusted_rand_score(truth, result.labels) > 0.95
    shares = np.bincount(result.labels) / len(x)
    assert shares.min() == pytest.approx((truth == 4).mean(), abs=0.005)
    old_rule = settings.model_copy(update={"min_segment_share": 0.03})
    assert compare_segmentations(x, old_rule, transform=False).k == 4  # what the 3 % gate did


def test_size_rule_refuses_a_small_segment_of_noise():
    """A count of noise points may not become a segment: scattered points fail the Jaccard gate."""
    x, _ = blobs_with_small_segment()
    rng = np.random.default_rng(1)
    keep = x[np.isin(blobs_with_small_segment()[1], [0, 1, 2, 3])]
    scattered = rng.uniform(-20, 20, size=(40, 5))  # 2 %, no structure
    data = np.vstack([keep, scattered])
    settings = cl.ClusteringSettings(
        seed=SEED, algorithms=["kmeans", "ward"], k_max=8, sample_size=2000, small_sample_size=2000,
        stability_sample_size=1000,
    )  # fmt: skip
    result = compare_segmentations(data, settings, transform=False)
    assert result.k == 4, result.table[["algorithm", "k", "min_jaccard", "failed_gates"]]
    assert "unstable small segment" in set(", ".join(result.table["failed_gates"]).split(", "))


def test_compare_segmentations_on_a_raw_matrix_without_business_columns():
    """Any numeric matrix: without business columns every candidate no longer fails the business gate
    (the ward:3 fallback of old); the separation in the matrix's own columns takes its place."""
    world = make_skewed_matrix(3000, seed=5)
    settings = cl.ClusteringSettings(
        seed=SEED, algorithms=["kmeans", "ward"], k_max=9, sample_size=3000, small_sample_size=2000,
        stability_refits=6, stability_sample_size=1000,
    )  # fmt: skip
    matrix = world.matrix.drop(columns=["spend", "recency_days", "calls", "complaint_rate"])
    result = compare_segmentations(matrix, settings, latent_class=False)
    # no business columns: the segments' separation in the clustered columns stands in for it
    assert (result.table["separation_basis"] == "matrix columns").all()
    assert result.table["matrix_separation"].between(0, 1).all()
    assert result.table["business_separation"].equals(result.table["matrix_separation"])
    assert result.reason.startswith("most segments among the admissible candidates")  # prefer's default
    assert result.noise_columns == ["noise_0", "noise_1", "noise_2"]
    assert result.labels.shape == (len(matrix),) and result.labels.min() == 0
    assert np.bincount(result.labels)[0] == np.bincount(result.labels).max()  # 0 = the largest
    # without business columns at 3,000 rows kmeans:4, ARI 0.67 (with them kmeans:5, 0.81): a partition
    # that passed every gate, not the ward:3 fallback of old (ARI 0.29)
    assert not result.table["admissible"].eq(False).all()
    assert adjusted_rand_score(world.truth, result.labels) > 0.6
    stability = result.segment_stability
    assert list(stability["segment_id"]) == list(range(result.k))
    assert stability["share"].sum() == pytest.approx(1)
    with pytest.raises(cl.ClusteringInputError, match="not numeric"):
        compare_segmentations(matrix.assign(city="x"), settings, latent_class=False)


def test_default_choice_keeps_more_segments_that_reproduce_on_a_planted_matrix():
    """prefer: more_segments (the default): near the best score, the most segments that all come back
    on the bootstrap refits; the score alone stops at fewer segments and a lower ARI."""
    world = make_skewed_matrix(3000, seed=5)
    settings = cl.ClusteringSettings(
        seed=SEED, algorithms=["kmeans", "ward"], k_max=9, sample_size=3000, small_sample_size=2000,
        stability_refits=6, stability_sample_size=1000,
    )  # fmt: skip
    assert settings.prefer == "more_segments"
    more = compare_segmentations(world.matrix, settings, latent_class=False)
    score = compare_segmentations(
        world.matrix, settings.model_copy(update={"prefer": "score"}), latent_class=False
    )
    assert more.k > score.k, (more.chosen, score.chosen)
    assert more.segment_stability["jaccard"].min() >= settings.min_segment_jaccard
    assert adjusted_rand_score(world.truth, more.labels) > 0.78  # measured 0.805 (kmeans:5)
    assert adjusted_rand_score(world.truth, score.labels) < 0.75  # measured 0.691 (kmeans:4)


def test_noise_screen_drops_the_columns_unrelated_to_every_other_one():
    world = make_skewed_matrix(5000, seed=3)
    noise = ["noise_0", "noise_1", "noise_2"]
    assert noise_columns(world.matrix, SEED) == noise
    # a rare one-hot level and the weakly related discount share are structure, not noise
    assert noise_columns(world.matrix.drop(columns=noise), SEED) == []
    # two independent columns: nothing to tell noise by, both kept
    assert noise_columns(world.matrix[noise[:2]], SEED) == []


def test_skewed_matrix_generator_plants_unequal_heavy_tailed_segments():
    world = make_skewed_matrix(20_000, seed=0)
    shares = np.bincount(world.truth) / len(world.truth)
    np.testing.assert_allclose(shares, SKEWED_SHARES, atol=0.01)
    spend = world.matrix["spend"]
    assert spend.mean() > 2 * spend.median()  # heavy right tail
    assert {"noise_0", "noise_1", "noise_2", "channel=app", "app_installed"} <= set(world.matrix.columns)
    assert set(world.business.columns) == {"monetary_total", "recency_days", "n_calls"}


def test_select_prefers_the_score_or_the_most_reproducing_segments_near_the_best_score():
    scored = pd.DataFrame(
        {
            "algorithm": ["kmeans", "kmeans", "kmeans", "ward", "ward", "birch", "gmm_diag"],
            "k": [3, 5, 6, 5, 9, 5, 8],
            "n_segments": [3, 5, 6, 5, 9, 5, 8],
            "admissible": [True, True, False, True, True, True, True],
            "stable_choice": [True, True, False, True, False, True, True],
            "score": [0.9, 0.86, 0.95, 0.88, 0.89, 0.87, 0.7],
        }
    )
    assert cl.select(scored) == ("kmeans:3", "highest combined score among admissible candidates")
    chosen, reason = cl.select(scored, prefer="more_segments")
    # kmeans:6 is not admissible, ward:9 loses a segment on refits, gmm_diag:8 scores far below the
    # best (0.9 - SCORE_TIE); of the three 5s within the tie, the best score
    assert chosen == "ward:5" and reason.startswith("most segments among the admissible candidates within")
    unstable = scored.assign(stable_choice=False)
    assert cl.select(unstable, prefer="more_segments") == cl.select(scored)  # no reproducing one: the score
    none = scored.assign(admissible=False)
    assert cl.select(none)[0] == "kmeans:6" and "review" in cl.select(none)[1]


def test_stable_choice_needs_every_segment_on_all_refits():
    table = pd.DataFrame(
        {
            "algorithm": ["kmeans"] * 4,
            "k": [2, 3, 4, 5],
            "n_segments": [2, 3, 4, 5],
            "n_small_segments": 0,
            "stability_lower": 0.9,
            "min_small_jaccard": np.nan,
            "business_separation": 0.5,
            "min_jaccard": [0.95, 0.9, 0.6, 0.9],
            "stability_refits": [10.0, 10.0, 10.0, 2.0],  # k 5: screened only
            "silhouette": 0.2,
            "davies_bouldin": 1.5,
        }
    )
    scored = cl.combined_scores(table, TOY_SETTINGS)
    assert scored["stable_choice"].tolist() == [True, True, False, False]
    assert cl.select(scored, prefer="more_segments")[0] == "kmeans:3"


def test_most_segments_choice_refits_from_the_most_segments_down(toy):
    x, business, truth = toy
    settings = TOY_SETTINGS.model_copy(update={"prefer": "more_segments", "algorithms": ["kmeans", "ward"]})
    comparison = cl.compare(x, business, settings)
    scored = cl.combined_scores(comparison.table, settings)
    chosen, reason = cl.select(scored, "auto", settings.prefer)
    row = scored[scored["algorithm"] + ":" + scored["k"].astype(str) == chosen].iloc[0]
    assert reason.startswith("most segments") and row["stable_choice"]
    assert row["stability_refits"] == settings.stability_refits
    # no fully refitted candidate with more segments keeps all of them near the best score
    best = scored.loc[scored["admissible"], "score"].max()
    more = scored[(scored["n_segments"] > row["n_segments"]) & (scored["score"] >= best - cl.SCORE_TIE)]
    assert not more["stable_choice"].any()
    assert row["n_segments"] == PLANTED_K
    labels = cl.predict_labels(comparison.candidates[chosen], x)
    assert adjusted_rand_score(truth, labels) > 0.9


def test_thin_profile_customers_are_assigned_not_fitted():
    features = pd.DataFrame(
        {
            "customer_id": ["a", "b", "c", "d", "e"],
            "age": [30.0, np.nan, np.nan, np.nan, np.nan],
            "gender": ["unknown", "F", "unknown", None, "unknown"],
            "city_tier": ["unknown", "unknown", "unknown", "2", " Unknown "],
        }
    )
    ids = pd.Index(["e", "d", "c", "b", "a", "z"])  # z: no feature row
    np.testing.assert_array_equal(
        cl.thin_profile_mask(features, ids), [True, False, True, False, False, True]
    )
    assert not cl.thin_profile_mask(features[["customer_id"]], ids).any()  # cannot tell: nobody thin
    clustered = np.array([True, True, True, True, False, True])
    thin = np.array([True, False, True, False, False, True])
    np.testing.assert_array_equal(cl.fitted_mask(clustered, thin), [False, True, False, True, False, False])
    mostly_thin = np.array([True, True, True, False, False, True])  # 1 of 5 profiled < 25 %
    np.testing.assert_array_equal(cl.fitted_mask(clustered, mostly_thin), clustered)


def test_page_shows_each_segments_stability_and_flags_the_unstable(step_run):
    from helpers.clustering import report

    ctx, result, _ = step_run
    table = result.segment_stability
    clustered = sorted(set(result.segments["segment_id"]) - {cl.PROSPECT_ID})
    assert table["segment_id"].tolist() == clustered
    assert table["jaccard"].between(0, 1).all() and table["segment_name"].notna().all()
    np.testing.assert_array_equal(table["unstable"], table["jaccard"] < result.settings.min_segment_jaccard)
    manifest = json.loads(ctx.path("step.json").read_text())
    expected = {str(i): round(j, 3) for i, j in zip(clustered, table["jaccard"], strict=True)}
    assert manifest["segment_jaccard"] == expected
    assert manifest["stability_refits"] == result.candidate.stability.refits >= 2
    zh = catalog("zh")
    shown = report.reliability_table(result, zh).data
    assert list(shown.columns) == ["客户群", "占全部客户", "重现度（0-1）", "状态"]
    assert shown["状态"].tolist() == ["不稳定，需复核" if flag else "稳定" for flag in table["unstable"]]
    flagged = result.segment_stability.assign(unstable=[True] + [False] * (len(table) - 1))
    summary = report.summary_markdown(dataclasses.replace(result, segment_stability=flagged), zh)
    assert f"注意：**{table['segment_name'].iloc[0]}** 在重复计算时不能稳定重现" in summary
    assert "在重复计算时不能稳定重现" not in report.summary_markdown(
        dataclasses.replace(result, segment_stability=flagged.assign(unstable=False)), zh
    )
    assert report.stability_detail(result).startswith(f"Stability of {result.chosen}: mean ARI")


def test_silhouette_from_distances_equals_sklearns_and_label_sums_equal_add_at():
    from sklearn.metrics import pairwise_distances, silhouette_score

    rng = np.random.default_rng(3)
    x = rng.normal(size=(300, 4)).astype(np.float32)
    distances = pairwise_distances(x)
    for labels in (rng.integers(0, 2, 300), np.append(rng.integers(3, 9, 299), 42)):  # 42: alone
        expected = silhouette_score(distances, labels, metric="precomputed")
        assert cl.silhouette_from_distances(distances, labels) == pytest.approx(expected, abs=1e-6)
    labels = rng.integers(0, 5, 300)
    expected = np.zeros((6, 4))
    np.add.at(expected, labels, x)
    np.testing.assert_array_equal(cl.label_sums(labels, x, 6), expected)  # label 5: no rows
