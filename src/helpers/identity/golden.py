"""Golden records: one row per customer, each attribute chosen by a documented survivorship rule.

Rules (`GOLDEN_RULES`), applied to the non-empty values of a customer's source records:
- `priority`: the first source in the listed order wins; within a source, the most recent record.
- `recent`: the most recently created/seen record wins (ties: source priority).
- `frequent`: the most frequent value wins (ties: source priority, then most recent).
`lineage` (JSON) names the source system that won each attribute.
"""

from __future__ import annotations

import json
from typing import Literal

import numpy as np
import pandas as pd

from helpers.core.normalize import city_tier

Rule = Literal["priority", "recent", "frequent"]

# attribute -> (rule, source systems allowed, in priority order)
GOLDEN_RULES: dict[str, tuple[Rule, tuple[str, ...]]] = {
    "full_name": ("priority", ("crm", "loyalty", "shop", "cti", "event")),
    "gender": ("frequent", ("crm", "shop")),
    "birth_date": ("frequent", ("crm", "loyalty", "shop")),
    "mobile": ("recent", ("crm", "shop", "loyalty", "cti", "event")),
    "email": ("recent", ("crm", "shop", "loyalty", "event")),
    "province": ("priority", ("crm", "shop")),
    "city": ("priority", ("crm", "shop", "cti")),
    "customer_type": ("priority", ("crm",)),
    "company_name": ("priority", ("crm",)),
    "industry": ("priority", ("crm",)),
    "employee_count": ("priority", ("crm",)),
    "annual_revenue_cny": ("priority", ("crm",)),
    "primary_device": ("recent", ("shop",)),
    "app_installed": ("recent", ("shop",)),
    "sessions_per_month": ("recent", ("shop",)),
    "online_minutes_per_month": ("recent", ("shop",)),
    "loyalty_tier": ("recent", ("loyalty",)),
}
# The record field each golden attribute comes from (same name unless listed).
_FIELD = {"full_name": "name"}
_TEXT = ("customer_id", "full_name", "gender", "mobile", "email", "province", "city", "customer_type",
         "company_name", "industry", "primary_device", "loyalty_tier", "lineage")  # fmt: skip
# Text is Arrow-backed (a fifth of Python strings' memory: ~1 GB less at a million customers); it is
# written as plain `string` (`helpers.identity.merge.write_plain`).
GOLDEN_DTYPES: dict[str, str | pd.StringDtype] = {
    **dict.fromkeys(_TEXT, pd.StringDtype("pyarrow")),
    "birth_date": "datetime64[ns]",
    "first_seen_at": "datetime64[ns]",
    "employee_count": "Int64",
    "annual_revenue_cny": "float64",
    "app_installed": "boolean",
    "sessions_per_month": "float64",
    "online_minutes_per_month": "float64",
    "city_tier": "Int64",
    "n_source_records": "int64",
}
GOLDEN_COLUMNS = [
    "customer_id",
    *GOLDEN_RULES.keys(),
    "city_tier",
    "first_seen_at",
    "n_source_records",
    "lineage",
]


def _winners(
    records: pd.DataFrame, customer_code: np.ndarray, attribute: str, rule: Rule, systems: tuple[str, ...]
) -> pd.DataFrame:
    """customer_code, value, source_system of the winning record of each customer for one attribute.

    `customer_code` is an integer per record's customer_id (sorting on it is faster).
    """
    column = _FIELD.get(attribute, attribute)
    allowed = records["source_system"].isin(systems).to_numpy()
    candidates = records.loc[allowed, ["customer_id", "source_system", "seen_at", column]]
    candidates = candidates.rename(columns={column: "value"})
    candidates.insert(1, "customer_code", customer_code[allowed])
    values = candidates["value"]
    empty = values.isna().to_numpy()
    if values.dtype == object or isinstance(values.dtype, pd.StringDtype):  # blank text is empty too
        text = values.to_numpy(dtype=object)[~empty]
        empty[~empty] = np.fromiter((not str(v).strip() for v in text), dtype=bool, count=len(text))
    candidates = candidates[~empty]
    candidates = candidates.assign(
        priority=candidates["source_system"].map({s: i for i, s in enumerate(systems)})
    )
    if rule == "priority":
        order, ascending = ["customer_code", "priority", "seen_at"], [True, True, False]
    elif rule == "recent":
        order, ascending = ["customer_code", "seen_at", "priority"], [True, False, True]
    else:
        counts = candidates.groupby(["customer_code", "value"])["value"].transform("size")
        candidates = candidates.assign(count=counts)
        order, ascending = ["customer_code", "count", "priority", "seen_at"], [True, False, True, False]
    best = candidates.sort_values(order, ascending=ascending, kind="stable").drop_duplicates("customer_code")
    return best[["customer_code", "value", "source_system"]].reset_index(drop=True)


def build_golden(records: pd.DataFrame) -> pd.DataFrame:
    """One golden row per `customer_id` of `records` (the unified records with `customer_id`)."""
    # Customers coded in customer_id order (the golden row order); the records themselves are not copied.
    customer_code, customers = pd.factorize(records["customer_id"], sort=True)
    golden = records.groupby(customer_code).agg(
        first_seen_at=("seen_at", "min"), n_source_records=("record_key", "size")
    )
    golden.index = pd.Index(customers, name="customer_id")
    lineage: dict[str, pd.Series] = {}
    for attribute, (rule, systems) in GOLDEN_RULES.items():
        winners = _winners(records, customer_code, attribute, rule, systems)
        position = np.full(len(golden), -1, dtype=np.int64)  # each customer's winner row, -1: none
        position[winners["customer_code"].to_numpy()] = np.arange(len(winners))
        placed = winners.reindex(position).set_axis(golden.index)
        golden[attribute] = placed["value"]
        lineage[attribute] = placed["source_system"]
    # Customers known only outside the CRM are consumers.
    lineage["customer_type"] = lineage["customer_type"].fillna("default")
    golden["customer_type"] = golden["customer_type"].fillna("consumer")
    golden["city_tier"] = city_tier(golden["city"])
    # Few distinct winner patterns: one JSON text per pattern, then looked up per customer.
    winners = pd.DataFrame(lineage).fillna("")
    codes = winners.groupby(list(lineage), sort=False).ngroup().to_numpy()
    first = np.unique(codes, return_index=True)[1]
    texts = [
        json.dumps({k: v for k, v in zip(lineage, pattern, strict=True) if v}, ensure_ascii=False)
        for pattern in winners.iloc[first].itertuples(index=False)
    ]
    golden["lineage"] = np.asarray(texts, dtype=object)[codes]
    return golden.reset_index()[GOLDEN_COLUMNS].astype(GOLDEN_DTYPES)
