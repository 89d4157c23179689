"""The data contract of step 01: load raw exports, validate them, quarantine bad rows, clean the rest.

Loading follows the run config (`data.tables.<table>`: file, format, encoding, date formats,
sheet, column mapping). Each export is read once, as text, into a DuckDB work table
(`sql/audit/check_rows.sql`) that parses the typed columns and lists the value problems of each
row; orphans and duplicates are then flagged on the few rows concerned (`flag_orphans.sql`,
`flag_duplicates.sql`). GBK and other non-UTF-8 CSVs are stream-transcoded to UTF-8 first;
Excel sheets are read with python-calamine. Structural problems (missing file or column,
unreadable encoding, empty table, a column that mostly does not parse) raise `DataContractError`
and stop the run. Row-level problems send the row to `quarantine_<table>` with every reason; the ledger proves
input = accepted + quarantined. Clean tables are typed, in file order, and identity tables gain
`source_system`, `source_record_id`, `<phone>_norm` and `email_norm`.
"""

from __future__ import annotations

import json
import re
import shutil
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd
import pandera.pandas as pa
import pyarrow
import pyarrow.parquet as pq
from python_calamine import CalamineWorkbook

from helpers.core.config import resolve_path
from helpers.core.context import StepContext
from helpers.core.normalize import normalize_email, normalize_phone
from helpers.core.settings import DataSettings, WorkbenchConfig
from helpers.core.tables import IDENTITY_TABLES, SOURCE_SYSTEMS, TABLES, Column, Table
from helpers.engine.base import DuckDBEngine

STEP = "audit"
PHONE_COLUMNS = ("mobile", "landline", "phone")
EMAIL_COLUMN = "email"
QUARANTINE_COLUMNS = ("source_row", "reason")
SOURCE_ROW = "__source_row"
SYSTEM_OF_TABLE = {table: system for system, table in SOURCE_SYSTEMS.items()}
TRUE_WORDS = ("true", "t", "1", "yes", "y")
FALSE_WORDS = ("false", "f", "0", "no", "n")
# Allowed values. Required columns with another value are quarantined; optional ones become null.
CATEGORIES: dict[tuple[str, str], tuple[str, ...]] = {
    ("crm_customers", "gender"): ("M", "F"),
    ("crm_customers", "customer_type"): ("consumer", "business"),
    ("shop_accounts", "gender"): ("M", "F"),
    ("shop_accounts", "primary_device"): ("ios", "android", "pc", "mac"),
    ("loyalty_members", "tier"): ("basic", "silver", "gold", "platinum"),
    ("transactions", "source_system"): tuple(SOURCE_SYSTEMS),
    ("transactions", "channel"): ("store", "online", "app", "phone"),
    ("calls", "direction"): ("inbound", "outbound"),
    ("calls", "reason"): ("inquiry", "complaint", "after_sales", "sales"),
    ("surveys", "source_system"): tuple(SOURCE_SYSTEMS),
    ("marketing_contacts", "source_system"): tuple(SOURCE_SYSTEMS),
    ("marketing_contacts", "channel"): ("email", "sms", "phone", "social"),
}
# Numeric bounds (inclusive; None = open). Values outside quarantine the row.
BOUNDS: dict[tuple[str, str], tuple[float | None, float | None]] = {
    ("transactions", "quantity"): (0, None),
    ("calls", "duration_sec"): (0, None),
    ("calls", "satisfaction"): (1, 5),
    ("surveys", "csat"): (1, 5),
    ("surveys", "nps"): (0, 10),
    ("crm_customers", "employee_count"): (0, None),
    ("crm_customers", "annual_revenue_cny"): (0, None),
    ("shop_accounts", "sessions_per_month"): (0, None),
    ("shop_accounts", "online_minutes_per_month"): (0, None),
}
_PANDAS_DTYPES = {
    "str": "object",
    "int": "Int64",
    "float": "float64",
    "date": "datetime64[us]",
    "datetime": "datetime64[us]",
}
_ARROW_TYPES = {
    "str": pyarrow.string(),
    "int": pyarrow.int64(),
    "float": pyarrow.float64(),
    "bool": pyarrow.bool_(),
    "date": pyarrow.timestamp("us"),
    "datetime": pyarrow.timestamp("us"),
}


class DataContractError(ValueError):
    """A raw export breaks the data contract in a way no row-level quarantine can fix."""


@dataclass(frozen=True)
class TableSource:
    """Where and how one canonical table is read: its `data.tables.<table>` entry, path resolved."""

    table: str
    path: Path
    format: str
    encoding: str
    sheet: str | int
    date_format: str | None
    datetime_format: str | None
    delimiter: str | None
    columns: dict[str, str]

    def file_column(self, canonical: str) -> str:
        """The column name in the export for a canonical column."""
        return self.columns.get(canonical, canonical)


@dataclass
class ContractResult:
    """What the contract pass produced besides its artifacts (for the audit profile)."""

    ledger: pd.DataFrame
    column_profile: pd.DataFrame
    invalid_identifiers: pd.DataFrame
    missing_optional_columns: dict[str, list[str]]
    contract_checked_rows: dict[str, int]
    quarantine_warnings: list[str] = field(default_factory=list)  # one line per loud table


def table_sources(data: DataSettings) -> dict[str, TableSource]:
    """The source of every canonical table from the run config's `data` section; a missing entry is
    an error."""
    raw_dir = resolve_path(data.raw_dir)
    missing = [name for name in TABLES if name not in data.tables]
    if missing:
        raise DataContractError(
            f"The run config has no data.tables entry for {', '.join(missing)}. "
            f"Add one per table, e.g. data.tables.{missing[0]}: {{file: {missing[0]}.csv, format: csv}}."
        )
    sources = {}
    for name in TABLES:
        entry = data.tables[name]
        unknown = sorted(set(entry.columns) - set(TABLES[name].column_names))
        if unknown:
            raise DataContractError(
                f"data.tables.{name}.columns maps unknown canonical column(s) {unknown}; "
                f"canonical columns are {TABLES[name].column_names}."
            )
        sources[name] = TableSource(
            table=name,
            path=resolve_path(raw_dir / entry.file),
            format=entry.format,
            encoding=entry.encoding,
            sheet=entry.sheet,
            date_format=entry.date_format,
            datetime_format=entry.datetime_format,
            delimiter=entry.delimiter,
            columns=dict(entry.columns),
        )
    return sources


class Workspace:
    """A DuckDB engine on a temporary work database (spills to disk), removed on close."""

    def __init__(self, parent: Path, memory_limit: str, threads: int) -> None:
        self.directory = Path(tempfile.mkdtemp(prefix=".work-", dir=parent))
        self.engine = DuckDBEngine(threads=threads, memory_limit=memory_limit)
        database = str(self.directory / "work.duckdb").replace("'", "''")
        self.engine.query(f"SET temp_directory = '{self.directory / 'spill'}'")
        self.engine.query("SET preserve_insertion_order = true")
        # Work tables live for minutes: skipping compression saves about a third of the write CPU.
        self.engine.query("PRAGMA force_compression = 'uncompressed'")
        self.engine.query(f"ATTACH '{database}' AS work")
        self.engine.query("USE work")

    def close(self) -> None:
        self.engine.close()
        shutil.rmtree(self.directory, ignore_errors=True)

    def __enter__(self) -> Workspace:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


# ---------------------------------------------------------------- loading


def _quote(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def find_encoding_error(
    path: Path, encoding: str, chunk_bytes: int = 1 << 24
) -> tuple[int, int, bytes] | None:
    """First undecodable byte of a text file: (byte offset, 1-based line, the bytes around it)."""
    offset = 0
    line = 1
    carry = b""
    with path.open("rb") as handle:
        while True:
            block = handle.read(chunk_bytes)
            data = carry + block
            # Cut at the last newline: 0x0A is never part of a multi-byte UTF-8 or GBK character.
            cut = data.rfind(b"\n") + 1 if block else len(data)
            piece, carry = (data[:cut], data[cut:]) if cut else (b"", data)
            try:
                piece.decode(encoding)
            except UnicodeDecodeError as error:
                return (
                    offset + error.start,
                    line + piece.count(b"\n", 0, error.start),
                    piece[error.start : error.start + 8],
                )
            offset += len(piece)
            line += piece.count(b"\n")
            if not block:
                return None


def _transcode_to_utf8(source: TableSource, target: Path, chunk_bytes: int = 1 << 24) -> None:
    """Stream-transcode a non-UTF-8 CSV to UTF-8 (DuckDB reads only UTF-8 without extensions)."""
    with source.path.open("rb") as reader, target.open("wb") as writer:
        carry = b""
        while True:
            block = reader.read(chunk_bytes)
            data = carry + block
            cut = data.rfind(b"\n") + 1 if block else len(data)
            piece, carry = data[:cut], data[cut:]
            try:
                writer.write(piece.decode(source.encoding).encode("utf-8"))
            except UnicodeDecodeError:
                _raise_encoding_error(source)
            except LookupError as error:
                raise DataContractError(
                    f"{source.path}: unknown encoding {source.encoding!r} "
                    f"in data.tables.{source.table}.encoding."
                ) from error
            if not block:
                return


def _raise_encoding_error(source: TableSource) -> None:
    found = find_encoding_error(source.path, source.encoding)
    # The first undecodable byte only: the bytes around it may be part of a name.
    where = f" at byte offset {found[0]} (line {found[1]}, byte 0x{found[2][0]:02X})" if found else ""
    raise DataContractError(
        f"{source.path}: cannot decode table {source.table} as {source.encoding}{where}. "
        f"Set data.tables.{source.table}.encoding to the file's real encoding (e.g. gbk, utf-8-sig)."
    )


def _csv_reader(source: TableSource, path: Path) -> str:
    options = ["header = true", "all_varchar = true", "auto_detect = true"]
    if source.delimiter:
        options.append(f"delim = {_literal(source.delimiter)}")
    return f"read_csv({_literal(str(path))}, {', '.join(options)})"


@dataclass(frozen=True)
class SourceRelation:
    """An export as DuckDB sees it: a relation, its column names, and a numbered variant.

    `numbered` exposes `row_number` (the 1-based data row in the file) for re-reading rows.
    """

    relation: str
    names: list[str]
    numbered: str
    row_number: str


def _source_relation(engine: DuckDBEngine, source: TableSource, work_dir: Path) -> SourceRelation:
    """A DuckDB relation over the export (all values as text)."""
    if not source.path.is_file():
        raise DataContractError(
            f"{source.path}: file for table {source.table} not found. Check data.raw_dir and "
            f"data.tables.{source.table}.file in the run config."
        )
    if source.path.stat().st_size == 0:
        raise DataContractError(f"{source.path}: file for table {source.table} is empty (0 bytes).")
    if source.format == "excel":
        sheet = _read_excel(source)
        numbered = sheet.append_column(
            SOURCE_ROW, pyarrow.array(range(1, sheet.num_rows + 1), pyarrow.int64())
        )
        engine.connection.register(f"excel_{source.table}", numbered)
        return SourceRelation(
            f"excel_{source.table}", sheet.column_names, f"excel_{source.table}", SOURCE_ROW
        )
    if source.format == "parquet":
        path = _literal(str(source.path))
        relation = f"read_parquet({path})"
        numbered, row_number = f"read_parquet({path}, file_row_number = true)", "file_row_number + 1"
    elif source.format == "csv":
        path = source.path
        if source.encoding.lower().replace("_", "-") not in ("utf-8", "utf8", "ascii"):
            path = work_dir / f"{source.table}.utf8.csv"
            _transcode_to_utf8(source, path)
        relation = _csv_reader(source, path)
        numbered, row_number = f"{relation} WITH ORDINALITY", "ordinality"
    else:
        raise DataContractError(
            f"data.tables.{source.table}.format is {source.format!r}; use csv, excel or parquet."
        )
    try:
        names = list(engine.query(f"DESCRIBE SELECT * FROM {relation}")["column_name"])
    except duckdb.Error as error:
        _raise_read_error(source, error)
    return SourceRelation(relation, names, numbered, row_number)


def _read_excel(source: TableSource) -> pyarrow.Table:
    """One worksheet as text columns (python-calamine: fast, no per-cell pandas conversion)."""
    workbook = CalamineWorkbook.from_path(str(source.path))
    names = workbook.sheet_names
    sheet = (
        names[source.sheet] if isinstance(source.sheet, int) and source.sheet < len(names) else source.sheet
    )
    if sheet not in names:
        raise DataContractError(
            f"{source.path}: no sheet {source.sheet!r} for table {source.table}. "
            f"Sheets in the workbook: {names}; set data.tables.{source.table}.sheet."
        )
    rows = workbook.get_sheet_by_name(sheet).to_python()
    if not rows:
        raise DataContractError(f"{source.path}: sheet {sheet!r} for table {source.table} is empty.")
    header = [str(value).strip() for value in rows[0]]
    columns = list(zip(*rows[1:], strict=True)) if len(rows) > 1 else [() for _ in header]
    return pyarrow.table(
        {name: pyarrow.array([_cell_text(value) for value in values], pyarrow.string())
         for name, values in zip(header, columns, strict=True)}
    )  # fmt: skip


def _cell_text(value: Any) -> str | None:
    """A worksheet cell as the text a CSV export would hold."""
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, datetime):
        return value.isoformat(sep=" ")
    if isinstance(value, date):
        return value.isoformat()
    return str(value)


def _raise_read_error(source: TableSource, error: duckdb.Error) -> None:
    message = str(error)
    if "unicode" in message.lower() or "utf" in message.lower():
        found = find_encoding_error(source.path, source.encoding) if source.format == "csv" else None
        if found or source.format != "csv":
            _raise_encoding_error(source)
    raise DataContractError(
        f"{source.path}: cannot read table {source.table} as {source.format}: {safe_engine_message(message)}"
    ) from error


def safe_engine_message(message: str) -> str:
    """The first line of a DuckDB error, without the row contents it may quote.

    DuckDB's CSV errors go on with "Original Line: <the row>" and hints; only the first line (kind
    of error and line number) is kept, and quoted values in it become `<value>`.
    """
    first = message.strip().splitlines()[0] if message.strip() else "unknown error"
    first = first.split("Original Line")[0]
    return re.sub(r"'[^']*'|\"[^\"]*\"", "<value>", first).strip().rstrip(":").strip()


def map_columns(
    engine: DuckDBEngine, source: TableSource, relation: str, names: list[str]
) -> tuple[str, list[str]]:
    """SELECT list renaming the export's columns to canonical VARCHAR columns, and the absent ones.

    A missing required column is a `DataContractError`; a missing optional one becomes nulls.
    """
    table = TABLES[source.table]
    stripped = {name.strip(): name for name in names}
    absent = [column.name for column in table.columns if source.file_column(column.name) not in stripped]
    missing_required = [name for name in absent if table.column(name).required]
    if missing_required:
        # Column names only: row contents (names, phones, ids) must never reach a report.
        wanted = {name: source.file_column(name) for name in missing_required}
        raise DataContractError(
            f"{source.path}: table {source.table} is missing required column(s) "
            f"{', '.join(f'{k} (looked for {v!r})' for k, v in wanted.items())}. "
            f"Columns in the file: {names}. If the export names them differently, "
            f"map them in the run config: data.tables.{source.table}.columns: "
            f"{{{missing_required[0]}: <your column name>}}."
        )
    selects = [
        f"NULL::VARCHAR AS {_quote(column.name)}"
        if column.name in absent
        else f"CAST({_quote(stripped[source.file_column(column.name)])} AS VARCHAR) AS {_quote(column.name)}"
        for column in table.columns
    ]
    return ", ".join(selects), absent


# ---------------------------------------------------------------- validation


def _parse_expression(table: Table, column: Column, source: TableSource) -> str:
    text = f"t_{column.name}"
    if column.type == "str":
        allowed = CATEGORIES.get((table.name, column.name))
        if not allowed:
            return text
        cased = f"upper({text})" if all(value.isupper() for value in allowed) else f"lower({text})"
        if column.required:
            return cased
        return f"CASE WHEN {cased} IN ({', '.join(map(_literal, allowed))}) THEN {cased} END"
    if column.type == "int":
        number = f"TRY_CAST({text} AS DOUBLE)"
        return f"CASE WHEN {number} = trunc({number}) THEN TRY_CAST({number} AS BIGINT) END"
    if column.type == "float":
        number = f"TRY_CAST({text} AS DOUBLE)"
        return f"CASE WHEN isfinite({number}) THEN {number} END"
    if column.type == "bool":
        word = f"lower({text})"
        return (
            f"CASE WHEN {word} IN ({', '.join(map(_literal, TRUE_WORDS))}) THEN true "
            f"WHEN {word} IN ({', '.join(map(_literal, FALSE_WORDS))}) THEN false END"
        )
    fmt = source.date_format if column.type == "date" else source.datetime_format
    parsed = f"TRY_CAST({text} AS TIMESTAMP)"
    if fmt:
        parsed = f"coalesce(TRY_STRPTIME({text}, {_literal(fmt)}), {parsed})"
    return f"CAST(CAST({parsed} AS DATE) AS TIMESTAMP)" if column.type == "date" else parsed


def _problem_cases(table: Table) -> list[str]:
    """SQL CASE expressions, one per possible value problem, yielding the reason text or NULL."""
    cases = []
    for column in table.columns:
        raw = f"t_{column.name}"
        parsed = f"v_{column.name}"
        if column.required:
            cases.append(f"CASE WHEN {raw} IS NULL THEN 'missing {column.name}' END")
        if column.type != "str":
            cases.append(
                f"CASE WHEN {raw} IS NOT NULL AND {parsed} IS NULL THEN 'unparseable {column.name}' END"
            )
        allowed = CATEGORIES.get((table.name, column.name))
        if allowed and column.required:
            cases.append(
                f"CASE WHEN {parsed} NOT IN ({', '.join(map(_literal, allowed))}) "
                f"THEN 'invalid {column.name}' END"
            )
        low, high = BOUNDS.get((table.name, column.name), (None, None))
        label = "negative" if low == 0 and high is None else "out-of-range"
        if low is not None:
            cases.append(f"CASE WHEN {parsed} < {low} THEN '{label} {column.name}' END")
        if high is not None:
            cases.append(f"CASE WHEN {parsed} > {high} THEN '{label} {column.name}' END")
        if column.name == "birth_date":
            cases.append(
                f"CASE WHEN {parsed} > $latest_birth OR {parsed} < $earliest_birth THEN 'impossible age' END"
            )
        elif column.type in ("date", "datetime"):
            cases.append(
                f"CASE WHEN {parsed} >= $after_reference THEN '{column.name} after reference date' END"
            )
    if table.name == "transactions":
        cases.append(
            "CASE WHEN v_amount < 0 AND NOT coalesce(v_is_refund, false) "
            "THEN 'negative amount on non-refund' END"
        )
    return cases


@dataclass(frozen=True)
class CheckedTable:
    """A table after row checks: where it came from, its column mapping and profile."""

    source: SourceRelation
    mapped_columns: str
    absent_columns: list[str]
    profile: pd.DataFrame


def check_rows(
    engine: DuckDBEngine, source: TableSource, settings: WorkbenchConfig, work_dir: Path
) -> CheckedTable:
    """Read one export into work table `rows_<table>` and flag every row problem.

    Parsed columns, value problems, orphans (against `identity_keys`) and duplicates.
    """
    table = TABLES[source.table]
    relation = _source_relation(engine, source, work_dir)
    mapped, absent = map_columns(engine, source, relation.relation, relation.names)
    reference = pd.Timestamp(settings.run.reference_date)
    problems = ", ".join(_problem_cases(table))
    limits = {
        "after_reference": reference + pd.Timedelta(days=1),
        "latest_birth": reference - pd.DateOffset(years=settings.audit.min_age),
        "earliest_birth": reference - pd.DateOffset(years=settings.audit.max_age),
    }
    rows = f"rows_{table.name}"
    names = table.column_names
    try:
        engine.run(
            STEP,
            "check_rows",
            tables={
                "rows": rows,
                "source": relation.relation,
                "mapped_columns": mapped,
                "trimmed_columns": ", ".join(f"nullif(trim({_quote(c)}), '') AS t_{c}" for c in names),
                "typed_columns": ", ".join(
                    f"{_parse_expression(table, c, source)} AS v_{c.name}" for c in table.columns
                ),
                "typed_names": ", ".join(f"v_{c}" for c in names),
                "problem_cases": problems,
                "filled_mask": " | ".join(
                    f"((t_{c} IS NOT NULL)::INTEGER << {i})" for i, c in enumerate(names)
                ),
                "raw_names": ", ".join(map(_quote, names)),
            },
            **{name: value.to_pydatetime() for name, value in limits.items() if f"${name}" in problems},
        )
    except duckdb.Error as error:
        _raise_read_error(source, error)
    if int(engine.query(f"SELECT count(*) AS n FROM {rows}")["n"].iloc[0]) == 0:
        raise DataContractError(
            f"{source.path}: table {source.table} has a header ({relation.names}) but no data rows."
        )
    if table.references:
        column, parent, _ = table.references[0]
        system = "r.v_source_system" if parent == "source_system" else _literal(SYSTEM_OF_TABLE[parent])
        engine.run(STEP, "flag_orphans", tables={"rows": rows, "reference": f"v_{column}", "system": system})
    engine.run(STEP, "flag_duplicates", tables={"rows": rows, "key": table.key})
    checked = CheckedTable(relation, mapped, absent, profile_columns(engine, table.name))
    _check_mostly_unparseable(engine, source, checked, settings.audit.max_unparseable_share)
    return checked


def _filled(table: Table, column: str) -> str:
    """SQL condition: the raw field of `column` was filled (bit of the `filled` mask)."""
    return f"(filled & {1 << table.column_names.index(column)}) <> 0"


def profile_columns(engine: DuckDBEngine, table_name: str) -> pd.DataFrame:
    """Per column of one work table: missing, distinct and invalid values, accepted range.

    `invalid` counts filled values that did not parse (or, for categories, are not allowed).
    Distinct counts (of parsed values) are exact for identity tables, HyperLogLog estimates for
    event tables.
    """
    table = TABLES[table_name]
    # HyperLogLog can overshoot on nearly unique columns: never report more distinct values than values.
    distinct = (
        "count(DISTINCT {0})" if table.kind == "identity" else "least(approx_count_distinct({0}), count({0}))"
    )
    parts = []
    for column in table.columns:
        filled, parsed = _filled(table, column.name), f"v_{column.name}"
        validates = column.type != "str" or (table.name, column.name) in CATEGORIES
        invalid = f"count(*) FILTER (WHERE {filled} AND {parsed} IS NULL)" if validates else "0"
        parts += [
            f"count(*) FILTER (WHERE NOT {filled}) AS {_quote(f'{column.name}|missing')}",
            f"{distinct.format(parsed)} AS {_quote(f'{column.name}|distinct')}",
            f"{invalid} AS {_quote(f'{column.name}|invalid')}",
        ]
        if column.type in ("int", "float", "date", "datetime"):
            parts += [
                f"CAST({stat}({parsed}) FILTER (WHERE problems = '') AS VARCHAR) "
                f"AS {_quote(f'{column.name}|{stat}')}"
                for stat in ("min", "max")
            ]
    parts.append("count(*) AS rows")
    values = engine.run(
        STEP, "column_profile", tables={"aggregates": ", ".join(parts), "rows": f"rows_{table_name}"}
    )
    get = values.iloc[0].to_dict().get
    rows = int(get("rows"))
    return pd.DataFrame(
        [
            {
                "table": table.name,
                "column": column.name,
                "type": column.type,
                "required": column.required,
                "rows": rows,
                "missing": int(get(f"{column.name}|missing")),
                "missing_share": int(get(f"{column.name}|missing")) / rows,
                "distinct": int(get(f"{column.name}|distinct")),
                "invalid": int(get(f"{column.name}|invalid")),
                "min": get(f"{column.name}|min"),
                "max": get(f"{column.name}|max"),
            }
            for column in table.columns
        ]
    )


def _check_mostly_unparseable(
    engine: DuckDBEngine, source: TableSource, checked: CheckedTable, max_share: float
) -> None:
    table = TABLES[source.table]
    for row in checked.profile.itertuples():
        column = table.column(row.column)
        filled = row.rows - row.missing
        if column.type == "str" or not filled or row.invalid / filled <= max_share:
            continue
        examples = engine.query(
            f"SELECT source_row, {_quote(column.name)} AS value FROM (SELECT {checked.source.row_number} "
            f"AS source_row, {checked.mapped_columns} FROM {checked.source.numbered}) "
            f"WHERE source_row IN (SELECT rowid + 1 FROM rows_{table.name} "
            f"WHERE {_filled(table, column.name)} AND v_{column.name} IS NULL ORDER BY rowid LIMIT 5) "
            "ORDER BY source_row"
        )
        # Row numbers and the shape of the value (digits as 9, letters as a), never the value itself.
        shown = "; ".join(
            f"row {r.source_row} looks like {value_shape(r.value)!r}" for r in examples.itertuples()
        )
        fmt = source.date_format if column.type == "date" else source.datetime_format
        hint = (
            f" Set data.tables.{table.name}.{column.type}_format (now {fmt!r})."
            if column.type in ("date", "datetime")
            else ""
        )
        raise DataContractError(
            f"{source.path}: column {source.file_column(column.name)!r} (canonical {column.name}, "
            f"{column.type}) of table {table.name} does not parse in {row.invalid} of {filled} filled rows "
            f"({row.invalid / filled:.0%}), e.g. {shown}.{hint}"
        )


def value_shape(value: object) -> str:
    """The shape of a raw value without its content: digits become 9, letters a, other characters stay
    (`'06/01/2024 09:15'` -> `'99/99/9999 99:99'`), cut to 24 characters."""
    text = "" if value is None else str(value).strip()
    shape = "".join("9" if ch.isdigit() else "a" if ch.isalpha() else ch for ch in text[:24])
    return shape + ("..." if len(text) > 24 else "")


# ---------------------------------------------------------------- clean outputs


def clean_dtypes(table: Table) -> dict[str, str]:
    """pandas dtypes of a clean table's canonical columns."""
    return {
        c.name: ("bool" if c.required else "boolean") if c.type == "bool" else _PANDAS_DTYPES[c.type]
        for c in table.columns
    }


def _pandas_metadata(table: Table) -> str:
    dtypes = clean_dtypes(table)
    empty = pd.DataFrame({name: pd.Series([], dtype=dtype) for name, dtype in dtypes.items()})
    schema = pyarrow.schema([(c.name, _ARROW_TYPES[c.type]) for c in table.columns])
    metadata = pyarrow.Table.from_pandas(empty, schema=schema, preserve_index=False).schema.metadata
    return metadata[b"pandas"].decode()


def _write_event_table(engine: DuckDBEngine, ctx: StepContext, table: Table) -> None:
    path = ctx.path(f"clean_{table.name}.parquet")
    partial = path.with_suffix(".parquet.partial")
    engine.run(
        STEP,
        "write_clean",
        tables={
            "columns": ", ".join(f"v_{c.name} AS {_quote(c.name)}" for c in table.columns),
            "rows": f"rows_{table.name}",
            "path": str(partial).replace("'", "''"),
            "pandas_metadata": _pandas_metadata(table).replace("'", "''"),
        },
    )
    partial.replace(path)


def _accepted_rows(engine: DuckDBEngine, table: Table) -> pd.DataFrame:
    """Accepted rows of a work table as typed canonical columns, in file order."""
    columns = ", ".join(f"v_{c.name} AS {_quote(c.name)}" for c in table.columns)
    frame = engine.query(f"SELECT {columns} FROM rows_{table.name} WHERE problems = '' ORDER BY rowid")
    return frame.astype(clean_dtypes(table))


def identifier_columns(table: Table) -> list[str]:
    """The phone and e-mail columns of an identity table (those that get a `_norm` column)."""
    return [c for c in table.column_names if c in PHONE_COLUMNS or c == EMAIL_COLUMN]


def add_identity_columns(frame: pd.DataFrame, table: Table) -> pd.DataFrame:
    """Prepend `source_system` and `source_record_id`, add `<column>_norm` per phone/e-mail column.

    This is what makes a typed identity table a `clean_<table>` artifact; it works in place.
    """
    frame.insert(0, "source_record_id", frame[table.key])
    frame.insert(0, "source_system", SYSTEM_OF_TABLE[table.name])
    for column in identifier_columns(table):
        normalize = normalize_phone if column in PHONE_COLUMNS else normalize_email
        normalized = normalize(frame[column])
        frame[f"{column}_norm"] = normalized.astype(object).where(normalized.notna(), None)
    return frame


def _finish_identity_table(
    ctx: StepContext, table: Table, frame: pd.DataFrame, sample_rows: int
) -> tuple[list[dict[str, Any]], int]:
    """Add source and normalized columns, write and check `clean_<table>`.

    Returns the invalid phone/e-mail counts and the rows pandera checked. Runs in a worker
    thread while DuckDB reads the next tables (the regex normalizers are pure Python).
    """
    add_identity_columns(frame, table)
    invalid = []
    for column in identifier_columns(table):
        filled = int(frame[column].notna().sum())
        invalid.append({"table": table.name, "column": column, "filled": filled,
                        "invalid": int(filled - frame[f"{column}_norm"].notna().sum())})  # fmt: skip
    ctx.write(f"clean_{table.name}", frame)
    return invalid, validate_clean(ctx, table, sample_rows)


def pandera_schema(table: Table) -> pa.DataFrameSchema:
    """The pandera contract of a clean table, derived from helpers.core.tables."""
    columns = {}
    for column in table.columns:
        allowed = CATEGORIES.get((table.name, column.name))
        checks = [pa.Check.isin(list(allowed))] if allowed else []
        low, high = BOUNDS.get((table.name, column.name), (None, None))
        if low is not None:
            checks.append(pa.Check.ge(low))
        if high is not None:
            checks.append(pa.Check.le(high))
        columns[column.name] = pa.Column(
            clean_dtypes(table)[column.name],
            checks=checks,
            nullable=not column.required,
            unique=column.name == table.key,
        )
    if table.kind == "identity":
        columns["source_system"] = pa.Column(str, pa.Check.eq(SYSTEM_OF_TABLE[table.name]))
        columns["source_record_id"] = pa.Column(str, unique=True)
        for column in table.column_names:
            if column in PHONE_COLUMNS:
                columns[f"{column}_norm"] = pa.Column(
                    object, pa.Check.str_matches(r"^\+86(?:1\d{10}|-\d{2,3}-\d{7,8})$"), nullable=True
                )
            if column == EMAIL_COLUMN:
                columns["email_norm"] = pa.Column(
                    object, pa.Check.str_matches(r"^[^@\s]+@[^@\s]+$"), nullable=True
                )
    return pa.DataFrameSchema(columns, strict=True, ordered=False)


def validate_clean(ctx: StepContext, table: Table, sample_rows: int) -> int:
    """Check a written clean table against its pandera contract; returns the rows checked.

    The whole table is checked up to `sample_rows` rows; bigger tables are checked on their
    first `sample_rows` rows (whole row groups), and the file schema is compared in full.
    """
    path = ctx.path(f"clean_{table.name}.parquet")
    parquet = pq.ParquetFile(path)
    if parquet.metadata.num_rows <= sample_rows:
        frame = pd.read_parquet(path)
    else:
        batches = []
        rows = 0
        for batch in parquet.iter_batches(batch_size=min(sample_rows, 65536)):
            batches.append(batch)
            rows += batch.num_rows
            if rows >= sample_rows:
                break
        frame = pyarrow.Table.from_batches(batches, schema=parquet.schema_arrow).to_pandas()
    try:
        pandera_schema(table).validate(frame, lazy=True)
    except pa.errors.SchemaErrors as errors:
        raise DataContractError(_schema_error_summary(table, errors)) from None
    return len(frame)


def _schema_error_summary(table: Table, errors: pa.errors.SchemaErrors) -> str:
    """One line naming the columns and checks a clean table failed, with 1-based row numbers (of the
    clean table), never the failing values."""
    cases = errors.failure_cases
    parts = []
    for (column, check), group in cases.groupby(["column", "check"], dropna=False, sort=True):
        rows = sorted({int(i) + 1 for i in group["index"].dropna()})[:5]
        where = f" (rows {', '.join(map(str, rows))})" if rows else ""
        parts.append(f"{column} fails {check}{where}")
    return (
        f"clean_{table.name} breaks its contract: {'; '.join(parts)}. This is a defect of step 01; report it."
    )


# ---------------------------------------------------------------- the whole contract pass


def run_contract(ctx: StepContext, engine: DuckDBEngine, work_dir: Path) -> ContractResult:
    """Load, validate, quarantine and clean every table; write clean_*, quarantine_* and ledger.

    Identity tables go first: an event is quarantined unless it points at an accepted identity record
    (reason `orphan reference`, or `reference to a quarantined record` when the record exists but was
    rejected).
    Leaves the work tables `rows_<table>` in `engine` for profiling.
    """
    sources = table_sources(ctx.settings.data)
    sample_rows = ctx.settings.audit.contract_sample_rows
    ledgers, invalid, absent, profiles, checked_rows = [], [], {}, [], {}
    warnings: list[str] = []
    engine.query(
        "CREATE OR REPLACE TABLE identity_keys (ref_system VARCHAR, ref_key VARCHAR, accepted BOOLEAN)"
    )
    with ThreadPoolExecutor(max_workers=1) as worker:
        identity_jobs = {}
        for table in [*IDENTITY_TABLES, *(t for t in TABLES.values() if t.kind == "event")]:
            checked = check_rows(engine, sources[table.name], ctx.settings, work_dir)
            table_ledger = engine.run(
                STEP, "ledger", tables={"table": table.name, "rows": f"rows_{table.name}"}
            )
            # Checked before anything of this table is written: a stop leaves no clean table behind.
            warning = check_quarantine_share(engine, ctx.settings, table.name, table_ledger)
            if warning:
                warnings.append(warning)
                print(f"WARNING {warning}", file=sys.stderr, flush=True)
            absent[table.name] = checked.absent_columns
            profiles.append(checked.profile)
            if table.kind == "identity":
                frame = _accepted_rows(engine, table)
                identity_jobs[table.name] = worker.submit(
                    _finish_identity_table, ctx, table, frame, sample_rows
                )
                system = _literal(SYSTEM_OF_TABLE[table.name])
                engine.query(
                    f"INSERT INTO identity_keys SELECT {system}, v_{table.key}, problems = '' "
                    f"FROM rows_{table.name} WHERE v_{table.key} IS NOT NULL"
                )
            else:
                _write_event_table(engine, ctx, table)
                checked_rows[table.name] = validate_clean(ctx, table, sample_rows)
            _write_quarantine(engine, ctx, table, checked)
            ledgers.append(table_ledger)
        for name, job in identity_jobs.items():
            counts, checked_rows[name] = job.result()
            invalid.extend(counts)
    order = {name: position for position, name in enumerate(TABLES)}
    ledger = pd.concat(ledgers, ignore_index=True).sort_values("table", key=lambda t: t.map(order))
    ledger = ledger.reset_index(drop=True)
    if not (ledger["input_rows"] == ledger["accepted_rows"] + ledger["quarantined_rows"]).all():
        raise AssertionError(f"Ledger does not balance:\n{ledger}")
    ctx.write("ledger", ledger[["table", "input_rows", "accepted_rows", "quarantined_rows"]])
    return ContractResult(
        ledger=ledger,
        column_profile=pd.concat(profiles, ignore_index=True).sort_values(
            "table", key=lambda t: t.map(order), kind="stable", ignore_index=True
        ),
        invalid_identifiers=pd.DataFrame(invalid, columns=["table", "column", "filled", "invalid"]),
        missing_optional_columns={name: cols for name, cols in absent.items() if cols},
        contract_checked_rows=checked_rows,
        quarantine_warnings=warnings,
    )


def _reason_hint(table: str, reason: str, settings: WorkbenchConfig) -> str:
    """What to do about the main quarantine reason of a table."""
    if reason.endswith("after reference date"):
        return (
            f"run.reference_date is {settings.run.reference_date}, before most of these rows: "
            "set it to the date of the exports or later"
        )
    if reason == "impossible age":
        return f"check run.reference_date ({settings.run.reference_date}) and audit.min_age / audit.max_age"
    if reason.startswith("unparseable "):
        column = TABLES[table].column(reason.removeprefix("unparseable "))
        if column.type in ("date", "datetime"):
            return f"set data.tables.{table}.{column.type}_format to the format the export uses"
        return f"check the {column.name} values in quarantine_{table}"
    if reason == "reference to a quarantined record":
        return "the records these rows point at were quarantined: fix the identity table first"
    if reason == "orphan reference":
        return "these rows point at customer records the identity exports do not hold: check the exports"
    if reason.startswith("missing "):
        return f"check the column mapping data.tables.{table}.columns"
    return f"see the rows in 01_data_audit/quarantine_{table}"


def check_quarantine_share(
    engine: DuckDBEngine, settings: WorkbenchConfig, table: str, ledger: pd.DataFrame
) -> str | None:
    """Loud quarantine: above `audit.max_quarantine_share` of a table's rows a `DataContractError`
    stops the step; above `audit.warn_quarantine_share` the one-line warning is returned (else None).

    Both name the table, the share and the main reason, and say what to do.
    """
    entry = ledger.iloc[0]
    inputs, quarantined = int(entry["input_rows"]), int(entry["quarantined_rows"])
    share = quarantined / inputs if inputs else 0.0
    warn, stop = settings.audit.warn_quarantine_share, settings.audit.max_quarantine_share
    if share <= warn and share <= stop:
        return None
    reasons = engine.run(STEP, "quarantine_reasons", tables={"rows": f"rows_{table}"})
    main = reasons.iloc[0]
    what = (
        f"table {table}: {share:.0%} of rows quarantined ({quarantined:,} of {inputs:,}); main reason: "
        f"{main['reason']} ({int(main['rows']):,} rows)"
    )
    hint = _reason_hint(table, str(main["reason"]), settings)
    if share > stop:
        raise DataContractError(
            f"{what}, above audit.max_quarantine_share ({stop:.0%}). Step 01 stopped: {hint} "
            "(or raise audit.max_quarantine_share)."
        )
    return f"{what}, above audit.warn_quarantine_share ({warn:.0%}): {hint}."


def _write_quarantine(engine: DuckDBEngine, ctx: StepContext, table: Table, checked: CheckedTable) -> None:
    path = ctx.path(f"quarantine_{table.name}.parquet")
    partial = path.with_suffix(".parquet.partial")
    engine.run(
        STEP,
        "write_quarantine",
        tables={
            "raw_columns": ", ".join(
                f"raw.{_quote(name)} AS {_quote(quarantine_column(name))}" for name in table.column_names
            ),
            "rows": f"rows_{table.name}",
            "row_number": checked.source.row_number,
            "mapped_columns": checked.mapped_columns,
            "numbered_source": checked.source.numbered,
            "path": str(partial).replace("'", "''"),
        },
    )
    partial.replace(path)


def quarantine_column(name: str) -> str:
    """Name of a raw column in a quarantine table (`reason` and `source_row` are taken)."""
    return f"{name}_raw" if name in QUARANTINE_COLUMNS else name


def ledger_json(ledger: pd.DataFrame) -> dict[str, dict[str, int]]:
    """The ledger as {table: {input_rows, accepted_rows, quarantined_rows}} for ctx.record."""
    columns = ["input_rows", "accepted_rows", "quarantined_rows"]
    return json.loads(ledger.set_index("table")[columns].to_json(orient="index"))
