"""The embedded DuckDB engine keeps its spill files out of the working folder."""

from __future__ import annotations

from pathlib import Path

from helpers.engine.base import DuckDBEngine


def test_duckdb_spills_to_a_folder_of_its_own_removed_on_close() -> None:
    # DuckDB's default is `.tmp` in the working folder, left behind when a process is killed mid-spill.
    with DuckDBEngine(memory_limit="64MB") as engine:
        spill = Path(engine.connection.execute("SELECT current_setting('temp_directory')").fetchone()[0])
        assert spill.is_absolute() and spill.is_dir() and spill.name.startswith("duckdb-")
    assert not spill.exists()
