"""Reading raw exports into the engine: the engine-specific half of step 01 (issue 14).

Step 01's checks, quarantine and profiling are SQL run through `SqlEngine` (`queries/audit/`); what
stays engine-specific lives here: the DuckDB work database (`Workspace`), reading a CSV (DuckDB's
strict reader, and Python's csv module for a file it refuses: ragged or truncated rows kept and
named), an Excel sheet (python-calamine) or a Parquet file as a relation of text columns with the
1-based data-row number, stream-transcoding a non-UTF-8 CSV, finding the byte that does not decode,
and turning an engine error into one line without row contents.

`read_source` gives the checks a relation and retries a CSV row by row when the strict reader
refuses it for anything but a real decoding error, so one bad row never loses the file.
"""

from __future__ import annotations

import csv
import gc
import itertools
import re
import shutil
import tempfile
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

import duckdb
import pyarrow
import pyarrow.compute as pc
import pyarrow.parquet as pq
from python_calamine import CalamineWorkbook

from helpers.engine.base import DuckDBEngine

if TYPE_CHECKING:
    from helpers.audit.contract import TableSource

T = TypeVar("T")
SOURCE_ROW = "__source_row"
READ_PROBLEM = "__read_problem"
CSV_DELIMITERS = (",", "\t", ";", "|")
# UTF-8 lead bytes of U+FF00-U+FF7F (the full-width ASCII forms among them) and the ideographic space.
WIDE_BYTES = (b"\xef\xbc", b"\xef\xbd", b"\xe3\x80\x80")


class DataContractError(ValueError):
    """A raw export breaks the data contract in a way no row-level quarantine can fix."""


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


def quote(identifier: str) -> str:
    """An SQL identifier in double quotes."""
    return '"' + identifier.replace('"', '""') + '"'


def literal(text: str) -> str:
    """An SQL string literal."""
    return "'" + text.replace("'", "''") + "'"


# ---------------------------------------------------------------- text files


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


def raise_encoding_error(source: TableSource) -> NoReturn:
    """Stop with the file, the table, the encoding and where the first undecodable byte is."""
    found = find_encoding_error(source.path, source.encoding)
    # The first undecodable byte only: the bytes around it may be part of a name.
    where = f" at byte offset {found[0]} (line {found[1]}, byte 0x{found[2][0]:02X})" if found else ""
    raise DataContractError(
        f"{source.path}: cannot decode table {source.table} as {source.encoding}{where}. "
        f"Set data.tables.{source.table}.encoding to the file's real encoding (e.g. gbk, utf-8-sig)."
    )


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
                raise_encoding_error(source)
            except LookupError as error:
                raise DataContractError(
                    f"{source.path}: unknown encoding {source.encoding!r} "
                    f"in data.tables.{source.table}.encoding."
                ) from error
            if not block:
                return


def has_wide_bytes(path: Path, chunk_bytes: int = 1 << 24) -> bool:
    """Whether a UTF-8 file may hold a full-width ASCII form or the ideographic space (a byte scan;
    True also for a few neighbours of those characters, never False when one is there, also when one
    is split across read chunks). The lead bytes are looked for first (a single-byte search), the
    two- and three-byte sequences only in chunks that have them."""
    carry = b""
    with path.open("rb") as handle:
        while block := handle.read(chunk_bytes):
            data = carry + block
            if any(marker[:1] in data and marker in data for marker in WIDE_BYTES):
                return True
            carry = data[-2:]
    return False


@dataclass(frozen=True)
class SourceRelation:
    """An export as the engine sees it: a relation, its column names, and a numbered variant.

    `numbered` exposes `row_number` (the 1-based data row in the file) for re-reading rows;
    `read_problem` is an SQL expression over `numbered`: why a row could not be read whole
    (ragged, truncated), NULL for a sound row. `status` says whether the file was there at all.
    `may_be_wide` is False when the file holds no full-width form at all (its values need no
    translation, and no row needs the per-row test).
    """

    relation: str
    names: list[str]
    numbered: str
    row_number: str
    read_problem: str = "NULL"
    status: str = "loaded"
    may_be_wide: bool = True


@dataclass(frozen=True)
class CsvLayout:
    """Where the data of a CSV starts: the header's column names, the delimiter and the physical lines
    before the first data row (title rows, blank lines and the header)."""

    names: list[str]
    delimiter: str
    skip_lines: int


def unique_names(names: list[Any]) -> list[str]:
    """Header names stripped, NFKC-normalized and made unique (a repeated name gets `_2`, `_3` ...)."""
    seen: dict[str, int] = {}
    unique = []
    for position, raw in enumerate(names):
        name = unicodedata.normalize("NFKC", str(raw or "")).strip() or f"column_{position + 1}"
        seen[name] = seen.get(name, 0) + 1
        unique.append(name if seen[name] == 1 else f"{name}_{seen[name]}")
    return unique


def csv_layout(path: Path, skip_rows: int, delimiter: str | None) -> CsvLayout | None:
    """Read the header of a UTF-8 CSV below `skip_rows` title lines (and any blank lines); None when
    the file has no header line. Without a configured delimiter the most frequent of `, \\t ; |` in
    the header line is used."""
    with path.open(encoding="utf-8-sig", newline="") as handle:
        for _ in range(skip_rows):
            handle.readline()
        consumed = skip_rows
        for line in handle:
            consumed += 1
            if line.strip():
                break
        else:
            return None
    chosen = delimiter or max(CSV_DELIMITERS, key=line.count)
    header = next(csv.reader([line], delimiter=chosen))
    return CsvLayout(unique_names(header), chosen, consumed)


def _ends_inside_quotes(path: Path, chunk_bytes: int = 1 << 24) -> bool:
    """True when a file holds an odd number of double quotes: its last field was cut inside quotes."""
    quotes = 0
    with path.open("rb") as handle:
        while block := handle.read(chunk_bytes):
            quotes += block.count(b'"')
    return quotes % 2 == 1


def tolerant_csv(path: Path, layout: CsvLayout, target: Path, batch_rows: int = 200_000) -> int:
    """Parse a UTF-8 CSV with Python's csv module into Parquet, keeping every data row.

    Used when DuckDB's strict reader refuses the file. Each row gets `__source_row` (1-based data row;
    blank lines are skipped, as DuckDB does) and `__read_problem`: a row with too few or too many
    fields is padded or cut to the header and named as ragged; a last row cut inside a quoted field
    is named as truncated. Returns the data rows written.

    Rows are read in batches and turned into columns by one transposition per batch (`zip`), empty
    fields to null by pyarrow: only ragged rows are handled one by one. The garbage collector is
    paused meanwhile: a batch holds 200,000 row lists, and its scans of them cost more than the parse.
    """
    collecting = gc.isenabled()
    gc.disable()
    try:
        return _tolerant_csv(path, layout, target, batch_rows)
    finally:
        if collecting:
            gc.enable()


def _tolerant_csv(path: Path, layout: CsvLayout, target: Path, batch_rows: int) -> int:
    width = len(layout.names)
    schema = pyarrow.schema(
        [(name, pyarrow.string()) for name in layout.names]
        + [(SOURCE_ROW, pyarrow.int64()), (READ_PROBLEM, pyarrow.string())]
    )
    rows = 0
    pending: list[pyarrow.Array] | None = None  # held back: the last batch may get the truncation note
    with path.open(encoding="utf-8-sig", newline="") as handle, pq.ParquetWriter(target, schema) as writer:
        for _ in range(layout.skip_lines):
            handle.readline()
        reader = csv.reader(handle, delimiter=layout.delimiter, strict=False)
        while True:
            chunk = list(itertools.islice(reader, batch_rows))
            if not chunk:
                break
            batch = [fields for fields in chunk if fields]
            if not batch:
                continue
            problems: list[str | None] = [None] * len(batch)
            for i in [i for i, fields in enumerate(batch) if len(fields) != width]:
                problems[i] = f"ragged row: {len(batch[i])} fields, the header has {width}"
                batch[i] = (batch[i] + [""] * width)[:width]
            arrays = [_text_array(values) for values in zip(*batch, strict=True)]
            arrays.append(pyarrow.array(range(rows + 1, rows + len(batch) + 1), pyarrow.int64()))
            arrays.append(pyarrow.array(problems, pyarrow.string()))
            rows += len(batch)
            if pending is not None:
                writer.write_table(pyarrow.Table.from_arrays(pending, schema=schema))
            pending = arrays
        if pending is not None:
            if _ends_inside_quotes(path):
                problems_column = pending[-1].to_pylist()
                problems_column[-1] = "truncated last row: the file ends inside a quoted field"
                pending[-1] = pyarrow.array(problems_column, pyarrow.string())
            writer.write_table(pyarrow.Table.from_arrays(pending, schema=schema))
        else:
            writer.write_table(schema.empty_table())
    return rows


def _text_array(values: tuple[str, ...]) -> pyarrow.Array:
    """CSV fields as a text column, empty fields as null."""
    array = pyarrow.array(values, pyarrow.string())
    return pc.if_else(pc.equal(array, ""), pyarrow.scalar(None, pyarrow.string()), array)


# ---------------------------------------------------------------- Excel


def _read_excel(source: TableSource) -> pyarrow.Table | None:
    """One worksheet as text columns plus `__source_row` (python-calamine: fast, no per-cell pandas
    conversion). The header is the first non-blank row below `skip_rows` rows; blank rows are skipped.
    None when the sheet has no header row."""
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
    cells = workbook.get_sheet_by_name(sheet).to_python(skip_empty_area=False)[source.skip_rows :]
    rows = [[_cell_text(value) for value in row] for row in cells]
    rows = [row for row in rows if any(value is not None for value in row)]
    if not rows:
        return None
    header = unique_names(rows[0])
    width = len(header)
    data = [(row + [None] * width)[:width] for row in rows[1:]]
    columns = list(zip(*data, strict=True)) if data else [() for _ in header]
    arrays = {
        name: pyarrow.array(list(values), pyarrow.string())
        for name, values in zip(header, columns, strict=True)
    }
    arrays[SOURCE_ROW] = pyarrow.array(range(1, len(data) + 1), pyarrow.int64())
    return pyarrow.table(arrays)


def _cell_text(value: Any) -> str | None:
    """A worksheet cell as the text a CSV export would hold: whole numbers without `.0` (ids Excel
    stored as numbers stay exact), dates in ISO form."""
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


# ---------------------------------------------------------------- relations


def empty_relation(names: list[str], status: str) -> SourceRelation:
    """A relation with `names` as text columns and no rows (an absent or empty export)."""
    columns = ", ".join(
        [*(f"NULL::VARCHAR AS {quote(name)}" for name in names), f"0::BIGINT AS {SOURCE_ROW}"]
    )
    relation = f"(SELECT {columns} WHERE false)"
    return SourceRelation(relation, names, relation, SOURCE_ROW, status=status)


def source_relation(
    engine: DuckDBEngine, source: TableSource, work_dir: Path, tolerant: bool = False
) -> SourceRelation:
    """A DuckDB relation over the export (all values as text); `tolerant` reads a CSV row by row in
    Python (ragged and truncated rows kept and named) instead of with DuckDB's strict reader."""
    canonical = source.contract.column_names
    if source.path is None:
        return empty_relation(canonical, "not configured")
    if not source.path.is_file():
        raise DataContractError(
            f"{source.path}: file for table {source.table} not found. Check data.raw_dir and "
            f"data.tables.{source.table}.file in the run config (leave the table out if there is none)."
        )
    if source.path.stat().st_size == 0:
        return empty_relation(canonical, "empty file")
    if source.format == "excel":
        sheet = _read_excel(source)
        if sheet is None:
            return empty_relation(canonical, "empty file")
        name = f"excel_{source.table}"
        engine.connection.register(name, sheet)
        return SourceRelation(name, sheet.column_names[:-1], name, SOURCE_ROW)
    if source.format == "parquet":
        path = literal(str(source.path))
        relation = f"read_parquet({path})"
        names = list(engine.query(f"DESCRIBE SELECT * FROM {relation}")["column_name"])
        numbered = f"read_parquet({path}, file_row_number = true)"
        return SourceRelation(relation, names, numbered, "file_row_number + 1")
    if source.format != "csv":
        raise DataContractError(
            f"data.tables.{source.table}.format is {source.format!r}; use csv, excel or parquet."
        )
    path = source.path
    if source.encoding.lower().replace("_", "-") not in ("utf-8", "utf8", "ascii"):
        path = work_dir / f"{source.table}.utf8.csv"
        if not path.exists():
            _transcode_to_utf8(source, path)
    try:
        layout = csv_layout(path, source.skip_rows, source.delimiter)
    except UnicodeDecodeError:
        raise_encoding_error(source)
    if layout is None:
        return empty_relation(canonical, "empty file")
    wide = has_wide_bytes(path)
    if tolerant:
        target = work_dir / f"{source.table}.rows.parquet"
        try:
            tolerant_csv(path, layout, target)
        except UnicodeDecodeError:
            raise_encoding_error(source)
        relation = f"read_parquet({literal(str(target))})"
        return SourceRelation(
            relation, layout.names, relation, SOURCE_ROW, read_problem=READ_PROBLEM, may_be_wide=wide
        )
    columns = ", ".join(f"{literal(name)}: 'VARCHAR'" for name in layout.names)
    relation = (
        f"read_csv({literal(str(path))}, header = false, skip = {layout.skip_lines}, "
        f"columns = {{{columns}}}, delim = {literal(layout.delimiter)}, quote = '\"', escape = '\"', "
        "auto_detect = false, strict_mode = true)"
    )
    return SourceRelation(
        relation, layout.names, f"{relation} WITH ORDINALITY", "ordinality", may_be_wide=wide
    )


def read_source(
    engine: DuckDBEngine, source: TableSource, work_dir: Path, build: Callable[[SourceRelation], T]
) -> tuple[SourceRelation, T]:
    """`build` (the checks) over the export's relation. A CSV the strict reader refuses for anything but
    a real decoding error is read again row by row (`tolerant_csv`) and `build` runs on that; any other
    read failure stops with one line naming the file (`DataContractError`)."""
    relation = source_relation(engine, source, work_dir)
    try:
        return relation, build(relation)
    except duckdb.Error as error:
        if source.format != "csv":
            _raise_read_error(source, error)
        message = str(error).lower()
        if ("unicode" in message or "utf" in message) and find_encoding_error(source.path, source.encoding):
            raise_encoding_error(source)
    relation = source_relation(engine, source, work_dir, tolerant=True)
    try:
        return relation, build(relation)
    except duckdb.Error as again:
        _raise_read_error(source, again)


def _raise_read_error(source: TableSource, error: duckdb.Error) -> NoReturn:
    message = str(error)
    if "unicode" in message.lower() or "utf" in message.lower():
        found = find_encoding_error(source.path, source.encoding) if source.format == "csv" else None
        if found or source.format != "csv":
            raise_encoding_error(source)
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
