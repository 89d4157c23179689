"""The data contract of step 01: load raw exports, validate them, quarantine bad rows, clean the rest.

Loading follows the run config (`data.tables.<table>`: file, format, encoding, date formats,
sheet, column mapping). Every raw table is copied into a DuckDB work database as VARCHAR,
then one SQL pass (`sql/audit/validate_rows.sql`) parses the typed columns and lists the
problems of each row. Structural problems (missing file or column, unreadable encoding, empty
table, a column that mostly does not parse) raise `DataContractError` and stop the run.
Row-level problems send the row to `quarantine_<table>` with every reason; the ledger proves
input = accepted + quarantined. Clean tables are typed, in file order, and identity tables gain
`source_system`, `source_record_id`, `<phone>_norm` and `email_norm`.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd
import pandera.pandas as pa
import pyarrow
import pyarrow.parquet as pq

from helpers.config import resolve_path, setting
from helpers.io import StepContext
from helpers.normalize import normalize_email, normalize_phone
from helpers.schema import IDENTITY_TABLES, SOURCE_SYSTEMS, TABLES, Column, Table
from helpers.sql import DuckDBEngine

STEP = "audit"
PHONE_COLUMNS = ("mobile", "landline", "phone")
EMAIL_COLUMN = "email"
QUARANTINE_COLUMNS = ("source_row", "reason")
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
    """Where and how one canonical table is read (the `data.tables.<table>` config entry)."""

    table: str
    path: Path
    format: str = "csv"
    encoding: str = "utf-8"
    sheet: str | int = 0
    date_format: str | None = None
    datetime_format: str | None = None
    delimiter: str | None = None
    columns: dict[str, str] = field(default_factory=dict)

    def file_column(self, canonical: str) -> str:
        """The column name in the export for a canonical column."""
        return self.columns.get(canonical, canonical)


@dataclass
class ContractResult:
    """What the contract pass produced: the ledger and the invalid identifier counts."""

    ledger: pd.DataFrame
    invalid_identifiers: pd.DataFrame
    missing_optional_columns: dict[str, list[str]]
    sources: dict[str, TableSource]
    contract_checked_rows: dict[str, int]


def table_sources(config: dict[str, Any]) -> dict[str, TableSource]:
    """The source of every canonical table from the run config; a missing entry is an error."""
    raw_dir = resolve_path(setting(config, "data.raw_dir", "data/raw/demo"))
    entries = setting(config, "data.tables", {}) or {}
    missing = [name for name in TABLES if name not in entries]
    if missing:
        raise DataContractError(
            f"The run config has no data.tables entry for {', '.join(missing)}. "
            f"Add one per table, e.g. data.tables.{missing[0]}: {{file: {missing[0]}.csv, format: csv}}."
        )
    sources = {}
    for name in TABLES:
        entry = dict(entries[name])
        unknown = sorted(set(entry.get("columns") or {}) - set(TABLES[name].column_names))
        if unknown:
            raise DataContractError(
                f"data.tables.{name}.columns maps unknown canonical column(s) {unknown}; "
                f"canonical columns are {TABLES[name].column_names}."
            )
        sources[name] = TableSource(
            table=name,
            path=resolve_path(raw_dir / entry.get("file", f"{name}.csv")),
            format=entry.get("format", "csv"),
            encoding=entry.get("encoding", "utf-8"),
            sheet=entry.get("sheet", 0),
            date_format=entry.get("date_format"),
            datetime_format=entry.get("datetime_format"),
            delimiter=entry.get("delimiter"),
            columns={k: str(v) for k, v in (entry.get("columns") or {}).items()},
        )
    return sources


class Workspace:
    """A DuckDB engine on a temporary work database (spills to disk), removed on close."""

    def __init__(self, parent: Path, memory_limit: str = "3GB", threads: int = 2) -> None:
        self.directory = Path(tempfile.mkdtemp(prefix=".work-", dir=parent))
        self.engine = DuckDBEngine(threads=threads, memory_limit=memory_limit)
        database = str(self.directory / "work.duckdb").replace("'", "''")
        self.engine.query(f"SET temp_directory = '{self.directory / 'spill'}'")
        self.engine.query("SET preserve_insertion_order = true")
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
    where = f" at byte offset {found[0]} (line {found[1]}, bytes {found[2]!r})" if found else ""
    raise DataContractError(
        f"{source.path}: cannot decode table {source.table} as {source.encoding}{where}. "
        f"Set data.tables.{source.table}.encoding to the file's real encoding (e.g. gbk, utf-8-sig)."
    )


def _csv_reader(source: TableSource, path: Path) -> str:
    options = ["header = true", "all_varchar = true", "auto_detect = true"]
    if source.delimiter:
        options.append(f"delim = {_literal(source.delimiter)}")
    return f"read_csv({_literal(str(path))}, {', '.join(options)})"


def _source_relation(engine: DuckDBEngine, source: TableSource, work_dir: Path) -> tuple[str, list[str]]:
    """A DuckDB relation over the export and its column names (all values as text)."""
    if not source.path.is_file():
        raise DataContractError(
            f"{source.path}: file for table {source.table} not found. Check data.raw_dir and "
            f"data.tables.{source.table}.file in the run config."
        )
    if source.path.stat().st_size == 0:
        raise DataContractError(f"{source.path}: file for table {source.table} is empty (0 bytes).")
    if source.format == "excel":
        frame = _read_excel(source)
        engine.register(f"excel_{source.table}", frame)
        return f"excel_{source.table}", list(frame.columns)
    if source.format == "parquet":
        relation = f"read_parquet({_literal(str(source.path))})"
    elif source.format == "csv":
        path = source.path
        if source.encoding.lower().replace("_", "-") not in ("utf-8", "utf8", "ascii"):
            path = work_dir / f"{source.table}.utf8.csv"
            _transcode_to_utf8(source, path)
        relation = _csv_reader(source, path)
    else:
        raise DataContractError(
            f"data.tables.{source.table}.format is {source.format!r}; use csv, excel or parquet."
        )
    try:
        names = list(engine.query(f"DESCRIBE SELECT * FROM {relation}")["column_name"])
    except duckdb.Error as error:
        _raise_read_error(source, error)
    return relation, names


def _read_excel(source: TableSource) -> pd.DataFrame:
    try:
        frame = pd.read_excel(source.path, sheet_name=source.sheet, dtype=str, engine="calamine")
    except ValueError as error:
        sheets = pd.ExcelFile(source.path, engine="calamine").sheet_names
        raise DataContractError(
            f"{source.path}: cannot read sheet {source.sheet!r} for table {source.table} ({error}). "
            f"Sheets in the workbook: {sheets}; set data.tables.{source.table}.sheet."
        ) from error
    frame.columns = [str(column).strip() for column in frame.columns]
    return frame.astype(object).where(frame.notna(), None)


def _raise_read_error(source: TableSource, error: duckdb.Error) -> None:
    message = str(error)
    if "unicode" in message.lower() or "utf" in message.lower():
        _raise_encoding_error(source)
    raise DataContractError(
        f"{source.path}: cannot read table {source.table} as {source.format}: {message}"
    ) from error


def load_raw(engine: DuckDBEngine, source: TableSource, work_dir: Path) -> list[str]:
    """Copy one export into work table `raw_<table>` with canonical VARCHAR columns.

    Returns the optional canonical columns absent from the export (filled with nulls).
    """
    table = TABLES[source.table]
    relation, names = _source_relation(engine, source, work_dir)
    stripped = {name.strip(): name for name in names}
    absent = [column.name for column in table.columns if source.file_column(column.name) not in stripped]
    missing_required = [name for name in absent if table.column(name).required]
    if missing_required:
        sample = engine.query(f"SELECT * FROM {relation} LIMIT 2").to_dict("records")
        wanted = {name: source.file_column(name) for name in missing_required}
        raise DataContractError(
            f"{source.path}: table {source.table} is missing required column(s) "
            f"{', '.join(f'{k} (looked for {v!r})' for k, v in wanted.items())}. "
            f"Columns in the file: {names}. First rows: {sample}. If the export names them differently, "
            f"map them in the run config: data.tables.{source.table}.columns: "
            f"{{{missing_required[0]}: <your column name>}}."
        )
    selects = [
        f"NULL::VARCHAR AS {_quote(column.name)}"
        if column.name in absent
        else f"CAST({_quote(stripped[source.file_column(column.name)])} AS VARCHAR) AS {_quote(column.name)}"
        for column in table.columns
    ]
    try:
        engine.run(
            STEP,
            "load_table",
            tables={"target": f"raw_{source.table}", "columns": ", ".join(selects), "source": relation},
        )
    except duckdb.Error as error:
        _raise_read_error(source, error)
    rows = int(engine.query(f"SELECT count(*) AS n FROM raw_{source.table}")["n"].iloc[0])
    if rows == 0:
        raise DataContractError(
            f"{source.path}: table {source.table} has a header ({names}) but no data rows."
        )
    return absent


# ---------------------------------------------------------------- validation


def _parse_expression(table: Table, column: Column, source: TableSource) -> str:
    text = f"nullif(trim(raw.{_quote(column.name)}), '')"
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
    """SQL CASE expressions, one per possible problem, yielding the reason text or NULL."""
    cases = []
    for column in table.columns:
        raw = f"nullif(trim({_quote(column.name)}), '')"
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


def _reference_sql(table: Table) -> tuple[str, str]:
    """(join clause, orphan expression) against the accepted identity records."""
    if not table.references:
        return "", "false"
    column, parent, _ = table.references[0]
    if parent == "source_system":
        join = (
            "LEFT JOIN identity_keys AS ref ON ref.ref_system = typed.v_source_system "
            f"AND ref.ref_key = typed.v_{column}"
        )
    else:
        join = (
            f"LEFT JOIN identity_keys AS ref ON ref.ref_system = {_literal(SYSTEM_OF_TABLE[parent])} "
            f"AND ref.ref_key = typed.v_{column}"
        )
    return join, f"(typed.v_{column} IS NOT NULL AND ref.ref_key IS NULL)"


def check_rows(engine: DuckDBEngine, source: TableSource, config: dict[str, Any]) -> None:
    """Create work table `checked_<table>`: raw and parsed columns, problems and flags per row."""
    table = TABLES[source.table]
    reference = pd.Timestamp(setting(config, "run.reference_date"))
    join, orphan = _reference_sql(table)
    typed = ", ".join(f"{_parse_expression(table, c, source)} AS v_{c.name}" for c in table.columns)
    problems = ", ".join(_problem_cases(table))
    limits = {
        "after_reference": reference + pd.Timedelta(days=1),
        "latest_birth": reference - pd.DateOffset(years=int(setting(config, "audit.min_age", 14))),
        "earliest_birth": reference - pd.DateOffset(years=int(setting(config, "audit.max_age", 100))),
    }
    engine.run(
        STEP,
        "validate_rows",
        tables={
            "checked": f"checked_{table.name}",
            "raw": f"raw_{table.name}",
            "typed_columns": typed,
            "problem_cases": problems,
            "orphan_case": orphan,
            "reference_join": join,
            "raw_columns": ", ".join(_quote(c.name) for c in table.columns),
            "key": table.key,
        },
        **{name: value.to_pydatetime() for name, value in limits.items() if f"${name}" in problems},
    )
    _check_mostly_unparseable(engine, source, float(setting(config, "audit.max_unparseable_share", 0.5)))


def _check_mostly_unparseable(engine: DuckDBEngine, source: TableSource, max_share: float) -> None:
    table = TABLES[source.table]
    typed = [c for c in table.columns if c.type != "str"]
    counts = ", ".join(
        f"count(nullif(trim({_quote(c.name)}), '')) AS {_quote(c.name + '__filled')}, "
        f"count(*) FILTER (WHERE nullif(trim({_quote(c.name)}), '') IS NOT NULL AND v_{c.name} IS NULL) "
        f"AS {_quote(c.name + '__bad')}"
        for c in typed
    )
    row = engine.run(
        STEP, "unparseable_columns", tables={"counts": counts, "checked": f"checked_{table.name}"}
    )
    for column in typed:
        filled, bad = int(row[f"{column.name}__filled"].iloc[0]), int(row[f"{column.name}__bad"].iloc[0])
        if filled and bad / filled > max_share:
            examples = engine.query(
                f"SELECT source_row, {_quote(column.name)} AS value FROM checked_{table.name} "
                f"WHERE nullif(trim({_quote(column.name)}), '') IS NOT NULL AND v_{column.name} IS NULL "
                "ORDER BY source_row LIMIT 5"
            )
            shown = "; ".join(f"row {r.source_row}: {r.value!r}" for r in examples.itertuples())
            fmt = source.date_format if column.type == "date" else source.datetime_format
            hint = (
                f" Set data.tables.{table.name}.{column.type}_format (now {fmt!r})."
                if column.type in ("date", "datetime")
                else ""
            )
            raise DataContractError(
                f"{source.path}: column {source.file_column(column.name)!r} (canonical {column.name}, "
                f"{column.type}) of table {table.name} does not parse in {bad} of {filled} filled rows "
                f"({bad / filled:.0%}), e.g. {shown}.{hint}"
            )


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
            "checked": f"checked_{table.name}",
            "path": str(partial).replace("'", "''"),
            "pandas_metadata": _pandas_metadata(table).replace("'", "''"),
        },
    )
    partial.replace(path)


def _clean_identity_table(engine: DuckDBEngine, table: Table) -> tuple[pd.DataFrame, list[dict[str, Any]]]:
    """Accepted identity records with normalized phones/e-mails, and invalid identifier counts."""
    columns = ", ".join(f"v_{c.name} AS {_quote(c.name)}" for c in table.columns)
    frame = engine.query(
        f"SELECT {columns} FROM checked_{table.name} WHERE len(problems) = 0 ORDER BY source_row"
    ).astype(clean_dtypes(table))
    frame.insert(0, "source_record_id", frame[table.key])
    frame.insert(0, "source_system", SYSTEM_OF_TABLE[table.name])
    invalid = []
    for column in table.column_names:
        if column in PHONE_COLUMNS or column == EMAIL_COLUMN:
            normalized = (
                normalize_phone(frame[column]) if column in PHONE_COLUMNS else normalize_email(frame[column])
            )
            frame[f"{column}_norm"] = normalized.astype(object).where(normalized.notna(), None)
            filled = int(frame[column].notna().sum())
            invalid.append(
                {
                    "table": table.name,
                    "column": column,
                    "filled": filled,
                    "invalid": int(filled - normalized.notna().sum()),
                }
            )
    return frame, invalid


def pandera_schema(table: Table) -> pa.DataFrameSchema:
    """The pandera contract of a clean table, derived from helpers.schema."""
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
    pandera_schema(table).validate(frame, lazy=True)
    return len(frame)


# ---------------------------------------------------------------- the whole contract pass


def run_contract(ctx: StepContext, engine: DuckDBEngine, work_dir: Path) -> ContractResult:
    """Load, validate, quarantine and clean every table; write clean_*, quarantine_* and ledger.

    Leaves the work tables `checked_<table>` in `engine` for profiling.
    """
    sources = table_sources(ctx.config)
    sample_rows = int(ctx.setting("audit.contract_sample_rows", 200_000))
    ledgers, invalid, absent, checked_rows = [], [], {}, {}
    for table in IDENTITY_TABLES:
        absent[table.name] = load_raw(engine, sources[table.name], work_dir)
        check_rows(engine, sources[table.name], ctx.config)
        frame, counts = _clean_identity_table(engine, table)
        invalid.extend(counts)
        ctx.write(f"clean_{table.name}", frame)
        engine.register("accepted_identity", frame[["source_system", "source_record_id"]])
        engine.query(
            (
                "CREATE OR REPLACE TABLE identity_keys AS "
                if table is IDENTITY_TABLES[0]
                else "INSERT INTO identity_keys "
            )
            + "SELECT source_system AS ref_system, source_record_id AS ref_key FROM accepted_identity"
        )
        engine.connection.unregister("accepted_identity")
    for table in TABLES.values():
        if table.kind == "event":
            absent[table.name] = load_raw(engine, sources[table.name], work_dir)
            check_rows(engine, sources[table.name], ctx.config)
            _write_event_table(engine, ctx, table)
        _write_quarantine(engine, ctx, table)
        ledgers.append(
            engine.run(STEP, "ledger", tables={"table": table.name, "checked": f"checked_{table.name}"})
        )
        engine.query(f"DROP TABLE IF EXISTS raw_{table.name}")
        checked_rows[table.name] = validate_clean(ctx, table, sample_rows)
    ledger = pd.concat(ledgers, ignore_index=True)
    if not (ledger["input_rows"] == ledger["accepted_rows"] + ledger["quarantined_rows"]).all():
        raise AssertionError(f"Ledger does not balance:\n{ledger}")
    ctx.write("ledger", ledger[["table", "input_rows", "accepted_rows", "quarantined_rows"]])
    return ContractResult(
        ledger=ledger,
        invalid_identifiers=pd.DataFrame(invalid, columns=["table", "column", "filled", "invalid"]),
        missing_optional_columns={name: cols for name, cols in absent.items() if cols},
        sources=sources,
        contract_checked_rows=checked_rows,
    )


def _write_quarantine(engine: DuckDBEngine, ctx: StepContext, table: Table) -> None:
    path = ctx.path(f"quarantine_{table.name}.parquet")
    partial = path.with_suffix(".parquet.partial")
    engine.run(
        STEP,
        "write_quarantine",
        tables={
            "raw_columns": ", ".join(
                f"{_quote(name)} AS {_quote(quarantine_column(name))}" for name in table.column_names
            ),
            "checked": f"checked_{table.name}",
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
