"""Pre-flight: the mistakes a run can find in seconds, before any kernel starts or data is generated.

`check_run(config, outputs_dir)` reads only file headers and a small sample of rows, writes nothing
but an empty probe file it removes at once, and raises `PreflightError` listing every problem found,
one line each, naming the file, table, column or setting to fix: configured files missing or
unreadable, headers that cannot be decoded, mapped or required columns absent, a reference date
outside what the data and calendar allow, a k range the data cannot support, and an outputs folder
that cannot be written or is nearly full.
"""

from __future__ import annotations

import csv
import importlib.util
import itertools
import os
import shutil
import tempfile
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow.parquet as pq
from python_calamine import CalamineWorkbook

from helpers.core.config import resolve_path
from helpers.core.settings import ColumnSource, TableSettings, WorkbenchConfig
from helpers.core.tables import EVENT_REFERENCE_COLUMNS, TABLES
from helpers.demo.world import MIN_CUSTOMERS

CSV_DELIMITERS = (",", "\t", ";", "|")  # tried on the header line when data.tables.<t>.delimiter is unset
SAMPLE_ROWS = 2_000  # rows per event table read to compare run.reference_date with the data
EARLIEST_REFERENCE_DATE = date(1990, 1, 1)
MAX_DAYS_AHEAD = 366  # run.reference_date may lie at most a year after today
# clustering.candidates.MIN_ROWS_PER_SEGMENT (core may not import a step; a test keeps them equal)
ROWS_PER_SEGMENT = 5
MIN_FREE_BYTES = 50 * 2**20  # a run's reports and artifacts need at least this much room
SPECIAL_FORMATS = {"yyyymmdd": "%Y%m%d"}  # step 01's named formats that strptime codes express


class PreflightError(ValueError):
    """Problems found before the run; `problems` holds one line each, `str()` lists them all."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__(
            f"pre-flight found {len(problems)} problem(s); nothing was run:\n"
            + "\n".join(f"  - {p}" for p in problems)
        )


@dataclass(frozen=True)
class Header:
    """A table file's column names (NFKC, stripped) and, for a CSV, how to read the rows below them."""

    names: list[str]
    delimiter: str = ","
    lines_before_data: int = 0


def check_run(config: dict[str, Any], outputs_dir: Path, today: date | None = None) -> None:
    """Raise `PreflightError` listing every problem of the validated `config` for a run into
    `outputs_dir`; return quietly when there is none."""
    settings = WorkbenchConfig.model_validate(config)
    today = today or date.today()
    problems = outputs_problems(outputs_dir)
    problems += reference_date_problems(settings.run.reference_date, today)
    problems += engine_problems(settings)
    raw_dir = resolve_path(settings.data.raw_dir)
    generated = "demo" in config and not (raw_dir.is_dir() and any(raw_dir.iterdir()))
    if generated:  # ensure_demo_data will write the files the config names
        if settings.demo.customers < MIN_CUSTOMERS:
            problems.append(
                f"demo.customers is {settings.demo.customers}; the demo world needs at least {MIN_CUSTOMERS}"
            )
        problems += k_range_problems(settings.demo.customers, "demo.customers is", settings.clustering.k_min)
    else:
        problems += data_problems(settings, raw_dir)
    if problems:
        raise PreflightError(problems)


def engine_problems(settings: WorkbenchConfig) -> list[str]:
    """`engine.name: spark` needs pyspark and a Java for it (steps that still run on DuckDB say so in
    the run's progress and `run.json`)."""
    if settings.engine.name != "spark":
        return []
    if importlib.util.find_spec("pyspark") is None:
        return [
            "engine.name is spark but pyspark is not installed: run make setup-spark "
            "(pip install -e '.[spark]')"
        ]
    from helpers.engine.spark import ensure_java

    try:
        ensure_java()
    except RuntimeError as missing:
        return [f"engine.name is spark: {missing}"]
    return []


def outputs_problems(outputs_dir: Path) -> list[str]:
    """The outputs folder (or the nearest existing folder above it) must be writable and have room."""
    existing = outputs_dir
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        return [f"outputs folder {outputs_dir}: {existing} is not a folder; choose another with --outputs"]
    try:  # an empty file, removed at once: permissions and read-only mounts (also for root)
        with tempfile.TemporaryFile(dir=existing):
            pass
    except OSError as error:
        return [
            f"outputs folder {existing} is not writable ({error.strerror}): "
            "fix its permissions or choose another with --outputs"
        ]
    free = shutil.disk_usage(existing).free
    if free < MIN_FREE_BYTES:
        return [
            f"outputs folder {existing} has {free / 2**20:.0f} MB free, a run needs at least "
            f"{MIN_FREE_BYTES / 2**20:.0f} MB: free space or choose another with --outputs"
        ]
    return []


def reference_date_problems(reference: date, today: date) -> list[str]:
    """`run.reference_date` must lie between 1990 and a year after today."""
    if reference < EARLIEST_REFERENCE_DATE:
        return [
            f"run.reference_date {reference} is before {EARLIEST_REFERENCE_DATE}: set the data's as-of date"
        ]
    if reference > today + timedelta(days=MAX_DAYS_AHEAD):
        return [
            f"run.reference_date {reference} is more than a year after today ({today}): "
            "set the data's as-of date"
        ]
    return []


def k_range_problems(customers: int, source: str, k_min: int) -> list[str]:
    """Too few customers for even `clustering.k_min` segments of `ROWS_PER_SEGMENT` each."""
    if customers >= k_min * ROWS_PER_SEGMENT:
        return []
    return [
        f"clustering.k_min is {k_min}: {k_min * ROWS_PER_SEGMENT} customers needed ({ROWS_PER_SEGMENT} per "
        f"segment), but {source} {customers:,}; add data or lower clustering.k_min"
    ]


def data_problems(settings: WorkbenchConfig, raw_dir: Path) -> list[str]:
    """Every configured table: file present and readable, header readable, columns present; then the
    reference date against a sample of event dates and the k range against the identity rows."""
    if not raw_dir.is_dir():
        return [f"data.raw_dir {raw_dir} is not a folder"]
    problems: list[str] = []
    identity_rows, needed_rows = 0, settings.clustering.k_min * ROWS_PER_SEGMENT
    sampled: dict[str, pd.Timestamp] = {}  # table -> earliest sampled event date
    for table, entry in settings.data.tables.items():
        if table not in TABLES:
            problems.append(f"data.tables.{table}: unknown table; canonical tables are {', '.join(TABLES)}")
            continue
        if entry.key_by != "record" and TABLES[table].kind != "event":
            problems.append(
                f"data.tables.{table}.key_by: applies to event tables only; {table} is an identity table"
            )
        path = raw_dir / entry.file
        where = f"data.tables.{table}.file {entry.file}"
        if not path.is_file():
            problems.append(f"{where}: not found in {raw_dir}")
            continue
        if not os.access(path, os.R_OK):
            problems.append(f"{where}: cannot be read (permissions)")
            continue
        if path.stat().st_size == 0:
            continue  # step 01 reads an empty file as an empty table
        try:
            header = read_header(path, entry)
        except UnicodeDecodeError:
            problems.append(f"{where}: header is not {entry.encoding}; set data.tables.{table}.encoding")
            continue
        except KeyError as error:  # the sheet is not in the workbook
            problems.append(
                f"data.tables.{table}.sheet {entry.sheet!r}: not in {entry.file} ({error.args[0]})"
            )
            continue
        except LookupError:
            problems.append(f"data.tables.{table}.encoding {entry.encoding!r} is not a known encoding")
            continue
        except (OSError, ValueError) as error:  # a damaged workbook or Parquet file, a missing sheet
            problems.append(f"{where}: header cannot be read as {entry.format} ({type(error).__name__})")
            continue
        if header is None:
            continue  # no header line: step 01 reads an empty table
        problems += column_problems(table, entry, header)
        if TABLES[table].kind == "identity":
            identity_rows += count_rows(path, entry, header, limit=needed_rows)
        elif (earliest := earliest_event_date(path, entry, header, table)) is not None:
            sampled[table] = earliest
    reference = pd.Timestamp(settings.run.reference_date)
    if sampled and all(earliest > reference for earliest in sampled.values()):
        first = min(sampled.values()).date()
        problems.append(
            f"run.reference_date {reference.date()} is before every event date sampled from "
            f"{', '.join(sampled)} (earliest {first}): set the data's as-of date"
        )
    if identity_rows:
        problems += k_range_problems(identity_rows, "the identity tables hold", settings.clustering.k_min)
    return problems


def file_columns(source: str | ColumnSource) -> list[str]:
    """The file columns a `data.tables.<t>.columns` entry reads (none for a constant)."""
    if isinstance(source, str):
        return [source]
    return [source.column] if source.column is not None else list(source.concat or [])


def column_problems(table: str, entry: TableSettings, header: Header) -> list[str]:
    """Mapped file columns missing from the header, and required canonical columns not found."""
    contract = TABLES[table].keyed_by(entry.key_by)
    optional = [c.name for c in EVENT_REFERENCE_COLUMNS] if contract.kind == "event" else []
    names = set(header.names)
    problems = []
    for canonical, source in entry.columns.items():
        if canonical not in contract.column_names and canonical not in optional:
            problems.append(f"data.tables.{table}.columns.{canonical}: not a column of table {table}")
            continue
        absent = [name for name in file_columns(source) if _nfkc(name) not in names]
        if absent:
            problems.append(
                f"data.tables.{table}.columns.{canonical}: file column(s) {absent} not in the header of "
                f"{entry.file}"
            )
    unmapped = [c for c in contract.required_columns if c not in entry.columns and c not in names]
    if unmapped:
        problems.append(
            f"{entry.file}: table {table} lacks required column(s) {unmapped}; map them in "
            f"data.tables.{table}.columns (file columns: {', '.join(header.names)})"
        )
    return problems


def read_header(path: Path, entry: TableSettings) -> Header | None:
    """The header of a CSV (encoding, `skip_rows` title lines, blank lines, delimiter), an Excel sheet
    (by name or index) or a Parquet schema; None when there is no header row."""
    if entry.format == "parquet":
        return Header([_nfkc(name) for name in pq.read_schema(path).names])
    if entry.format == "excel":
        rows = _excel_rows(path, entry)
        first = next((row for row in rows if any(cell not in (None, "") for cell in row)), None)
        return None if first is None else Header([_nfkc(str(cell or "")) for cell in first])
    with path.open(encoding=_encoding(entry), newline="") as handle:
        consumed = 0
        for line in itertools.chain(itertools.islice(handle, entry.skip_rows), handle):
            consumed += 1
            if consumed > entry.skip_rows and line.strip():
                break
        else:
            return None
    delimiter = entry.delimiter or max(CSV_DELIMITERS, key=line.count)
    names = next(csv.reader([line], delimiter=delimiter))
    return Header([_nfkc(name) for name in names], delimiter, consumed)


def count_rows(path: Path, entry: TableSettings, header: Header, limit: int) -> int:
    """Data rows of a table file, counted up to `limit` (lines of a CSV: quoted line breaks count)."""
    if entry.format == "parquet":
        return pq.ParquetFile(path).metadata.num_rows
    if entry.format == "excel":
        return sum(1 for _ in itertools.islice(_excel_rows(path, entry), limit)) - 1
    with path.open("rb") as handle:
        lines = sum(1 for line in itertools.islice(handle, header.lines_before_data + limit) if line.strip())
    return max(lines - header.lines_before_data, 0)


def earliest_event_date(path: Path, entry: TableSettings, header: Header, table: str) -> pd.Timestamp | None:
    """The earliest event date among the first `SAMPLE_ROWS` rows of an event table, parsed with its
    configured formats; None when the sample gives no date (step 01 judges the rest)."""
    column = next(c for c in TABLES[table].columns if c.type in ("date", "datetime") and c.required)
    source = entry.columns.get(column.name, column.name)
    wanted = file_columns(source)
    if len(wanted) != 1 or _nfkc(wanted[0]) not in header.names:
        return None
    name = _nfkc(wanted[0])
    try:
        values = _sample_column(path, entry, header, name)
    except (ValueError, UnicodeDecodeError):  # ragged or badly encoded rows: step 01 names them
        return None
    formats = (source.formats if isinstance(source, ColumnSource) else None) or (
        entry.date_format if column.type == "date" else entry.datetime_format
    )
    dates = _parse_dates(values, [formats] if isinstance(formats, str) else formats or [])
    return None if dates.isna().all() else dates.min()


def _sample_column(path: Path, entry: TableSettings, header: Header, name: str) -> pd.Series:
    """The first `SAMPLE_ROWS` values of one column, as stored."""
    if entry.format == "parquet":
        batches = pq.ParquetFile(path).iter_batches(batch_size=SAMPLE_ROWS, columns=[name])
        batch = next(batches, None)
        return pd.Series(dtype=object) if batch is None else batch.column(0).to_pandas()
    if entry.format == "excel":
        rows = list(itertools.islice(_excel_rows(path, entry), SAMPLE_ROWS + 1))
        position = header.names.index(name)
        return pd.Series([row[position] if position < len(row) else None for row in rows[1:]])
    return pd.read_csv(
        path, encoding=_encoding(entry), sep=header.delimiter, skiprows=header.lines_before_data,
        header=None, names=header.names, usecols=[name], nrows=SAMPLE_ROWS, dtype=str,
        on_bad_lines="skip", skip_blank_lines=True,
    )[name]  # fmt: skip


def _parse_dates(values: pd.Series, formats: list[str]) -> pd.Series:
    """Dates parsed with the first matching format per value (ISO 8601 without formats)."""
    if pd.api.types.is_datetime64_any_dtype(values):
        return values.dt.tz_localize(None) if values.dt.tz is not None else values
    text = values.astype("string")
    parsed = pd.Series(pd.NaT, index=values.index, dtype="datetime64[ns]")
    for fmt in [SPECIAL_FORMATS.get(f, f) for f in formats if f != "excel"] or ["ISO8601"]:
        parsed = parsed.fillna(pd.to_datetime(text, format=fmt, errors="coerce"))
    return parsed


def _excel_rows(path: Path, entry: TableSettings) -> Iterator[list[Any]]:
    """The rows of the configured sheet below `skip_rows` (a sheet that is not there: `KeyError`)."""
    workbook = CalamineWorkbook.from_path(str(path))
    names = workbook.sheet_names
    sheet = names[entry.sheet] if isinstance(entry.sheet, int) and entry.sheet < len(names) else entry.sheet
    if sheet not in names:
        raise KeyError(f"sheets: {', '.join(names)}")
    rows = workbook.get_sheet_by_name(str(sheet)).iter_rows()
    return itertools.islice(rows, entry.skip_rows, None)


def _encoding(entry: TableSettings) -> str:
    plain = entry.encoding.lower().replace("_", "-")
    return "utf-8-sig" if plain in ("utf-8", "utf8") else entry.encoding


def _nfkc(name: str) -> str:
    return unicodedata.normalize("NFKC", name).strip()
