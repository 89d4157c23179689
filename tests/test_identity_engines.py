"""Step 02's identifier table written straight from the engine to Parquet (`write_identifier_table`):
the rows `_identifier_table` returns as a frame, alike from DuckDB and Spark."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from helpers.core.context import StepContext
from helpers.core.settings import EngineSettings
from helpers.core.steps import IDENTITY
from helpers.identity.merge import _identifier_table, write_identifier_table

pytest_plugins = ["spark_support"]  # the shared Spark session (fixture spark_engine)

# Records 0-2 are customer C2, record 3 is C1; record 4 is an event record (C3) after the merged ones.
IDENTIFIERS = pd.DataFrame(
    {
        "record_index": [0, 1, 1, 2, 3, 3, 4],
        "identifier_type": ["mobile", "mobile", "email", "landline", "mobile", "crm_id", "mobile"],
        "identifier_value": ["+8613812345678", "+8613812345678", "w@qq.com", "+86-21-65529999",
                             "+8613800000000", "K1", "+8613712345678"],
    }
)  # fmt: skip
CUSTOMERS = pd.Series(["C2", "C2", "C2", "C1", "C3"], dtype=object)
SUSPICIOUS = pd.DataFrame({"identifier_type": ["mobile"], "identifier_value": ["+8613800000000"]})
# One row per customer and identifier (C2's shared mobile once), by customer, type and value.
EXPECTED = pd.DataFrame(
    {
        "customer_id": ["C1", "C1", "C2", "C2", "C2", "C3"],
        "identifier_type": ["crm_id", "mobile", "email", "landline", "mobile", "mobile"],
        "identifier_value": ["K1", "+8613800000000", "w@qq.com", "+86-21-65529999", "+8613812345678",
                             "+8613712345678"],
        "suspicious": [False, True, False, False, False, False],
    }
)  # fmt: skip


def written(tmp_path: Path, engine: str) -> pd.DataFrame:
    ctx = StepContext(run_dir=tmp_path / engine, step=IDENTITY.name, config={})
    path = write_identifier_table(ctx, IDENTIFIERS, CUSTOMERS, SUSPICIOUS, EngineSettings(name=engine))
    assert path == ctx.path("identifiers.parquet") and not path.with_suffix(".parquet.partial").exists()
    return pd.read_parquet(path)


def test_the_written_identifier_table_is_the_frame_the_query_returns(tmp_path: Path) -> None:
    on_duckdb = written(tmp_path, "duckdb")
    pd.testing.assert_frame_equal(on_duckdb, EXPECTED)
    as_frame = _identifier_table(IDENTIFIERS, CUSTOMERS.rename("customer_id").to_frame(), SUSPICIOUS)
    pd.testing.assert_frame_equal(on_duckdb, as_frame)


def test_spark_writes_the_same_identifier_table(spark_engine: Any, tmp_path: Path) -> None:
    pd.testing.assert_frame_equal(written(tmp_path, "spark"), EXPECTED)
