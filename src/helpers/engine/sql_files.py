"""The stored query files: `queries/<step>/<name>.sql` (re-exported by `helpers.engine.base`)."""

from __future__ import annotations

from functools import cache
from pathlib import Path

SQL_DIR = Path(__file__).parent / "queries"


@cache
def load_query(step: str, name: str) -> str:
    """The text of `queries/<step>/<name>.sql`."""
    path = SQL_DIR / step / f"{name}.sql"
    if not path.is_file():
        raise FileNotFoundError(f"No query {path}")
    return path.read_text(encoding="utf-8")
