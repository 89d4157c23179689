"""Planted truth of a demo world, mapped onto a run's customers (evaluation only, never a step's logic)."""

from __future__ import annotations

import pandas as pd


def customer_person(crosswalk: pd.DataFrame, source_records: pd.DataFrame) -> pd.Series:
    """Planted person of each customer: the person most of its source records belong to (evaluation only)."""
    linked = crosswalk.merge(source_records, on=["source_system", "source_record_id"], how="inner")
    counts = linked.groupby(["customer_id", "person_id"]).size().rename("n").reset_index()
    best = counts.sort_values(["customer_id", "n", "person_id"], ascending=[True, False, True])
    return best.drop_duplicates("customer_id").set_index("customer_id")["person_id"]
