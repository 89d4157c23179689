"""Probabilistic matching for the identity step: Splink (DuckDB backend) between deterministic clusters.

The model compares name keys (exact with term-frequency adjustment, partial, Jaro-Winkler),
birth dates (exact, one typo, else), gender, city, mobile (exact, same last 4 digits, else) and
e-mail (exact, same local part, same trailing digit handle, else). Disagreement levels get their
own (negative) weights, so a different birth date, phone or e-mail counts against a match.

Training: u-probabilities from random record pairs; m-probabilities from the high-confidence
deterministic clusters (`estimate_m_from_label_column`) instead of EM, which tends to learn
"same common name" as a match. The prior is the deterministic duplicate rate.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import pandas as pd
from splink import DuckDBAPI, Linker

MODEL_COLUMNS = [
    "record_index",
    "cluster",
    "name_key",
    "name_rare",
    "name_first",
    "name_last",
    "birth_date",
    "gender",
    "city_key",
    "mobile",
    "mobile_tail",
    "email_key",
    "email_local",
    "email_handle",
]

# Candidate pairs: records in different deterministic clusters that agree on one of these.
BLOCKING_RULES = [
    "l.name_key = r.name_key AND l.birth_date = r.birth_date",
    "l.name_key = r.name_key AND l.city_key = r.city_key",
    "l.name_key = r.name_key AND l.mobile_tail = r.mobile_tail",
    "l.birth_date = r.birth_date AND l.mobile_tail = r.mobile_tail",
    "l.name_first = r.name_first AND l.name_last = r.name_last AND l.birth_date = r.birth_date",
    "l.email_local = r.email_local",
    "l.email_handle = r.email_handle",
    "l.name_rare = r.name_rare",
]
# Names shared by at most this many records are blocked on alone (common names need more).
RARE_NAME_MAX_RECORDS = 20
# Deterministic duplicates are found already; the prior allows for this many more per found one.
PRIOR_INFLATION = 1.5


def _level(sql: str, label: str, **extra: Any) -> dict[str, Any]:
    return {"sql_condition": sql, "label_for_charts": label, **extra}


def _null(column: str) -> dict[str, Any]:
    return _level(f'"{column}_l" IS NULL OR "{column}_r" IS NULL', "null", is_null_level=True)


_ELSE = _level("ELSE", "else")
BIRTH_TYPO = (
    "((year(birth_date_l) = year(birth_date_r))::INT + (month(birth_date_l) = month(birth_date_r))::INT"
    " + (day(birth_date_l) = day(birth_date_r))::INT >= 2)"
    " OR abs(date_diff('day', birth_date_l, birth_date_r)) <= 1"
)
COMPARISONS: list[dict[str, Any]] = [
    {
        "output_column_name": "name",
        "comparison_levels": [
            _null("name_key"),
            _level(
                "name_key_l = name_key_r", "exact", tf_adjustment_column="name_key", tf_adjustment_weight=1.0
            ),
            _level(
                "list_has_all(string_split(name_key_l, ' '), string_split(name_key_r, ' ')) "
                "OR list_has_all(string_split(name_key_r, ' '), string_split(name_key_l, ' '))",
                "one name part of the other",
            ),
            _level("jaro_winkler_similarity(name_key_l, name_key_r) >= 0.92", "jaro-winkler >= 0.92"),
            _level("jaro_winkler_similarity(name_key_l, name_key_r) >= 0.8", "jaro-winkler >= 0.8"),
            _ELSE,
        ],
    },
    {
        "output_column_name": "birth_date",
        "comparison_levels": [
            _null("birth_date"),
            _level("birth_date_l = birth_date_r", "exact"),
            _level(BIRTH_TYPO, "one typo"),
            _ELSE,
        ],
    },
    {
        "output_column_name": "gender",
        "comparison_levels": [_null("gender"), _level("gender_l = gender_r", "exact"), _ELSE],
    },
    {
        "output_column_name": "city",
        "comparison_levels": [
            _null("city_key"),
            _level(
                "city_key_l = city_key_r", "exact", tf_adjustment_column="city_key", tf_adjustment_weight=1.0
            ),
            _ELSE,
        ],
    },
    {
        "output_column_name": "mobile",
        "comparison_levels": [
            _null("mobile"),
            _level("mobile_l = mobile_r", "exact"),
            _level("mobile_tail_l = mobile_tail_r", "same last 4 digits"),
            _ELSE,
        ],
    },
    {
        "output_column_name": "email",
        "comparison_levels": [
            _null("email_key"),
            _level("email_key_l = email_key_r", "exact"),
            _level("email_local_l = email_local_r", "same local part"),
            _level("email_handle_l = email_handle_r", "same numeric handle"),
            _ELSE,
        ],
    },
]


def model_input(records: pd.DataFrame, labels: np.ndarray) -> pd.DataFrame:
    """The columns the Splink model compares, one row per record."""
    tokens = records["name_key"].astype("string").str.split(" ")
    local = records["email_key"].astype("string").str.split("@").str[0]
    frame = pd.DataFrame(
        {
            "record_index": np.arange(len(records)),
            "cluster": labels,
            "name_key": records["name_key"].astype("string"),
            "name_first": tokens.str[0],
            "name_last": tokens.str[-1],
            "birth_date": pd.to_datetime(records["birth_date"]).dt.date,
            "gender": records["gender"].astype("string"),
            "city_key": records["city_key"].astype("string"),
            "mobile": records["mobile"].astype("string"),
            "mobile_tail": records["mobile_tail"].astype("string"),
            "email_key": records["email_key"].astype("string"),
            "email_local": local,
            # A QQ number or other digit run people reuse across providers: "wangqin1551327", "1551327".
            "email_handle": local.str.extract(r"(\d{5,})$", expand=False),
        }
    )
    counts = frame["name_key"].map(frame["name_key"].value_counts())
    frame["name_rare"] = frame["name_key"].where(counts <= RARE_NAME_MAX_RECORDS)
    # A one-token name has no separate first and last token to block on.
    single = tokens.str.len() < 2
    frame.loc[single.fillna(True).to_numpy(), ["name_first", "name_last"]] = pd.NA
    return frame[MODEL_COLUMNS]


def settings(prior: float, blocking_rules: list[str], comparisons: list[dict[str, Any]]) -> dict[str, Any]:
    """The Splink settings dictionary."""
    return {
        "link_type": "dedupe_only",
        "unique_id_column_name": "record_index",
        "probability_two_random_records_match": prior,
        "blocking_rules_to_generate_predictions": blocking_rules,
        "comparisons": comparisons,
        "retain_intermediate_calculation_columns": False,
        "retain_matching_columns": False,
    }


def deterministic_prior(labels: np.ndarray) -> float:
    """P(two random records match), from the duplicate pairs the deterministic clusters hold."""
    matching_pairs = float(_pairs_within_clusters(labels))
    n = len(labels)
    total_pairs = n * (n - 1) / 2
    return float(np.clip(PRIOR_INFLATION * max(matching_pairs, 1.0) / total_pairs, 1e-9, 0.5))


def score_pairs(
    frame: pd.DataFrame,
    comparisons: list[dict[str, Any]],
    blocking_rules: list[str],
    seed: int,
    min_probability: float = 0.5,
    u_max_pairs: float = 2e6,
    min_label_pairs: int = 50,
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Train a Splink model on `frame` and score the pairs `blocking_rules` generate across clusters.

    `frame` has `record_index` (0..n-1) and `cluster` (deterministic cluster label) columns plus
    the compared columns. m-probabilities come from the pairs inside deterministic clusters;
    with fewer than `min_label_pairs` such pairs nothing is scored (no EM fallback).
    Returns `left_index, right_index, match_weight, match_probability` at/above `min_probability`.
    """
    labels = frame["cluster"].to_numpy()
    prior = deterministic_prior(labels)
    label_pairs = _pairs_within_clusters(labels)
    stats: dict[str, Any] = {"splink_label_pairs": label_pairs, "splink_prior": prior}
    if label_pairs < min_label_pairs:
        # Too few sure links to learn what a match looks like; EM would learn namesakes instead.
        stats["splink_training"] = f"skipped: fewer than {min_label_pairs} deterministic pairs"
        return empty_scores(), stats
    rules = [f"({rule}) AND l.cluster <> r.cluster" for rule in blocking_rules]
    db_api = DuckDBAPI()
    linker = Linker(db_api.register(frame), settings(prior, rules, comparisons), log_level=logging.ERROR)
    linker.training.estimate_u_using_random_sampling(max_pairs=u_max_pairs, seed=seed)
    linker.training.estimate_m_from_label_column("cluster")
    stats["splink_training"] = "m from deterministic links, u from random pairs"
    predictions = linker.inference.predict(threshold_match_probability=min_probability).as_pandas_dataframe()
    pairs = pd.DataFrame(
        {
            "left_index": predictions["record_index_l"].to_numpy(dtype=np.int64),
            "right_index": predictions["record_index_r"].to_numpy(dtype=np.int64),
            "match_weight": predictions["match_weight"].to_numpy(dtype=float),
            "match_probability": predictions["match_probability"].to_numpy(dtype=float),
        }
    )
    stats["splink_pairs_above_min"] = len(pairs)
    return pairs, stats


def empty_scores() -> pd.DataFrame:
    """A scored-pairs frame without rows."""
    return pd.DataFrame(
        {
            "left_index": np.array([], dtype=np.int64),
            "right_index": np.array([], dtype=np.int64),
            "match_weight": np.array([], dtype=float),
            "match_probability": np.array([], dtype=float),
        }
    )


def _pairs_within_clusters(labels: np.ndarray) -> int:
    sizes = np.bincount(np.unique(labels, return_inverse=True)[1])
    return int((sizes * (sizes - 1) // 2).sum())


def score_candidate_pairs(
    records: pd.DataFrame, labels: np.ndarray, seed: int, min_probability: float = 0.5
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Score identity records (from `helpers.identity.merge.build_records`) across deterministic clusters."""
    return score_pairs(model_input(records, labels), COMPARISONS, BLOCKING_RULES, seed, min_probability)
