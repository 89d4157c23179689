"""One Spark session for the whole test session (`spark_engine`), skipped without pyspark or Java.

A pytest plugin: a test module that needs Spark says `pytest_plugins = ["spark_support"]`, and every
such module gets the same fixture instance, so the process's session
(`helpers.engine.spark.spark_session`) starts once, with `SMALL_DATA_CONF`, and stops at the end of
the test session.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from helpers.engine.base import connect

# Tiny tables: compiling generated code and adaptive re-planning cost more than they save (about a
# third of the parity run on 2 busy cores). Results do not depend on these settings.
SMALL_DATA_CONF = {
    "spark.sql.shuffle.partitions": "1",
    "spark.sql.codegen.wholeStage": "false",
    "spark.sql.codegen.factoryMode": "NO_CODEGEN",
    "spark.sql.adaptive.enabled": "false",
}


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
