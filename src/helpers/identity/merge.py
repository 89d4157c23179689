"""Identity merge (step 02): one customer per person across CRM, CTI, shop and loyalty records.

Pipeline:
1. `build_records` stacks the four clean identity tables into one frame of comparable fields
   (name key, birth date, gender, city, address, phones, e-mail) and `build_identifiers` lists every
   strong identifier of every record (phones, canonical e-mails, national-ID hashes, loyalty
   member numbers, CRM numbers that the CTI and CRM systems store).
2. `find_suspicious_identifiers`: placeholders and identifiers shared by more distinct people
   than `max_people_per_identifier` (switchboards, household landlines) never link records.
3. Records sharing a usable identifier are linked when nothing contradicts it (national ID,
   birth date, name, gender; landlines need the same name).
4. Optionally (`method="probabilistic"`) Splink scores pairs across the deterministic clusters
   (`helpers.identity.splink_scoring`), with m-probabilities trained on the deterministic links,
   or by Splink's EM when there are too few of them (a file without shared phones or e-mails).
5. `merge_with_constraints` unions clusters edge by edge, strongest first, and refuses any merge
   that would put two national-ID hashes, incompatible birth dates (not a typo of each other) or
   incompatible names in one customer, so chains of weak links cannot glue strangers together; a
   scored link excuses its own two records' different names or birth dates, and different mobiles
   when its records corroborate each other (`rules.excused_conflicts`); the vetoes stop chains.
6. Outputs: crosswalk, golden records (`helpers.identity.golden`), identifiers, suspicious identifiers,
   review pairs and a merge summary.
7. `run_step` carries the ids of the previous run over (`helpers.identity.history`, config
   `identity.previous_run`): unchanged customers keep their ids, merges keep the oldest and
   retire the others, split parts get new ids; `id_history` records every retirement and split.
   It writes each large output once it is final and keeps little of it (a million customers fit in
   under 5 GB): golden records after the events are resolved and the ids carried over, the identifier
   table straight from the engine to Parquet, the row trace last, once the merge's frames are gone.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from helpers.core.context import StepContext
from helpers.core.measure import release_freed_memory
from helpers.core.normalize import (
    canonical_email,
    is_mobile,
    is_placeholder_email,
    is_placeholder_phone,
    normalize_city,
    normalize_name,
    on_distinct,
)
from helpers.core.settings import EngineSettings, IdentitySettings
from helpers.engine.base import SqlEngine, connect_engine, load_query
from helpers.identity.events import (
    check_row_trace,
    read_clean,
    resolution_columns,
    resolve_events,
    row_trace,
    trace_files,
)
from helpers.identity.golden import GOLDEN_INPUTS, build_golden
from helpers.identity.history import (
    KEY,
    PreviousIdentity,
    empty_history,
    find_previous_identity,
    method_fingerprint,
    read_previous_identity,
    stable_ids,
    unchanged_records,
)
from helpers.identity.keys import customer_ids
from helpers.identity.rules import (
    IDENTIFIER_STRENGTH,
    deterministic_clusters,
    deterministic_edges,
    merge_with_constraints,
)
from helpers.identity.splink_scoring import empty_scores

AUDIT_STEP = "01_data_audit"

# Survivorship source priority (most trusted first).
SYSTEM_PRIORITY: tuple[str, ...] = ("crm", "loyalty", "shop", "cti")
SYSTEM_TABLES = {
    "crm": "crm_customers",
    "cti": "cti_contacts",
    "shop": "shop_accounts",
    "loyalty": "loyalty_members",
}

# Canonical column of each table feeding each unified record field.
FIELD_SOURCES: dict[str, dict[str, str]] = {
    "crm": {
        "name": "full_name",
        "gender": "gender",
        "birth_date": "birth_date",
        "email": "email_norm",
        "national_id_hash": "national_id_hash",
        "province": "province",
        "city": "city",
        "customer_type": "customer_type",
        "company_name": "company_name",
        "industry": "industry",
        "employee_count": "employee_count",
        "annual_revenue_cny": "annual_revenue_cny",
        "seen_at": "created_at",
    },
    "cti": {"name": "caller_name", "city": "city", "seen_at": "first_call_at"},
    "shop": {
        "name": "display_name",
        "gender": "gender",
        "birth_date": "birth_date",
        "email": "email_norm",
        "province": "province",
        "city": "city",
        "primary_device": "primary_device",
        "app_installed": "app_installed",
        "sessions_per_month": "sessions_per_month",
        "online_minutes_per_month": "online_minutes_per_month",
        "seen_at": "registered_at",
    },
    "loyalty": {
        "name": "member_name",
        "birth_date": "birth_date",
        "email": "email_norm",
        "loyalty_tier": "tier",
        "seen_at": "joined_on",
    },
}
# Fields copied when the table has the column (a CRM export's address; `link_records`' postcode).
OPTIONAL_SOURCES: dict[str, dict[str, str]] = {"crm": {"address": "address", "postcode": "postcode"}}
PHONE_COLUMNS = {
    "crm": ("mobile_norm", "landline_norm"),
    "cti": ("phone_norm",),
    "shop": ("mobile_norm",),
    "loyalty": ("phone_norm",),
}
# Cross-system references: (system, column, identifier type). A record's own key is one too.
REFERENCE_COLUMNS = (
    ("crm", "source_record_id", "crm_id"),
    ("cti", "crm_id", "crm_id"),
    ("crm", "member_no", "member_no"),
    ("loyalty", "source_record_id", "member_no"),
    ("crm", "national_id_hash", "national_id"),
)
MAX_RECORDS_PER_IDENTIFIER = 50
# DuckDB memory for the identifier queries (DuckDB's default is 80 % of the machine's memory); beyond it
# DuckDB spills to a temporary folder of its own, as Splink scoring does (`SPLINK_MEMORY_LIMIT`).
MERGE_MEMORY_LIMIT = "1GB"
# Rows converted to plain columns and written at a time (`write_plain`: `row_trace` is categorical,
# golden records' text Arrow-backed).
WRITE_ROWS = 1_000_000


class IdentityInputError(ValueError):
    """A clean identity table cannot be merged as it is."""


def merge_engine(engine_settings: EngineSettings | None = None) -> SqlEngine:
    """The engine `engine_settings` names (the config's `engine` section; DuckDB by default); DuckDB
    limited to `MERGE_MEMORY_LIMIT`, spilling to a temporary folder of its own (removed when the
    engine closes)."""
    return connect_engine(
        engine_settings or EngineSettings(), memory_limit=MERGE_MEMORY_LIMIT, spill_prefix="identity-merge-"
    )


@dataclass
class IdentityResult:
    """Everything the identity step produces."""

    # `run_step` keeps only `customer_id` once golden records and events are done (event records appended)
    records: pd.DataFrame
    crosswalk: pd.DataFrame
    golden: pd.DataFrame  # text Arrow-backed (`helpers.identity.golden.GOLDEN_DTYPES`)
    identifiers: pd.DataFrame  # `run_step` writes it straight from the engine and keeps none of its rows
    suspicious_identifiers: pd.DataFrame
    review_pairs: pd.DataFrame
    merge_summary: pd.DataFrame
    scored_pairs: pd.DataFrame
    stats: dict[str, Any] = field(default_factory=dict)
    # record_index, identifier_type, identifier_value of every record (events are resolved through them;
    # `run_step` keeps only the columns once it has resolved them)
    record_identifiers: pd.DataFrame = field(default_factory=pd.DataFrame)
    # run_step only: identifier-keyed events resolved to customers, and every input row's fate
    event_customers: pd.DataFrame = field(default_factory=pd.DataFrame)
    row_trace: pd.DataFrame = field(default_factory=pd.DataFrame)
    # run_step only: retired and split ids of this run and the runs before it (`helpers.identity.history`)
    id_history: pd.DataFrame = field(default_factory=empty_history)


# ---------------------------------------------------------------------------------------------
# Inputs
def merge_columns(system: str) -> list[str]:
    """The columns of a clean identity table the merge needs (`OPTIONAL_SOURCES` not among them)."""
    needed = ["source_system", "source_record_id", *FIELD_SOURCES[system].values(), *PHONE_COLUMNS[system]]
    needed += [column for ref_system, column, _ in REFERENCE_COLUMNS if ref_system == system]
    return list(dict.fromkeys(needed))


def _check_table(system: str, frame: pd.DataFrame) -> None:
    table = SYSTEM_TABLES[system]
    missing = sorted(set(merge_columns(system)) - set(frame.columns))
    if missing:
        raise IdentityInputError(f"clean_{table} lacks columns {missing} (has {sorted(frame.columns)})")
    # Messages name columns and 1-based row numbers only, never the values (names, phones, ids).
    bad_key = frame["source_record_id"].isna()
    if bad_key.any():
        raise IdentityInputError(
            f"clean_{table}.source_record_id is empty in {int(bad_key.sum())} rows, "
            f"e.g. rows {_rows(bad_key)}"
        )
    duplicated = frame["source_record_id"].duplicated(keep=False)
    if duplicated.any():
        raise IdentityInputError(
            f"clean_{table}.source_record_id is not unique ({int(duplicated.sum())} rows), "
            f"e.g. rows {_rows(duplicated)}"
        )
    wrong_system = frame["source_system"] != system
    if wrong_system.any():
        raise IdentityInputError(
            f"clean_{table}.source_system must be {system!r}, e.g. rows {_rows(wrong_system)}"
        )


def _rows(mask: pd.Series, limit: int = 5) -> str:
    """The first 1-based row numbers where `mask` is true."""
    return ", ".join(str(int(i) + 1) for i in np.flatnonzero(mask.to_numpy())[:limit])


def build_records(tables: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """One row per source record with the fields matching and survivorship use.

    `tables` maps source system (crm, cti, shop, loyalty) to its clean table; missing
    systems are allowed (an analyst may have only some exports).
    """
    unknown = set(tables) - set(SYSTEM_TABLES)
    if unknown:
        raise IdentityInputError(
            f"Unknown source systems {sorted(unknown)}; expected {sorted(SYSTEM_TABLES)}"
        )
    parts = []
    for system in SYSTEM_PRIORITY:
        if system not in tables:
            continue
        frame = tables[system]
        _check_table(system, frame)
        part = pd.DataFrame(
            {"source_system": system, "source_record_id": frame["source_record_id"].astype(str)}
        )
        for target, source in FIELD_SOURCES[system].items():
            part[target] = frame[source].to_numpy()
        for target, source in OPTIONAL_SOURCES.get(system, {}).items():
            part[target] = frame[source].to_numpy() if source in frame else pd.NA
        phones = [frame[column].astype("string") for column in PHONE_COLUMNS[system]]
        mobile = pd.Series(pd.NA, index=frame.index, dtype="string")
        for phone in phones:
            mobile = mobile.fillna(phone.where(on_distinct(is_mobile, phone)))
        part["mobile"] = mobile.to_numpy()
        parts.append(part)
    if not parts:
        raise IdentityInputError("No identity tables given")
    records = pd.concat(parts, ignore_index=True)
    # Fields of systems not given stay empty, so golden records always have every column.
    fields = {name for sources in (*FIELD_SOURCES.values(), *OPTIONAL_SOURCES.values()) for name in sources}
    for target in fields - set(records.columns):
        records[target] = pd.NA
    records["record_key"] = records["source_system"] + ":" + records["source_record_id"]
    records["name_key"] = normalize_name(records["name"])
    records["birth_date"] = pd.to_datetime(records["birth_date"]).dt.normalize()
    records["seen_at"] = pd.to_datetime(records["seen_at"])
    gender = on_distinct(lambda g: g.str.strip().str.upper().str[:1], records["gender"].astype("string"))
    records["gender"] = gender.where(gender.isin(["M", "F"]), pd.NA)
    records["city_key"] = normalize_city(records["city"])
    records["email_key"] = on_distinct(_email_key, records["email"].astype("string"))
    mobile = on_distinct(_usable_mobile, records["mobile"].astype("string"))
    records["mobile"] = mobile["mobile"]
    records["mobile_tail"] = mobile["mobile_tail"]
    records.index.name = "record_index"
    return records


def _email_key(emails: pd.Series) -> pd.Series:
    """Canonical e-mails (`canonical_email`), null for placeholders."""
    return canonical_email(emails).where(~is_placeholder_email(emails), pd.NA)


def _usable_mobile(mobiles: pd.Series) -> pd.DataFrame:
    """`mobile` (null for placeholders) and its last four digits, `mobile_tail`."""
    mobile = mobiles.where(~is_placeholder_phone(mobiles), pd.NA)
    return pd.DataFrame({"mobile": mobile, "mobile_tail": mobile.str[-4:]})


def _canonical_emails(records: pd.DataFrame) -> pd.Series:
    """`canonical_email` of every record's e-mail, placeholders included: the records' `email_key`, and
    worked out only where that is null for a given e-mail."""
    canonical = records["email_key"].astype("string")
    email = records["email"].astype("string")
    missing = (canonical.isna() & email.notna()).to_numpy()
    if missing.any():
        canonical[missing] = on_distinct(canonical_email, email[missing]).to_numpy()
    return canonical


def build_identifiers(tables: dict[str, pd.DataFrame], records: pd.DataFrame) -> pd.DataFrame:
    """Long table `record_index, identifier_type, identifier_value` of every strong identifier."""
    offsets = records.index.to_series().groupby(records["source_system"].to_numpy(), sort=False).min()
    emails = _canonical_emails(records)
    parts = [
        pd.DataFrame(
            {"record_index": np.array([], dtype=np.int64), "identifier_type": [], "identifier_value": []}
        )
    ]
    for system, frame in tables.items():
        if frame.empty:  # an identity table with no accepted rows has no records and no identifiers
            continue
        index = np.arange(len(frame)) + offsets[system]
        values: list[tuple[str, pd.Series]] = []
        for column in PHONE_COLUMNS[system]:
            phone = frame[column].astype("string")
            values.append(("phone", phone))
        if FIELD_SOURCES[system].get("email") == "email_norm":  # the records' e-mails, already canonical
            values.append(("email", emails.iloc[index]))
        elif "email_norm" in frame:
            values.append(("email", on_distinct(canonical_email, frame["email_norm"].astype("string"))))
        for ref_system, column, kind in REFERENCE_COLUMNS:
            if ref_system == system:
                values.append((kind, on_distinct(lambda v: v.str.strip(), frame[column].astype("string"))))
        for kind, value in values:
            part = pd.DataFrame(
                {"record_index": index, "identifier_type": kind, "identifier_value": value.to_numpy()}
            )
            parts.append(part.dropna(subset=["identifier_value"]))
    identifiers = pd.concat(parts, ignore_index=True)
    identifiers = identifiers[identifiers["identifier_value"].to_numpy() != ""]
    phone = identifiers["identifier_type"] == "phone"
    # Two shared strings, not one per phone (np.where's fixed-width text becomes a Python string per row).
    kinds = np.array(["landline", "mobile"], dtype=object)
    mobile = on_distinct(is_mobile, identifiers.loc[phone, "identifier_value"]).to_numpy(dtype=bool)
    identifiers.loc[phone, "identifier_type"] = kinds[mobile.astype(np.int8)]
    return identifiers.drop_duplicates().reset_index(drop=True)


# ---------------------------------------------------------------------------------------------
# Deterministic links
def find_suspicious_identifiers(
    identifiers: pd.DataFrame, records: pd.DataFrame, max_people: int, engine: SqlEngine
) -> pd.DataFrame:
    """Identifiers that must not link records by themselves, with the reason.

    Placeholders (13800000000, test@test.com, repeated digits) and identifiers whose records
    carry more than `max_people` distinct names or birth dates, or more than
    `MAX_RECORDS_PER_IDENTIFIER` records.
    """
    engine.register("identifiers", identifiers)
    engine.register("records", records[["name_key", "birth_date"]].reset_index())
    stats = engine.run(
        "identity", "identifier_stats", tables={"identifiers": "identifiers", "records": "records"}
    )
    value, kind = identifiers["identifier_value"], identifiers["identifier_type"]
    placeholder = np.zeros(len(identifiers), dtype=bool)
    phones, emails = kind.isin(["mobile", "landline"]).to_numpy(), (kind == "email").to_numpy()
    placeholder[phones] = on_distinct(is_placeholder_phone, value[phones]).to_numpy()
    placeholder[emails] = on_distinct(is_placeholder_email, value[emails]).to_numpy()
    keys = ["identifier_type", "identifier_value"]
    # Records per placeholder (the query counts only identifiers of several records).
    placeholders = identifiers.loc[placeholder, keys].value_counts(sort=False).rename("placeholder_records")
    stats = stats.merge(placeholders.reset_index().assign(placeholder=True), how="outer", on=keys)
    stats["placeholder"] = stats["placeholder"].eq(True)
    stats["n_records"] = stats["n_records"].fillna(stats["placeholder_records"]).astype("int64")
    stats[["n_names", "n_birth_dates"]] = stats[["n_names", "n_birth_dates"]].fillna(0).astype(int)
    people = stats[["n_names", "n_birth_dates"]].max(axis=1)
    reason = pd.Series("", index=stats.index)
    reason = reason.mask(stats["n_records"] > MAX_RECORDS_PER_IDENTIFIER, "shared by too many records")
    reason = reason.mask(people > max_people, "shared by too many distinct people")
    reason = reason.mask(stats["placeholder"], "placeholder value")
    suspicious = stats.assign(reason=reason, n_people=people)[reason != ""]
    columns = ["identifier_type", "identifier_value", "n_records", "n_people", "reason"]
    return (
        suspicious[columns]
        .sort_values(["n_records", "identifier_value"], ascending=[False, True])
        .reset_index(drop=True)
    )


# ---------------------------------------------------------------------------------------------
# The step
def merge_identities(
    tables: dict[str, pd.DataFrame],
    settings: IdentitySettings,
    seed: int,
    keep: pd.DataFrame | None = None,
    engine_settings: EngineSettings | None = None,
) -> IdentityResult:
    """Merge clean identity tables (keyed by source system) into customers, with the knobs of the
    config section `identity` (`method`, `match_threshold`, `max_people_per_identifier`,
    `review_sample`), the SQL and Splink on the engine `engine_settings` names (DuckDB by default).

    `keep` (`source_system, source_record_id, customer_id`: the unchanged records of a previous run
    and their customer there, `helpers.identity.history`) keeps each previous customer's records
    together (constraints still apply; a record placed only so keeps its previous `match_method` and
    `match_probability`, `match_rule` `previous run`) and drops probabilistic links
    between records of two different previous customers."""
    _check_settings(settings)
    clock = time.perf_counter()
    records, identifiers = merge_inputs(tables)
    return link_records(
        records, identifiers, settings, seed, keep, started=clock, engine_settings=engine_settings
    )


def _check_settings(settings: IdentitySettings) -> None:
    if settings.method not in ("deterministic", "probabilistic"):
        raise ValueError(
            f"identity method must be 'deterministic' or 'probabilistic', not {settings.method!r}"
        )
    if not 0 < settings.match_threshold < 1:
        raise ValueError(f"match_threshold must be between 0 and 1, not {settings.match_threshold}")


def merge_inputs(tables: dict[str, pd.DataFrame]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The unified records (`build_records`) and their identifiers (`build_identifiers`) of clean identity
    tables, in a canonical record order that makes the merge independent of the order rows arrive in
    (tables already in it, as `run_step` passes them, are not copied). Both hold copies of the columns
    they use, so the caller may release `tables` before linking them (`link_records`)."""
    for system, table in tables.items():
        if system in SYSTEM_TABLES:
            _check_table(system, table)
    ordered = {system: in_record_order(tables[system]) for system in SYSTEM_PRIORITY if system in tables}
    records = build_records({**tables, **ordered})
    return records, build_identifiers(ordered, records)


def link_records(
    records: pd.DataFrame,
    identifiers: pd.DataFrame,
    settings: IdentitySettings,
    seed: int,
    keep: pd.DataFrame | None = None,
    started: float | None = None,
    engine_settings: EngineSettings | None = None,
) -> IdentityResult:
    """`merge_identities` on the records and identifiers of `merge_inputs` (`started`: the
    `time.perf_counter()` the deterministic stage's seconds count from, by default now)."""
    result = link_customers(records, identifiers, settings, seed, keep, started, engine_settings)
    clock = time.perf_counter()
    result.golden = build_golden(records)
    result.identifiers = _identifier_table(
        identifiers, records, result.suspicious_identifiers, engine_settings
    )
    result.stats["seconds_outputs"] = round(result.stats["seconds_outputs"] + time.perf_counter() - clock, 1)
    return result


def link_customers(
    records: pd.DataFrame,
    identifiers: pd.DataFrame,
    settings: IdentitySettings,
    seed: int,
    keep: pd.DataFrame | None = None,
    started: float | None = None,
    engine_settings: EngineSettings | None = None,
) -> IdentityResult:
    """`link_records` without its golden records and identifier table (left empty): the customer of
    every record (crosswalk, `records` given their `customer_id` in place), review pairs and summary.
    `run_step` builds the golden records and identifiers once the events are resolved and the ids final."""
    _check_settings(settings)
    method, match_threshold = settings.method, settings.match_threshold
    clock = time.perf_counter() if started is None else started
    with merge_engine(engine_settings) as engine:
        suspicious = find_suspicious_identifiers(
            identifiers, records, settings.max_people_per_identifier, engine
        )
        edges = deterministic_edges(identifiers, records, suspicious, engine)
    # Only what the clustering, the crosswalk's rules and the review sample read stays (the pairs' evidence
    # columns go before Splink scoring: ~1.7M pairs at a million customers).
    accepted = edges.loc[edges["accepted"], ["left_index", "right_index", "shared_types"]]
    rejected = edges.loc[~edges["accepted"], ["left_index", "right_index", "reason", "shared_types"]]
    n_pairs = len(edges)
    del edges
    labels, applied = deterministic_clusters(len(records), accepted, records)
    deterministic_labels = labels.copy()
    refused = accepted[~applied].assign(reason="would join conflicting records")
    stats: dict[str, Any] = {
        "seconds_deterministic": round(time.perf_counter() - clock, 1),
        "records": len(records),
        "identifier_pairs": n_pairs,
        "identifier_pairs_rejected": len(rejected),
        "identifier_links_refused_in_clustering": int((~applied).sum()),
        "suspicious_identifiers": len(suspicious),
        "deterministic_customers": len(np.unique(labels)),
        "method": method,
        "match_threshold": match_threshold,
        "splink_training": "not run (deterministic method)",
        "probabilistic_links_applied": 0,
        "probabilistic_links_refused": 0,
    }
    group = _previous_groups(records, keep)
    if keep is not None:
        labels, stats["previous_links_kept"], stats["previous_links_refused"] = _keep_previous(
            labels, group, records
        )
    scored = empty_scores()
    applied_scores = pd.DataFrame(columns=["label", "match_probability"])
    if method == "probabilistic":
        from helpers.identity.splink_scoring import score_candidate_pairs

        clock = time.perf_counter()
        scored, splink_stats = score_candidate_pairs(
            records, deterministic_labels, seed=seed, engine_settings=engine_settings
        )
        stats.update(splink_stats)
        if str(splink_stats["splink_training"]).startswith("skipped"):
            print(
                f"WARNING identity merge: probabilistic stage {splink_stats['splink_training']} "
                f"({len(records)} records); only records sharing an identifier were merged",
                file=sys.stderr,
                flush=True,
            )
        links = scored[scored["match_probability"] >= match_threshold].sort_values(
            ["match_probability", "left_index", "right_index"], ascending=[False, True, True]
        )
        if keep is not None:  # two unchanged customers of the previous run stay apart without new evidence
            left_group = group[links["left_index"].to_numpy()]
            right_group = group[links["right_index"].to_numpy()]
            apart = (left_group >= 0) & (right_group >= 0) & (left_group != right_group)
            stats["probabilistic_links_kept_apart"] = int(apart.sum())
            links = links[~apart]
        labels, applied = merge_with_constraints(
            labels,
            links["left_index"].to_numpy(),
            links["right_index"].to_numpy(),
            records,
            check_mobiles=True,
        )
        used = links[applied]
        applied_scores = (
            pd.concat(
                [
                    pd.DataFrame(
                        {
                            "label": deterministic_labels[used[side].to_numpy()],
                            "match_probability": used["match_probability"].to_numpy(),
                        }
                    )
                    for side in ("left_index", "right_index")
                ]
            )
            .groupby("label", as_index=False)["match_probability"]
            .max()
        )
        stats["probabilistic_links_applied"] = int(applied.sum())
        stats["probabilistic_links_refused"] = int((~applied).sum())
        stats["seconds_probabilistic"] = round(time.perf_counter() - clock, 1)
    clock = time.perf_counter()
    crosswalk = _crosswalk(records, deterministic_labels, labels, accepted, applied_scores)
    if keep is not None:
        _previous_methods(crosswalk, keep)
    stats["customers"] = int(crosswalk["customer_id"].nunique())
    records["customer_id"] = crosswalk["customer_id"].to_numpy()  # in place: no copy of every record
    records["deterministic_cluster"] = deterministic_labels
    review = _review_pairs(records, rejected, refused, scored, match_threshold, settings.review_sample, seed)
    summary = merge_summary(crosswalk)
    stats["seconds_outputs"] = round(time.perf_counter() - clock, 1)
    empty = pd.DataFrame()
    return IdentityResult(
        records, crosswalk, empty, empty, suspicious, review, summary, scored, stats, identifiers
    )


def _previous_groups(records: pd.DataFrame, keep: pd.DataFrame | None) -> np.ndarray:
    """Per record: a code of its previous customer when `keep` lists it (unchanged), else -1."""
    if keep is None or keep.empty:
        return np.full(len(records), -1, dtype=np.int64)
    index = pd.MultiIndex.from_frame(keep[KEY].astype(str))
    position = index.get_indexer(pd.MultiIndex.from_frame(records[KEY].astype(str)))
    codes = pd.factorize(keep["customer_id"].astype(str))[0]
    return np.where(position >= 0, codes[np.maximum(position, 0)], -1).astype(np.int64)


def _previous_methods(crosswalk: pd.DataFrame, keep: pd.DataFrame) -> None:
    """Records placed only by a kept previous link take the match method and probability the previous
    run gave them (`match_rule` says `previous run`)."""
    placed = crosswalk["match_method"] == "previous_run"
    if not placed.any() or "match_method" not in keep:
        return
    before = keep.set_index(KEY)
    index = pd.MultiIndex.from_frame(crosswalk.loc[placed, KEY].astype(str))
    method = before["match_method"].reindex(index).to_numpy()
    usable = pd.notna(method) & pd.Series(method).isin(["deterministic", "probabilistic"]).to_numpy()
    rows = crosswalk.index[placed][usable]
    crosswalk.loc[rows, "match_method"] = method[usable]
    crosswalk.loc[rows, "match_probability"] = before["match_probability"].reindex(index).to_numpy()[usable]


def _keep_previous(
    labels: np.ndarray, group: np.ndarray, records: pd.DataFrame
) -> tuple[np.ndarray, int, int]:
    """Union the records of each previous customer (`group` >= 0) with its first record, through
    `merge_with_constraints`; returns the labels and how many links were kept and refused."""
    members = np.flatnonzero(group >= 0)
    first = pd.Series(members).groupby(group[members]).transform("min").to_numpy()
    linked = members != first
    left, right = first[linked], members[linked]
    if not len(left):
        return labels, 0, 0
    labels, applied = merge_with_constraints(labels, left, right, records)
    return labels, int(applied.sum()), int((~applied).sum())


def _crosswalk(
    records: pd.DataFrame,
    deterministic_labels: np.ndarray,
    labels: np.ndarray,
    accepted: pd.DataFrame,
    applied_scores: pd.DataFrame,
) -> pd.DataFrame:
    ids = customer_ids(records["record_key"], labels)
    # Labels are record indexes (a cluster's smallest), one per customer: sizes by counting them.
    cluster_size = np.bincount(labels, minlength=len(records))[labels]
    group_size = np.bincount(deterministic_labels, minlength=len(records))[deterministic_labels]
    # Identifier types of the links that placed each record, e.g. "email+mobile": a bit per type, then
    # one string object per distinct set of types (not one per record).
    kinds = sorted(IDENTIFIER_STRENGTH)
    type_code, combinations = pd.factorize(accepted["shared_types"])
    types = np.zeros(len(records), dtype=np.int64)
    for bit, kind in enumerate(kinds):
        linked = np.append(np.array([kind in c for c in combinations], dtype=bool), False)[type_code]
        for side in ("left_index", "right_index"):
            types[accepted[side].to_numpy()[linked]] |= 1 << bit
    distinct, type_set = np.unique(types, return_inverse=True)
    texts = ["+".join(k for bit, k in enumerate(kinds) if value >> bit & 1) or None for value in distinct]
    rule = pd.Series(np.array(texts, dtype=object)[type_set])
    probability = pd.Series(deterministic_labels).map(applied_scores.set_index("label")["match_probability"])
    # Neither an identifier group nor a probabilistic link: kept with the records of its previous customer.
    methods = np.array(["single", "probabilistic", "deterministic", "previous_run"], dtype=object)
    method = methods[
        np.select(
            [cluster_size == 1, probability.notna().to_numpy(), group_size > 1],
            [0, 1, 2],
            3,
        )
    ]
    crosswalk = pd.DataFrame(
        {
            "source_system": records["source_system"].to_numpy(),
            "source_record_id": records["source_record_id"].to_numpy(),
            "customer_id": ids.to_numpy(),
            "match_method": method,
            "match_probability": np.where(
                method == "single", np.nan, np.where(method == "deterministic", 1.0, probability.to_numpy())
            ),
            "match_rule": rule.to_numpy(),
        }
    )
    crosswalk.loc[crosswalk["match_method"] == "probabilistic", "match_rule"] = "splink"
    crosswalk.loc[crosswalk["match_method"] == "previous_run", "match_rule"] = "previous run"
    return crosswalk


def _identifier_table(
    identifiers: pd.DataFrame,
    records: pd.DataFrame,
    suspicious: pd.DataFrame,
    engine_settings: EngineSettings | None = None,
) -> pd.DataFrame:
    """`customer_id, identifier_type, identifier_value, suspicious`, one row per customer and identifier."""
    with merge_engine(engine_settings) as engine:
        tables = _register_identifier_inputs(engine, identifiers, records["customer_id"], suspicious)
        return engine.run("identity", "identifier_table", tables=tables)


def write_identifier_table(
    ctx: StepContext,
    identifiers: pd.DataFrame,
    customers: pd.Series,
    suspicious: pd.DataFrame,
    engine_settings: EngineSettings | None = None,
) -> Path:
    """Write the `identifiers` artifact (`_identifier_table`; `customers`: the customer of each record
    index) from the engine straight to Parquet, atomically: the table never becomes a frame (~0.8 GB at
    a million customers)."""
    path = ctx.path("identifiers.parquet")
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".parquet.partial")
    with merge_engine(engine_settings) as engine:
        tables = _register_identifier_inputs(engine, identifiers, customers, suspicious)
        engine.write_parquet(load_query("identity", "identifier_table").format(**tables), partial)
    partial.replace(path)
    return path


def _register_identifier_inputs(
    engine: SqlEngine, identifiers: pd.DataFrame, customers: pd.Series, suspicious: pd.DataFrame
) -> dict[str, str]:
    """Register the identifier table query's inputs on `engine`; returns its `{placeholder: table}`."""
    engine.register("identifiers", identifiers)
    engine.register(
        "customers",
        pd.DataFrame({"record_index": np.arange(len(customers)), "customer_id": customers.to_numpy()}),
    )
    engine.register("suspicious", suspicious[["identifier_type", "identifier_value"]])
    return {name: name for name in ("identifiers", "customers", "suspicious")}


def _review_pairs(
    records: pd.DataFrame,
    rejected: pd.DataFrame,
    refused: pd.DataFrame,
    scored: pd.DataFrame,
    threshold: float,
    sample: int,
    seed: int,
) -> pd.DataFrame:
    """Borderline pairs for clerical review: scores near the threshold, and identifier links `rejected` for
    their evidence or `refused` in clustering."""
    near = scored[
        (scored["match_probability"] >= 0.5) & (scored["match_probability"] < min(0.99, threshold + 0.09))
    ]
    near = near.assign(
        reason=np.where(
            near["match_probability"] >= threshold, "just above threshold", "just below threshold"
        )
    )
    rejected = pd.concat([rejected, refused])[["left_index", "right_index", "reason", "shared_types"]]
    # A stable order before sampling with the seed: the scored pairs arrive in engine thread order.
    near = near.sort_values(["left_index", "right_index"], kind="stable")
    rejected = rejected.sort_values(["left_index", "right_index", "reason"], kind="stable")
    half = max(sample // 2, 1)
    chosen = pd.concat(
        [
            near.sample(min(half, len(near)), random_state=seed) if len(near) else near,
            rejected.sample(min(sample - min(half, len(near)), len(rejected)), random_state=seed),
        ],
        ignore_index=True,
    )
    columns = ["record_key", "name", "birth_date", "gender", "city", "mobile", "email", "customer_id"]
    left = records[columns].iloc[chosen["left_index"]].add_prefix("left_").reset_index(drop=True)
    right = records[columns].iloc[chosen["right_index"]].add_prefix("right_").reset_index(drop=True)
    extra = chosen[["reason", "shared_types", "match_probability"]].reindex(
        columns=["reason", "shared_types", "match_probability"]
    )
    pairs = pd.concat([extra.reset_index(drop=True), left, right], axis=1)
    pairs["same_customer"] = pairs["left_customer_id"] == pairs["right_customer_id"]
    return pairs


def merge_summary(crosswalk: pd.DataFrame) -> pd.DataFrame:
    """Per source system: records, customers, duplicates merged within it, records linked to other systems."""
    # Integer codes for customers and systems: counting distinct ones over millions of id strings is slow.
    customer, customers = pd.factorize(crosswalk["customer_id"])
    system, systems = pd.factorize(crosswalk["source_system"], sort=True)
    known = customer >= 0
    pairs = np.unique(customer[known].astype(np.int64) * max(len(systems), 1) + system[known])
    n_systems = np.bincount(pairs // max(len(systems), 1), minlength=len(customers))
    linked = known & (n_systems[np.maximum(customer, 0)] > 1)
    frame = pd.DataFrame({"system": system, "customer": np.where(known, customer, np.nan), "linked": linked})
    grouped = frame.groupby("system")
    summary = pd.DataFrame(
        {
            "records": grouped.size(),
            "customers": grouped["customer"].nunique(),
            "linked_to_other_systems": grouped["linked"].sum(),
        }
    )
    summary.index = pd.Index(systems[summary.index], name="source_system")
    summary["duplicates_merged"] = summary["records"] - summary["customers"]
    total = pd.DataFrame(
        {
            "records": [len(crosswalk)],
            "customers": [len(customers)],
            "linked_to_other_systems": [int(linked.sum())],
        },
        index=pd.Index(["all"], name="source_system"),
    )
    total["duplicates_merged"] = total["records"] - total["customers"]
    return pd.concat([summary, total]).reset_index()


def in_record_order(frame: pd.DataFrame) -> pd.DataFrame:
    """`frame` sorted by `source_record_id` (as text), fresh index; `frame` itself when it already is."""
    ids = frame["source_record_id"].astype(str)
    if ids.is_monotonic_increasing and frame.index.equals(pd.RangeIndex(len(frame))):
        return frame
    return frame.sort_values("source_record_id", key=lambda _: ids).reset_index(drop=True)


def load_clean_tables(ctx: StepContext) -> dict[str, pd.DataFrame]:
    """The clean identity tables step 01 wrote, keyed by source system, with only the columns the merge
    reads (`merge_columns`, `OPTIONAL_SOURCES`; the others, free text such as `notes`, are not read)."""
    tables = {}
    for system, table in SYSTEM_TABLES.items():
        wanted = {*merge_columns(system), *OPTIONAL_SOURCES.get(system, {}).values()}
        path = ctx.path(f"clean_{table}.parquet", AUDIT_STEP)
        # A missing table reads as `ctx.read` reports it (ArtifactMissingError).
        columns = [c for c in pq.read_schema(path).names if c in wanted] if path.is_file() else None
        tables[system] = ctx.read(AUDIT_STEP, f"clean_{table}", columns=columns)
    return tables


def add_event_customers(result: IdentityResult, new_records: pd.DataFrame) -> None:
    """Add the customers made from unmatched event identifiers (`event` records, `resolve_events`) to the
    crosswalk and merge summary of `result`."""
    if new_records.empty:
        return
    crosswalk = pd.DataFrame(
        {
            "source_system": new_records["source_system"].to_numpy(),
            "source_record_id": new_records["source_record_id"].to_numpy(),
            "customer_id": new_records["customer_id"].to_numpy(),
            "match_method": "event",
            "match_probability": np.nan,
            "match_rule": new_records["identifier_type"].to_numpy(),
        }
    )
    result.crosswalk = pd.concat([result.crosswalk, crosswalk], ignore_index=True)
    result.merge_summary = merge_summary(result.crosswalk)
    result.stats["customers"] = int(result.crosswalk["customer_id"].nunique())


def previous_identity(
    ctx: StepContext, systems: list[str]
) -> tuple[PreviousIdentity | None, pd.DataFrame | None, pd.DataFrame | None]:
    """The run whose ids this run carries over (`identity.previous_run`), the clean records of `systems`
    unchanged since then (every column compared; the tables read one at a time), and those records with
    their previous customer when its links are kept (same identity method and
    `identity.keep_previous_links`)."""
    settings = ctx.settings.identity
    method = method_fingerprint(settings, ctx.seed)
    ctx.record(method_fingerprint=method)
    previous_dir = find_previous_identity(ctx.run_dir, settings.previous_run)
    if previous_dir is None:
        return None, None, None
    previous = read_previous_identity(previous_dir)
    tables = _AuditTables(ctx, "clean_", {system: SYSTEM_TABLES[system] for system in systems}, None)
    unchanged = unchanged_records(tables, previous_dir)
    keep = None
    if settings.keep_previous_links and previous.method == method:
        keep = unchanged.merge(previous.crosswalk, on=KEY)
    ctx.record(
        records_unchanged=len(unchanged),
        previous_links=("kept" if keep is not None else "re-decided (another identity method)")
        if settings.keep_previous_links
        else "re-decided (identity.keep_previous_links is off)",
    )
    return previous, unchanged, keep


def keep_previous_ids(
    ctx: StepContext,
    result: IdentityResult,
    previous: PreviousIdentity | None,
    unchanged: pd.DataFrame | None,
) -> None:
    """Give `result`'s customers the ids of `previous` (`helpers.identity.history.stable_ids`) and
    set its `id_history`."""
    started = time.perf_counter()
    stable = stable_ids(result.crosswalk, previous, ctx.run_dir.resolve().name, unchanged)
    rename_customers(result, stable.mapping)
    result.id_history = stable.history
    result.stats.update(stable.stats)
    result.stats["seconds_stable_ids"] = round(time.perf_counter() - started, 1)


def rename_customers(result: IdentityResult, mapping: pd.Series) -> None:
    """Replace every customer id in `result` by `mapping[id]` (ids not in `mapping` stay)."""
    if bool((mapping.index == mapping.to_numpy()).all()):
        return

    def renamed(ids: pd.Series) -> pd.Series:
        return ids.map(mapping).fillna(ids).astype(ids.dtype)

    for frame, columns in (
        (result.crosswalk, ["customer_id"]),
        (result.golden, ["customer_id"]),
        (result.identifiers, ["customer_id"]),
        (result.records, ["customer_id"]),
        (result.event_customers, ["customer_id"]),
        (result.review_pairs, ["left_customer_id", "right_customer_id"]),
    ):
        for column in columns:
            if column in frame:
                frame[column] = renamed(frame[column])


class _AuditTables(Mapping[str, pd.DataFrame]):
    """Step 01's `<prefix><table>` for each key of `tables` (key -> table name), read when asked for (one
    at a time in memory): only those of `columns` the file has, text columns dictionary-encoded
    (categoricals); every column as `ctx.read` reads it when `columns` is None."""

    def __init__(
        self, ctx: StepContext, prefix: str, tables: dict[str, str], columns: list[str] | None
    ) -> None:
        self.ctx, self.prefix, self.tables, self.columns = ctx, prefix, tables, columns

    def __getitem__(self, key: str) -> pd.DataFrame:
        if key not in self.tables:
            raise KeyError(key)
        name = f"{self.prefix}{self.tables[key]}"
        if self.columns is None:
            return self.ctx.read(AUDIT_STEP, name)
        path = self.ctx.path(f"{name}.parquet", AUDIT_STEP)
        schema = pq.read_schema(path)
        columns = [c for c in self.columns if c in schema.names]
        text = [c for c in columns if pa.types.is_string(schema.field(c).type)]
        # Arrow's buffers are released column by column as pandas takes them (no second copy of the table).
        table = pq.read_table(path, columns=columns, read_dictionary=text)
        return table.to_pandas(split_blocks=True, self_destruct=True)

    def __iter__(self) -> Iterator[str]:
        return iter(self.tables)

    def __len__(self) -> int:
        return len(self.tables)


def _row_trace(ctx: StepContext, crosswalk: pd.DataFrame, resolution: pd.DataFrame) -> pd.DataFrame:
    """`row_trace` of the run: every data row of every file step 01 read, checked against its ledger.

    The clean and quarantine tables are read one at a time, with only the columns that link a row."""
    files = trace_files(ctx.settings.data)
    keys = ["source_row", "source_record_id", "cti_id", "source_system", "source_customer_id"]
    clean = _AuditTables(ctx, "clean_", {table: table for table in files}, keys)
    quarantine = _AuditTables(ctx, "quarantine_", {table: table for table in files}, ["source_row", "reason"])
    trace = row_trace(files, clean, quarantine, crosswalk, resolution)
    check_row_trace(trace, ctx.read(AUDIT_STEP, "ledger"))
    return trace


def write_plain(ctx: StepContext, name: str, frame: pd.DataFrame) -> Path:
    """Write artifact `name` as `ctx.write` would write `frame` with plain columns (categoricals and
    Arrow-backed text as `string`), `WRITE_ROWS` rows at a time, atomically.

    Categorical columns are decoded a chunk at a time (`WRITE_ROWS` rows: no decoded copy of the whole
    column): Parquet writes a chunk of plain text ~4x faster than an Arrow dictionary holding every
    category (the row trace's million customer ids in every chunk: 10 -> 3 s for its 27.5M rows at a
    million customers). The file's Arrow schema is left out and the pandas metadata is the plain
    frame's, so the artifact reads back, in pandas, pyarrow and DuckDB alike, as the plain columns
    readers know."""
    plain = pa.Schema.from_pandas(
        pd.DataFrame(
            {column: pd.Series(dtype=_plain_dtype(dtype)) for column, dtype in frame.dtypes.items()}
        ),
        preserve_index=False,
    )
    path = ctx.path(f"{name}.parquet")
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".parquet.partial")
    writer: pq.ParquetWriter | None = None
    try:
        for start in range(0, max(len(frame), 1), WRITE_ROWS):
            part = frame.iloc[start : start + WRITE_ROWS]
            table = pa.Table.from_arrays(
                [_plain_array(part[field.name], field.type) for field in plain], names=plain.names
            )
            if writer is None:
                writer = pq.ParquetWriter(partial, table.schema, store_schema=False)
            writer.write_table(table.cast(writer.schema))
        writer.add_key_value_metadata({b"pandas": plain.metadata[b"pandas"]})
    finally:
        if writer is not None:
            writer.close()
    partial.replace(path)
    return path


def _plain_dtype(dtype: Any) -> Any:
    """The dtype a column of `dtype` is written as: text for categoricals and Arrow-backed text."""
    return "string" if isinstance(dtype, pd.CategoricalDtype | pd.StringDtype) else dtype


def _plain_array(values: pd.Series, kind: pa.DataType) -> pa.Array:
    """A column in Arrow as `kind` (a categorical decoded from its Arrow dictionary)."""
    if isinstance(values.dtype, pd.CategoricalDtype):
        return pa.array(values, from_pandas=True).cast(kind)
    return pa.array(values, type=kind, from_pandas=True)


def run_step(ctx: StepContext) -> IdentityResult:
    """Step 02: merge step 01's clean identity tables into customers (config section `identity`),
    check the crosswalk and golden records, write every artifact and record the headline figures.

    Identity tables without accepted rows are left out, named on stderr and recorded (`empty_tables`);
    when all are empty the step stops naming them."""
    started = time.perf_counter()
    tables = load_clean_tables(ctx)
    empty = [SYSTEM_TABLES[system] for system, frame in tables.items() if frame.empty]
    if len(empty) == len(tables):
        raise IdentityInputError(
            f"every clean identity table of step 01 is empty ({', '.join(f'clean_{t}' for t in empty)}): "
            "see 01_data_audit's quarantine tables and ledger for why their rows were rejected"
        )
    if empty:
        print(
            f"WARNING identity merge: {', '.join(f'clean_{t}' for t in empty)} has no rows; "
            "merging the other identity tables",
            file=sys.stderr,
            flush=True,
        )
    tables = {system: frame for system, frame in tables.items() if not frame.empty}
    for system in tables:  # one table at a time, so the merge keeps no second copy of them
        tables[system] = in_record_order(tables[system])
    seconds_inputs = round(time.perf_counter() - started, 1)  # reading and ordering the clean tables
    previous, unchanged, keep = previous_identity(ctx, list(tables))
    _check_settings(ctx.settings.identity)
    clock = time.perf_counter()
    records, identifiers = merge_inputs(tables)
    # Only the record keys stay for the crosswalk check: the clean tables go before the merge links
    # anything (1.8 GB at a million customers).
    keys = {system: frame[["source_record_id"]] for system, frame in tables.items()}
    del tables
    release_freed_memory()
    result = link_customers(
        records,
        identifiers,
        ctx.settings.identity,
        ctx.seed,
        keep,
        started=clock,
        engine_settings=ctx.settings.engine,
    )
    del identifiers
    check_crosswalk(result.crosswalk, keys)
    del keys
    keyed = [t for t, entry in ctx.settings.data.tables.items() if entry.key_by != "record"]
    events = {table: read_clean(ctx, table, resolution_columns(table)) for table in keyed}
    resolution, new_records = resolve_events(
        events,
        records,
        result.record_identifiers,
        result.suspicious_identifiers,
        ctx.settings.data,
        ctx.settings.identity.max_people_per_identifier,
    )
    del events
    add_event_customers(result, new_records)
    result.event_customers = resolution
    # Only the fields golden records are made of stay (the others ~0.5 GB at a million customers).
    records = result.records = records[GOLDEN_INPUTS]
    clock = time.perf_counter()
    result.golden = pd.concat(
        [build_golden(records), build_golden(new_records.reindex(columns=records.columns))], ignore_index=True
    )
    result.stats["seconds_golden"] = round(time.perf_counter() - clock, 1)
    # Event records follow the merged ones: the customer of every record index the identifiers use.
    result.records = pd.concat(
        [records["customer_id"], new_records["customer_id"].astype(object)], ignore_index=True
    ).to_frame()
    event_identifiers = new_records[["identifier_type", "identifier_value"]].assign(
        record_index=np.arange(len(records), len(result.records))
    )
    del records  # every record's fields (~3 GB at a million customers)
    keep_previous_ids(ctx, result, previous, unchanged)
    if not result.golden["customer_id"].is_unique:
        raise AssertionError("golden records repeat a customer_id")
    if set(result.golden["customer_id"]) != set(result.crosswalk["customer_id"]):
        raise AssertionError("golden records and crosswalk have different customers")
    write_plain(ctx, "golden", result.golden)
    clock = time.perf_counter()
    identifiers = result.record_identifiers
    if len(event_identifiers):
        identifiers = pd.concat([identifiers, event_identifiers], ignore_index=True)
    write_identifier_table(
        ctx, identifiers, result.records["customer_id"], result.suspicious_identifiers, ctx.settings.engine
    )
    # Written, not kept: millions of rows at a million customers (read `identifiers` back when needed).
    result.identifiers = result.record_identifiers = identifiers.iloc[:0]
    del identifiers
    result.stats["seconds_identifier_table"] = round(time.perf_counter() - clock, 1)
    for name in (
        "crosswalk",
        "suspicious_identifiers",
        "review_pairs",
        "merge_summary",
        "event_customers",
        "id_history",
    ):
        ctx.write(name, getattr(result, name))
    release_freed_memory()  # freed frames go back to the OS before the row trace's peak
    clock = time.perf_counter()
    result.row_trace = _row_trace(ctx, result.crosswalk, resolution)
    result.stats["events_keyed_by_identifier"] = len(resolution)
    result.stats["events_resolved_by"] = {
        str(rule): int(n) for rule, n in resolution["resolved_by"].value_counts().sort_index().items()
    }
    result.stats["event_customers_created"] = len(new_records)
    write_plain(ctx, "row_trace", result.row_trace)
    result.stats["seconds_inputs"] = seconds_inputs
    result.stats["seconds_row_trace"] = round(time.perf_counter() - clock, 1)  # built, checked and written
    result.stats["merge_seconds"] = round(time.perf_counter() - started, 1)
    result.stats["empty_tables"] = empty
    ctx.record(**result.stats)
    return result


# ---------------------------------------------------------------------------------------------
# Reporting helpers for the notebook (masked values for the management render)
def mask_value(values: pd.Series) -> pd.Series:
    """Mask names, phones and e-mails: `W*** W***`, `王**`, `+86138****5678`, `w***@qq.com`."""
    text = values.astype("string")
    phone = text.str.match(r"^\+86").fillna(False)
    email = text.str.contains("@", regex=False).fillna(False)
    han = text.str.contains(r"[\u3400-\u9fff]", regex=True).fillna(False)
    masked = text.str.replace(r"(\S)\S*", r"\1***", regex=True)
    masked = masked.mask(han, text.str[:1] + "**")
    masked = masked.mask(phone, text.str[:6] + "****" + text.str[-4:])
    masked = masked.mask(email, text.str[:1] + "***@" + text.str.split("@").str[-1])
    return masked


def masked_review_pairs(review: pd.DataFrame) -> pd.DataFrame:
    """The clerical-review sample with names, phones and e-mails masked, birth dates cut to the year,
    record keys and customer ids dropped."""
    shown = review.drop(columns=[c for c in review.columns if c.endswith(("record_key", "customer_id"))])
    for column in shown.columns:
        if column.endswith(("_name", "_mobile", "_email")):
            shown[column] = mask_value(shown[column])
        elif column.endswith("_birth_date"):
            shown[column] = pd.to_datetime(shown[column]).dt.year.astype("Int64")
    return shown


def cluster_size_counts(crosswalk: pd.DataFrame) -> pd.DataFrame:
    """How many customers have 1, 2, 3, ... source records."""
    sizes = crosswalk.groupby("customer_id").size()
    counts = sizes.value_counts().sort_index()
    return pd.DataFrame({"records_per_customer": counts.index, "customers": counts.to_numpy()})


def merge_sources(crosswalk: pd.DataFrame) -> pd.DataFrame:
    """Records per source system and match method (`single`, `deterministic`, `probabilistic`)."""
    table = crosswalk.groupby(["source_system", "match_method"]).size().rename("records").reset_index()
    return table.astype({"source_system": str, "match_method": str})


def check_crosswalk(crosswalk: pd.DataFrame, tables: Mapping[str, pd.DataFrame]) -> None:
    """Every clean source record appears exactly once and no record is invented (record keys compared
    as text, one source system at a time)."""
    system_codes, systems = pd.factorize(crosswalk["source_system"].astype(str))
    ids = crosswalk["source_record_id"].astype(str).to_numpy()
    repeated = np.zeros(len(crosswalk), dtype=bool)
    differ: dict[str, int] = {}
    for system in sorted({*systems, *tables}):
        rows = np.flatnonzero(system_codes == systems.get_loc(system)) if system in systems else []
        claimed = pd.Index(ids[rows])
        repeated[rows] = claimed.duplicated()
        table = tables[system]["source_record_id"].astype(str) if system in tables else []
        expected = pd.Index(table)
        missing = int((~expected.isin(claimed)).sum()) + int((~claimed.isin(expected)).sum())
        if missing:
            differ[system] = missing
    if repeated.any():
        raise AssertionError(f"crosswalk repeats records in rows {_rows(pd.Series(repeated))}")
    if differ:
        raise AssertionError(
            f"crosswalk and clean tables differ in {sum(differ.values())} records of {sorted(differ)}"
        )
    if crosswalk["customer_id"].isna().any():
        raise AssertionError("crosswalk has records without customer_id")
