"""Splink on both engines: `helpers.engine.splink_api` gives each engine's database API and the
identity step's comparisons in its spelling; a tiny record set scores the same on both.

The m and u probabilities are fixed (no training), so the match weights depend only on which
comparison level each pair falls in: any level Spark reads differently from DuckDB changes a weight.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

import pandas as pd

from helpers.engine.base import DuckDBEngine
from helpers.engine.splink_api import comparisons_for, database_api
from helpers.identity.splink_scoring import COMPARISONS

pytest_plugins = ["spark_support"]  # the shared Spark session (fixture spark_engine)

RECORDS = pd.DataFrame(
    {
        "record_index": range(8),
        "cluster": range(8),
        "name_key": ["wang wei", "wang", "david smith", "dvaid smith", "li na", "na li", None, "wang wei"],
        "birth_date": [
            dt.date(1980, 3, 4),
            dt.date(1980, 4, 3),  # day and month swapped
            dt.date(1970, 1, 1),
            dt.date(1971, 1, 2),
            dt.date(1990, 1, 12),
            dt.date(1990, 1, 21),  # day's digits transposed
            None,
            dt.date(1990, 12, 31),
        ],
        "gender": ["m", "m", "m", "f", "f", "f", None, "f"],
        "city_key": ["beijing", "beijing", "shanghai", None, "shanghai", "shanghai", "beijing", None],
        "mobile": ["13800000001", "13800000001", None, "13911112222", None, "13700003333", None, None],
        "mobile_tail": ["0001", "0001", None, "2222", None, "3333", None, "2222"],
        "email_key": ["w@x.cn", None, "d@s.com", "d@s.org", None, None, "x@y.cn", None],
        "email_local": ["w", None, "d", "d", None, None, "x", None],
        "email_handle": [None, None, None, None, None, None, None, None],
        "address_key": ["chaoyang1", "chaoyang1", None, None, "nanjingrd5", "nanjingroad5", None, None],
        "postcode": ["100020", None, None, None, "200001", "200001", None, None],
    }
)


def fixed_probabilities(comparisons: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The comparisons with m and u probabilities of their own per level (no training needed)."""
    out = []
    for comparison in comparisons:
        levels = []
        scored = [level for level in comparison["comparison_levels"] if not level.get("is_null_level")]
        for level in comparison["comparison_levels"]:
            if not level.get("is_null_level"):
                rank = scored.index(level)  # 0 = the strongest agreement
                level = {**level, "m_probability": 0.9 / 2**rank, "u_probability": 0.001 * 4**rank}
            levels.append(level)
        out.append({**comparison, "comparison_levels": levels})
    return out


def score(engine: Any) -> pd.DataFrame:
    from splink import Linker

    settings = {
        "link_type": "dedupe_only",
        "unique_id_column_name": "record_index",
        "probability_two_random_records_match": 0.01,
        "blocking_rules_to_generate_predictions": ["1 = 1"],
        "comparisons": fixed_probabilities(comparisons_for(engine, COMPARISONS)),
        "retain_intermediate_calculation_columns": True,
    }
    linker = Linker(database_api(engine).register(RECORDS), settings, log_level=logging.ERROR)
    pairs = linker.inference.predict().as_pandas_dataframe()
    gammas = [c for c in pairs.columns if c.startswith("gamma_")]
    columns = ["record_index_l", "record_index_r", *gammas, "match_weight"]
    return pairs[columns].sort_values(["record_index_l", "record_index_r"]).reset_index(drop=True)


def test_duckdb_comparisons_are_the_identity_steps_own() -> None:
    with DuckDBEngine() as engine:
        assert comparisons_for(engine, COMPARISONS) == COMPARISONS


def test_the_identity_comparisons_score_the_same_on_spark_and_duckdb(spark_engine: Any) -> None:
    with DuckDBEngine() as engine:
        duck = score(engine)
    spark = score(spark_engine)
    assert len(duck) == 8 * 7 // 2
    # The fixture reaches the levels Spark reads differently when given DuckDB's text: null levels,
    # one name part of the other, Jaro-Winkler, the birth-date typos.
    assert (duck["gamma_name"] == 4).any() and (duck["gamma_name"] == 3).any()
    assert (duck["gamma_birth_date"] == 1).sum() >= 2 and (duck["gamma_birth_date"] == -1).any()
    assert (duck["gamma_address"] == 1).any() and (duck["gamma_email"] == 0).any()
    pd.testing.assert_frame_equal(duck, spark, check_dtype=False, rtol=1e-9)
