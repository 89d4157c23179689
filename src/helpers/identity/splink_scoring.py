"""Probabilistic matching for the identity step: Splink between deterministic clusters on the
configured engine (`engine` config section: Splink's DuckDBAPI or SparkAPI, the comparisons in the
engine's spelling, through `helpers.engine.splink_api`).

The model compares name keys (exact with term-frequency adjustment, partial, Jaro-Winkler),
birth dates (exact, one typo, else), gender, city, address, postcode, mobile (exact, same last 4
digits, else) and e-mail (exact, same local part, same trailing digit handle, else); a comparison
whose column is empty in every record is left out. Disagreement levels get their own (negative)
weights, so a different birth date, phone or e-mail counts against a match.

Training: u-probabilities from random record pairs, sampled by Splink on DuckDB whatever the engine
(Splink's sample hashes record ids with the engine's hash function, so Spark would count other
pairs and learn other weights). With at least `min_label_pairs` pairs inside
deterministic clusters, m-probabilities come from them (`estimate_m_from_label_column`; EM tends
to learn "same common name" as a match) and the prior is the deterministic duplicate rate.
With fewer (a file without shared phones or e-mails, a small file), Splink's own estimation:
the prior from exact name + birth date agreement at an assumed recall, m by EM on blocks that
do not block on the compared field (birth date, then name). Nothing to train on: nothing scored.
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np
import pandas as pd

from helpers.core.normalize import on_distinct
from helpers.core.settings import EngineSettings
from helpers.engine.base import SqlEngine, connect_engine
from helpers.engine.splink_api import trained_linker
from helpers.identity.keys import address_key, postcode_digits

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
    "address_key",
    "postcode",
]

# Candidate pairs: records in different deterministic clusters that agree on every key of one rule
# (`{s}` is the side, l or r). `bench_identity.py` / `bench_febrl.py` print what each adds.
BLOCKING_KEYS: list[tuple[str, ...]] = [
    ("{s}.name_key", "{s}.birth_date"),
    ("{s}.name_key", "{s}.city_key"),
    ("{s}.name_key", "{s}.mobile_tail"),
    ("{s}.birth_date", "{s}.mobile_tail"),
    ("{s}.name_first", "{s}.name_last", "{s}.birth_date"),
    ("{s}.email_local",),
    ("{s}.email_handle",),
    ("{s}.name_rare",),
    # A typo in the name: birth date and place, or birth date and a name part or initial agree.
    ("{s}.birth_date", "{s}.city_key"),
    ("{s}.birth_date", "left({s}.name_key, 1)"),
    ("{s}.birth_date", "{s}.name_last"),
    ("{s}.birth_date", "{s}.postcode"),
    # A typo in the name and no birth date in common: the same address, or postcode and a name part
    # or the place.
    ("{s}.address_key",),
    ("{s}.name_first", "{s}.postcode"),
    ("{s}.name_last", "{s}.postcode"),
    ("{s}.city_key", "{s}.postcode"),
]
BLOCKING_RULES = [
    " AND ".join(f"{key.format(s='l')} = {key.format(s='r')}" for key in keys) for keys in BLOCKING_KEYS
]
# A rule that would pair more than this many records per record (counted before scoring) is left out
# and named in the stats: a key far less selective on some file than on the files measured (all
# records in one city with one postcode) must not blow up memory and time.
MAX_RULE_PAIRS_PER_RECORD = 20
MIN_RULE_PAIRS_BUDGET = 1_000_000
# DuckDB memory for Splink (Spark takes its memory from `engine.spark_conf`); beyond it DuckDB spills
# to its temporary folder instead of growing.
SPLINK_MEMORY_LIMIT = "1GB"
ARROW_STRING = "string[pyarrow]"
# Names shared by at most this many records are blocked on alone (common names need more).
RARE_NAME_MAX_RECORDS = 20
# Deterministic duplicates are found already; the prior allows for this many more per found one.
PRIOR_INFLATION = 1.5
# Training without deterministic links: EM on records agreeing on each column (each block trains the
# other comparisons, as Splink's FEBRL examples do), if at least MIN_EM_PAIRS pairs agree on it; the
# prior from the pairs agreeing on all PRIOR_COLUMNS (at least one), taken as PRIOR_RECALL of the matches.
EM_COLUMNS = ("birth_date", "name_key")
MIN_EM_PAIRS = 20
PRIOR_COLUMNS = ("name_key", "birth_date")
PRIOR_RECALL = 0.6


def _level(sql: str, label: str, **extra: Any) -> dict[str, Any]:
    return {"sql_condition": sql, "label_for_charts": label, **extra}


def _null(column: str) -> dict[str, Any]:
    return _level(f'"{column}_l" IS NULL OR "{column}_r" IS NULL', "null", is_null_level=True)


_ELSE = _level("ELSE", "else")


def jaro_winkler(column: str) -> str:
    """Jaro-Winkler of `column`'s two values, NULL when they are equal (its levels come after the exact
    one, so an equal pair never reaches them). On Spark the similarity is a Python UDF, which Spark
    evaluates for every pair whatever the CASE around it: with equal values passed as NULL it scores
    only the pairs that differ (100k customers: 491k of the 574k candidate pairs have one name key;
    the name comparison 1.82 -> 0.84 s over them, same levels)."""
    return f"jaro_winkler_similarity(CASE WHEN {column}_l <> {column}_r THEN {column}_l END, {column}_r)"


# A typo of a birth date, as `helpers.identity.rules.birth_dates_compatible` defines it: one digit of
# YYYYMMDD differs, day and month swapped or a day's or month's digits transposed in the same year,
# within two days of the same day of the year a year apart, or a day apart. One digit of two strings
# of one length differs when their Levenshtein distance is at most 1 (an insertion or a deletion
# alone would change the length): Spark has `levenshtein` built in, where `hamming` became a lambda
# over the characters (100k customers, the 574k candidate pairs: 0.53 -> 0.37 s warm, 2.6 -> 0.6 s
# in a fresh session).
BIRTH_TYPO = (
    "levenshtein(strftime(birth_date_l, '%Y%m%d'), strftime(birth_date_r, '%Y%m%d')) <= 1"
    " OR year(birth_date_l) = year(birth_date_r) AND ("
    "month(birth_date_l) = day(birth_date_r) AND day(birth_date_l) = month(birth_date_r)"
    " OR month(birth_date_l) = month(birth_date_r)"
    " AND strftime(birth_date_l, '%d') = reverse(strftime(birth_date_r, '%d'))"
    " OR day(birth_date_l) = day(birth_date_r)"
    " AND strftime(birth_date_l, '%m') = reverse(strftime(birth_date_r, '%m')))"
    " OR abs(dayofyear(birth_date_l) - dayofyear(birth_date_r)) <= 2"
    " AND abs(year(birth_date_l) - year(birth_date_r)) <= 1"
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
            _level(f"{jaro_winkler('name_key')} >= 0.92", "jaro-winkler >= 0.92"),
            _level(f"{jaro_winkler('name_key')} >= 0.8", "jaro-winkler >= 0.8"),
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
        "output_column_name": "address",
        "comparison_levels": [
            _null("address_key"),
            _level("address_key_l = address_key_r", "exact"),
            _level(f"{jaro_winkler('address_key')} >= 0.9", "jaro-winkler >= 0.9"),
            _ELSE,
        ],
    },
    {
        "output_column_name": "postcode",
        "comparison_levels": [_null("postcode"), _level("postcode_l = postcode_r", "exact"), _ELSE],
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
    """The columns the Splink model compares, one row per record.

    Text columns are Arrow strings (`string[pyarrow]`), each converted as soon as it is made: on the
    20k demo world's 44,140 records the frame takes 11.4 MB instead of 40.7 MB with Python strings
    (at 2.2M records about 0.6 GB instead of 2 GB).
    """

    def text(values: pd.Series) -> pd.Series:
        return values.astype("string").astype(ARROW_STRING)

    def empty() -> pd.Series:
        return pd.Series(pd.NA, index=records.index, dtype=ARROW_STRING)

    name_key = text(records["name_key"])
    names = records["name_key"].astype("string")
    # A one-token name has no separate first and last token to block on.
    name_first = text(on_distinct(lambda n: n.where(n.str.count(" ") > 0).str.split(" ").str[0], names))
    name_last = text(on_distinct(lambda n: n.where(n.str.count(" ") > 0).str.split(" ").str[-1], names))
    del names
    local = on_distinct(lambda e: e.str.split("@").str[0], records["email_key"].astype("string"))
    # A QQ number or other digit run people reuse across providers: "wangqin1551327", "1551327".
    email_handle = text(on_distinct(lambda e: e.str.extract(r"(\d{5,})$", expand=False), local))
    email_local = text(local)
    del local
    counts = name_key.map(name_key.value_counts())
    address, postcode = records.get("address"), records.get("postcode")
    frame = pd.DataFrame(
        {
            "record_index": np.arange(len(records)),
            "cluster": labels,
            "name_key": name_key,
            "name_rare": name_key.where(counts <= RARE_NAME_MAX_RECORDS),
            "name_first": name_first,
            "name_last": name_last,
            "birth_date": pd.to_datetime(records["birth_date"]).dt.date,
            "gender": text(records["gender"]),
            "city_key": text(records["city_key"]),
            "mobile": text(records["mobile"]),
            "mobile_tail": text(records["mobile_tail"]),
            "email_key": text(records["email_key"]),
            "email_local": email_local,
            "email_handle": email_handle,
            "address_key": empty()
            if address is None
            else text(on_distinct(address_key, address.astype("string"))),
            "postcode": empty()
            if postcode is None
            else text(on_distinct(postcode_digits, postcode.astype("string"))),
        }
    )
    return frame[MODEL_COLUMNS].reset_index(drop=True)


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
    em_columns: tuple[str, ...] = (),
    prior_columns: tuple[str, ...] = (),
    engine_settings: EngineSettings | None = None,
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Train a Splink model on `frame` and score the pairs `blocking_rules` generate across clusters,
    on the engine `engine_settings` names (the config's `engine` section; DuckDB by default).

    `frame` has `record_index` (0..n-1) and `cluster` (deterministic cluster label) columns plus
    the compared columns; comparisons of columns empty in every record are left out. With at least
    `min_label_pairs` pairs inside deterministic clusters, m-probabilities come from them; else
    EM runs on each of `em_columns` (records agreeing on that column) with at least
    `MIN_EM_PAIRS` pairs, with the prior from the pairs agreeing on all `prior_columns`, taken to be
    `PRIOR_RECALL` of the matches (as Splink's `estimate_probability_two_random_records_match`).
    With neither, nothing is scored. u comes from Splink's random sampling on DuckDB whatever the
    engine (`helpers.engine.splink_api.trained_linker`). Returns
    `left_index, right_index, match_weight, match_probability` at/above `min_probability` and the
    training figures.
    """
    labels = frame["cluster"].to_numpy()
    label_pairs = _pairs_within_clusters(labels)
    stats: dict[str, Any] = {"splink_label_pairs": label_pairs}
    comparisons = [c for c in comparisons if frame[compared_column(c)].notna().any()]
    em_blocks = [c for c in em_columns if _pairs_agreeing(frame[c]) >= MIN_EM_PAIRS]
    if label_pairs < min_label_pairs and not em_blocks:
        stats["splink_training"] = (
            f"skipped: fewer than {min_label_pairs} deterministic pairs and fewer than "
            f"{MIN_EM_PAIRS} pairs agreeing on any of {list(em_columns)} for EM"
        )
        return empty_scores(), stats
    if label_pairs >= min_label_pairs or not prior_columns:
        prior = deterministic_prior(labels)
    else:
        agreeing = _pairs_agreeing(frame[list(prior_columns)].dropna().astype(str).agg("|".join, axis=1))
        all_pairs = len(frame) * (len(frame) - 1) / 2
        prior = float(np.clip(max(agreeing, 1) / PRIOR_RECALL / all_pairs, 1e-9, 0.5))
    engine = connect_engine(
        engine_settings or EngineSettings(), memory_limit=SPLINK_MEMORY_LIMIT, spill_prefix="splink-"
    )
    try:
        engine.register("splink_input", frame)
        kept, skipped = affordable_rules(engine, "splink_input", blocking_rules, len(frame))
        if skipped:
            stats["splink_rules_skipped"] = skipped
        rules = [f"({rule}) AND l.cluster <> r.cluster" for rule in kept]
        model = settings(prior, rules, comparisons)
        linker = trained_linker(engine, "splink_input", frame, model, u_max_pairs, seed, SPLINK_MEMORY_LIMIT)
        if label_pairs >= min_label_pairs:
            linker.training.estimate_m_from_label_column("cluster")
            stats["splink_training"] = "m from deterministic links, u from random pairs"
        else:
            for column in em_blocks:
                linker.training.estimate_parameters_using_expectation_maximisation(f"l.{column} = r.{column}")
            blocks = " / ".join(em_blocks)
            stats["splink_training"] = f"EM on records agreeing on {blocks}, u from random pairs"
        stats["splink_prior"] = prior
        predictions = linker.inference.predict(threshold_match_probability=min_probability)
        pairs = predictions.as_pandas_dataframe()
        pairs = pd.DataFrame(
            {
                "left_index": pairs["record_index_l"].to_numpy(dtype=np.int64),
                "right_index": pairs["record_index_r"].to_numpy(dtype=np.int64),
                "match_weight": pairs["match_weight"].to_numpy(dtype=float),
                "match_probability": pairs["match_probability"].to_numpy(dtype=float),
            }
        )
    finally:
        engine.close()  # frees DuckDB's tables and buffers now, not at garbage collection; removes the spill
    stats["splink_pairs_above_min"] = len(pairs)
    return pairs, stats


def rule_pair_counts(engine: SqlEngine, table: str, rules: list[str]) -> list[int]:
    """Record pairs each blocking rule yields in `table` (all pairs agreeing on its keys, whatever
    the deterministic cluster), counted by grouping, without forming the pairs: one statement for
    every rule (on Spark one job; a statement each cost ~0.2-0.4 s of planning and scheduling)."""
    if not rules:
        return []
    counts = []
    for number, rule in enumerate(rules):
        keys = [re.sub(r"\bl\.", "", part.split(" = ")[0]) for part in rule.split(" AND ")]
        filled = " AND ".join(f"{key} IS NOT NULL" for key in keys)
        counts.append(
            f"SELECT {number} AS rule, coalesce(sum(n * (n - 1) // 2), 0) AS pairs FROM "
            f"(SELECT count(*) AS n FROM {table} WHERE {filled} GROUP BY {', '.join(keys)})"
        )
    pairs = engine.query(" UNION ALL ".join(counts)).set_index("rule")["pairs"]
    return [int(pairs[number]) for number in range(len(rules))]


def affordable_rules(
    engine: SqlEngine, table: str, rules: list[str], n_records: int
) -> tuple[list[str], dict[str, int]]:
    """The blocking rules that yield at most `MAX_RULE_PAIRS_PER_RECORD` pairs per record (at least
    `MIN_RULE_PAIRS_BUDGET` pairs), and the left-out rules with their pair counts."""
    budget = max(MIN_RULE_PAIRS_BUDGET, MAX_RULE_PAIRS_PER_RECORD * n_records)
    counts = rule_pair_counts(engine, table, rules)
    kept = [rule for rule, n in zip(rules, counts, strict=True) if n <= budget]
    return kept, {rule: n for rule, n in zip(rules, counts, strict=True) if n > budget}


def compared_column(comparison: dict[str, Any]) -> str:
    """The column a comparison reads, from its null level (`"<column>_l" IS NULL ...`)."""
    match = re.match(r'"?(\w+)_l"? IS NULL', comparison["comparison_levels"][0]["sql_condition"])
    return match.group(1) if match else comparison["output_column_name"]


def _pairs_agreeing(values: pd.Series) -> int:
    """Record pairs with the same non-null value."""
    sizes = values.dropna().value_counts().to_numpy(dtype=np.int64)
    return int((sizes * (sizes - 1) // 2).sum())


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
    records: pd.DataFrame,
    labels: np.ndarray,
    seed: int,
    min_probability: float = 0.5,
    engine_settings: EngineSettings | None = None,
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Score identity records (from `helpers.identity.merge.build_records`) across deterministic clusters,
    on the engine `engine_settings` names (DuckDB by default)."""
    return score_pairs(
        model_input(records, labels),
        COMPARISONS,
        BLOCKING_RULES,
        seed,
        min_probability,
        em_columns=EM_COLUMNS,
        prior_columns=PRIOR_COLUMNS,
        engine_settings=engine_settings,
    )
