"""The data contract of step 01: load raw exports, validate them, quarantine bad rows, clean the rest.

Loading follows the run config (`data.tables.<table>`: file, format, encoding, sheet, title rows
to skip, delimiter, date formats tried in order, column sources, value maps, `key_by`). Each export
is read once, as text, into a DuckDB work table (`sql/audit/check_rows.sql`) that normalizes
full-width characters, applies the value maps, parses the typed columns and lists the value problems
of each row; orphans and duplicates are then flagged on the few rows concerned (`flag_orphans.sql`,
`flag_duplicates.sql`). GBK and other non-UTF-8 CSVs are stream-transcoded to UTF-8 first; CSVs are
read by DuckDB's strict reader, and a file it refuses (a ragged or truncated row) again row by row
with Python's csv module, so that such rows are quarantined with their row number instead of losing
the file. Excel sheets are read with python-calamine.

A table the config does not list, or an empty or header-only file, is absent: its clean and
quarantine tables are written empty with their columns. Structural problems (missing file or
column, undecodable bytes, a column that mostly does not parse) raise `DataContractError` and stop
the run. Row-level problems send the row to `quarantine_<table>` with every reason; the ledger
proves input = accepted + quarantined. Clean tables are typed, in file order, carry `source_row`
(the 1-based data row under the header; blank lines are not counted) and `notes` (what was changed
on the row, e.g. `gender outside its values, set to null`), and identity tables gain
`source_system`, `source_record_id`, `<phone>_norm` and `email_norm`; event tables carry
`customer_ref`, `customer_name` and `customer_ref_kind` (phone, email or member_no; null for
tables keyed by record).

Values outside a column's value map and canonical vocabulary are counted (`unmapped_values`):
a required column quarantines the row; an optional category keeps the row with the value set to
null; a free-text column with a value map keeps the value as it is.
"""

from __future__ import annotations

import json
import re
import sys
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pandas as pd
import pandera.pandas as pa
import pyarrow
import pyarrow.parquet as pq

from helpers.core.config import resolve_path
from helpers.core.context import StepContext
from helpers.core.factors import SOURCE_GROUPS
from helpers.core.normalize import normalize_email, normalize_phone
from helpers.core.settings import ColumnSource, DataSettings, WorkbenchConfig
from helpers.core.tables import (
    EVENT_REFERENCE_COLUMNS,
    IDENTITY_TABLES,
    SOURCE_SYSTEMS,
    TABLES,
    Column,
    Table,
)
from helpers.engine.base import SqlEngine, load_query
from helpers.engine.reading import DataContractError as DataContractError
from helpers.engine.reading import SourceRelation, Workspace, read_source, rejected_rows
from helpers.engine.reading import literal as _literal
from helpers.engine.reading import quote as _quote
from helpers.engine.reading import safe_engine_message as safe_engine_message

STEP = "audit"
PHONE_COLUMNS = ("mobile", "landline", "phone")
EMAIL_COLUMN = "email"
QUARANTINE_COLUMNS = ("source_row", "reason")
SYSTEM_OF_TABLE = {table: system for system, table in SOURCE_SYSTEMS.items()}
TRUE_WORDS = ("true", "t", "1", "yes", "y", "是")
FALSE_WORDS = ("false", "f", "0", "no", "n", "否")
# Full-width ASCII forms (U+FF01-U+FF5E) and the ideographic space, and their NFKC forms.
FULLWIDTH = "".join(chr(code) for code in range(0xFF01, 0xFF5F)) + "\u3000"
HALFWIDTH = "".join(chr(code - 0xFEE0) for code in range(0xFF01, 0xFF5F)) + " "
# Currency marks, thousands separators and spaces around amounts: `¥1,234.50`, `1,234.50元`, `RMB 12`.
AMOUNT_NOISE = r"^(RMB|CNY)|[¥￥元,\s]"
# Administrative suffixes of province and city names (regexp; group 1 is the short name).
REGION_SUFFIX = r"^(.{2,}?)(省|市|壮族自治区|回族自治区|维吾尔自治区|自治区|特别行政区)$"
# The space separators DuckDB's `trim` strips besides the ASCII space (Unicode Zs; `reading.SPACE_BYTES`).
SPACE_SEPARATORS = "[\u00a0\u1680\u2000-\u200a\u202f\u205f\u3000]"
NULLED = "kept, value set to null"  # what happens to a row with an optional value outside its vocabulary
# Identifier columns besides table keys and record references: kept as exact text.
ID_COLUMNS = ("crm_id", "member_no", "customer_ref")
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


@dataclass(frozen=True)
class TableSource:
    """Where and how one canonical table is read: its `data.tables.<table>` entry, path resolved.

    `path` is None for a table the config does not list (absent: read as an empty table).
    `contract` is the canonical table as this source is read (`Table.keyed_by(key_by)`).
    """

    table: str
    path: Path | None
    format: str = "csv"
    encoding: str = "utf-8"
    sheet: str | int = 0
    skip_rows: int = 0
    delimiter: str | None = None
    date_formats: tuple[str, ...] = ()
    datetime_formats: tuple[str, ...] = ()
    columns: dict[str, ColumnSource] = field(default_factory=dict)
    values: dict[str, dict[str, str]] = field(default_factory=dict)
    key_by: str = "record"

    @property
    def contract(self) -> Table:
        """The canonical table as read; keyed by record, an event table has the identifier columns
        (`customer_ref`, `customer_name`) only where the config maps them."""
        table = TABLES[self.table].keyed_by(self.key_by)
        if table.kind == "event" and self.key_by == "record":
            mapped = tuple(c for c in EVENT_REFERENCE_COLUMNS if c.name in self.columns)
            return replace(table, columns=(*table.columns, *mapped))
        return table

    def file_column(self, canonical: str) -> str:
        """The export column a canonical column is read from (its own name unless mapped)."""
        entry = self.columns.get(canonical)
        return entry.column if entry is not None and entry.column is not None else canonical

    def formats(self, column: Column) -> tuple[str, ...]:
        """Date/datetime formats tried in order for a column: its own, else the table's."""
        entry = self.columns.get(column.name)
        if entry is not None and entry.formats:
            return tuple(entry.formats)
        return self.date_formats if column.type == "date" else self.datetime_formats


@dataclass
class ContractResult:
    """What the contract pass produced besides its artifacts (for the audit profile)."""

    ledger: pd.DataFrame
    column_profile: pd.DataFrame
    invalid_identifiers: pd.DataFrame
    missing_optional_columns: dict[str, list[str]]
    contract_checked_rows: dict[str, int]
    quarantine_warnings: list[str] = field(default_factory=list)  # one line per loud table
    # table, status (loaded | not configured | empty file | header only), file, input_rows
    table_status: pd.DataFrame = field(default_factory=pd.DataFrame)
    # table, column, value, rows, action: values outside the value map and the canonical vocabulary
    unmapped_values: pd.DataFrame = field(default_factory=pd.DataFrame)
    # table, column, reason, rows: bad optional attributes of identity records set to null, rows kept
    dropped_values: pd.DataFrame = field(default_factory=pd.DataFrame)
    groups_without_data: list[str] = field(default_factory=list)  # factor groups no present table feeds


def _as_formats(formats: str | list[str] | None) -> tuple[str, ...]:
    if formats is None:
        return ()
    return (formats,) if isinstance(formats, str) else tuple(formats)


def table_sources(data: DataSettings) -> dict[str, TableSource]:
    """The source of every canonical table from the run config's `data` section.

    A table without a `data.tables` entry is absent (`path` None). Mapping an unknown canonical
    column, a value map for an unknown column, or `key_by` on an identity table is an error.
    """
    raw_dir = resolve_path(data.raw_dir)
    unknown_tables = sorted(set(data.tables) - set(TABLES))
    if unknown_tables:
        raise DataContractError(
            f"data.tables lists unknown table(s) {unknown_tables}; canonical tables are {list(TABLES)}."
        )
    sources = {}
    for name in TABLES:
        entry = data.tables.get(name)
        if entry is None:
            sources[name] = TableSource(table=name, path=None)
            continue
        if entry.key_by != "record" and TABLES[name].kind != "event":
            raise DataContractError(
                f"data.tables.{name}.key_by is {entry.key_by!r}, but {name} is an identity table; "
                "key_by applies to event tables only."
            )
        canonical = TABLES[name].keyed_by(entry.key_by).column_names
        for setting, keys in (("columns", entry.columns), ("values", entry.values)):
            unknown = sorted(set(keys) - set(canonical))
            if unknown:
                raise DataContractError(
                    f"data.tables.{name}.{setting} names unknown canonical column(s) {unknown}; "
                    f"canonical columns are {canonical}."
                )
        sources[name] = TableSource(
            table=name,
            path=resolve_path(raw_dir / entry.file),
            format=entry.format,
            encoding=entry.encoding,
            sheet=entry.sheet,
            skip_rows=entry.skip_rows,
            delimiter=entry.delimiter,
            date_formats=_as_formats(entry.date_format),
            datetime_formats=_as_formats(entry.datetime_format),
            columns={
                column: ColumnSource(column=value) if isinstance(value, str) else value
                for column, value in entry.columns.items()
            },
            values=dict(entry.values),
            key_by=entry.key_by,
        )
    return sources


# ---------------------------------------------------------------- mapping


def _nfkc(text: str) -> str:
    return unicodedata.normalize("NFKC", text).strip()


def _column_expression(source: TableSource, canonical: str, found: dict[str, str]) -> str | None:
    """SQL text of one canonical column from the export's columns (`found`: NFKC name -> name), or
    None when a file column it needs is not in the export."""
    entry = source.columns.get(canonical, ColumnSource(column=canonical))
    if entry.constant is not None:
        return _literal(entry.constant)
    wanted = [entry.column] if entry.column is not None else list(entry.concat or [])
    if any(_nfkc(name) not in found for name in wanted):
        return None
    fields = [f"CAST({_quote(found[_nfkc(name)])} AS VARCHAR)" for name in wanted]
    if entry.concat is not None:
        parts = ", ".join(f"nullif(trim({f}), '')" for f in fields)
        return f"nullif(concat_ws({_literal(entry.separator)}, {parts}), '')"
    if entry.equals is not None:
        # A condition is false, not missing, on an empty field (an order without a status is no refund).
        text = f"trim({_fullwidth_to_ascii(fields[0])})"
        values = ", ".join(_literal(_nfkc(value)) for value in entry.equals)
        return f"CASE WHEN {text} IN ({values}) THEN 'true' ELSE 'false' END"
    return fields[0]


def _describe_source(source: TableSource, canonical: str) -> str:
    entry = source.columns.get(canonical, ColumnSource(column=canonical))
    return repr(entry.column) if entry.column is not None else f"concat {entry.concat!r}"


def map_columns(source: TableSource, names: list[str]) -> tuple[str, list[str]]:
    """SELECT list building the canonical VARCHAR columns from the export's columns (renamed, constant,
    concatenated or a condition), and the canonical columns that are absent.

    A missing required column is a `DataContractError`; a missing optional one becomes nulls.
    """
    table = source.contract
    found = {_nfkc(name): name for name in names}
    expressions = {c.name: _column_expression(source, c.name, found) for c in table.columns}
    absent = [name for name, expression in expressions.items() if expression is None]
    missing_required = [name for name in absent if table.column(name).required]
    if missing_required:
        # Column names only: row contents (names, phones, ids) must never reach a report.
        wanted = {name: _describe_source(source, name) for name in missing_required}
        raise DataContractError(
            f"{source.path}: table {source.table} is missing required column(s) "
            f"{', '.join(f'{k} (looked for {v})' for k, v in wanted.items())}. "
            f"Columns in the file: {names}. If the export names them differently, "
            f"map them in the run config: data.tables.{source.table}.columns: "
            f"{{{missing_required[0]}: <your column name>}}."
        )
    selects = [
        f"{expression or 'NULL::VARCHAR'} AS {_quote(name)}" for name, expression in expressions.items()
    ]
    return ", ".join(selects), absent


# ---------------------------------------------------------------- validation


def _has_fullwidth(expression: str) -> str:
    """SQL: the text holds a full-width ASCII form or the ideographic space."""
    return f"regexp_matches({expression}, '[\uff01-\uff5e\u3000]')"  # the characters, not RE2 escapes


def _fullwidth_to_ascii(expression: str, guard: str | None = None) -> str:
    """SQL: full-width ASCII forms and the ideographic space as plain ASCII (what NFKC does to them).

    `translate` costs about 6 µs a value (step 01 on the 100k demo world took 131 s instead of 14 s
    with it on every value), so it runs only where `guard` (default: this value has such a
    character) holds.
    """
    translated = f"translate({expression}, {_literal(FULLWIDTH)}, {_literal(HALFWIDTH)})"
    return f"CASE WHEN {guard or _has_fullwidth(expression)} THEN {translated} ELSE {expression} END"


def unify_region(name: str) -> str:
    """A province or city name without its administrative suffix: `广东省` -> `广东`, `北京市` -> `北京`,
    `广西壮族自治区` -> `广西` (the short forms of the demo world and of `normalize_city`)."""
    return re.sub(REGION_SUFFIX, r"\1", name.strip())


def _id_columns(table: Table) -> set[str]:
    """Identifier columns: kept as exact text (`886016180339.0` -> `886016180339`)."""
    return {table.key, *table.record_key_columns, *ID_COLUMNS} & set(table.column_names)


def _mapped_text(column: Column, source: TableSource) -> str:
    """SQL: the trimmed text of a column through its value map (`data.tables.<table>.values`)."""
    text = f"t_{column.name}"
    mapping = source.values.get(column.name)
    if not mapping:
        return text
    cases = " ".join(f"WHEN {_literal(_nfkc(key))} THEN {_literal(value)}" for key, value in mapping.items())
    return f"(CASE {text} {cases} ELSE {text} END)"


def _cased(text: str, allowed: tuple[str, ...]) -> str:
    return f"upper({text})" if all(value.isupper() for value in allowed) else f"lower({text})"


def _date_expression(text: str, formats: tuple[str, ...]) -> str:
    """SQL: a timestamp from text, trying `formats` in order, then ISO text (and Excel date cells)."""
    tries = []
    for fmt in formats:
        if fmt == "excel":  # Excel serial day numbers (1900 date system), time as the fraction
            tries.append(
                f"CASE WHEN regexp_full_match({text}, '\\d{{1,6}}(\\.\\d+)?') THEN TIMESTAMP '1899-12-30' + "
                f"to_microseconds(CAST(round(CAST({text} AS DOUBLE) * 86400000000) AS BIGINT)) END"
            )
        elif fmt == "yyyymmdd":
            tries.append(
                f"CASE WHEN regexp_full_match({text}, '\\d{{8}}(\\.0+)?') "
                f"THEN TRY_STRPTIME(left({text}, 8), '%Y%m%d') END"
            )
        else:
            tries.append(f"TRY_STRPTIME({text}, {_literal(fmt)})")
    return f"coalesce({', '.join([*tries, f'TRY_CAST({text} AS TIMESTAMP)'])})"


def _parse_expression(table: Table, column: Column, source: TableSource) -> str:
    text = _mapped_text(column, source)
    if column.type == "str":
        allowed = CATEGORIES.get((table.name, column.name))
        if allowed:  # null outside the vocabulary (a required column's row is then quarantined)
            cased = _cased(text, allowed)
            return f"CASE WHEN {cased} IN ({', '.join(map(_literal, allowed))}) THEN {cased} END"
        if column.name in _id_columns(table):
            exact = f"regexp_replace({text}, '^(\\d+)\\.0+$', '\\1')"
            return f"CASE WHEN {text} LIKE '%.0%' THEN {exact} ELSE {text} END"
        if column.name in ("province", "city"):
            return f"regexp_replace({text}, {_literal(REGION_SUFFIX)}, '\\1')"
        return text
    if column.type in ("int", "float"):
        # The regexp runs only on values that are not plain numbers (coalesce evaluates lazily).
        cleaned = f"TRY_CAST(regexp_replace({text}, {_literal(AMOUNT_NOISE)}, '', 'g') AS DOUBLE)"
        number = f"coalesce(TRY_CAST({text} AS DOUBLE), {cleaned})"
        if column.type == "int":
            return f"CASE WHEN {number} = trunc({number}) THEN TRY_CAST({number} AS BIGINT) END"
        return f"CASE WHEN isfinite({number}) THEN {number} END"
    if column.type == "bool":
        word = f"lower({text})"
        return (
            f"CASE WHEN {word} IN ({', '.join(map(_literal, TRUE_WORDS))}) THEN true "
            f"WHEN {word} IN ({', '.join(map(_literal, FALSE_WORDS))}) THEN false END"
        )
    parsed = _date_expression(text, source.formats(column))
    return f"CAST(CAST({parsed} AS DATE) AS TIMESTAMP)" if column.type == "date" else parsed


def _unmapped_expression(table: Table, column: Column, source: TableSource) -> tuple[str, str] | None:
    """SQL yielding the raw text of a value outside the column's value map and canonical vocabulary
    (NULL otherwise), and what happens to such a row; None for columns without a vocabulary or map."""
    text, parsed = f"t_{column.name}", f"v_{column.name}"
    unparsed = f"CASE WHEN {text} IS NOT NULL AND {parsed} IS NULL THEN {text} END"  # v_ is null outside
    if (table.name, column.name) in CATEGORIES:
        return unparsed, "quarantined" if column.required else NULLED
    if column.type == "bool":
        return unparsed, NULLED if drops_bad_values(table, column) else "quarantined"
    mapping = source.values.get(column.name)
    if mapping and column.type == "str":
        keys = ", ".join(_literal(_nfkc(key)) for key in mapping)
        return f"CASE WHEN {text} NOT IN ({keys}) THEN {text} END", "kept as is"
    return None


@dataclass(frozen=True)
class ValueCheck:
    """One value problem a row can have: an SQL condition, the reason, and what it does to the row.

    `drops` names the column whose value is set to null instead (the row is kept, its `notes` say so):
    a bad optional attribute of an identity record (a birth date that cannot be read or gives an
    impossible age, a negative company size, an id in scientific notation) does not throw the record
    out of identity. Every other check quarantines the row.
    """

    condition: str
    reason: str
    drops: str | None = None

    @property
    def note(self) -> str:
        """The note a kept row carries for a dropped value."""
        return f"{self.drops} {self.reason}, set to null"


def drops_bad_values(table: Table, column: Column) -> bool:
    """Whether a bad value of `column` is set to null (an optional attribute of an identity record)
    rather than quarantining the row."""
    return table.kind == "identity" and not column.required and column.name != table.key


def _value_checks(table: Table) -> list[ValueCheck]:
    """Every possible value problem of a table's rows (quarantining or dropping the value)."""
    checks = []
    ids = _id_columns(table)
    for column in table.columns:
        raw, parsed, name = f"t_{column.name}", f"v_{column.name}", column.name
        drops = name if drops_bad_values(table, column) else None
        found: list[tuple[str, str, str]] = []  # condition, quarantine reason, note of a dropped value
        if column.required:
            found.append((f"{raw} IS NULL", f"missing {name}", ""))
        if column.type != "str" and not (column.type == "bool" and drops):  # bools: unmapped_values
            found.append((f"{raw} IS NOT NULL AND {parsed} IS NULL", f"unparseable {name}", "unparseable"))
        if name in ids:  # Excel turned a long number into 1.23E+11: the digits are lost
            found.append((
                f"(contains({raw}, 'E') OR contains({raw}, 'e')) AND "
                f"regexp_full_match({raw}, '\\d(\\.\\d+)?[eE]\\+?\\d+')",
                f"{name} in scientific notation", "in scientific notation",
            ))  # fmt: skip
        allowed = CATEGORIES.get((table.name, name))
        if allowed and column.required:  # the parsed value is null outside the vocabulary
            found.append((f"{raw} IS NOT NULL AND {parsed} IS NULL", f"invalid {name}", ""))
        low, high = BOUNDS.get((table.name, name), (None, None))
        label = "negative" if low == 0 and high is None else "out-of-range"
        if low is not None:
            found.append((f"{parsed} < {low}", f"{label} {name}", label))
        if high is not None:
            found.append((f"{parsed} > {high}", f"{label} {name}", label))
        if name == "birth_date":
            too_young_or_old = f"{parsed} > $latest_birth OR {parsed} < $earliest_birth"
            found.append((too_young_or_old, "impossible age", "gives an impossible age"))
        elif column.type in ("date", "datetime"):
            found.append(
                (f"{parsed} >= $after_reference", f"{name} after reference date", "after the reference date")
            )
        for condition, reason, note in found:
            checks.append(ValueCheck(condition, note if drops else reason, drops))
    if table.name == "transactions":
        checks.append(
            ValueCheck("v_amount < 0 AND NOT coalesce(v_is_refund, false)", "negative amount on non-refund")
        )
    return checks


def _problems_expression(checks: list[ValueCheck]) -> str:
    """SQL: the quarantine reasons of a row joined by '; ', NULL when it has none. The reasons are put
    together only for rows with a problem (most rows have none)."""
    quarantining = [check for check in checks if check.drops is None]
    if not quarantining:
        return "NULL"
    any_problem = " OR ".join(f"({check.condition})" for check in quarantining)
    reasons = ", ".join(
        f"CASE WHEN {check.condition} THEN {_literal(check.reason)} END" for check in quarantining
    )
    return f"CASE WHEN {any_problem} THEN concat_ws('; ', {reasons}) END"


@dataclass(frozen=True)
class CheckedTable:
    """A table after row checks: where it came from, its column mapping and profile."""

    source: SourceRelation
    mapped_columns: str
    absent_columns: list[str]
    profile: pd.DataFrame
    status: str  # loaded | not configured | empty file | header only
    unmapped_actions: dict[str, str]  # column -> what happens to a row with an unmapped value
    dropped: pd.DataFrame  # table, column, reason, rows: bad optional values set to null, rows kept


def check_rows(workspace: Workspace, source: TableSource, settings: WorkbenchConfig) -> CheckedTable:
    """Read one export into work table `rows_<table>` and flag every row problem.

    Parsed columns, read problems (ragged or truncated rows), value problems, orphans (against
    `identity_keys`) and duplicates. Reading is `helpers.engine.reading.read_source` (a CSV the strict
    reader refuses is read again row by row, so one bad row never loses the file)."""
    table = source.contract
    engine = workspace.engine
    relation, (mapped, unmapped) = read_source(
        workspace, source, lambda relation: _create_rows(workspace, source, relation, settings)
    )
    rows = f"rows_{table.name}"
    status = relation.status
    if status == "loaded" and int(engine.run(STEP, "count_rows", tables={"rows": rows})["rows"].iloc[0]) == 0:
        status = "header only"
    if table.references:
        column, parent, _ = table.references[0]
        system = "r.v_source_system" if parent == "source_system" else _literal(SYSTEM_OF_TABLE[parent])
        engine.run(STEP, "flag_orphans", tables={"rows": rows, "reference": f"v_{column}", "system": system})
    engine.run(STEP, "flag_duplicates", tables={"rows": rows, "key": table.key})
    if source.key_by == "identifier":
        _classify_references(engine, rows, settings.data)
    absent = [] if status != "loaded" else map_columns(source, relation.names)[1]
    profile, dropped = profile_columns(engine, table)
    checked = CheckedTable(relation, mapped, absent, profile, status, unmapped, dropped)
    _check_mostly_unparseable(engine, source, checked, settings.audit.max_unparseable_share)
    return checked


def _trimmed(expression: str, spaced: bool = True, edged: bool = True) -> str:
    """SQL: the text without surrounding spaces (DuckDB's `trim`: the ASCII space and the other space
    separators). `trim` costs about as much as reading the value, so it runs only on values that start
    or end with an ASCII space (when the value may: `edged`) or, when the source may hold another space
    separator (`spaced`), hold any non-ASCII character (byte length above character length; counting
    the characters costs a fifth of the check, so a source without such separators skips it). Without
    either, the text is taken as it is (the edge test cost about a third of the row checks' expressions
    on the demo transactions, whose fields never start or end with a space)."""
    x = expression
    conditions = [f"prefix({x}, ' ') OR suffix({x}, ' ')"] if edged else []
    conditions += [f"strlen({x}) <> length({x})"] if spaced else []
    return f"CASE WHEN {' OR '.join(conditions)} THEN trim({x}) ELSE {x} END" if conditions else x


def _may_have_edge_space(source: TableSource, name: str, file_edged: bool) -> bool:
    """Whether a canonical column's text may start or end with an ASCII space: a file column's when the
    file may hold such a field (`file_edged`), a constant's when it does; a concatenation joins trimmed
    parts and a condition gives true or false."""
    entry = source.columns.get(name)
    if entry is None or (entry.column is not None and entry.equals is None):
        return file_edged
    if entry.constant is not None:
        return entry.constant != entry.constant.strip(" ")
    return False


def _create_rows(
    workspace: Workspace, source: TableSource, relation: SourceRelation, settings: WorkbenchConfig
) -> tuple[str, dict[str, str]]:
    """Run `check_rows.sql` over one relation; returns the mapped-column SELECT list and, per column
    whose unmapped values are kept (`u_<column>`), what happens to their rows. A strict CSV is
    scanned in parallel and its rows numbered by position where the workspace can
    (`Workspace.create_by_position`), else the numbered relation is read."""
    table = source.contract
    mapped, _ = map_columns(source, relation.names)
    reference = pd.Timestamp(settings.run.reference_date)
    checks = _value_checks(table)
    problems = _problems_expression(checks)
    limits = {
        "after_reference": reference + pd.Timedelta(days=1),
        "latest_birth": reference - pd.DateOffset(years=settings.audit.min_age),
        "earliest_birth": reference - pd.DateOffset(years=settings.audit.max_age),
    }
    names = table.column_names
    # Without a full-width character in the file or the mapped constants, no row needs translating.
    constants = mapped.replace(_literal(FULLWIDTH), "")  # a condition's own translation is no constant
    wide = relation.may_be_wide or re.search("[\uff01-\uff5e\u3000]", constants) is not None
    spaced = relation.may_be_spaced or re.search(SPACE_SEPARATORS, constants) is not None
    # An ideographic space translated to ASCII may start or end a value: a wide source is edged.
    edged = {name: wide or _may_have_edge_space(source, name, relation.may_be_edged) for name in names}
    unmapped = {
        c.name: found for c in table.columns if (found := _unmapped_expression(table, c, source)) is not None
    }
    # Fields of a row that could not be read whole are not counted as values.
    extra = [
        f"CASE WHEN read_problem IS NULL THEN {expression} END AS u_{name}"
        for name, (expression, _) in unmapped.items()
    ]
    if table.kind == "event":
        kind = None if source.key_by in ("record", "identifier") else source.key_by
        extra.append(f"{_literal(kind) if kind else 'NULL'}::VARCHAR AS customer_ref_kind")
    # What was changed on a row that is kept: an optional value outside its vocabulary or a bad optional
    # attribute of an identity record, set to null.
    dropped = [check for check in checks if check.drops is not None]
    notes = [
        f"CASE WHEN u_{name} IS NOT NULL THEN '{name} outside its values, set to null' END"
        for name, (_, action) in unmapped.items()
        if action == NULLED
    ] + [f"CASE WHEN {check.condition} THEN {_literal(check.note)} END" for check in dropped]
    extra.append(
        f"nullif(concat_ws('; ', {', '.join(notes)}), '') AS notes" if notes else "NULL::VARCHAR AS notes"
    )
    drop_conditions: dict[str, list[str]] = {}
    for check in dropped:
        drop_conditions.setdefault(check.drops, []).append(f"({check.condition})")
    typed_names = [
        f"CASE WHEN {' OR '.join(drop_conditions[c])} THEN NULL ELSE v_{c} END AS v_{c}"
        if c in drop_conditions
        else f"v_{c}"
        for c in names
    ]
    tables = {
        "rows": f"rows_{table.name}",
        "mapped_columns": mapped,
        "read_problem": relation.read_problem,
        "wide": _has_fullwidth(f"concat({', '.join(map(_quote, names))})") if wide else "false",
        "trimmed_columns": ", ".join(
            f"nullif({_trimmed(_fullwidth_to_ascii(q, 'wide') if wide else q, spaced, edged[c])}, '') "
            f"AS t_{c}"
            for c, q in zip(names, map(_quote, names), strict=True)
        ),
        "typed_columns": ", ".join(
            f"{_parse_expression(table, c, source)} AS v_{c.name}" for c in table.columns
        ),
        "typed_names": ", ".join(typed_names),
        "extra_columns": "".join(f", {column}" for column in extra),
        "problem_cases": problems,
        "filled_mask": " | ".join(f"((t_{c} IS NOT NULL)::BIGINT << {i})" for i, c in enumerate(names)),
        "raw_names": ", ".join(map(_quote, names)),
    }
    params = {
        name: value.to_pydatetime()
        for name, value in limits.items()
        if any(f"${name}" in check.condition for check in checks)
    }
    by_position = relation.csv is not None and workspace.create_by_position(
        tables["rows"],
        load_query(STEP, "check_rows").format(**tables, source=relation.relation, row_number="0::BIGINT"),
        **params,
    )
    if not by_position:
        numbered = {"source": relation.numbered, "row_number": relation.row_number}
        workspace.engine.run(STEP, "check_rows", tables={**tables, **numbered}, **params)
    return mapped, {name: action for name, (_, action) in unmapped.items()}


def reference_kinds(references: pd.Series, data: DataSettings | None = None) -> pd.Series:
    """What each identifier of a table keyed by `identifier` is: `email` when it contains @, `phone`
    when `normalize_phone` reads a number from it (with the config's home region and area code),
    else `member_no`."""
    text = references.astype("string")
    phone = normalize_phone(text, **phone_settings(data)).notna()
    kinds = pd.Series("member_no", index=references.index, dtype=object)
    kinds[phone.to_numpy()] = "phone"
    kinds[text.str.contains("@", regex=False).fillna(False).to_numpy()] = "email"
    return kinds


def _classify_references(engine: SqlEngine, rows: str, data: DataSettings) -> None:
    """Set `customer_ref_kind` per accepted row of a table keyed by `identifier` (one lookup per distinct
    value)."""
    references = engine.run(STEP, "value_counts", tables={"rows": rows, "column": "v_customer_ref"})
    kinds = pd.DataFrame({"ref": references["value"], "kind": reference_kinds(references["value"], data)})
    engine.register("reference_kinds", kinds)
    engine.run(STEP, "set_reference_kinds", tables={"rows": rows, "kinds": "reference_kinds"})


def unmapped_values(engine: SqlEngine, table: Table, actions: dict[str, str], top: int = 20) -> pd.DataFrame:
    """Per column with a vocabulary or value map: the most frequent values outside both (at most
    `top` per column, cut to 40 characters) with their row counts and what happened to the rows."""
    frames = []
    for column, action in actions.items():
        found = engine.run(
            STEP,
            "unmapped_values",
            tables={"rows": f"rows_{table.name}", "column": f"u_{column}", "top": str(top)},
        )
        frames.append(found.assign(table=table.name, column=column, action=action))
    columns = ["table", "column", "value", "rows", "action"]
    return pd.concat(frames, ignore_index=True)[columns] if frames else pd.DataFrame(columns=columns)


def _dropped_counts(table: Table) -> list[tuple[ValueCheck, str]]:
    """Per bad optional attribute a kept row can have (`ValueCheck.drops`): the check and the aggregate
    counting the accepted rows whose value it set to null (`profile_columns` runs them)."""
    checks = [check for check in _value_checks(table) if check.drops is not None]
    return [
        (check, f"count(*) FILTER (WHERE problems = '' AND contains(notes, {_literal(check.note)}))")
        for check in checks
    ]


def _filled(table: Table, column: str) -> str:
    """SQL condition: the raw field of `column` was filled (bit of the `filled` mask)."""
    return f"(filled & {1 << table.column_names.index(column)}) <> 0"


def profile_columns(engine: SqlEngine, table: Table) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per column of one work table: missing, distinct and invalid values, accepted range; and, in the
    same statement, per bad optional attribute of its kept rows (`ValueCheck.drops`) the column, the
    reason and how many rows had the value set to null (only those with rows).

    `invalid` counts filled values that did not parse (or, for categories, are not allowed); a value
    that parsed but was dropped for another reason (an impossible age) is not counted.
    Distinct counts (of parsed values) are exact for identity tables, HyperLogLog estimates for
    event tables.
    """
    # HyperLogLog can overshoot on nearly unique columns: never report more distinct values than values.
    distinct = (
        "count(DISTINCT {0})" if table.kind == "identity" else "least(approx_count_distinct({0}), count({0}))"
    )
    parsed_but_dropped: dict[str, list[str]] = {}
    for check in _value_checks(table):
        if check.drops is not None and check.reason != "unparseable":
            parsed_but_dropped.setdefault(check.drops, []).append(f"contains(notes, {_literal(check.note)})")
    parts = []
    for column in table.columns:
        filled, parsed = _filled(table, column.name), f"v_{column.name}"
        validates = column.type != "str" or (table.name, column.name) in CATEGORIES
        unparsed = f"{filled} AND {parsed} IS NULL"
        if column.name in parsed_but_dropped:
            unparsed += f" AND NOT coalesce({' OR '.join(parsed_but_dropped[column.name])}, false)"
        invalid = f"count(*) FILTER (WHERE {unparsed})" if validates else "0"
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
    dropped = _dropped_counts(table)
    parts += [f"{count} AS {_quote(f'dropped|{i}')}" for i, (_, count) in enumerate(dropped)]
    parts.append("count(*) AS rows")
    values = engine.run(
        STEP, "column_profile", tables={"aggregates": ", ".join(parts), "rows": f"rows_{table.name}"}
    )
    get = values.iloc[0].to_dict().get
    rows = int(get("rows"))
    kept = pd.DataFrame(
        [
            (table.name, check.drops, check.reason, int(get(f"dropped|{i}")))
            for i, (check, _) in enumerate(dropped)
        ],
        columns=["table", "column", "reason", "rows"],
    )
    profile = pd.DataFrame(
        [
            {
                "table": table.name,
                "column": column.name,
                "type": column.type,
                "required": column.required,
                "rows": rows,
                "missing": int(get(f"{column.name}|missing")),
                "missing_share": int(get(f"{column.name}|missing")) / rows if rows else 0.0,
                "distinct": int(get(f"{column.name}|distinct")),
                "invalid": int(get(f"{column.name}|invalid")),
                "min": get(f"{column.name}|min"),
                "max": get(f"{column.name}|max"),
            }
            for column in table.columns
        ]
    )
    return profile, kept[kept["rows"] > 0].reset_index(drop=True)


def _check_mostly_unparseable(
    engine: SqlEngine, source: TableSource, checked: CheckedTable, max_share: float
) -> None:
    table = source.contract
    for row in checked.profile.itertuples():
        column = table.column(row.column)
        filled = row.rows - row.missing
        if column.type == "str" or not filled or row.invalid / filled <= max_share:
            continue
        examples = engine.run(
            STEP,
            "unparseable_examples",
            tables={
                "column": _quote(column.name),
                "row_number": checked.source.row_number,
                "mapped_columns": checked.mapped_columns,
                "numbered_source": checked.source.numbered,
                "rows": f"rows_{table.name}",
                "unparsed": f"{_filled(table, column.name)} AND v_{column.name} IS NULL",
            },
        )
        # Row numbers and the shape of the value (digits as 9, letters as a), never the value itself.
        shown = "; ".join(
            f"row {r.source_row} looks like {value_shape(r.value)!r}" for r in examples.itertuples()
        )
        hint = (
            f" Set data.tables.{table.name}.{column.type}_format (now {list(source.formats(column))!r}; "
            "a list is tried in order)."
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


def clean_columns(table: Table) -> tuple[Column, ...]:
    """The canonical columns of `clean_<table>`: event tables always carry the identifier columns
    (`customer_ref`, `customer_name`; null where the file has none)."""
    if table.kind != "event":
        return table.columns
    have = set(table.column_names)
    return (*table.columns, *(c for c in EVENT_REFERENCE_COLUMNS if c.name not in have))


def clean_dtypes(table: Table) -> dict[str, str]:
    """pandas dtypes of a clean table's canonical columns, `customer_ref_kind` and `source_row`."""
    dtypes = {
        c.name: ("bool" if c.required else "boolean") if c.type == "bool" else _PANDAS_DTYPES[c.type]
        for c in clean_columns(table)
    }
    if table.kind == "event":
        dtypes["customer_ref_kind"] = "object"
    return {**dtypes, "notes": "object", "source_row": "int64"}


def _clean_layout(table: Table) -> list[tuple[str, str, pyarrow.DataType, str]]:
    """The columns of `clean_<table>` in order: name, pandas dtype, Arrow type and the SQL over the
    work table (joined to `norm_<column>` lookups for the normalized phones and e-mails of identity
    tables)."""
    have = set(table.column_names)
    layout = [
        (c.name, dtype, _ARROW_TYPES[c.type], f"v_{c.name}" if c.name in have else "NULL::VARCHAR")
        for c, dtype in zip(clean_columns(table), clean_dtypes(table).values(), strict=False)
    ]
    text = pyarrow.string()
    if table.kind == "event":
        layout.append(("customer_ref_kind", "object", text, "customer_ref_kind"))
    layout += [("notes", "object", text, "notes"), ("source_row", "int64", pyarrow.int64(), "source_row")]
    if table.kind == "identity":
        system = ("source_system", "object", text, _literal(SYSTEM_OF_TABLE[table.name]))
        layout = [system, ("source_record_id", "object", text, f"v_{table.key}"), *layout]
        layout += [
            (f"{c}_norm", "object", text, f"CAST(norm_{c}.norm AS VARCHAR)")
            for c in identifier_columns(table)
        ]
    return layout


def _pandas_metadata(table: Table) -> str:
    """The pandas metadata of a clean table's Parquet file (nullable ints read as Int64, optional bools
    as boolean)."""
    layout = _clean_layout(table)
    empty = pd.DataFrame({name: pd.Series([], dtype=dtype) for name, dtype, _, _ in layout})
    schema = pyarrow.schema([(name, arrow) for name, _, arrow, _ in layout])
    metadata = pyarrow.Table.from_pandas(empty, schema=schema, preserve_index=False).schema.metadata
    return metadata[b"pandas"].decode()


def _write_clean(workspace: Workspace, ctx: StepContext, table: Table) -> None:
    """Write the accepted rows of a work table as `clean_<table>`, typed, in file order; an identity
    table's phones and e-mails are looked up in `norm_<column>` (`_normalize_identifiers`). An event
    table whose work table is already in file order (`Workspace.in_file_order`) is written without a
    sort (at 1M people the sort took half of the clean writes' CPU)."""
    path = ctx.path(f"clean_{table.name}.parquet")
    partial = path.with_suffix(".parquet.partial")
    rows = f"rows_{table.name}"
    # A join need not keep the order of its rows: identity tables (joined to their lookups) are sorted.
    ordered = table.kind != "identity" and workspace.in_file_order(rows)
    if table.kind == "identity":
        rows += "".join(f" LEFT JOIN norm_{c} ON norm_{c}.value = v_{c}" for c in identifier_columns(table))
    layout = _clean_layout(table)
    workspace.engine.run(
        STEP,
        "write_clean",
        tables={
            "columns": ", ".join(f"{sql} AS {_quote(name)}" for name, _, _, sql in layout),
            "rows": rows,
            "order_by": "" if ordered else "ORDER BY source_row",
            "path": str(partial).replace("'", "''"),
            "pandas_metadata": _pandas_metadata(table).replace("'", "''"),
        },
    )
    _conform_schema(partial, pyarrow.schema([(name, arrow) for name, _, arrow, _ in layout]))
    partial.replace(path)


def _conform_schema(path: Path, schema: pyarrow.Schema) -> None:
    """Rewrite a written clean table with the declared Arrow types when the engine wrote others (Spark:
    timestamps as INT96 or with a time zone); a file that has them (DuckDB's) is left as it is."""
    written = pq.read_schema(path)
    if [(f.name, f.type) for f in written] == [(f.name, f.type) for f in schema]:
        return
    table = pq.read_table(path)
    pq.write_table(table.cast(schema.with_metadata(written.metadata)), path)


def identifier_columns(table: Table) -> list[str]:
    """The phone and e-mail columns of an identity table (those that get a `_norm` column)."""
    return [c for c in table.column_names if c in PHONE_COLUMNS or c == EMAIL_COLUMN]


def phone_settings(data: DataSettings | None) -> dict[str, str | None]:
    """`normalize_phone` keyword arguments from `data.home_region` / `data.home_area_code`."""
    data = data or DataSettings()
    return {"home_region": data.home_region, "home_area_code": data.home_area_code}


def _normalized(values: pd.Series, column: str, data: DataSettings | None) -> pd.Series:
    """Canonical phones (with the config's home region and area code) or e-mails; None if unresolved."""
    if column in PHONE_COLUMNS:
        normalized = normalize_phone(values, **phone_settings(data))
    else:
        normalized = normalize_email(values)
    return normalized.astype(object).where(normalized.notna(), None)


def add_identity_columns(frame: pd.DataFrame, table: Table, data: DataSettings | None = None) -> pd.DataFrame:
    """Prepend `source_system` and `source_record_id`, add `<column>_norm` per phone/e-mail column
    (phones read with the config's home region and area code), in place: a typed identity table as
    `clean_<table>` holds it (step 01 writes it in SQL, `_write_clean`)."""
    frame.insert(0, "source_record_id", frame[table.key])
    frame.insert(0, "source_system", SYSTEM_OF_TABLE[table.name])
    for column in identifier_columns(table):
        frame[f"{column}_norm"] = _normalized(frame[column], column, data)
    return frame


def _normalize_identifiers(engine: SqlEngine, table: Table, data: DataSettings) -> list[dict[str, Any]]:
    """Register `norm_<column>` (value, norm) for each phone/e-mail column of an identity table: each
    distinct value of its accepted rows normalized once in Python. Returns the filled and invalid
    (not normalizable) counts per column."""
    counts = []
    for column in identifier_columns(table):
        values = engine.run(
            STEP, "value_counts", tables={"rows": f"rows_{table.name}", "column": f"v_{column}"}
        )
        values["norm"] = _normalized(values["value"], column, data)
        engine.register(f"norm_{column}", values[["value", "norm"]])
        counts.append({"table": table.name, "column": column, "filled": int(values["rows"].sum()),
                       "invalid": int(values["rows"][values["norm"].isna()].sum())})  # fmt: skip
    return counts


def pandera_schema(table: Table) -> pa.DataFrameSchema:
    """The pandera contract of a clean table, derived from helpers.core.tables, over the table as read
    with Arrow-backed pandas dtypes (the Parquet file's own types; no Python objects per value)."""
    text = pd.ArrowDtype(pyarrow.string())
    columns = {}
    for column in clean_columns(table):
        allowed = CATEGORIES.get((table.name, column.name))
        checks = [pa.Check.isin(list(allowed))] if allowed else []
        low, high = BOUNDS.get((table.name, column.name), (None, None))
        if low is not None:
            checks.append(pa.Check.ge(low))
        if high is not None:
            checks.append(pa.Check.le(high))
        columns[column.name] = pa.Column(
            pd.ArrowDtype(_ARROW_TYPES[column.type]),
            checks=checks,
            nullable=not column.required,
            unique=column.name == table.key,
        )
    columns["source_row"] = pa.Column(pd.ArrowDtype(pyarrow.int64()), pa.Check.ge(1), unique=True)
    columns["notes"] = pa.Column(text, nullable=True)
    if table.kind == "event":
        columns["customer_ref_kind"] = pa.Column(
            text, pa.Check.isin(["phone", "email", "member_no"]), nullable=True
        )
    if table.kind == "identity":
        columns["source_system"] = pa.Column(text, pa.Check.eq(SYSTEM_OF_TABLE[table.name]))
        columns["source_record_id"] = pa.Column(text, unique=True)
        for column in table.column_names:
            if column in PHONE_COLUMNS:  # Chinese numbers in their canonical form, others in E.164
                columns[f"{column}_norm"] = pa.Column(
                    text,
                    pa.Check.str_matches(r"^\+(?:86(?:1\d{10}|-\d{2,3}-\d{7,8})|\d{7,15})$"),
                    nullable=True,
                )
            if column == EMAIL_COLUMN:
                columns["email_norm"] = pa.Column(
                    text, pa.Check.str_matches(r"^[^@\s]+@[^@\s]+$"), nullable=True
                )
    return pa.DataFrameSchema(columns, strict=True, ordered=False)


def validate_clean(ctx: StepContext, table: Table, sample_rows: int) -> int:
    """Check a written clean table against its pandera contract; returns the rows checked.

    The whole table is checked up to `sample_rows` rows; bigger tables are checked on their
    first `sample_rows` rows (whole row groups), and the file schema is compared in full.
    """
    parquet = pq.ParquetFile(ctx.path(f"clean_{table.name}.parquet"))
    batches = []
    rows = 0
    for batch in parquet.iter_batches(batch_size=min(sample_rows, 65536)):
        batches.append(batch)
        rows += batch.num_rows
        if rows >= sample_rows:
            break
    frame = pyarrow.Table.from_batches(batches, schema=parquet.schema_arrow).to_pandas(
        types_mapper=pd.ArrowDtype
    )
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


def run_contract(
    ctx: StepContext, workspace: Workspace, inspect: Callable[[str], None] | None = None
) -> ContractResult:
    """Load, validate, quarantine and clean every table; write clean_*, quarantine_*, ledger,
    table_status, unmapped_values and dropped_values.

    Identity tables go first: an event keyed by record is quarantined unless it points at an accepted
    identity record (reason `orphan reference`, or `reference to a quarantined record` when the record
    exists but was rejected). An absent table is written empty and named on stderr.
    `inspect(table)` runs on each finished work table `rows_<table>` (the step's profiling), which is
    then released (`Workspace.release`): only one table's rows are held at a time (at 1M people all of
    them together spilled 2.3 GB past `audit.memory_limit`, about 15 CPU seconds of step 01's 119).
    """
    engine = workspace.engine
    sources = table_sources(ctx.settings.data)
    sample_rows = ctx.settings.audit.contract_sample_rows
    ledgers, invalid, absent, profiles, checked_rows = [], [], {}, [], {}
    warnings: list[str] = []
    statuses, unmapped, dropped = [], [], []
    engine.run(STEP, "identity_keys")
    for name in [*(t.name for t in IDENTITY_TABLES), *(t.name for t in TABLES.values() if t.kind == "event")]:
        source = sources[name]
        table = source.contract
        checked = check_rows(workspace, source, ctx.settings)
        table_ledger = engine.run(STEP, "ledger", tables={"table": name, "rows": f"rows_{name}"})
        # Checked before anything of this table is written: a stop leaves no clean table behind.
        warning = check_quarantine_share(engine, ctx.settings, name, table_ledger)
        if warning:
            warnings.append(warning)
            print(f"WARNING {warning}", file=sys.stderr, flush=True)
        if checked.status != "loaded":
            print(f"table {name} is absent ({checked.status}): written empty", file=sys.stderr, flush=True)
        statuses.append({"table": name, "status": checked.status,
                         "file": source.path.name if source.path else None,
                         "input_rows": int(table_ledger["input_rows"].iloc[0])})  # fmt: skip
        unmapped.append(unmapped_values(engine, table, checked.unmapped_actions))
        dropped.append(checked.dropped)
        absent[name] = checked.absent_columns
        profiles.append(checked.profile)
        if table.kind == "identity":
            invalid.extend(_normalize_identifiers(engine, table, ctx.settings.data))
            system = _literal(SYSTEM_OF_TABLE[name])
            engine.run(
                STEP,
                "add_identity_keys",
                tables={"system": system, "key": f"v_{table.key}", "rows": f"rows_{name}"},
            )
        _write_clean(workspace, ctx, table)
        checked_rows[name] = validate_clean(ctx, table, sample_rows)
        _write_quarantine(workspace, ctx, table, checked)
        ledgers.append(table_ledger)
        if inspect is not None:
            inspect(name)
        workspace.release(f"rows_{name}")
    order = {name: position for position, name in enumerate(TABLES)}
    ledger = pd.concat(ledgers, ignore_index=True).sort_values("table", key=lambda t: t.map(order))
    ledger = ledger.reset_index(drop=True)
    if not (ledger["input_rows"] == ledger["accepted_rows"] + ledger["quarantined_rows"]).all():
        raise AssertionError(f"Ledger does not balance:\n{ledger}")
    ctx.write("ledger", ledger[["table", "input_rows", "accepted_rows", "quarantined_rows"]])
    status = pd.DataFrame(statuses).sort_values("table", key=lambda t: t.map(order), ignore_index=True)
    ctx.write("table_status", status)
    unmapped_frame = pd.concat(unmapped, ignore_index=True)
    ctx.write("unmapped_values", unmapped_frame)
    dropped_frame = pd.concat(dropped, ignore_index=True)
    ctx.write("dropped_values", dropped_frame)
    missing_groups = groups_without_data(ledger, absent)
    if missing_groups:
        print(f"factor groups without data: {', '.join(missing_groups)}", file=sys.stderr, flush=True)
    return ContractResult(
        ledger=ledger,
        column_profile=pd.concat(profiles, ignore_index=True).sort_values(
            "table", key=lambda t: t.map(order), kind="stable", ignore_index=True
        ),
        invalid_identifiers=pd.DataFrame(invalid, columns=["table", "column", "filled", "invalid"]),
        missing_optional_columns={name: cols for name, cols in absent.items() if cols},
        contract_checked_rows=checked_rows,
        quarantine_warnings=warnings,
        table_status=status,
        unmapped_values=unmapped_frame,
        dropped_values=dropped_frame,
        groups_without_data=missing_groups,
    )


def groups_without_data(ledger: pd.DataFrame, absent_columns: dict[str, list[str]]) -> list[str]:
    """Factor groups (`helpers.core.factors.SOURCE_GROUPS`) none of whose feeding columns is in a table
    with accepted rows: the data for them is absent from this run."""
    accepted = ledger.set_index("table")["accepted_rows"]
    missing = []
    for group in SOURCE_GROUPS:
        fed = [
            feed for feed in group.feeds
            if accepted.get(feed.split(".")[0], 0) > 0
            and feed.split(".")[1] not in absent_columns.get(feed.split(".")[0], [])
        ]  # fmt: skip
        if not fed:
            missing.append(group.name)
    return missing


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
    engine: SqlEngine, settings: WorkbenchConfig, table: str, ledger: pd.DataFrame
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


def _write_quarantine(workspace: Workspace, ctx: StepContext, table: Table, checked: CheckedTable) -> None:
    """Write the rejected rows of a work table with their original text, file row and reasons; the
    text of a CSV's rows comes from their own lines where it can (`reading.rejected_rows`), not from
    reading the whole export again."""
    path = ctx.path(f"quarantine_{table.name}.parquet")
    partial = path.with_suffix(".parquet.partial")
    rows = f"rows_{table.name}"
    source = rejected_rows(workspace, checked.source, rows, checked.mapped_columns, table.column_names)
    workspace.engine.run(
        STEP,
        "write_quarantine",
        tables={
            "raw_columns": ", ".join(
                f"raw.{_quote(name)} AS {_quote(quarantine_column(name))}" for name in table.column_names
            ),
            "rows": rows,
            "row_number": source.row_number,
            "mapped_columns": checked.mapped_columns,
            "numbered_source": source.numbered,
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
