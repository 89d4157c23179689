"""Link rules of step 02: which records sharing an identifier may link, when two birth dates are a
typo of each other, and the union of clusters that refuses contradictory merges (no chaining)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from helpers.engine.base import DuckDBEngine
from helpers.identity.keys import name_similarity

# Link strength of each identifier type: stronger links are merged first.
IDENTIFIER_STRENGTH = {"national_id": 6, "member_no": 5, "crm_id": 5, "mobile": 4, "email": 3, "landline": 2}
# Lowest name similarity (Jaro-Winkler of name keys) a shared identifier still links across.
NAME_SIMILARITY_FLOOR = {
    "national_id": 0.7,
    "member_no": 0.7,
    "crm_id": 0.7,
    "mobile": 0.75,
    "email": 0.75,
    # Household landlines and switchboards: only the very same name links.
    "landline": 1.0,
}
# Two names this dissimilar never end up in one customer.
CLUSTER_NAME_FLOOR = 0.7


def deterministic_edges(
    identifiers: pd.DataFrame, records: pd.DataFrame, suspicious: pd.DataFrame, engine: DuckDBEngine
) -> pd.DataFrame:
    """Record pairs sharing a usable identifier, each `accepted` or rejected with a `reason`."""
    usable = identifiers.merge(
        suspicious[["identifier_type", "identifier_value"]],
        how="left",
        indicator=True,
        on=["identifier_type", "identifier_value"],
    )
    usable = usable[usable["_merge"] == "left_only"].drop(columns="_merge")
    engine.register("usable_identifiers", usable)
    columns = ["record_index", "name_key", "birth_date", "gender", "national_id_hash"]
    engine.register("pair_records", records.reset_index()[columns])
    pairs = engine.run(
        "identity",
        "identifier_pairs",
        tables={"identifiers": "usable_identifiers", "records": "pair_records"},
    )
    types = pairs["shared_types"].str.split("+")
    pairs["strength"] = types.map(lambda kinds: max(IDENTIFIER_STRENGTH[k] for k in kinds)).astype(int)
    floor = types.map(lambda kinds: min(NAME_SIMILARITY_FLOOR[k] for k in kinds))
    similarity = pairs["name_similarity"]
    name_conflict = similarity.notna() & (similarity < floor)
    gender_conflict = pairs["gender_conflict"].astype(bool) & similarity.notna() & (similarity < 1.0)
    reason = pd.Series("", index=pairs.index)
    reason = reason.mask(gender_conflict, "gender differs")
    reason = reason.mask(name_conflict, "names differ")
    reason = reason.mask(pairs["birth_date_conflict"].astype(bool), "birth dates differ")
    reason = reason.mask(pairs["national_id_conflict"].astype(bool), "national IDs differ")
    pairs["accepted"] = reason == ""
    pairs["reason"] = reason
    # Strongest first: identifier strength, then how well the names agree.
    pairs["score"] = pairs["strength"] + pairs["name_similarity"].fillna(0.5)
    return pairs.sort_values(
        ["score", "left_index", "right_index"], ascending=[False, True, True]
    ).reset_index(drop=True)


# ---------------------------------------------------------------------------------------------
# Clustering without chaining
def birth_dates_compatible(a: pd.Timestamp, b: pd.Timestamp) -> bool:
    """Same date or a typo of it: one digit of YYYYMMDD differs, day and month swapped or the two
    digits of the day or month transposed (same year), within two days of the same day of the year
    a year apart, or a day apart. Namesakes born years apart on the same day (1964-08-10 and
    2003-08-10) are not compatible."""
    if a == b:
        return True
    left, right = a.strftime("%Y%m%d"), b.strftime("%Y%m%d")
    if sum(x != y for x, y in zip(left, right, strict=True)) <= 1:
        return True
    if a.year == b.year and (
        (a.month == b.day and a.day == b.month)
        or (a.month == b.month and left[6:] == right[6:][::-1])
        or (a.day == b.day and left[4:6] == right[4:6][::-1])
    ):
        return True
    near_day = abs(a.dayofyear - b.dayofyear) <= 2  # 365 days off moves the date by one in a leap year
    return (near_day and abs(a.year - b.year) <= 1) or abs((a - b).days) <= 1


@dataclass
class _ClusterFacts:
    names: set[str]
    birth_dates: set[pd.Timestamp]
    national_ids: set[str]
    mobiles: set[str]


def _compatible(a: _ClusterFacts, b: _ClusterFacts, check_mobiles: bool) -> bool:
    if len(a.national_ids | b.national_ids) > 1:
        return False
    # Phones change: different mobiles veto a probabilistic link unless name and birth date agree exactly.
    if (
        check_mobiles
        and a.mobiles
        and b.mobiles
        and not a.mobiles & b.mobiles
        and not (a.names & b.names and a.birth_dates & b.birth_dates)
    ):
        return False
    if any(not birth_dates_compatible(x, y) for x in a.birth_dates for y in b.birth_dates - a.birth_dates):
        return False
    return all(name_similarity(x, y) >= CLUSTER_NAME_FLOOR for x in a.names for y in b.names - a.names)


def merge_with_constraints(
    labels: np.ndarray,
    left: np.ndarray,
    right: np.ndarray,
    records: pd.DataFrame,
    check_mobiles: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """Union the clusters in `labels` along record edges (`left[i]`-`right[i]`, strongest first).

    A merge is refused when the two clusters together would hold two national-ID hashes,
    birth dates that cannot be typos of each other, or dissimilar names; with `check_mobiles`
    also when both clusters have mobiles and share none (for probabilistic links, where no
    identifier vouches for the match) unless they share a name key and a birth date. Returns the
    new label of every record and a bool array saying which edges were applied (or already inside
    one cluster).
    """
    columns = {
        "names": records["name_key"],
        "birth_dates": records["birth_date"],
        "national_ids": records["national_id_hash"],
        "mobiles": records["mobile"] if "mobile" in records else pd.Series(pd.NA, index=records.index),
    }
    values = {
        key: column.astype(object).where(column.notna(), None).to_numpy() for key, column in columns.items()
    }
    order = np.argsort(labels, kind="stable")
    sorted_labels = labels[order]
    parent: dict[int, int] = {}
    facts: dict[int, _ClusterFacts] = {}

    def touch(label: int) -> None:
        if label in parent:
            return
        parent[label] = label
        rows = order[
            np.searchsorted(sorted_labels, label) : np.searchsorted(sorted_labels, label, side="right")
        ]
        sets = {key: {array[i] for i in rows} - {None} for key, array in values.items()}
        facts[label] = _ClusterFacts(**sets)

    def find(node: int) -> int:
        while parent[node] != node:
            parent[node] = parent[parent[node]]
            node = parent[node]
        return node

    applied = np.zeros(len(left), dtype=bool)
    for position, (a, b) in enumerate(zip(labels[left].tolist(), labels[right].tolist(), strict=True)):
        touch(a)
        touch(b)
        root_a, root_b = find(a), find(b)
        if root_a != root_b:
            if not _compatible(facts[root_a], facts[root_b], check_mobiles):
                continue
            keep, gone = min(root_a, root_b), max(root_a, root_b)
            parent[gone] = keep
            kept, merged = facts[keep], facts.pop(gone)
            for key in values:
                getattr(kept, key).update(getattr(merged, key))
        applied[position] = True
    new_labels = labels.copy()
    if parent:
        touched = np.fromiter(parent.keys(), dtype=labels.dtype)
        roots = np.fromiter((find(int(node)) for node in touched), dtype=labels.dtype)
        lookup = pd.Series(roots, index=touched)
        hit = np.isin(labels, touched)
        new_labels[hit] = lookup.reindex(labels[hit]).to_numpy()
    return new_labels, applied


def link_components(n_records: int, left: np.ndarray, right: np.ndarray) -> np.ndarray:
    """Connected-component label per record of the undirected graph of links (left[i], right[i])."""
    graph = coo_matrix((np.ones(len(left)), (left, right)), shape=(n_records, n_records))
    return connected_components(graph, directed=False)[1]


def deterministic_clusters(
    n_records: int, accepted: pd.DataFrame, records: pd.DataFrame
) -> tuple[np.ndarray, np.ndarray]:
    """Cluster label per record from accepted identifier links, without chaining conflicts.

    Connected components whose records agree on name key, birth date and national ID (or lack
    them) are taken as they are; only components with differing values go through
    `merge_with_constraints`. Returns labels (the smallest record index of each cluster) and
    which accepted links were applied.
    """
    left, right = accepted["left_index"].to_numpy(), accepted["right_index"].to_numpy()
    component = link_components(n_records, left, right)
    checked = pd.DataFrame(
        {
            "component": component,
            "name": records["name_key"].to_numpy(),
            "birth": records["birth_date"].to_numpy(),
            "national_id": records["national_id_hash"].to_numpy(),
        }
    )
    distinct = checked.groupby("component")[["name", "birth", "national_id"]].nunique()
    simple = (distinct <= 1).all(axis=1).reindex(component).to_numpy()
    labels = pd.Series(np.arange(n_records)).groupby(component).transform("min").to_numpy()
    applied = np.ones(len(left), dtype=bool)
    complex_edges = ~simple[left]
    if complex_edges.any():
        own = np.where(simple, labels, np.arange(n_records))
        merged, applied_complex = merge_with_constraints(
            own, left[complex_edges], right[complex_edges], records
        )
        labels = np.where(simple, labels, merged)
        applied[complex_edges] = applied_complex
    return labels, applied
