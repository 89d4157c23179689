"""Link rules of step 02: which records sharing an identifier may link, when two birth dates are a
typo of each other, and the union of clusters that refuses contradictory merges (no chaining)."""

from __future__ import annotations

from dataclasses import dataclass

import jellyfish
import numpy as np
import pandas as pd
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from helpers.core.normalize import on_distinct
from helpers.engine.base import SqlEngine
from helpers.identity.keys import address_key, name_similarity, postcode_digits

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
    identifiers: pd.DataFrame, records: pd.DataFrame, suspicious: pd.DataFrame, engine: SqlEngine
) -> pd.DataFrame:
    """Record pairs sharing a usable identifier, each `accepted` or rejected with a `reason`."""
    # Suspicious identifiers are a few thousand among millions: only rows with one of their values are
    # compared on type and value.
    keys = ["identifier_type", "identifier_value"]
    maybe = identifiers["identifier_value"].isin(suspicious["identifier_value"]).to_numpy()
    flagged = np.zeros(len(identifiers), dtype=bool)
    flagged[maybe] = pd.MultiIndex.from_frame(identifiers.loc[maybe, keys]).isin(
        pd.MultiIndex.from_frame(suspicious[keys])
    )
    usable = identifiers[~flagged].reset_index(drop=True)
    engine.register("usable_identifiers", usable)
    columns = ["name_key", "birth_date", "gender", "national_id_hash"]
    engine.register("pair_records", records[columns].reset_index())  # record_index first
    pairs = engine.run(
        "identity",
        "identifier_pairs",
        tables={"identifiers": "usable_identifiers", "records": "pair_records"},
    )
    # A few distinct combinations ("email+mobile") among millions of pairs: each worked out once, and held
    # as one string object each (the query's result has one per pair).
    type_code, combinations = pd.factorize(pairs["shared_types"])
    pairs["shared_types"] = combinations.to_numpy(dtype=object)[type_code]
    kinds = [combination.split("+") for combination in combinations]
    strength = np.array([max(IDENTIFIER_STRENGTH[k] for k in ks) for ks in kinds], dtype=np.int64)
    pairs["strength"] = strength[type_code]
    floor = np.array([min(NAME_SIMILARITY_FLOOR[k] for k in ks) for ks in kinds], dtype=float)[type_code]
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


# A probabilistic link whose own two records corroborate each other excuses their different mobiles
# (`excused_conflicts`): NAME_AGREES is the name similarity of "the same name, maybe a typo";
# CORROBORATING are the fields besides name and birth date whose agreement counts (an identifier or
# the place a person lives, not the city or gender many people share).
NAME_AGREES = 0.9
ADDRESS_AGREES = 0.9  # Jaro-Winkler of the addresses (lower-case, letters and digits only)
CORROBORATING = ("email_key", "address_key", "postcode")


def _comparable(records: pd.DataFrame, corroborating: bool) -> dict[str, np.ndarray]:
    """The record fields the constraints compare, as object arrays with None for missing values
    (`CORROBORATING` fields only with `corroborating`: `excused_conflicts` alone reads them)."""
    columns = {
        "name_key": records["name_key"],
        "birth_date": records["birth_date"],
        "national_id_hash": records["national_id_hash"],
        "mobile": records.get("mobile"),
    }
    if corroborating:
        columns["email_key"] = records.get("email_key")
        columns["address_key"] = (
            on_distinct(address_key, records["address"].astype("string")) if "address" in records else None
        )
        columns["postcode"] = (
            on_distinct(postcode_digits, records["postcode"].astype("string"))
            if "postcode" in records
            else None
        )
    arrays = {}
    for key, column in columns.items():
        if column is None:
            arrays[key] = np.full(len(records), None, dtype=object)
            continue
        values = column.astype(object)
        arrays[key] = values.where(values.notna() & (values != ""), None).to_numpy()
    return arrays


def excused_conflicts(values: dict[str, np.ndarray], left: np.ndarray, right: np.ndarray) -> set[tuple]:
    """Conflicting value pairs (`("name", a, b)`, `("birth_date", a, b)`, `("mobile", a, b)`, both
    orders) that the probabilistic links `left[i]`-`right[i]` (`values`: `_comparable` fields) excuse.

    A link's own two records were scored as a match with their disagreement counted (the model weighs
    a different name or birth date against a match), so their names below `CLUSTER_NAME_FLOOR` and
    birth dates that are no typo of each other are excused: the veto is kept for records that no link
    joins directly, which is what chaining would bring together. The model cannot tell a new phone
    from another person's, so different mobiles are excused only when the two records corroborate
    each other: names agree (similarity >= `NAME_AGREES`), birth dates are equal or a typo, and one
    `CORROBORATING` field agrees (two when a birth date is missing).
    """

    def agree(field: str, i: int, j: int) -> bool:
        left_value, right_value = values[field][i], values[field][j]
        if left_value is None or right_value is None:
            return False
        if field == "address_key" and left_value != right_value:
            return jellyfish.jaro_winkler_similarity(left_value, right_value) >= ADDRESS_AGREES
        return bool(left_value == right_value)

    excused: set[tuple] = set()
    names, births, mobiles = values["name_key"], values["birth_date"], values["mobile"]
    for i, j in zip(left.tolist(), right.tolist(), strict=True):
        name_i, name_j, birth_i, birth_j = names[i], names[j], births[i], births[j]
        births_known = birth_i is not None and birth_j is not None
        typo = births_known and (birth_i == birth_j or birth_dates_compatible(birth_i, birth_j))
        if births_known and not typo:
            excused |= {("birth_date", birth_i, birth_j), ("birth_date", birth_j, birth_i)}
        if name_i is None or name_j is None:
            continue
        similarity = 1.0 if name_i == name_j else name_similarity(name_i, name_j)
        if similarity < CLUSTER_NAME_FLOOR:
            excused |= {("name", name_i, name_j), ("name", name_j, name_i)}
        mobile_i, mobile_j = mobiles[i], mobiles[j]
        if mobile_i is None or mobile_j is None or mobile_i == mobile_j or similarity < NAME_AGREES:
            continue
        others = sum(agree(field, i, j) for field in CORROBORATING)
        if (typo and others >= 1) or (not births_known and others >= 2):
            excused |= {("mobile", mobile_i, mobile_j), ("mobile", mobile_j, mobile_i)}
    return excused


def _compatible(a: _ClusterFacts, b: _ClusterFacts, check_mobiles: bool, excused: set[tuple]) -> bool:
    if len(a.national_ids | b.national_ids) > 1:
        return False
    # Phones change: different mobiles veto a probabilistic link unless name and birth date agree
    # exactly, or a corroborated link joins two of the mobiles (`excused_conflicts`).
    if (
        check_mobiles
        and a.mobiles
        and b.mobiles
        and not a.mobiles & b.mobiles
        and not (a.names & b.names and a.birth_dates & b.birth_dates)
        and not any(("mobile", x, y) in excused for x in a.mobiles for y in b.mobiles)
    ):
        return False
    if any(
        not birth_dates_compatible(x, y) and ("birth_date", x, y) not in excused
        for x in a.birth_dates
        for y in b.birth_dates - a.birth_dates
    ):
        return False
    return all(
        name_similarity(x, y) >= CLUSTER_NAME_FLOOR or ("name", x, y) in excused
        for x in a.names
        for y in b.names - a.names
    )


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
    (probabilistic links, where no identifier vouches for the match) also when both clusters have
    mobiles and share none, unless they share a name key and a birth date. With `check_mobiles`, a
    conflicting pair of names or birth dates that one of the links itself joins, or of mobiles that
    a link whose records corroborate each other joins, does not refuse the merge
    (`excused_conflicts`). Returns the new label of every record and a bool array saying which
    edges were applied (or already inside one cluster).
    """
    values = _comparable(records, corroborating=check_mobiles)
    excused = excused_conflicts(values, left, right) if check_mobiles else set()
    facts_of = {
        "names": values["name_key"],
        "birth_dates": values["birth_date"],
        "national_ids": values["national_id_hash"],
        "mobiles": values["mobile"],
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
        sets = {key: {array[i] for i in rows} - {None} for key, array in facts_of.items()}
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
            if not _compatible(facts[root_a], facts[root_b], check_mobiles, excused):
                continue
            keep, gone = min(root_a, root_b), max(root_a, root_b)
            parent[gone] = keep
            kept, merged = facts[keep], facts.pop(gone)
            for key in facts_of:
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


def _distinct_values(group: np.ndarray, n_groups: int, values: pd.Series) -> np.ndarray:
    """How many distinct non-null `values` each group (`group`: a code 0..n_groups-1 per row) holds."""
    codes, distinct = pd.factorize(values)
    known = codes >= 0
    pairs = np.unique(group[known].astype(np.int64) * max(len(distinct), 1) + codes[known])
    return np.bincount(pairs // max(len(distinct), 1), minlength=n_groups)


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
    n_components = int(component.max(initial=-1)) + 1
    uniform = np.ones(n_components, dtype=bool)
    for column in ("name_key", "birth_date", "national_id_hash"):
        uniform &= _distinct_values(component, n_components, records[column]) <= 1
    simple = uniform[component]
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
