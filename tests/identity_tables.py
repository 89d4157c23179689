"""Clean identity tables as step 01 writes them, from a few hand-written rows (for the identity tests)."""

from __future__ import annotations

import pandas as pd

from helpers.audit.contract import add_identity_columns
from helpers.core.tables import SOURCE_SYSTEMS, TABLES


def clean_identity_table(name: str, rows: list[dict]) -> pd.DataFrame:
    """The clean table `name` (e.g. `crm_customers`) holding `rows`, typed and with its identity columns."""
    table = TABLES[name]
    frame = pd.DataFrame(rows).reindex(columns=table.column_names)
    for column in table.columns:
        if column.type in ("date", "datetime"):
            frame[column.name] = pd.to_datetime(frame[column.name])
        elif column.type == "str":
            frame[column.name] = frame[column.name].astype("string")
    return add_identity_columns(frame, table)


def clean_table(system: str, rows: list[dict]) -> pd.DataFrame:
    """The clean identity table of source `system` (crm, cti, shop, loyalty) holding `rows`."""
    return clean_identity_table(SOURCE_SYSTEMS[system], rows)
