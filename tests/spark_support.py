"""One Spark session for the whole test session (`spark_engine`), skipped without pyspark or Java.

A pytest plugin: a test module that needs Spark says `pytest_plugins = ["spark_support"]`, and every
such module gets the same fixture instance, so the process's session
(`helpers.engine.spark.spark_session`) starts once, with `SMALL_DATA_CONF`, and stops at the end of
the test session.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pandas as pd
import pytest

from helpers.core.tables import TABLES
from helpers.engine.base import connect

# Tiny tables: compiling generated code and adaptive re-planning cost more than they save (about a
# third of the parity run on 2 busy cores). Results do not depend on these settings.
SMALL_DATA_CONF = {
    "spark.sql.shuffle.partitions": "1",
    "spark.sql.codegen.wholeStage": "false",
    "spark.sql.codegen.factoryMode": "NO_CODEGEN",
    "spark.sql.adaptive.enabled": "false",
}


# Step 01 counts the distinct values of event-table columns with HyperLogLog (`approx_count_distinct`,
# `helpers.audit.contract.profile_columns`), and the engines' sketches differ: DuckDB's is 6 for 7
# values on the messy exports, Spark's HLL++ (5 % relative error) exact there. The counts are only
# shown; exact ones would change DuckDB's artifacts and cost it a hash table per column.
ESTIMATE_TOLERANCE = 0.15


def assert_same_column_profile(duck: pd.DataFrame, spark: pd.DataFrame) -> None:
    """Step 01's `column_profile` of both engines: equal, but for event tables' estimated distinct
    counts (within `ESTIMATE_TOLERANCE`, or one apart) and the text of float bounds (Spark writes a
    DOUBLE of 1e7 or more as `4.1092E8`, DuckDB as `410920000.0`: compared as numbers)."""
    approximate = ["distinct", "min", "max"]
    pd.testing.assert_frame_equal(duck.drop(columns=approximate), spark.drop(columns=approximate))
    floats = duck["type"].eq("float")
    for bound in ("min", "max"):
        assert duck.loc[~floats, bound].tolist() == spark.loc[~floats, bound].tolist(), bound
        numbers = [pd.to_numeric(frame.loc[floats, bound]) for frame in (duck, spark)]
        pd.testing.assert_series_equal(*numbers, obj=bound)
    events = duck["table"].map(lambda table: TABLES[table].kind == "event")
    assert duck.loc[~events, "distinct"].tolist() == spark.loc[~events, "distinct"].tolist()
    estimates = pd.DataFrame({"duckdb": duck.loc[events, "distinct"], "spark": spark.loc[events, "distinct"]})
    gap = (estimates["duckdb"] - estimates["spark"]).abs()
    allowed = (ESTIMATE_TOLERANCE * estimates.max(axis=1)).clip(lower=1)
    assert (gap <= allowed).all(), estimates[gap > allowed]


def require_spark() -> None:
    """Skip the calling test unless pyspark and a Java for it are installed."""
    pytest.importorskip("pyspark", reason="pyspark is not installed (pip install -e '.[spark]')")
    from helpers.engine.spark import ensure_java

    try:
        ensure_java()
    except RuntimeError as missing:
        pytest.skip(str(missing))


@pytest.fixture(scope="session")
def spark_engine() -> Iterator[Any]:
    """A Spark engine on the process's session."""
    require_spark()
    from helpers.engine.spark import stop_spark

    engine = connect("spark", conf=SMALL_DATA_CONF)
    yield engine
    engine.close()
    stop_spark()
