"""Planted truth of a demo world, mapped onto a run's customers (evaluation only, never a step's logic)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

RECORD_KEYS = ["source_system", "source_record_id"]


def customer_person(crosswalk: pd.DataFrame, source_records: pd.DataFrame) -> pd.Series:
    """Planted person of each customer: the person most of its source records belong to, the smallest
    person id on a tie (evaluation only). Joined and counted in Arrow: at 1M people (2.2M records)
    3 s, where the same in pandas took 13 s of steps 04 and 05."""
    linked = _text_table(crosswalk, [*RECORD_KEYS, "customer_id"]).join(
        _text_table(source_records, [*RECORD_KEYS, "person_id"]), keys=RECORD_KEYS, join_type="inner"
    )
    linked = linked.filter(pc.and_(pc.is_valid(linked["customer_id"]), pc.is_valid(linked["person_id"])))
    counts = linked.group_by(["customer_id", "person_id"]).aggregate([([], "count_all")])
    best = counts.sort_by(
        [("customer_id", "ascending"), ("count_all", "descending"), ("person_id", "ascending")]
    )
    customer = best["customer_id"].combine_chunks()
    first = np.ones(len(best), dtype=bool)  # the first row of each customer after the sort
    first[1:] = pc.not_equal(customer[1:], customer[:-1]).to_numpy(zero_copy_only=False)
    best = best.filter(pa.array(first))
    return pd.Series(
        best["person_id"].to_numpy(zero_copy_only=False),
        index=pd.Index(best["customer_id"].to_numpy(zero_copy_only=False), name="customer_id"),
        name="person_id",
    )


def _text_table(frame: pd.DataFrame, columns: list[str]) -> pa.Table:
    """`columns` of `frame` as an Arrow table of text (ids are text; an empty frame keeps its types)."""
    schema = pa.schema([(column, pa.string()) for column in columns])
    return pa.Table.from_pandas(frame[columns], schema=schema, preserve_index=False)
