"""Splink on the configured engine: its database API and comparisons it accepts.

Splink runs one set of linkage SQL on several backends (`splink.backends.duckdb.DuckDBAPI`,
`splink.backends.spark.SparkAPI`) and transpiles its own SQL with SQLGlot; custom comparison
levels (`sql_condition`) are passed through as written, so DuckDB-only spellings in them fail on
Spark (`list_has_all`, `date_diff('day', ...)`, `hamming`, `strftime`) or, worse, run with another
meaning (`"col_l" IS NULL`: a string literal on Spark, never NULL). `comparisons_for` writes every
condition in the engine's spelling through `helpers.engine.dialect`, so the identity step keeps one
set of comparisons in DuckDB's spelling.
"""

from __future__ import annotations

import copy
import logging
from typing import Any

import pandas as pd
from splink import Linker

from helpers.engine.base import DuckDBEngine, SqlEngine
from helpers.engine.dialect import dialect_for


def database_api(engine: SqlEngine) -> Any:
    """Splink's database API over `engine`'s own connection or session (tables registered on one are
    visible to the other): DuckDBAPI for DuckDB, SparkAPI for Spark (intermediate tables persisted
    in the session, the Scala similarity functions registered from Splink's jar)."""
    if isinstance(engine, DuckDBEngine):
        from splink.backends.duckdb import DuckDBAPI

        return DuckDBAPI(connection=engine.connection)
    if engine.name == "spark":
        from splink.backends.spark import SparkAPI

        spark = engine.spark  # type: ignore[attr-defined]
        return SparkAPI(
            spark_session=spark,
            break_lineage_method="persist",
            num_partitions_on_repartition=int(spark.conf.get("spark.sql.shuffle.partitions")),
        )
    raise ValueError(f"no Splink backend for engine {engine.name!r}; one of duckdb, spark")


def comparisons_for(engine: SqlEngine, comparisons: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Splink comparison dictionaries with each level's `sql_condition` (DuckDB's spelling) in the
    spelling of `engine` (unchanged on DuckDB; `ELSE` levels as they are)."""
    dialect = dialect_for(engine.name)
    translated = copy.deepcopy(comparisons)
    for comparison in translated:
        for level in comparison["comparison_levels"]:
            if level["sql_condition"].strip().upper() != "ELSE":
                level["sql_condition"] = dialect.expression(level["sql_condition"])
    return translated


def trained_linker(
    engine: SqlEngine,
    table: str,
    frame: pd.DataFrame,
    model: dict[str, Any],
    max_pairs: float,
    seed: int,
    memory_limit: str,
) -> Linker:
    """A Splink linker over `table` (registered on `engine`; `frame` holds the same rows) with `model`
    (Splink settings, comparisons in DuckDB's spelling) and its u-probabilities from Splink's random
    sampling (`max_pairs`, `seed`), written in the engine's spelling.

    u is sampled on DuckDB whatever the engine: Splink picks the sampled pairs with the engine's own
    random sampling and hash function, so Spark would count other pairs and learn other weights. On
    another engine the sample runs on a temporary DuckDB connection over `frame` (bounded by
    `max_pairs`, DuckDB's `memory_limit`; `frame` is in the driver's memory already) and the trained
    model moves over."""
    from splink.backends.duckdb import DuckDBAPI

    def sampled(duck: DuckDBEngine) -> Linker:
        database = DuckDBAPI(connection=duck.connection).register(frame)
        sampler = Linker(database, model, log_level=logging.ERROR)
        sampler.training.estimate_u_using_random_sampling(max_pairs=max_pairs, seed=seed)
        return sampler

    if isinstance(engine, DuckDBEngine):
        return sampled(engine)
    with DuckDBEngine(memory_limit=memory_limit, spill_prefix="splink-u-") as duck:
        trained = sampled(duck).misc.save_model_to_json()
    return Linker(database_api(engine).register(table), model_for(engine, trained), log_level=logging.ERROR)


def model_for(engine: SqlEngine, model: dict[str, Any]) -> dict[str, Any]:
    """A saved Splink model (`save_model_to_json`, DuckDB's spelling) for `engine`: its dialect, its
    blocking rules' dialect and its comparison levels in the engine's spelling (`comparisons_for`)."""
    moved = {
        **model,
        "sql_dialect": engine.name,
        "comparisons": comparisons_for(engine, model["comparisons"]),
    }
    moved["blocking_rules_to_generate_predictions"] = [
        {**rule, "sql_dialect": engine.name} if isinstance(rule, dict) else rule
        for rule in model.get("blocking_rules_to_generate_predictions", [])
    ]
    return moved
