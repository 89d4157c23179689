"""The small world end to end with `engine.name=spark`: its clean and quarantined rows, ledger, customers,
crosswalk, features, segments and stages (`PARITY_ARTIFACTS`) equal those of the DuckDB run (`small_run`,
the suite's shared run), floats to 1e-9; step 01's column profile but for estimated distinct counts.

Skipped without pyspark or Java. The run's notebooks execute in a kernel of their own, which starts
its own Spark session (about 25 s); the steps that still run on DuckDB (`DUCKDB_ONLY_STEPS`) say so
in the run's progress and `run.json`.
"""

from __future__ import annotations

import json

import pandas as pd
import pytest
from spark_support import assert_same_column_profile, require_spark

from helpers.core.notebook_checks import SMALL_WORLD_CONFIG
from helpers.core.runner import RunResult, run_workbench
from helpers.engine.base import DUCKDB_ONLY_STEPS, PARITY_ARTIFACTS, read_parity_artifact


@pytest.fixture(scope="session")  # session, as small_run: set up (or skipped) before it
def spark_run(tmp_path_factory: pytest.TempPathFactory) -> RunResult:
    require_spark()
    outputs = tmp_path_factory.mktemp("spark-outputs")
    return run_workbench(SMALL_WORLD_CONFIG, ["engine.name=spark"], outputs_dir=outputs, progress=False)


@pytest.mark.slow
@pytest.mark.parametrize("artifact", list(PARITY_ARTIFACTS))
def test_spark_run_gives_the_duckdb_runs_artifact(
    artifact: str, spark_run: RunResult, small_run: RunResult
) -> None:
    duck, spark = (read_parity_artifact(run.run_dir, artifact) for run in (small_run, spark_run))
    if not artifact.startswith("01_data_audit/quarantine_"):  # the small world quarantines no shop account
        assert len(duck) > 0
    pd.testing.assert_frame_equal(duck, spark, rtol=1e-9, atol=1e-9)


@pytest.mark.slow
def test_spark_runs_column_profile_equals_duckdbs_but_for_estimated_distinct_counts(
    spark_run: RunResult, small_run: RunResult
) -> None:
    duck, spark = (
        pd.read_parquet(run.run_dir / "01_data_audit" / "column_profile.parquet")
        for run in (small_run, spark_run)
    )
    assert_same_column_profile(duck, spark)


@pytest.mark.slow
def test_spark_run_records_which_steps_sql_ran_where(spark_run: RunResult) -> None:
    steps = json.loads((spark_run.run_dir / "run.json").read_text())["steps"]
    engines = {step: record["sql_engine"] for step, record in steps.items()}
    assert engines["03_features"] == "spark" and engines["04_clustering"] is None
    assert {step for step, engine in engines.items() if engine == "duckdb"} == set(DUCKDB_ONLY_STEPS)
