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
# The record columns `build_golden` reads.
GOLDEN_INPUTS = ["customer_id", "source_system", "seen_at", *(_FIELD.get(a, a) for a in GOLDEN_RULES)]
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
    records: pd.DataFrame,
    customer_code: np.ndarray,
    seen_last: np.ndarray,
    system_rank: np.ndarray,
    attribute: str,
    rule: Rule,
) -> np.ndarray:
    """Positions in `records` of each customer's winning record for one attribute, in customer code order
    (customers without a non-empty value have none).

    `customer_code` is an integer per record's customer_id, `seen_last` orders records most recent first
    (unknown times last), `system_rank` is each record's place in the attribute's source order (-1: not a
    source of it). Ties keep the record order.
    """
    values = records[_FIELD.get(attribute, attribute)]
    candidate = (system_rank >= 0) & values.notna().to_numpy()
    rows = np.flatnonzero(candidate)
    if values.dtype == object or isinstance(values.dtype, pd.StringDtype):  # blank text is empty too
        value_code, distinct = pd.factorize(values.to_numpy(dtype=object)[rows])
        blank = np.fromiter((not str(v).strip() for v in distinct), dtype=bool, count=len(distinct))
        rows, value_code = rows[~blank[value_code]], value_code[~blank[value_code]]
    code, rank, seen = customer_code[rows], system_rank[rows], seen_last[rows]
    if rule == "priority":
        order = np.lexsort((seen, rank, code))
    elif rule == "recent":
        order = np.lexsort((rank, seen, code))
    else:
        if not isinstance(values.dtype, pd.StringDtype) and values.dtype != object:
            value_code = pd.factorize(values.to_numpy()[rows])[0]
        pair = pd.factorize(code.astype(np.int64) * (int(value_code.max(initial=0)) + 1) + value_code)[0]
        count = np.bincount(pair)[pair]
        order = np.lexsort((seen, rank, -count, code))
    ordered = code[order]
    first = np.ones(len(ordered), dtype=bool)
    first[1:] = ordered[1:] != ordered[:-1]
    return rows[order[first]]


def build_golden(records: pd.DataFrame) -> pd.DataFrame:
    """One golden row per `customer_id` of `records` (the unified records with `customer_id`; only
    `GOLDEN_INPUTS` are read)."""
    # Customers coded in customer_id order (the golden row order); the records themselves are not copied.
    customer_code, customers = pd.factorize(records["customer_id"], sort=True)
    golden = records.groupby(customer_code).agg(
        first_seen_at=("seen_at", "min"), n_source_records=("seen_at", "size")
    )
    golden.index = pd.Index(customers, name="customer_id")
    seen_at = pd.to_datetime(records["seen_at"])
    seen_last = np.where(seen_at.isna(), np.iinfo(np.int64).max, -seen_at.to_numpy().view(np.int64))
    system_code, system_names = pd.factorize(records["source_system"])
    systems = records["source_system"].to_numpy(dtype=object)
    lineage: dict[str, pd.Series] = {}
    for attribute, (rule, sources) in GOLDEN_RULES.items():
        # The attribute's source order per system code; the appended -1 is the code of a missing system.
        rank = np.array([*(sources.index(s) if s in sources else -1 for s in system_names), -1])
        rows = _winners(records, customer_code, seen_last, rank[system_code], attribute, rule)
        position = np.full(len(golden), -1, dtype=np.int64)  # each customer's winner, -1: none
        position[customer_code[rows]] = np.arange(len(rows))
        value = records[_FIELD.get(attribute, attribute)].iloc[rows].reset_index(drop=True)
        value = value.reindex(position).set_axis(golden.index)
        if attribute == "city":
            golden["city_tier"] = city_tier(value)
        elif attribute == "customer_type":  # customers known only outside the CRM are consumers
            value = value.fillna("consumer")
        golden[attribute] = value.astype(GOLDEN_DTYPES[attribute])  # each in its final type at once
        lineage[attribute] = pd.Series(systems[rows]).reindex(position).set_axis(golden.index)
    lineage["customer_type"] = lineage["customer_type"].fillna("default")
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
