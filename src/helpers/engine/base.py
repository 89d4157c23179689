"""The SQL seam: every heavy table query lives in `src/helpers/engine/queries/<step>/<name>.sql`.

Queries are plain SQL over named tables (`{placeholders}` name the inputs; the text is filled
with `str.format`, so write a literal brace as `{{`/`}}`, in comments too) in DuckDB's spelling,
with `$name` parameters. `SqlEngine` is the small interface steps use; `connect(name)` returns
DuckDB (the embedded default, runs the text as written) or Spark (`helpers.engine.spark`, which
translates the text through `helpers.engine.dialect`). A construct the dialect cannot translate
raises `DialectError` on Spark; `tests/test_engines.py` runs every query file on both engines.
Nothing outside this package imports an engine library.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any, Protocol

import duckdb
import pandas as pd

from helpers.core.tables import TABLES
from helpers.engine.sql_files import SQL_DIR, load_query

__all__ = [
    "DUCKDB_ONLY_STEPS",
    "PARITY_ARTIFACTS",
    "SQL_DIR",
    "DuckDBEngine",
    "SqlEngine",
    "connect",
    "connect_configured",
    "connect_engine",
    "load_query",
    "read_parity_artifact",
    "step_engine",
]


class SqlEngine(Protocol):
    """What a step needs from a SQL engine."""

    name: str  # duckdb, spark

    def register(self, name: str, source: pd.DataFrame | Path | str) -> None:
        """Make a DataFrame or a Parquet file queryable as table `name`."""

    def query(self, sql: str, **params: Any) -> pd.DataFrame:
        """Run SQL (with `$name` parameters) and return the result as a DataFrame."""

    def run(self, step: str, name: str, tables: dict[str, str] | None = None, **params: Any) -> pd.DataFrame:
        """Run a stored query, filling `{placeholders}` with table names."""

    def write_parquet(
        self, sql: str, path: str | Path, metadata: dict[str, str] | None = None, **params: Any
    ) -> None:
        """Write the result of a SELECT to one Parquet file (row order kept, optional key-value metadata)."""

    def close(self) -> None:
        """Release the engine's tables (and its connection)."""

    def __enter__(self) -> SqlEngine: ...

    def __exit__(self, *_: object) -> None: ...


class DuckDBEngine:
    """DuckDB in-process engine: Parquet files are queried in place, not loaded."""

    name = "duckdb"

    def __init__(
        self, threads: int | None = None, memory_limit: str | None = None, spill_prefix: str = "duckdb-"
    ) -> None:
        """DuckDB spills to a temporary folder of the engine's own, named `spill_prefix`… and removed
        by `close`, never to its default `.tmp` in the working folder (a notebook's or a checkout's)."""
        # Leave enable_progress_bar alone: inside a Jupyter kernel DuckDB keeps it off, and any attempt
        # to change it raises unless ipywidgets is installed.
        self.connection = duckdb.connect()
        self._spill = tempfile.TemporaryDirectory(prefix=spill_prefix)
        if threads:
            self.connection.execute(f"SET threads = {int(threads)}")
        if memory_limit:
            self.connection.execute(f"SET memory_limit = '{memory_limit}'")
        self.connection.execute(f"SET temp_directory = '{self._spill.name.replace(chr(39), chr(39) * 2)}'")

    def register(self, name: str, source: pd.DataFrame | Path | str) -> None:
        if isinstance(source, pd.DataFrame):
            self.connection.register(name, source)
        else:
            path = str(source).replace("'", "''")
            self.connection.execute(f"CREATE OR REPLACE VIEW {name} AS SELECT * FROM read_parquet('{path}')")

    def query(self, sql: str, **params: Any) -> pd.DataFrame:
        return self.connection.execute(sql, params or None).df()

    def run(self, step: str, name: str, tables: dict[str, str] | None = None, **params: Any) -> pd.DataFrame:
        return self.query(load_query(step, name).format(**(tables or {})), **params)

    def write_parquet(
        self, sql: str, path: str | Path, metadata: dict[str, str] | None = None, **params: Any
    ) -> None:
        target = str(path).replace("'", "''")
        options = ""
        if metadata:
            pairs = ", ".join(
                f"{key}: '{value.replace(chr(39), chr(39) * 2)}'" for key, value in metadata.items()
            )
            options = f", KV_METADATA {{{pairs}}}"
        self.connection.execute(f"COPY ({sql}) TO '{target}' (FORMAT parquet{options})", params or None)

    def close(self) -> None:
        self.connection.close()
        self._spill.cleanup()

    def __enter__(self) -> DuckDBEngine:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


ENGINES = ("duckdb", "spark")

# The steps whose SQL runs on DuckDB whatever `engine.name` says, and the modules outside this package
# that still reach DuckDB directly (DuckDB, Splink's DuckDBAPI, DuckDBEngine or an unconfigured
# `connect()`); issue 14 moved them all behind the seam. `tests/test_seam.py` checks these modules
# against the code. Step 01 reads the exports with DuckDB on every engine (`engine.reading.Workspace`)
# and runs its checks, quarantine and profiling on the configured one; step 02 samples Splink's
# u-probabilities on DuckDB on every engine (`engine.splink_api.model_with_u_from_duckdb`).
DUCKDB_ONLY_STEPS: dict[str, tuple[str, ...]] = {}
SQL_STEPS = ("01_data_audit", "02_identity_merge", "03_features", "05_lifecycle")  # the others run no SQL
# The artifacts a run on either engine must give equal (floats to 1e-9), each with the key its rows
# are sorted by: what `tests/test_spark_e2e.py` and `benchmarks/bench_spark.py` compare. Step 01's
# `column_profile` is not among them: its distinct counts of event-table columns are HyperLogLog
# estimates, and the engines' sketches differ (`tests/test_spark_e2e.py` compares it apart).
PARITY_ARTIFACTS: dict[str, list[str]] = {
    **{f"01_data_audit/clean_{name}": [table.key] for name, table in TABLES.items()},
    **{f"01_data_audit/quarantine_{name}": ["source_row"] for name in TABLES},
    "01_data_audit/ledger": ["table"],
    "01_data_audit/quarantine_reasons": ["table", "reason"],
    "01_data_audit/quality": ["table"],
    "01_data_audit/coverage_by_system": ["system"],
    "02_identity_merge/golden": ["customer_id"],
    "02_identity_merge/crosswalk": ["source_system", "source_record_id"],
    "02_identity_merge/identifiers": ["customer_id", "identifier_type", "identifier_value"],
    "02_identity_merge/row_trace": ["file", "table", "row_no"],
    "03_features/features": ["customer_id"],
    "04_clustering/segments": ["customer_id"],
    "05_lifecycle/lifecycle": ["customer_id"],
}


def read_parity_artifact(run_dir: Path, artifact: str) -> pd.DataFrame:
    """One of `PARITY_ARTIFACTS` of a run folder, rows sorted by its key."""
    frame = pd.read_parquet(run_dir / f"{artifact}.parquet")
    return frame.sort_values(PARITY_ARTIFACTS[artifact]).reset_index(drop=True)


def step_engine(step: str, configured: str) -> str | None:
    """The engine a step's SQL runs on when `configured` is `engine.name` (None: the step runs no SQL)."""
    if step not in SQL_STEPS:
        return None
    return "duckdb" if step in DUCKDB_ONLY_STEPS else configured


def connect(engine: str = "duckdb", **options: Any) -> SqlEngine:
    """An engine by name: `duckdb` (the embedded default) or `spark` (the optional `spark` extra;
    `master`, `conf` and `work_dir` options, see `helpers.engine.spark.SparkEngine`; DuckDB takes
    `threads`, `memory_limit` and `spill_prefix`, Spark ignores them)."""
    if engine == "duckdb":
        duckdb_options = ("threads", "memory_limit", "spill_prefix")
        return DuckDBEngine(**{k: v for k, v in options.items() if k in duckdb_options})
    if engine == "spark":
        try:
            from helpers.engine.spark import SparkEngine
        except ImportError as missing:
            raise RuntimeError(
                "engine.name: spark needs the spark extra: pip install -e '.[spark]'"
            ) from missing
        return SparkEngine(**options)
    raise ValueError(f"unknown engine {engine!r}; one of {', '.join(ENGINES)}")


def connect_configured(settings: Any, **options: Any) -> SqlEngine:
    """The engine the config's `engine` section names (`settings`: a WorkbenchConfig)."""
    return connect_engine(settings.engine, **options)


def connect_engine(section: Any, **options: Any) -> SqlEngine:
    """The engine an `engine` config section names (`section`: an EngineSettings), for code that is
    given the section rather than the whole config (the identity merge, `link_records`)."""
    if section.name == "spark":
        options = {"master": section.spark_master, "conf": dict(section.spark_conf), **options}
    return connect(section.name, **options)
