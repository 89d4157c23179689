"""The demo call-center world: realistic raw exports with planted truth, deterministic by seed.

`generate_demo_world` draws true people in chunks (`demo_people`), renders their identity records
in four source systems (`demo_identity`), draws their events (`demo_events`), plants row-level
defects, and appends every chunk to the raw files (CSV in UTF-8 and GBK, one Excel workbook)
and to the truth Parquet files. Everything is written into hidden staging folders next to the
targets and moved into place only when the whole world is done, so a crash never leaves a
half-written set.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Literal, Protocol

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv
import pyarrow.parquet as pq
from tqdm.auto import tqdm

from helpers.core.tables import TABLES, Table
from helpers.demo import reference as ref
from helpers.demo.events import (
    Coded,
    calls,
    event_ids,
    future_transactions,
    marketing,
    person_ids,
    surveys,
    transactions,
)
from helpers.demo.files import RAW_FILES, RawFile, format_stamps
from helpers.demo.identity import SYSTEMS, IdBook, arrow_strings, build_records, orphan_ids
from helpers.demo.people import People, draw_people
from helpers.demo.xlsx import XlsxStreamWriter

CHUNK_PEOPLE = 50_000
DEFECT_RATE = 0.002
# Loyal customers need more than two years of history after DATA_START; calendars end in 2027.
EARLIEST_REFERENCE, LATEST_REFERENCE = np.datetime64("2025-06-01", "D"), np.datetime64("2027-10-31", "D")
GARBLED_DATES = np.array(["2024-02-30 25:61:00", "not recorded", "00/00/0000", "#VALUE!", "2025-13-45", "??"])


SYSTEM_TABLE = {
    "crm": "crm_customers",
    "cti": "cti_contacts",
    "shop": "shop_accounts",
    "loyalty": "loyalty_members",
}
TRUTH_SCHEMAS = {
    "source_records": pa.schema(
        [("source_system", pa.string()), ("source_record_id", pa.string()), ("person_id", pa.string())]
    ),
    "persons": pa.schema(
        [
            ("person_id", pa.string()),
            ("segment", pa.string()),
            ("stage", pa.string()),
            ("is_business", pa.bool_()),
            ("full_name", pa.string()),
            ("gender", pa.string()),
            ("birth_date", pa.timestamp("s")),
            ("province", pa.string()),
            ("city", pa.string()),
            ("city_tier", pa.int64()),
            ("mobile", pa.string()),
            ("email", pa.string()),
            ("previous_email", pa.string()),
            ("moved_from_city", pa.string()),
            ("household_id", pa.string()),
            ("company_id", pa.string()),
            ("company_name", pa.string()),
            ("known_since", pa.timestamp("s")),
            ("first_purchase_at", pa.timestamp("s")),
            ("last_purchase_at", pa.timestamp("s")),
            ("n_purchases", pa.int64()),
            ("interpurchase_days", pa.float64()),
        ]
    ),
    "future_transactions": pa.schema(
        [("person_id", pa.string()), ("txn_at", pa.timestamp("s")), ("amount", pa.float64())]
    ),
    "planted_defects": pa.schema([("table", pa.string()), ("key", pa.string()), ("defect", pa.string())]),
}


# Fewer people leave some planted segments, stages or defects without a single member (the generator
# then fails deep inside numpy) and too few customers for step 04's default k range.
MIN_CUSTOMERS = 200


class DemoSizeError(ValueError):
    """The requested demo world is too small to generate; the message is one line for the CLI."""


def generate_demo_world(
    raw_dir: Path,
    truth_dir: Path,
    n_customers: int = 20000,
    seed: int = 7,
    reference_date: str = "2026-06-30",
    progress: bool = True,
    style: Literal["default", "export"] = "default",
) -> dict[str, int]:
    """Write the 8 raw tables to `raw_dir` and the truth to `truth_dir`; return rows per file.

    `style="export"` writes the same world as a Chinese call center's own exports instead
    (`helpers.demo.export`): the default files are generated into a hidden folder and rewritten.
    """
    if n_customers < 1:
        raise ValueError(f"n_customers must be at least 1, got {n_customers}")
    if not EARLIEST_REFERENCE <= np.datetime64(reference_date, "D") <= LATEST_REFERENCE:
        raise ValueError(
            f"reference_date {reference_date} is outside {EARLIEST_REFERENCE}..{LATEST_REFERENCE}: the demo "
            f"world's history starts {ref.DATA_START} and its festival and campaign calendars end in 2027."
        )
    if n_customers < MIN_CUSTOMERS:
        raise DemoSizeError(
            f"demo.customers (n_customers) is {n_customers}; the demo world needs at least {MIN_CUSTOMERS} "
            f"customers: set demo.customers to {MIN_CUSTOMERS} or more."
        )
    raw_dir, truth_dir = Path(raw_dir), Path(truth_dir)
    # Staging folders sit next to the targets, so `raw_dir` only ever holds a complete set.
    stages = {raw_dir: _staging(raw_dir), truth_dir: _staging(truth_dir)}
    default_raw = raw_dir.parent / f".{raw_dir.name}.demo-default"
    for stage in [*stages.values(), default_raw]:
        shutil.rmtree(stage, ignore_errors=True)
        stage.mkdir(parents=True)
    try:
        if style == "export":
            from helpers.demo.export import write_export_world

            counts = _write_world(default_raw, stages[truth_dir], n_customers, seed, reference_date, progress)
            counts = {
                **write_export_world(default_raw, stages[raw_dir], stages[truth_dir], seed, reference_date),
                **{name: rows for name, rows in counts.items() if name.startswith("truth/")},
            }
        else:
            counts = _write_world(
                stages[raw_dir], stages[truth_dir], n_customers, seed, reference_date, progress
            )
        for target, stage in stages.items():
            target.mkdir(parents=True, exist_ok=True)
            for path in sorted(stage.iterdir()):
                path.replace(target / path.name)
    finally:
        for stage in [*stages.values(), default_raw]:
            shutil.rmtree(stage, ignore_errors=True)
    return counts


def _staging(target: Path) -> Path:
    return target.parent / f".{target.name}.demo-partial"


def _write_world(
    raw_stage: Path, truth_stage: Path, n_customers: int, seed: int, reference_date: str, progress: bool
) -> dict[str, int]:
    """Generate chunk by chunk into the staging folders; return rows per file."""
    reference = np.datetime64(reference_date, "D")
    sinks: dict[str, _Sink] = {
        name: (
            XlsxStreamWriter(raw_stage / spec.file, spec.sheet, TABLES[name].column_names)
            if spec.sheet
            else _CsvSink(raw_stage / spec.file, spec.encoding)
        )
        for name, spec in RAW_FILES.items()
    }
    truth_sinks = {
        name: _ParquetSink(truth_stage / f"{name}.parquet", schema) for name, schema in TRUTH_SCHEMAS.items()
    }
    world = _World(reference, ref.campaigns(reference))
    try:
        with tqdm(total=n_customers, unit="people", desc="demo world", disable=not progress) as bar:
            for chunk, first in enumerate(range(0, n_customers, CHUNK_PEOPLE)):
                size = min(CHUNK_PEOPLE, n_customers - first)
                raw, truth = world.chunk(np.random.default_rng([seed, chunk]), chunk, first, size)
                for name, table in raw.items():
                    sinks[name].write(table)
                for name, table in truth.items():
                    truth_sinks[name].write(table)
                bar.update(size)
    finally:
        for sink in [*sinks.values(), *truth_sinks.values()]:
            sink.close()
    counts = {spec.file: sinks[name].rows for name, spec in RAW_FILES.items()}
    counts.update({f"truth/{name}.parquet": sink.rows for name, sink in truth_sinks.items()})
    return counts


class _World:
    """Draws one chunk of the world at a time; keeps the global id counters between chunks."""

    def __init__(self, reference: np.datetime64, campaigns: pd.DataFrame) -> None:
        self.reference = reference
        self.campaigns = campaigns
        self.record_counters = {system: 0 for system in SYSTEMS}
        self.event_counters = {"transactions": 0, "calls": 0, "surveys": 0, "marketing_contacts": 0}

    def chunk(self, rng: np.random.Generator, chunk: int, first: int, size: int):
        reference = self.reference
        people = draw_people(rng, first, size, reference)
        records = build_records(rng, people, self.record_counters, reference)
        book = IdBook.of(records)
        call_columns, first_call = calls(rng, people, records["cti"], reference)
        records["cti"].columns["first_call_at"] = first_call
        events = {
            "transactions": transactions(rng, people, records, book, reference),
            "calls": call_columns,
            "surveys": surveys(rng, people, book, reference),
            "marketing_contacts": marketing(rng, people, book, self.campaigns, reference),
        }
        defects: list[tuple[str, np.ndarray, str]] = []
        raw: dict[str, pa.Table] = {}
        for system in SYSTEMS:
            name = SYSTEM_TABLE[system]
            columns = records[system].columns
            if "birth_date" in columns:
                defects += _impossible_birth_dates(rng, name, columns, records[system].ids, reference)
            raw[name] = _to_arrow(TABLES[name], columns, RAW_FILES[name])
        raw["cti_contacts"], found = _garble_dates(rng, "cti_contacts", raw["cti_contacts"], "first_call_at")
        defects += found
        raw["crm_customers"], found = _garble_dates(rng, "crm_customers", raw["crm_customers"], "created_at")
        defects += found
        for name, columns in events.items():
            raw[name], found = self._event_table(rng, chunk, name, columns)
            defects += found
        truth = {
            "source_records": _source_records(people, records),
            "persons": _persons(people),
            "future_transactions": pa.Table.from_pandas(
                future_transactions(rng, people, reference), preserve_index=False
            ),
            "planted_defects": pa.table(
                {
                    "table": np.concatenate([np.full(len(keys), table) for table, keys, _ in defects] + [[]]),
                    "key": np.concatenate([np.asarray(keys, dtype=str) for _, keys, _ in defects] + [[]]),
                    "defect": np.concatenate([np.full(len(keys), kind) for _, keys, kind in defects] + [[]]),
                }
            ),
        }
        return raw, {name: table.cast(TRUTH_SCHEMAS[name]) for name, table in truth.items()}

    def _event_table(self, rng, chunk: int, name: str, columns: dict):
        """Sort a chunk's events by time, number them, convert and plant row-level defects."""
        table = TABLES[name]
        time_column = next(c.name for c in table.columns if c.type == "datetime")
        order = np.argsort(columns[time_column], kind="stable")
        columns = {
            key: values.take(order) if isinstance(values, Coded) else np.asarray(values)[order]
            for key, values in columns.items()
            if key != "owner"
        }
        prefix, width = {
            "transactions": ("T", 10),
            "calls": ("CL", 9),
            "surveys": ("SV", 8),
            "marketing_contacts": ("MK", 9),
        }[name]
        columns[table.key] = event_ids(prefix, self.event_counters[name], len(order), width)
        self.event_counters[name] += len(order)
        arrow = _to_arrow(table, columns, RAW_FILES[name])
        return _plant_event_defects(rng, chunk, name, arrow, self.reference, RAW_FILES[name].datetime_format)


def _to_arrow(table: Table, columns: dict, spec: RawFile) -> pa.Table:
    """Typed Arrow table in canonical column order; dates as text in the file's format (not Excel)."""
    arrays = []
    for column in table.columns:
        values = columns[column.name]
        if isinstance(values, pa.Array):
            arrays.append(values)
        elif isinstance(values, Coded):
            vocab = pa.array(values.vocab.astype(object), type=pa.string(), mask=values.vocab == "")
            arrays.append(vocab.take(pa.array(values.codes)))
        elif column.type == "str":
            arrays.append(arrow_strings(np.asarray(values).astype(str)))
        elif column.type in ("date", "datetime"):
            stamps = pa.array(
                np.asarray(values).astype("datetime64[s]"), type=pa.timestamp("s"), from_pandas=True
            )
            fmt = spec.date_format if column.type == "date" else spec.datetime_format
            arrays.append(stamps if spec.sheet else format_stamps(stamps, fmt))
        elif column.type == "float":
            arrays.append(pa.array(np.asarray(values, dtype=float), type=pa.float64(), from_pandas=True))
        else:
            numbers = np.asarray(values, dtype=float)
            missing = np.isnan(numbers)
            kind = pa.int64() if column.type == "int" else pa.bool_()
            clean = np.where(missing, 0, numbers).astype(np.int64 if column.type == "int" else bool)
            arrays.append(pa.array(clean, type=kind, mask=missing))
    return pa.Table.from_arrays(arrays, names=table.column_names)


def _defect_rows(rng, n: int, kinds: list[str]) -> dict[str, np.ndarray]:
    """Disjoint sorted row sets, about DEFECT_RATE of the rows per defect kind."""
    order = rng.permutation(n)
    counts = rng.binomial(n, DEFECT_RATE, len(kinds))
    bounds = np.concatenate([[0], np.cumsum(counts)])
    return {kind: np.sort(order[bounds[i] : bounds[i + 1]]) for i, kind in enumerate(kinds)}


def _replace(table: pa.Table, column: str, rows: np.ndarray, values) -> pa.Table:
    """`table` with `column` replaced at sorted `rows` by `values`."""
    if not len(rows):
        return table
    index = table.schema.get_field_index(column)
    current = table.column(index).combine_chunks()
    mask = np.zeros(len(table), dtype=bool)
    mask[rows] = True
    replaced = pc.replace_with_mask(current, pa.array(mask), pa.array(values, type=current.type))
    return table.set_column(index, column, replaced)


def _future_stamps(rng, reference: np.datetime64, count: int, fmt: str) -> pa.Array:
    offsets = (rng.uniform(1, 200, count) * 86_400).astype("timedelta64[s]")
    return format_stamps(pa.array(reference.astype("datetime64[s]") + offsets), fmt)


def _plant_event_defects(rng, chunk: int, name: str, table: pa.Table, reference, fmt: str):
    """Unparseable and future dates, negative quantities/amounts, orphans, exact duplicates."""
    key = TABLES[name].key
    time_column = next(c.name for c in TABLES[name].columns if c.type == "datetime")
    kinds = {
        "transactions": [
            "unparseable_date",
            "future_date",
            "negative_quantity",
            "negative_amount",
            "orphan",
            "exact_duplicate",
        ],
        "calls": ["unparseable_date", "future_date", "orphan", "exact_duplicate"],
        "surveys": ["unparseable_date", "future_date", "exact_duplicate"],
        "marketing_contacts": ["future_date", "exact_duplicate"],
    }[name]
    rows = _defect_rows(rng, len(table), kinds)
    if "negative_amount" in rows:
        refunds = table.column("is_refund").to_numpy(zero_copy_only=False)
        rows["negative_amount"] = rows["negative_amount"][~refunds[rows["negative_amount"]]]
    garbled = rows.get("unparseable_date", np.array([], dtype=np.int64))
    table = _replace(
        table, time_column, garbled, GARBLED_DATES[rng.integers(0, len(GARBLED_DATES), len(garbled))]
    )
    table = _replace(
        table, time_column, rows["future_date"], _future_stamps(rng, reference, len(rows["future_date"]), fmt)
    )
    for column, kind in (("quantity", "negative_quantity"), ("amount", "negative_amount")):
        if kind in rows:
            values = table.column(column).to_numpy()[rows[kind]]
            table = _replace(table, column, rows[kind], -np.abs(values))
    if "orphan" in rows:
        table = _replace(table, *_orphans(table, chunk, rows["orphan"]))
    keys = table.column(key)
    defects = [(name, _pick_text(keys, found), kind) for kind, found in rows.items()]
    table = pa.concat_tables([table, table.take(rows["exact_duplicate"])])
    return table, defects


def _pick_text(column: pa.ChunkedArray, rows: np.ndarray) -> np.ndarray:
    """Text values at `rows` without converting the whole column to Python objects."""
    return np.asarray(column.take(pa.array(rows, type=pa.int64())).to_pylist(), dtype=object)


def _orphans(table: pa.Table, chunk: int, rows: np.ndarray) -> tuple[str, np.ndarray, np.ndarray]:
    """Customer references, in the right id format, that exist in no system."""
    if "cti_id" in table.column_names:
        return "cti_id", rows, orphan_ids("cti", chunk, len(rows))
    systems = _pick_text(table.column("source_system"), rows)
    values = np.empty(len(rows), dtype=object)
    for system in np.unique(systems):
        where = systems == system
        values[where] = orphan_ids(system, chunk, int(where.sum()))
    return "source_customer_id", rows, values


def _impossible_birth_dates(rng, name: str, columns: dict, ids: np.ndarray, reference: np.datetime64):
    """Birth dates more than 110 years ago or in the future on ~DEFECT_RATE of the records."""
    birth = np.asarray(columns["birth_date"], dtype="datetime64[D]").copy()
    rows = np.flatnonzero((rng.random(len(birth)) < DEFECT_RATE) & ~np.isnat(birth))
    # Ages of 112-124 years (still valid Excel dates) or birthdays 1-4 years in the future.
    years = np.where(
        rng.random(len(rows)) < 0.5, rng.integers(112, 125, len(rows)), -rng.integers(1, 5, len(rows))
    )
    birth[rows] = reference - (years * 365.25).astype("timedelta64[D]")
    columns["birth_date"] = birth
    return [(name, ids[rows], "impossible_birth_date")]


def _garble_dates(rng, name: str, table: pa.Table, column: str):
    rows = _defect_rows(rng, len(table), ["unparseable_date"])["unparseable_date"]
    garbled = GARBLED_DATES[rng.integers(0, len(GARBLED_DATES), len(rows))]
    keys = _pick_text(table.column(TABLES[name].key), rows)
    return _replace(table, column, rows, garbled), [(name, keys, "unparseable_date")]


def _source_records(people: People, records) -> pa.Table:
    return pa.table(
        {
            "source_system": np.concatenate([np.full(len(records[s]), s) for s in SYSTEMS]),
            "source_record_id": np.concatenate([records[s].ids for s in SYSTEMS]),
            "person_id": person_ids(np.concatenate([people.pid[records[s].person] for s in SYSTEMS])),
        }
    )


def _persons(people: People) -> pa.Table:
    rows = np.arange(len(people))
    cities = ref.CITIES
    moved = people.old_city >= 0
    first_pid = people.pid[0] if len(people) else 0
    return pa.table(
        {
            "person_id": person_ids(people.pid),
            "segment": np.array(ref.SEGMENTS)[people.segment],
            "stage": np.array(ref.STAGES)[people.stage],
            "is_business": people.is_business,
            "full_name": people.true_name(rows),
            "gender": people.gender,
            "birth_date": people.birth.astype("datetime64[s]"),
            "province": cities["province"].to_numpy().astype(str)[people.city],
            "city": cities["city"].to_numpy().astype(str)[people.city],
            "city_tier": cities["tier"].to_numpy()[people.city],
            "mobile": np.where(people.has_mobile, people.mobile_digits(rows), ""),
            "email": people.email,
            "previous_email": people.email_old,
            "moved_from_city": np.where(
                moved, cities["city"].to_numpy().astype(str)[np.maximum(people.old_city, 0)], ""
            ),
            "household_id": np.where(
                people.household >= 0, np.strings.add(f"H{first_pid}-", people.household.astype(str)), ""
            ),
            "company_id": np.where(people.company >= 0, np.strings.add("B", people.company.astype(str)), ""),
            "company_name": people.company_name,
            "known_since": people.known_since.astype("datetime64[s]"),
            "first_purchase_at": people.first_purchase.astype("datetime64[s]"),
            "last_purchase_at": people.last_purchase.astype("datetime64[s]"),
            "n_purchases": people.n_purchases,
            "interpurchase_days": people.interpurchase,
        }
    )


class _Sink(Protocol):
    """Where a table's chunks go; `rows` counts what was written."""

    rows: int

    def write(self, table: pa.Table) -> None: ...

    def close(self) -> None: ...


class _CsvSink:
    """Appends chunks to one CSV file, header once; UTF-8 streams straight from Arrow."""

    def __init__(self, path: Path, encoding: str) -> None:
        self.path = path
        self.transcode = encoding.lower().replace("-", "").replace("_", "") != "utf8"
        self.encoding = encoding
        self.handle = path.open("wb") if self.transcode else None
        self.writer: pcsv.CSVWriter | None = None
        self.header_written = False
        self.rows = 0

    def write(self, table: pa.Table) -> None:
        if self.handle is not None:
            buffer = pa.BufferOutputStream()
            pcsv.write_csv(table, buffer, pcsv.WriteOptions(include_header=not self.header_written))
            self.header_written = True
            self.handle.write(buffer.getvalue().to_pybytes().decode("utf-8").encode(self.encoding))
        else:
            if self.writer is None:
                self.writer = pcsv.CSVWriter(str(self.path), table.schema)
            self.writer.write_table(table)
        self.rows += len(table)

    def close(self) -> None:
        if self.handle is not None:
            self.handle.close()
        elif self.writer is not None:
            self.writer.close()


class _ParquetSink:
    def __init__(self, path: Path, schema: pa.Schema) -> None:
        self.writer = pq.ParquetWriter(str(path), schema)
        self.rows = 0

    def write(self, table: pa.Table) -> None:
        self.writer.write_table(table)
        self.rows += len(table)

    def close(self) -> None:
        self.writer.close()
