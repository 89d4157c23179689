"""The SQL seam: every heavy table query lives in `src/helpers/engine/queries/<step>/<name>.sql`.

Queries are plain SQL over named tables (`{placeholders}` name the inputs; the text is filled
with `str.format`, so write a literal brace as `{{`/`}}`, in comments too). Prefer standard SQL
so the same text can later run on Spark; DuckDB-only functions in a query are a porting cost.
`SqlEngine` is the small interface steps use; DuckDB is the embedded default.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any, Protocol

import duckdb
import pandas as pd

SQL_DIR = Path(__file__).parent / "queries"


@cache
def load_query(step: str, name: str) -> str:
    """The text of `queries/<step>/<name>.sql`."""
    path = SQL_DIR / step / f"{name}.sql"
    if not path.is_file():
        raise FileNotFoundError(f"No query {path}")
    return path.read_text(encoding="utf-8")


class SqlEngine(Protocol):
    """What a step needs from a SQL engine."""

    def register(self, name: str, source: pd.DataFrame | Path | str) -> None:
        """Make a DataFrame or a Parquet file queryable as table `name`."""

    def query(self, sql: str, **params: Any) -> pd.DataFrame:
        """Run SQL (with `$name` parameters) and return the result as a DataFrame."""

    def run(self, step: str, name: str, tables: dict[str, str] | None = None, **params: Any) -> pd.DataFrame:
        """Run a stored query, filling `{placeholders}` with table names."""


class DuckDBEngine:
    """DuckDB in-process engine: Parquet files are queried in place, not loaded."""

    def __init__(self, threads: int | None = None, memory_limit: str | None = None) -> None:
        # Leave enable_progress_bar alone: inside a Jupyter kernel DuckDB keeps it off, and any attempt
        # to change it raises unless ipywidgets is installed.
        self.connection = duckdb.connect()
        if threads:
            self.connection.execute(f"SET threads = {int(threads)}")
        if memory_limit:
            self.connection.execute(f"SET memory_limit = '{memory_limit}'")

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

    def close(self) -> None:
        self.connection.close()

    def __enter__(self) -> DuckDBEngine:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


def connect(**options: Any) -> SqlEngine:
    """The default engine (DuckDB)."""
    return DuckDBEngine(**options)
