"""Events keyed by an identifier, resolved to customers, and the row trace (step 02).

An event table read with `data.tables.<table>.key_by` other than `record` points at its customer by
`customer_ref` (a phone, e-mail or member number as in the file, its kind in `customer_ref_kind`) and
may carry `customer_name`. `resolve_events` looks the normalized identifier up among the record
identifiers of the merged customers:
- held by one customer and not suspicious: that customer (`identifier`), unless the event's name is
  clearly another person's (best similarity to the holder's names below `OTHER_NAME_BELOW`: a
  household member calling from the family landline only one member's record shows, or the new
  holder of a recycled number nobody's record shows yet): then a new customer for that identifier
  and name (`identifier, other name`);
- held by several customers, or suspicious (switchboard, household landline, placeholder): the name on
  the event picks the one holder whose name agrees (`identifier+name`; on landlines and suspicious
  identifiers the name or a part of it, 孙先生 or Anna, that fits no other holder; a holder of the
  other gender than the event's form of address, 先生/女士, is left out; placeholders need the whole
  name); failing that, a mobile that changed hands belongs to the holder who had it at the
  event's time: the one whose earliest record with the number is the latest not after the event
  (`identifier+time`); otherwise the event stays unlinked (`shared identifier`);
- held by nobody: one new customer per distinct identifier (`new customer`), an `event` record in
  the crosswalk with the most frequent name the events give; placeholders, and identifiers whose
  events give more distinct names than `identity.max_people_per_identifier`, never make a customer.

`row_trace` lists every data row of every input file with its status, quarantine reason and customer;
`register_events` lets later steps join events to customers through the crosswalk for both key styles.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd
import phonenumbers
import pyarrow.parquet as pq

from helpers.core.context import StepContext
from helpers.core.normalize import (
    canonical_email,
    is_mobile,
    is_placeholder_email,
    is_placeholder_phone,
    normalize_email,
    normalize_name,
    normalize_phone,
    title_gender,
)
from helpers.core.settings import DataSettings
from helpers.core.tables import SOURCE_SYSTEMS, TABLES
from helpers.engine.base import SqlEngine
from helpers.identity.keys import customer_ids, name_similarity

AUDIT_STEP = "01_data_audit"
IDENTITY_STEP = "02_identity_merge"
EVENT_SYSTEM = "event"  # source system of the customers made from unmatched event identifiers
SYNTHETIC_SYSTEM = "~event"  # crosswalk key later steps join resolved events on (never in artifacts)
RESOLUTION_COLUMNS = ["event_table", "source_row", "event_id", "customer_id", "resolved_by"]
TRACE_COLUMNS = ["file", "table", "row_no", "status", "reason", "customer_id"]
SYSTEM_OF_TABLE = {table: system for system, table in SOURCE_SYSTEMS.items()}
# Lowest name similarity that lets an event's name pick one holder of a shared identifier: on a
# landline or a suspicious identifier (a household's or a switchboard's) the holder's name or a part
# of it (孙先生 for 孙磊华, Anna for Anna Garcia) that fits no other holder of the caller's gender.
EVENT_NAME_FLOOR = {"mobile": 0.75, "email": 0.75, "member_no": 0.75, "landline": 0.95}
SHARED_NAME_FLOOR = 0.95
# Below this similarity to every name of an identifier's only holder, an event's name is another
# person's (a shared surname, a typo or a bare surname with 先生/女士 stay at or above it).
OTHER_NAME_BELOW = 0.75
OTHER_NAME = "identifier, other name"


class EventInputError(ValueError):
    """A clean event table cannot be resolved as it is."""


def read_clean(ctx: StepContext, table: str, columns: list[str]) -> pd.DataFrame:
    """Step 01's `clean_<table>`, only those of `columns` it has (event tables can be large)."""
    import pyarrow.parquet as pq

    have = set(pq.read_schema(ctx.path(f"clean_{table}.parquet", AUDIT_STEP)).names)
    return ctx.read(AUDIT_STEP, f"clean_{table}", columns=[c for c in columns if c in have])


def resolution_columns(table: str) -> list[str]:
    """The columns of a clean event table that resolving it needs."""
    reference = ["customer_ref", "customer_ref_kind", "customer_name"]
    return ["source_row", TABLES[table].key, event_time_column(table), *reference]


def event_time_column(table: str) -> str:
    """The first datetime column of an event table: when the event happened."""
    return next(c.name for c in TABLES[table].columns if c.type == "datetime")


def identifier_keys(
    references: pd.Series, kinds: pd.Series, data: DataSettings
) -> tuple[pd.Series, pd.Series]:
    """(identifier_type, identifier_value) of each event reference as the merge's identifiers spell them:
    phones normalized (`mobile` or `landline`), e-mails canonical, member numbers trimmed; null if
    unreadable."""
    text = references.astype("string").str.strip()
    kinds = kinds.astype("string")
    value = pd.Series(pd.NA, index=text.index, dtype="string")
    kind = pd.Series(pd.NA, index=text.index, dtype="string")
    phone = (kinds == "phone").fillna(False).to_numpy()
    if phone.any():
        numbers = normalize_phone(
            text[phone], home_region=data.home_region, home_area_code=data.home_area_code
        ).astype("string")
        value[phone] = numbers
        kind[phone] = np.where(is_mobile(numbers).fillna(False), "mobile", "landline")
    email = (kinds == "email").fillna(False).to_numpy()
    if email.any():
        value[email] = canonical_email(normalize_email(text[email])).astype("string")
        kind[email] = "email"
    member = (kinds == "member_no").fillna(False).to_numpy()
    value[member] = text[member]
    kind[member] = "member_no"
    readable = value.notna() & (value.str.len() > 0).fillna(False)
    return kind.where(readable, pd.NA), value.where(readable, pd.NA)


# Digits only, as a number stored without its leading 0 looks: an area code (2-3 digits) and a
# 7-8 digit local number.
_TRUNKLESS = r"[1-9]\d{8,10}"


def trunk_restored(
    references: pd.Series,
    kind: pd.Series,
    value: pd.Series,
    landlines: pd.Series,
    members: pd.Series,
    data: DataSettings,
) -> tuple[pd.Series, pd.Series]:
    """`(kind, value)` with references that a record holds as a landline once the trunk prefix is put
    back read as that landline: `57169345031` for 0571-69345031, a number a spreadsheet or a shop system
    stored as an integer. Only references read as a member number or not read at all, that no record
    holds as a member number and whose landline reading some record holds (`landlines`, `members`: the
    values the records hold): a number of another country written without its country code reads
    as a Chinese landline too, so the reading needs a holder."""
    trunk = phonenumbers.ndd_prefix_for_region(data.home_region.upper(), True)
    open_rows = (kind.isna() | (kind == "member_no")).fillna(False).to_numpy() & references.notna().to_numpy()
    if not trunk or landlines.empty or not open_rows.any():
        return kind, value
    codes, distinct = pd.factorize(references[open_rows].astype("string").str.strip())
    text = pd.Series(distinct, dtype="string")
    text = text[text.str.fullmatch(_TRUNKLESS).fillna(False).to_numpy() & ~text.isin(members).to_numpy()]
    numbers = normalize_phone(trunk + text, home_region=data.home_region).astype("string")
    numbers = numbers[numbers.isin(landlines).to_numpy() & ~is_mobile(numbers).to_numpy()]
    if numbers.empty:
        return kind, value
    reading = np.full(len(distinct) + 1, None, dtype=object)  # the extra last item: null (code -1)
    reading[numbers.index.to_numpy()] = numbers.to_numpy(dtype=object)
    restored = np.flatnonzero(open_rows)[pd.notna(reading[codes])]
    kind, value = kind.copy(), value.copy()
    kind.iloc[restored], value.iloc[restored] = "landline", reading[codes][pd.notna(reading[codes])]
    return kind, value


# A value made of one repeated character ("00000000000", "11111111", "xxxx") is typed where the
# system demands an identifier the agent does not have: never a person's own account or number.
_REPEATED = r"(.)\1{3,}"


def _placeholder(kind: pd.Series, value: pd.Series) -> np.ndarray:
    """Placeholder identifiers: known dummy phones and e-mails, and any value of one repeated character."""
    out = value.astype("string").str.fullmatch(_REPEATED).fillna(False).to_numpy(dtype=bool)
    phone = kind.isin(["mobile", "landline"]).fillna(False).to_numpy()
    email = (kind == "email").fillna(False).to_numpy()
    out[phone] |= is_placeholder_phone(value[phone]).to_numpy()
    out[email] |= is_placeholder_email(value[email]).to_numpy()
    return out


def event_frame(
    events: dict[str, pd.DataFrame], data: DataSettings, held: pd.DataFrame | None = None
) -> pd.DataFrame:
    """The identifier-keyed events stacked: table, row, id, identifier, name key, name and time. With
    `held` (the records' `identifier_type, identifier_value`), references in a form `trunk_restored`
    repairs are read as the landline a record holds."""
    held = held if held is not None else pd.DataFrame(columns=["identifier_type", "identifier_value"])
    landlines = held.loc[(held["identifier_type"] == "landline").to_numpy(), "identifier_value"]
    members = held.loc[(held["identifier_type"] == "member_no").to_numpy(), "identifier_value"]
    parts = []
    for table, frame in events.items():
        needed = {"source_row", "customer_ref", "customer_ref_kind", TABLES[table].key}
        needed.add(event_time_column(table))
        missing = sorted(needed - set(frame.columns))
        if missing:
            raise EventInputError(f"clean_{table} is keyed by an identifier but lacks columns {missing}")
        name = frame["customer_name"] if "customer_name" in frame else pd.Series(pd.NA, index=frame.index)
        kind, value = identifier_keys(frame["customer_ref"], frame["customer_ref_kind"], data)
        kind, value = trunk_restored(frame["customer_ref"], kind, value, landlines, members, data)
        parts.append(
            pd.DataFrame(
                {
                    "event_table": table,
                    "source_row": frame["source_row"].astype("int64").to_numpy(),
                    "event_id": frame[TABLES[table].key].astype("string").to_numpy(),
                    "has_ref": frame["customer_ref"].notna().to_numpy(),
                    "identifier_type": kind.to_numpy(),
                    "identifier_value": value.to_numpy(),
                    "name": name.astype("string").to_numpy(),
                    "name_key": normalize_name(name.astype("string")).to_numpy(),
                    "title_gender": title_gender(name.astype("string")).to_numpy(),
                    "event_at": pd.to_datetime(frame[event_time_column(table)]).to_numpy(),
                }
            )
        )
    if not parts:
        return pd.DataFrame(
            columns=[
                "event_table", "source_row", "event_id", "has_ref", "identifier_type",
                "identifier_value", "name", "name_key", "title_gender", "event_at",
            ]
        )  # fmt: skip
    return pd.concat(parts, ignore_index=True)


def holder_table(
    records: pd.DataFrame, record_identifiers: pd.DataFrame, only: pd.Series | None = None
) -> pd.DataFrame:
    """One row per identifier and customer holding it: when the customer's records first show it
    (`since`), the customer's name keys and its `gender` (M or F where its records give one and no
    other, else null). With `only`, just the identifiers with one of those values
    (the events' identifiers: a run without identifier-keyed events groups no identifiers at all)."""
    if only is not None:
        wanted = pd.unique(only.dropna().astype(object))
        record_identifiers = record_identifiers[
            record_identifiers["identifier_value"].isin(wanted).to_numpy()
        ]
    linked = record_identifiers.join(
        records[["customer_id", "seen_at", "name_key"]].reset_index(drop=True), on="record_index"
    )
    keys = ["identifier_type", "identifier_value", "customer_id"]
    holders = linked.groupby(keys, sort=True).agg(since=("seen_at", "min")).reset_index()
    names = records[["customer_id", "name_key"]]
    names = names[names["customer_id"].isin(pd.unique(holders["customer_id"])).to_numpy()]
    names = names.dropna().drop_duplicates()
    holders["names"] = holders["customer_id"].map(names.groupby("customer_id")["name_key"].agg(tuple))
    genders = records.reindex(columns=["customer_id", "gender"])
    genders = genders[genders["customer_id"].isin(pd.unique(holders["customer_id"])).to_numpy()]
    genders = genders.dropna().drop_duplicates()
    single = genders.drop_duplicates("customer_id", keep=False).set_index("customer_id")["gender"]
    holders["gender"] = holders["customer_id"].map(single).astype("string")
    holders["n_holders"] = holders.groupby(["identifier_type", "identifier_value"])["customer_id"].transform(
        "size"
    )
    return holders


def _pick_holder(
    shared: pd.DataFrame, holders: pd.DataFrame, suspicious: pd.DataFrame
) -> tuple[pd.Series, pd.Series]:
    """Customer and rule for events whose identifier has several holders or is suspicious."""
    pairs = shared.reset_index(names="event").merge(
        holders[["identifier_type", "identifier_value", "customer_id", "since", "names", "gender"]],
        on=["identifier_type", "identifier_value"],
    )
    flagged = set(zip(suspicious["identifier_type"], suspicious["identifier_value"], strict=True))
    pairs["suspicious"] = [
        (kind, value) in flagged or bool(placeholder)
        for kind, value, placeholder in zip(
            pairs["identifier_type"], pairs["identifier_value"], pairs["placeholder"], strict=True
        )
    ]
    similarity: dict[tuple[str, tuple[str, ...]], float] = {}
    scores = []
    for name, names in zip(pairs["name_key"], pairs["names"], strict=True):
        if pd.isna(name) or not isinstance(names, tuple):
            scores.append(np.nan)
            continue
        key = (name, names)
        if key not in similarity:
            similarity[key] = max(name_similarity(name, other) for other in names)
        scores.append(similarity[key])
    # A holder of the other gender than the event's form of address (王女士) is not the caller.
    other_gender = (pairs["title_gender"] != pairs["gender"]).fillna(False).to_numpy(dtype=bool)
    pairs["similarity"] = np.where(other_gender, np.nan, scores)
    # Placeholders (typed for strangers) need the holder's whole name.
    floor = pairs["identifier_type"].map(EVENT_NAME_FLOOR).where(~pairs["suspicious"], SHARED_NAME_FLOOR)
    floor = floor.where(~pairs["placeholder"].astype(bool), 1.0)
    pairs["name_ok"] = pairs["similarity"] >= floor
    best = pairs.groupby("event")["similarity"].transform("max")
    pairs["name_best"] = pairs["name_ok"] & (pairs["similarity"] == best)
    n_best = pairs.groupby("event")["name_best"].transform("sum")
    customer = pd.Series(pd.NA, index=shared.index, dtype="string")
    rule = pd.Series("shared identifier", index=shared.index, dtype="string")
    by_name = pairs[pairs["name_best"] & (n_best == 1)]
    customer[by_name["event"].to_numpy()] = by_name["customer_id"].to_numpy()
    rule[by_name["event"].to_numpy()] = "identifier+name"
    # A mobile that changed hands: among the name-matched holders (all holders when no name matched),
    # the one who had the number at the event's time.
    timed = pairs[
        ~pairs["event"].isin(by_name["event"])
        & ~pairs["suspicious"]
        & (pairs["identifier_type"] == "mobile")
        & (pairs["name_best"] | (n_best == 0))
        & pairs["event_at"].notna()
    ]
    # Only where every candidate's first date is known.
    timed = timed[~timed["since"].isna().groupby(timed["event"]).transform("any")]
    if not timed.empty:
        timed = timed.assign(before=timed["since"] <= timed["event_at"])
        # Holders since before the event, latest first; when none, the earliest holder.
        timed = timed.assign(
            order=np.where(timed["before"], -timed["since"].astype("int64"), timed["since"].astype("int64")),
            any_before=timed.groupby("event")["before"].transform("any"),
        )
        timed = timed[timed["before"] | ~timed["any_before"]].sort_values(["event", "order"], kind="stable")
        at_top = timed[timed["order"] == timed.groupby("event")["order"].transform("min")]
        unique = at_top[at_top.groupby("event")["event"].transform("size") == 1]
        customer[unique["event"].to_numpy()] = unique["customer_id"].to_numpy()
        rule[unique["event"].to_numpy()] = "identifier+time"
    return customer, rule


def resolve_events(
    events: dict[str, pd.DataFrame],
    records: pd.DataFrame,
    record_identifiers: pd.DataFrame,
    suspicious: pd.DataFrame,
    data: DataSettings,
    max_people: int,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Resolve identifier-keyed events (clean tables by name) to the merged customers.

    `records` are the merge's records with `customer_id`; `record_identifiers` its `record_index,
    identifier_type, identifier_value`; `suspicious` its suspicious identifiers. An identifier whose
    events carry more than `max_people` distinct names (`identity.max_people_per_identifier`) is
    suspicious too: a switchboard the identity tables do not show as one. Returns the
    resolution (`event_table, source_row, event_id, customer_id, resolved_by`, one row per event) and
    the new `event` records (one per unmatched identifier: `source_record_id` `<type>:<value>`, name,
    mobile or e-mail, first event time as `seen_at`).
    """
    frame = event_frame(events, data, record_identifiers)
    holders = holder_table(records, record_identifiers, only=frame["identifier_value"])
    counts = holders.drop_duplicates(["identifier_type", "identifier_value"]).set_index(
        ["identifier_type", "identifier_value"]
    )
    key = pd.MultiIndex.from_arrays([frame["identifier_type"], frame["identifier_value"]])
    n_holders = counts["n_holders"].reindex(key).fillna(0).astype(int).to_numpy()
    only = counts["customer_id"].reindex(key).to_numpy()
    flagged = pd.MultiIndex.from_frame(suspicious[["identifier_type", "identifier_value"]])
    frame["placeholder"] = _placeholder(frame["identifier_type"], frame["identifier_value"])
    named = frame.dropna(subset=["identifier_value", "name_key"])
    crowded = named.groupby(["identifier_type", "identifier_value"])["name_key"].nunique() > max_people
    crowded = crowded[crowded].index
    suspicious = pd.concat([suspicious, crowded.to_frame(index=False)], ignore_index=True)
    risky = key.isin(flagged) | key.isin(crowded) | frame["placeholder"].to_numpy()
    readable = frame["identifier_value"].notna().to_numpy()
    customer = pd.Series(pd.NA, index=frame.index, dtype="string")
    rule = pd.Series("", index=frame.index, dtype="string")
    rule[~frame["has_ref"].to_numpy()] = "no identifier"
    rule[frame["has_ref"].to_numpy() & ~readable] = "unreadable identifier"
    single = readable & (n_holders == 1) & ~risky
    customer[single] = only[single]
    rule[single] = "identifier"
    other = np.zeros(len(frame), dtype=bool)
    other[single] = _other_name(frame[single], holders)
    customer[other] = pd.NA
    shared = readable & ((n_holders > 1) | (risky & (n_holders > 0)))
    if shared.any():
        picked, how = _pick_holder(frame[shared], holders, suspicious)
        customer[shared] = picked.to_numpy()
        rule[shared] = how.to_numpy()
    rule[readable & (n_holders == 0) & risky] = "shared identifier"
    rule[readable & (n_holders == 0) & frame["placeholder"].to_numpy()] = "placeholder"
    new = readable & (n_holders == 0) & ~risky
    frame["new_key"] = frame["identifier_type"] + ":" + frame["identifier_value"]
    frame.loc[other, "new_key"] += "/" + frame.loc[other, "name_key"]
    new_records = _new_records(frame[new | other])
    if (new | other).any():
        ids = frame.loc[new | other, "new_key"]
        customer[new | other] = ids.map(new_records.set_index("source_record_id")["customer_id"]).to_numpy()
        rule[new] = "new customer"
        rule[other] = OTHER_NAME
    resolution = frame[["event_table", "source_row", "event_id"]].assign(
        customer_id=customer.to_numpy(), resolved_by=rule.to_numpy()
    )
    return resolution[RESOLUTION_COLUMNS], new_records


def _other_name(events: pd.DataFrame, holders: pd.DataFrame) -> np.ndarray:
    """Events on an identifier with one holder whose name is clearly not one of the holder's names."""
    names = holders.drop_duplicates(["identifier_type", "identifier_value"]).set_index(
        ["identifier_type", "identifier_value"]
    )["names"]
    key = pd.MultiIndex.from_arrays([events["identifier_type"], events["identifier_value"]])
    known = names.reindex(key).to_numpy()
    similarity: dict[tuple[str, tuple[str, ...]], float] = {}
    out = np.zeros(len(events), dtype=bool)
    for i, (name, held) in enumerate(zip(events["name_key"], known, strict=True)):
        if pd.isna(name) or not name or not isinstance(held, tuple) or not held:
            continue
        if (name, held) not in similarity:
            similarity[name, held] = max(name_similarity(name, other) for other in held)
        out[i] = similarity[name, held] < OTHER_NAME_BELOW
    return out


def _new_records(unmatched: pd.DataFrame) -> pd.DataFrame:
    """One `event` record per distinct unmatched identifier (`new_key`: the identifier, with the name
    when the identifier's holder has another name): the most frequent name its events give, the
    identifier as mobile or e-mail, the first event time as `seen_at`."""
    columns = ["source_system", "source_record_id", "record_key", "customer_id", "name", "name_key",
               "mobile", "email", "seen_at", "identifier_type", "identifier_value"]  # fmt: skip
    if unmatched.empty:
        return pd.DataFrame(columns=columns)
    ids = (
        unmatched["new_key"]
        if "new_key" in unmatched
        else unmatched["identifier_type"] + ":" + unmatched["identifier_value"]
    )
    frame = unmatched.assign(source_record_id=ids.to_numpy())
    named = frame.dropna(subset=["name"])
    names = (
        named.groupby(["source_record_id", "name"]).size().rename("n").reset_index()
        .sort_values(["source_record_id", "n", "name"], ascending=[True, False, True])
        .drop_duplicates("source_record_id").set_index("source_record_id")["name"]
    )  # fmt: skip
    first = frame.groupby("source_record_id").agg(
        seen_at=("event_at", "min"),
        identifier_type=("identifier_type", "first"),
        identifier_value=("identifier_value", "first"),
    )
    records = first.reset_index()
    records["source_system"] = EVENT_SYSTEM
    records["record_key"] = EVENT_SYSTEM + ":" + records["source_record_id"]
    records["name"] = records["source_record_id"].map(names).astype("string")
    records["name_key"] = normalize_name(records["name"])
    kind, value = records["identifier_type"], records["identifier_value"]
    records["mobile"] = value.where(kind == "mobile", pd.NA).astype("string")
    records["email"] = value.where(kind == "email", pd.NA).astype("string")
    records["customer_id"] = customer_ids(records["record_key"], np.arange(len(records))).to_numpy()
    return records[columns]


# ---------------------------------------------------------------------------------------------
# The row trace
def _labels(values: pd.Series) -> tuple[np.ndarray, pd.Index]:
    """Integer codes (-1 for null) and the labels they stand for: a categorical's own, else factorized."""
    if isinstance(values.dtype, pd.CategoricalDtype):
        return values.cat.codes.to_numpy(), pd.Index(values.cat.categories)
    codes, uniques = pd.factorize(values)
    return codes, pd.Index(uniques)


class _CustomerLookup:
    """Customer code (a position in `customers`, -1 for none) of a source record key, per source system."""

    def __init__(self, crosswalk: pd.DataFrame, customers: pd.Index) -> None:
        codes = customers.get_indexer(crosswalk["customer_id"])
        systems = crosswalk["source_system"].astype(str).to_numpy()
        self.keys: dict[str, tuple[pd.Index, np.ndarray]] = {}
        for system in pd.unique(systems):
            mine = systems == system
            ids = pd.Index(crosswalk["source_record_id"].to_numpy()[mine].astype(str))
            self.keys[str(system)] = (ids, codes[mine])

    def __call__(self, system: str, ids: pd.Series) -> np.ndarray:
        """Customer codes (int32) of records `ids` (any dtype; compared as text) of `system`."""
        if system not in self.keys or not len(ids):
            return np.full(len(ids), -1, dtype=np.int32)
        keys, codes = self.keys[system]
        positions, labels = _labels(ids)
        # Only the labels `ids` use are looked up: a categorical's part (one system's rows of an event
        # table) keeps every category of the whole column (~2M ids at a million customers, 4x over).
        used = np.zeros(len(labels) + 1, dtype=bool)
        used[positions] = True
        used = np.flatnonzero(used[:-1])
        hit = keys.get_indexer(labels[used].astype("string").astype(object))
        label_codes = np.full(len(labels), -1, dtype=np.int64)
        label_codes[used] = np.where(hit >= 0, codes[hit], -1)
        # A code per distinct id, and -1 last: null ids (position -1) take it, with no second array.
        return _with_none(label_codes)[positions]


def _with_none(codes: np.ndarray) -> np.ndarray:
    """`codes` as int32 with -1 appended (what position -1 reads)."""
    return np.append(codes, -1).astype(np.int32)


def _customer_codes(
    table: str, clean: pd.DataFrame, lookup: _CustomerLookup, resolution: pd.DataFrame, customers: pd.Index
) -> np.ndarray:
    """Customer code (int32) of each accepted row of one table (-1 where no customer claims it)."""
    if TABLES[table].kind == "identity":
        return lookup(SYSTEM_OF_TABLE[table], clean["source_record_id"])
    resolved = resolution[(resolution["event_table"] == table).to_numpy()]
    if not resolved.empty:
        rows = pd.Index(resolved["source_row"].to_numpy(dtype=np.int64))
        codes = _with_none(customers.get_indexer(resolved["customer_id"]))
        return codes[rows.get_indexer(clean["source_row"].to_numpy(dtype=np.int64))]
    if table == "calls":
        return lookup("cti", clean["cti_id"])
    codes = np.full(len(clean), -1, dtype=np.int32)
    system_codes, systems = _labels(clean["source_system"])
    for i, system in enumerate(systems):
        mine = system_codes == i
        codes[mine] = lookup(str(system), clean["source_customer_id"][mine])
    return codes


def row_trace(
    files: dict[str, str],
    clean: Mapping[str, pd.DataFrame],
    quarantine: Mapping[str, pd.DataFrame],
    crosswalk: pd.DataFrame,
    resolution: pd.DataFrame,
) -> pd.DataFrame:
    """Every data row of every input file: `file, table, row_no, status, reason, customer_id`.

    `files` maps each table read to its file name; `clean` and `quarantine` are step 01's tables
    (with `source_row`; `clean` needs only the columns that link a row, and may read each table when
    asked, see `helpers.identity.merge`), `crosswalk` and `resolution` step 02's. Rows are in table
    (canonical order) and row order; `row_no` is int64, the other columns categorical (a million
    customers' 27M rows fit in a few hundred MB), compared, grouped and null-tested as strings are."""
    if not files:
        return pd.DataFrame({column: pd.Series(dtype="string") for column in TRACE_COLUMNS}).astype(
            {"row_no": "int64"}
        )
    customers = pd.Index(
        pd.unique(pd.concat([crosswalk["customer_id"], resolution["customer_id"]]).dropna().astype(str))
    )
    lookup = _CustomerLookup(crosswalk, customers)
    order = {table: i for i, table in enumerate(TABLES)}
    tables = sorted(files, key=lambda t: order.get(t, len(order)))
    file_names = pd.Index(pd.unique(pd.Series([files[t] for t in tables], dtype=object)))
    reasons: dict[str, int] = {"": 0}
    # Each table's rows sorted on their own (tables come in canonical order), so no sort over all rows.
    parts: dict[str, list[np.ndarray]] = {k: [] for k in ("table", "row", "status", "reason", "customer")}
    for i, table in enumerate(tables):
        accepted = clean[table]
        accepted_rows = accepted["source_row"].to_numpy(dtype=np.int64)
        accepted_customers = _customer_codes(table, accepted, lookup, resolution, customers)
        del accepted
        rejected = quarantine[table]
        reason_codes, labels = _labels(rejected["reason"])
        global_codes = np.array(
            [reasons.setdefault(str(label), len(reasons)) for label in labels], dtype=np.int32
        )
        row = np.concatenate([accepted_rows, rejected["source_row"].to_numpy(dtype=np.int64)])
        n_accepted, n = len(accepted_rows), len(row)
        status = np.zeros(n, dtype=np.int8)
        status[n_accepted:] = 1
        reason = np.zeros(n, dtype=np.int32)
        reason[n_accepted:] = np.where(reason_codes >= 0, global_codes[np.maximum(reason_codes, 0)], 0)
        customer = np.full(n, -1, dtype=np.int32)
        customer[:n_accepted] = accepted_customers
        del rejected, accepted_rows, accepted_customers, reason_codes
        if n > 1 and not (row[1:] >= row[:-1]).all():
            order = np.argsort(row, kind="stable")
            row, status, reason, customer = row[order], status[order], reason[order], customer[order]
            del order
        parts["table"].append(np.full(n, i, dtype=np.int8))
        parts["row"].append(row)
        parts["status"].append(status)
        parts["reason"].append(reason)
        parts["customer"].append(customer)
    file_of_table = file_names.get_indexer([files[t] for t in tables]).astype(np.int8)

    def column(name: str) -> np.ndarray:
        """One column of every table, its per-table parts freed."""
        return np.concatenate(parts.pop(name))

    table_code = column("table")
    return pd.DataFrame(
        {
            "file": pd.Categorical.from_codes(file_of_table[table_code], categories=file_names),
            "table": pd.Categorical.from_codes(table_code, categories=pd.Index(tables, dtype=object)),
            "row_no": column("row"),
            "status": pd.Categorical.from_codes(column("status"), categories=["accepted", "quarantined"]),
            "reason": pd.Categorical.from_codes(
                column("reason"), categories=pd.Index(list(reasons), dtype=object)
            ),
            "customer_id": pd.Categorical.from_codes(column("customer"), categories=customers),
        },
        copy=False,
    )


def check_row_trace(trace: pd.DataFrame, ledger: pd.DataFrame) -> None:
    """Each row of each table once; rows, accepted and quarantined per table equal step 01's ledger."""
    table_code, tables = _labels(trace["table"])
    row_no = trace["row_no"]  # int64 as `row_trace` makes it: no copy
    row = row_no.to_numpy() if row_no.dtype == np.int64 else row_no.to_numpy(dtype=np.int64, na_value=-1)
    if len(row) > 1:
        same_table = table_code[1:] == table_code[:-1]
        in_order = (table_code[1:] > table_code[:-1]) | (same_table & (row[1:] >= row[:-1]))
        if not in_order.all():  # a trace not in table and row order (row_trace's is)
            sort = np.lexsort((row, table_code))
            table_code, row = table_code[sort], row[sort]
            same_table = table_code[1:] == table_code[:-1]
        repeated = same_table & (row[1:] == row[:-1])
        if repeated.any():
            named = sorted({str(tables[c]) for c in np.unique(table_code[1:][repeated]) if c >= 0})
            raise AssertionError(f"row_trace repeats {int(repeated.sum())} rows of {named}")
    table_code, _ = _labels(trace["table"])
    known = table_code >= 0
    status = trace["status"]
    counts = pd.DataFrame(
        {
            state: np.bincount(
                table_code[known & status.eq(state).to_numpy(dtype=bool, na_value=False)],
                minlength=len(tables),
            )
            for state in ("accepted", "quarantined")
        },
        index=tables.astype(str),
    )
    present = np.bincount(table_code[known], minlength=len(tables)) > 0
    counts = counts[present]
    expected = ledger.set_index("table")
    expected = expected[expected["input_rows"] > 0]
    for table, row_counts in expected.iterrows():
        got = counts.loc[table] if table in counts.index else pd.Series({"accepted": 0, "quarantined": 0})
        if (got["accepted"], got["quarantined"]) != (
            row_counts["accepted_rows"],
            row_counts["quarantined_rows"],
        ):
            raise AssertionError(
                f"row_trace of {table}: {got['accepted']} accepted, {got['quarantined']} quarantined; "
                f"the ledger says {row_counts['accepted_rows']} and {row_counts['quarantined_rows']}"
            )
    extra = sorted(set(counts.index) - set(expected.index))
    if extra:
        raise AssertionError(f"row_trace has rows of tables the ledger has no input for: {extra}")


# ---------------------------------------------------------------------------------------------
# Later steps
def register_events(engine: SqlEngine, ctx: StepContext, names: dict[str, str]) -> None:
    """Register step 01's clean event tables and step 02's crosswalk for a later step's queries.

    `names` maps canonical event tables and `crosswalk` to the names the step's queries use. Events
    step 02 resolved from an identifier get a record key (`~event` + customer id; `cti_id` `~` +
    customer id for calls) that the registered crosswalk maps to their customer, so the queries'
    joins on record keys serve both key styles unchanged. A run without `event_customers` (older runs)
    maps events by record only.
    """
    resolution = ctx.path("event_customers.parquet", IDENTITY_STEP)
    engine.register("step02_crosswalk", ctx.path("crosswalk.parquet", IDENTITY_STEP))
    # A run from before identifier-keyed events has no resolution: every event is keyed by record.
    empty = pd.DataFrame(
        {name: pd.Series(dtype="int64" if name == "source_row" else "string") for name in RESOLUTION_COLUMNS}
    )
    engine.register("step02_event_customers", resolution if resolution.is_file() else empty)
    for table, name in names.items():
        if table == "crosswalk":
            continue
        clean = ctx.path(f"clean_{table}.parquet", AUDIT_STEP)
        engine.register(f"step01_clean_{table}", clean)
        if "source_row" not in pq.read_schema(clean).names:  # a run from before row numbers: by record only
            engine.query(f"CREATE OR REPLACE VIEW {name} AS SELECT * FROM step01_clean_{table}")
            continue
        keys = (
            "coalesce('~' || r.customer_id, e.cti_id) AS cti_id"
            if table == "calls"
            else "coalesce(r.customer_id, e.source_customer_id) AS source_customer_id, CASE WHEN "
            f"r.customer_id IS NULL THEN e.source_system ELSE '{SYNTHETIC_SYSTEM}' END AS source_system"
        )
        engine.run(
            "identity",
            "event_view",
            tables={
                "name": name,
                "events": f"step01_clean_{table}",
                "resolution": "step02_event_customers",
                "table": table,
                "keys": keys,
            },
        )
    if "crosswalk" in names:
        engine.run(
            "identity",
            "crosswalk_view",
            tables={
                "name": names["crosswalk"],
                "crosswalk": "step02_crosswalk",
                "resolution": "step02_event_customers",
                "system": SYNTHETIC_SYSTEM,
            },
        )


def trace_files(data: DataSettings) -> dict[str, str]:
    """The file name of each table the run reads (`data.tables.<table>.file`), in canonical order."""
    return {table: Path(data.tables[table].file).name for table in TABLES if table in data.tables}
