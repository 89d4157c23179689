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
from typing import Any

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
