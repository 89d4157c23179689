"""Golden records (`helpers.identity.golden`) and the split of the merge into inputs and links."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
from identity_tables import clean_table

from helpers.core.settings import IdentitySettings
from helpers.engine.base import DuckDBEngine
from helpers.identity.golden import GOLDEN_COLUMNS, GOLDEN_RULES, build_golden
from helpers.identity.merge import (
    find_suspicious_identifiers,
    link_records,
    merge_identities,
    merge_inputs,
)

FIELDS = sorted({"name", *GOLDEN_RULES} - {"full_name"})


def records(rows: list[dict]) -> pd.DataFrame:
    """Unified records with `customer_id` as `build_golden` reads them: every field, empty unless given."""
    frame = pd.DataFrame(rows).reindex(columns=["customer_id", "source_system", "seen_at", *FIELDS])
    frame["seen_at"] = pd.to_datetime(frame["seen_at"])
    frame["birth_date"] = pd.to_datetime(frame["birth_date"])
    frame["record_key"] = frame["source_system"] + ":" + frame.index.astype(str)
    return frame


ROWS = [
    {"customer_id": "C2", "source_system": "crm", "seen_at": "2024-01-01", "name": "   ", "city": "北京"},
    {"customer_id": "C2", "source_system": "loyalty", "seen_at": "2023-01-01", "name": "王伟"},
    {"customer_id": "C2", "source_system": "shop", "seen_at": "2025-01-01", "name": "Wang Wei",
     "mobile": "+8613812345678", "gender": "M"},
    {"customer_id": "C2", "source_system": "crm", "seen_at": "2022-01-01", "gender": "F"},
    {"customer_id": "C2", "source_system": "shop", "seen_at": "2021-01-01", "gender": "M"},
    {"customer_id": "C1", "source_system": "cti", "seen_at": "2024-06-01", "name": "李娜"},
]  # fmt: skip


def test_blank_text_never_wins_and_rules_pick_by_priority_recency_and_frequency() -> None:
    golden = build_golden(records(ROWS)).set_index("customer_id")
    wang, li = golden.loc["C2"], golden.loc["C1"]
    # CRM's name is blank: loyalty (next in priority) wins, not the more recent shop name.
    assert wang["full_name"] == "王伟" and json.loads(wang["lineage"])["full_name"] == "loyalty"
    assert wang["gender"] == "M"  # frequent: M twice (shop), F once (crm)
    assert wang["mobile"] == "+8613812345678" and wang["city"] == "北京" and wang["city_tier"] == 1
    assert wang["n_source_records"] == 5 and wang["first_seen_at"] == pd.Timestamp("2021-01-01")
    # A customer known only to the call center: the CTI name, a consumer, nothing else.
    assert li["full_name"] == "李娜" and li["customer_type"] == "consumer"
    assert pd.isna(li["gender"]) and pd.isna(li["mobile"]) and li["n_source_records"] == 1
    assert json.loads(li["lineage"]) == {"full_name": "cti", "customer_type": "default"}


def test_golden_rows_follow_customer_ids_whatever_the_record_order() -> None:
    frame = records(ROWS)
    golden = build_golden(frame)
    assert golden.columns.tolist() == GOLDEN_COLUMNS and golden["customer_id"].tolist() == ["C1", "C2"]
    shuffled = frame.iloc[[5, 3, 0, 4, 1, 2]].reset_index(drop=True)
    pd.testing.assert_frame_equal(build_golden(shuffled), golden)


def test_placeholders_of_one_record_are_counted_with_the_shared_identifiers() -> None:
    """The query counts identifiers several records share; placeholders held once are counted too."""
    identifiers = pd.DataFrame(
        {
            "record_index": np.array([0, 1, 2, 3], dtype=np.int64),
            "identifier_type": ["mobile", "mobile", "email", "mobile"],
            "identifier_value": ["+8613800000000", "+8613800000000", "test@test.com", "+8613912345678"],
        }
    )
    frame = pd.DataFrame(
        {"name_key": ["wang wei", "li na", "zhao min", "liu yang"], "birth_date": pd.NaT},
        index=pd.RangeIndex(4, name="record_index"),
    )
    with DuckDBEngine() as engine:
        suspicious = find_suspicious_identifiers(identifiers, frame, max_people=4, engine=engine)
    counted = suspicious.set_index("identifier_value")
    assert counted["n_records"].to_dict() == {"+8613800000000": 2, "test@test.com": 1}
    assert set(counted["reason"]) == {"placeholder value"} and suspicious["n_records"].dtype == "int64"


def test_linking_prepared_inputs_is_merging_the_tables() -> None:
    """`run_step` builds the inputs, releases the tables, then links: the same result as one call."""
    crm = [
        {
            "crm_id": "C2",
            "full_name": "王伟",
            "mobile": "13812345678",
            "member_no": "M1",
            "created_at": "2024-01-01",
        },
        {"crm_id": "C1", "full_name": "李娜", "email": "ln@qq.com", "created_at": "2023-01-01"},
        {"crm_id": "C3", "full_name": "张强", "mobile": "13800000000", "created_at": "2022-01-01"},
    ]
    loyalty = [
        {"member_no": "M1", "member_name": "WANG WEI", "joined_on": "2023-05-01", "tier": "gold"},
        {"member_no": "M2", "member_name": "Li Na", "email": "LN@qq.com", "joined_on": "2023-06-01"},
    ]  # fmt: skip
    tables = {"crm": clean_table("crm", crm), "loyalty": clean_table("loyalty", loyalty)}
    settings = IdentitySettings(method="deterministic")
    whole = merge_identities(tables, settings, seed=42)
    split = link_records(*merge_inputs(tables), settings, seed=42)
    for name in ("crosswalk", "golden", "identifiers", "suspicious_identifiers", "merge_summary"):
        pd.testing.assert_frame_equal(getattr(split, name), getattr(whole, name))
    assert whole.crosswalk["customer_id"].nunique() == 3  # 王伟 and Li Na each linked across systems


def _oracle_winner(rows: pd.DataFrame, column: str, rule: str, sources: tuple[str, ...]) -> tuple:
    """(value, system) of one customer's winning record by the rule's definition, row by row."""
    candidates = [
        (position, row)
        for position, row in enumerate(rows.itertuples(index=False))
        if row.source_system in sources
        and pd.notna(getattr(row, column))
        and (not isinstance(getattr(row, column), str) or getattr(row, column).strip())
    ]
    if not candidates:
        return None, None
    counts = pd.Series([getattr(row, column) for _, row in candidates]).value_counts()

    def key(item: tuple) -> tuple:
        position, row = item
        # Most recent first, unknown times last; ties keep the record order.
        recency = (pd.isna(row.seen_at), -row.seen_at.value if pd.notna(row.seen_at) else 0)
        rank = sources.index(row.source_system)
        if rule == "priority":
            return (rank, *recency, position)
        if rule == "recent":
            return (*recency, rank, position)
        return (-counts[getattr(row, column)], rank, *recency, position)

    _, best = min(candidates, key=key)
    return getattr(best, column), best.source_system


def test_every_rule_picks_what_its_definition_picks_on_random_records() -> None:
    """Ties, blank text, unknown times and systems that are no source of an attribute, on 600 random
    records of 80 customers: each attribute's winner and lineage are the row-by-row definition's."""
    rng = np.random.default_rng(3)
    n = 600
    systems = np.array(["crm", "loyalty", "shop", "cti", "event"], dtype=object)
    text = np.array(["王伟", "李娜", " ", "", None, "Wang Wei"], dtype=object)
    seen = pd.to_datetime(rng.choice(["2021-01-01", "2022-06-01", "2023-03-01", None], n))
    rows = [
        {"customer_id": f"C{rng.integers(80):02d}", "source_system": rng.choice(systems), "seen_at": seen[i],
         "name": rng.choice(text), "gender": rng.choice(np.array(["M", "F", None], dtype=object)),
         "birth_date": rng.choice(["1980-01-02", "1990-05-06", None]), "mobile": rng.choice(text),
         "city": rng.choice(np.array(["北京", "上海", "  ", None], dtype=object)),
         "loyalty_tier": rng.choice(np.array(["gold", "silver", None], dtype=object))}
        for i in range(n)
    ]  # fmt: skip
    frame = records(rows)
    golden = build_golden(frame).set_index("customer_id")
    for attribute in ("full_name", "gender", "birth_date", "mobile", "city", "loyalty_tier"):
        rule, sources = GOLDEN_RULES[attribute]
        column = "name" if attribute == "full_name" else attribute
        for customer, own in frame.groupby("customer_id", sort=False):
            value, system = _oracle_winner(own, column, rule, sources)
            lineage = json.loads(golden.loc[customer, "lineage"])
            assert lineage.get(attribute) == system, (attribute, customer)
            got = golden.loc[customer, attribute]
            assert (pd.isna(got) and value is None) or got == value, (attribute, customer, got, value)
