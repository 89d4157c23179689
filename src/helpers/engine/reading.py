"""Reading raw exports into the engine: the engine-specific half of step 01 (issue 14).

Step 01's checks, quarantine and profiling are SQL run through `SqlEngine` (`queries/audit/`); what
stays engine-specific lives here: the DuckDB work database (`Workspace`), reading a CSV (DuckDB's
strict reader, and Python's csv module for a file it refuses: ragged or truncated rows kept and
named), an Excel sheet (python-calamine) or a Parquet file as a relation of text columns with the
1-based data-row number, stream-transcoding a non-UTF-8 CSV, finding the byte that does not decode,
and turning an engine error into one line without row contents.

`read_source` gives the checks a relation and retries a CSV row by row when the strict reader
refuses it for anything but a real decoding error, so one bad row never loses the file. With another
engine configured for the checks (`engine.name: spark`), the relation is handed over as Parquet in the
work folder (`Workspace.hand_over`): reading stays here, the checks run there.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import shutil
import tempfile
import unicodedata
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from datetime import date, datetime
from pathlib import Path
from typing import Any, NoReturn, Protocol, TypeVar

import duckdb
import numpy as np
import pyarrow
import pyarrow.compute as pc
import pyarrow.csv as pyarrow_csv
import pyarrow.parquet as pq
from python_calamine import CalamineWorkbook

from helpers.core.tables import Table
from helpers.engine.base import DuckDBEngine, SqlEngine, connect_configured


class TableSource(Protocol):
    """Where and how one canonical table is read (`helpers.audit.contract.TableSource` fills it)."""

    table: str
    path: Path | None
    format: str
    encoding: str
    sheet: str | int
    skip_rows: int
    delimiter: str | None
    contract: Table


T = TypeVar("T")
SOURCE_ROW = "__source_row"
READ_PROBLEM = "__read_problem"
CSV_DELIMITERS = (",", "\t", ";", "|")
# UTF-8 lead bytes of U+FF00-U+FF7F (the full-width ASCII forms among them) and the ideographic space.
WIDE_BYTES = (b"\xef\xbc", b"\xef\xbd", b"\xe3\x80\x80")
# UTF-8 of the space separators DuckDB's `trim` strips besides the ASCII space (Unicode category Zs:
# U+00A0, U+1680, U+2000-U+200A, U+202F, U+205F, U+3000). `SPACE_BYTES` are their first bytes (E2 80
# also starts other punctuation, such as the curly quotes), `SPACE_PATTERN` the exact sequences.
SPACE_BYTES = (b"\xc2\xa0", b"\xe1\x9a\x80", b"\xe2\x80", b"\xe2\x81\x9f", b"\xe3\x80\x80")
SPACE_PATTERN = re.compile(rb"\xc2\xa0|\xe1\x9a\x80|\xe2\x80[\x80-\x8a\xaf]|\xe2\x81\x9f|\xe3\x80\x80")


class DataContractError(ValueError):
    """A raw export breaks the data contract in a way no row-level quarantine can fix."""


class Workspace:
    """Where step 01 reads and checks: a DuckDB engine that reads the exports (`reader`), whose work
    tables live in memory up to `memory_limit` and spill to a temporary folder beyond it, and the
    engine the checks, quarantine and profiling run on (`engine`). With `engine.name: duckdb` (the
    default) both are the same DuckDB engine; with another engine (`settings.engine`, e.g. Spark) each
    export is handed over as Parquet in the work folder (`hand_over`) and that engine materializes its
    work tables there too. The folder, with any transcoded or re-read files, is removed on close.

    In-memory tables cost about half the CPU of an on-disk work database to write and read (100k
    demo transactions: 1.5 vs 3.9 CPU s to create, 1.3 vs 2.9 s to copy out)."""

    def __init__(self, parent: Path, memory_limit: str, threads: int, settings: Any = None) -> None:
        """`settings`: the run's WorkbenchConfig, whose `engine` section names the engine of the checks
        (None: DuckDB)."""
        self.directory = Path(tempfile.mkdtemp(prefix=".work-", dir=parent))
        self.reader = DuckDBEngine(threads=threads, memory_limit=memory_limit)
        self.reader.query(f"SET temp_directory = {literal(str(self.directory / 'spill'))}")
        self.reader.query("SET preserve_insertion_order = true")
        self.engine: SqlEngine = self.reader
        if settings is not None and settings.engine.name != self.reader.name:
            self.engine = connect_configured(settings, work_dir=self.directory / "engine")

    def hand_over(self, table: str, relation: SourceRelation) -> SourceRelation:
        """`relation` as the checks' engine sees it: unchanged when that is the reader; else its text
        columns, `__source_row` and `__read_problem` written to Parquet in the work folder by the
        reader (a strict CSV read fails here, as a DuckDB error) and registered as `source_<table>`."""
        if self.engine is self.reader:
            return relation
        target = self.directory / f"{table}.source.parquet"
        columns = ", ".join(f"CAST({quote(name)} AS VARCHAR) AS {quote(name)}" for name in relation.names)
        self.reader.write_parquet(
            f"SELECT {relation.row_number} AS {SOURCE_ROW}, {columns}, "
            f"CAST({relation.read_problem} AS VARCHAR) AS {READ_PROBLEM} FROM {relation.numbered}",
            target,
        )
        name = f"source_{table}"
        self.engine.register(name, target)
        return replace(
            relation, relation=name, numbered=name, row_number=SOURCE_ROW, read_problem=READ_PROBLEM
        )

    def create_by_position(self, table: str, statement: str, **params: Any) -> bool:
        """Run `statement`, a CREATE TABLE `table` AS over the parallel scan of a strict CSV
        (`SourceRelation.relation`) with `source_row` 0, and number the rows by position
        (`rowid + 1`): only on DuckDB, and only when its plan stores the rows in the order the scan
        reads them (a batch insert: the scan's batches are stored in file order), else nothing is run
        and False returned (the caller reads the numbered relation, single-threaded). The 1M
        transactions' row checks on two threads: 11-12.7 s wall / 21-24 CPU s instead of 18-21 s."""
        if self.engine is not self.reader:
            return False
        # DuckDB turns an IN list of six or more constants (a boolean column's words) into a hash join,
        # whose plan no longer stores the scan's rows in file order; for this statement only, the
        # comparisons stay comparisons (they cost about the same).
        self.reader.query("SET disabled_optimizers = 'in_clause'")
        try:
            plan = self.reader.query(f"EXPLAIN (FORMAT json) {statement}", **params)["explain_value"].iloc[0]
            if json.loads(plan)[0]["name"] != "BATCH_CREATE_TABLE_AS":
                return False
            self.reader.query(statement, **params)
        finally:
            self.reader.query("RESET disabled_optimizers")
        self.reader.query(f"UPDATE {table} SET source_row = rowid + 1")
        return True

    def in_file_order(self, table: str) -> bool:
        """Whether work table `table` holds its rows in file order, numbered 1, 2, ... (`source_row`)
        without gaps, so that a scan of it (a filter, no join) writes them in file order unsorted: only
        on DuckDB, whose tables keep insertion order (`preserve_insertion_order`, `rowid`). Checked on
        the table (one pass over two integers): one read by the tolerant reader has its ragged rows
        last and is not."""
        if self.engine is not self.reader:
            return False
        found = self.reader.query(
            f"SELECT count(*) FILTER (WHERE source_row <> rowid + 1) AS misplaced FROM {table}"
        )
        return int(found["misplaced"].iloc[0]) == 0

    def release(self, table: str) -> None:
        """Drop work table `table` once it is no longer needed, so that the next one has the memory:
        on DuckDB (with another engine, that engine's work tables live in the work folder)."""
        if self.engine is self.reader:
            self.reader.query(f"DROP TABLE IF EXISTS {quote(table)}")

    def close(self) -> None:
        if self.engine is not self.reader:
            self.engine.close()
        self.reader.close()
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
    for piece, _ in whole_line_chunks(path, chunk_bytes):
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
    return None


def whole_line_chunks(path: Path, chunk_bytes: int) -> Iterator[tuple[bytes, bool]]:
    """A file's bytes a chunk of whole lines at a time (each cut after its last newline; the file's
    last line may lack one), each with whether it is the last chunk."""
    carry = b""
    with path.open("rb") as handle:
        while True:
            block = handle.read(chunk_bytes)
            data = carry + block
            # Cut after the last newline: 0x0A is never part of a multi-byte UTF-8 or GBK character.
            cut = data.rfind(b"\n") + 1 if block else len(data)
            piece, carry = data[:cut], data[cut:]
            yield piece, not block
            if not block:
                return


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


@dataclass(frozen=True)
class ByteMarks:
    """What a byte scan of a UTF-8 file found (`scan_bytes`): whether it may hold a full-width ASCII
    form or the ideographic space (`wide`), a space separator other than the ASCII space (`spaced`),
    and a field that starts or ends with an ASCII space (`edged`). Never False when one is there."""

    wide: bool
    spaced: bool
    edged: bool = True


def scan_bytes(path: Path, chunk_bytes: int = 1 << 24, delimiter: str | None = None) -> ByteMarks:
    """Scan a UTF-8 file once for the characters that make step 01 translate or trim a value beyond
    its cheap per-value tests: full-width forms (`wide`; True also for a few neighbours of those
    characters), non-ASCII space separators (`spaced`; exact) and, given the one-byte `delimiter`, an
    ASCII space next to a field boundary (`edged`: beside the delimiter, a double quote, a line break
    or the file's ends; True also for such a space inside a quoted field), also when one is split
    across read chunks. The lead bytes are looked for first (a single-byte search), the longer
    sequences only in chunks that have them; the scan stops once all three are found."""
    boundary = delimiter.encode() if delimiter is not None else b""
    wide = spaced = False
    edged = len(boundary) != 1  # without a known one-byte delimiter, any field may have an edge space
    bounds = np.zeros(256, dtype=bool)
    bounds[list(boundary + b'"\r\n')] = True
    carry = b"\n"  # the file starts a line; the last two bytes read are carried into the next chunk
    with path.open("rb") as handle:
        while not (wide and spaced and edged) and (block := handle.read(chunk_bytes)):
            data = carry + block
            wide = wide or any(marker[:1] in data and marker in data for marker in WIDE_BYTES)
            spaced = spaced or (
                any(marker[:1] in data and marker in data for marker in SPACE_BYTES)
                and SPACE_PATTERN.search(data) is not None
            )
            edged = edged or _edge_space(data, bounds)
            carry = data[-2:]
        else:
            edged = edged or _edge_space(carry + b"\n", bounds)  # the file ends a line
    return ByteMarks(wide, spaced, edged)


def _edge_space(data: bytes, bounds: np.ndarray) -> bool:
    """Whether an ASCII space in `data[1:-1]` has a byte of `bounds` (a 256-entry mask) before or
    after it (the first and last byte are only neighbours: the last is looked at with the next chunk)."""
    array = np.frombuffer(data, dtype=np.uint8)
    spaces = np.flatnonzero(array[1:-1] == 0x20) + 1
    return bool(bounds[array[spaces - 1]].any() or bounds[array[spaces + 1]].any())


@dataclass(frozen=True)
class SourceRelation:
    """An export as the engine sees it: a relation, its column names, and a numbered variant.

    `numbered` exposes `row_number` (the 1-based data row in the file) for re-reading rows;
    `read_problem` is an SQL expression over `numbered`: why a row could not be read whole
    (ragged, truncated), NULL for a sound row. `status` says whether the file was there at all.
    `may_be_wide` is False when the file holds no full-width form at all (its values need no
    translation, and no row needs the per-row test); `may_be_spaced` is False when it holds no space
    separator but the ASCII space (`trim` then changes only values that start or end with one);
    `may_be_edged` is False when no field starts or ends with an ASCII space.
    `csv` is the UTF-8 file and its layout when DuckDB's strict reader reads it (`rejected_rows`).
    """

    relation: str
    names: list[str]
    numbered: str
    row_number: str
    read_problem: str = "NULL"
    status: str = "loaded"
    may_be_wide: bool = True
    may_be_spaced: bool = True
    may_be_edged: bool = True
    csv: CsvFile | None = None


@dataclass(frozen=True)
class CsvLayout:
    """Where the data of a CSV starts: the header's column names, the delimiter and the physical lines
    before the first data row (title rows, blank lines and the header)."""

    names: list[str]
    delimiter: str
    skip_lines: int


@dataclass(frozen=True)
class CsvFile:
    """A UTF-8 CSV as DuckDB's strict reader reads it: the file (transcoded when the export is not
    UTF-8) and its layout."""

    path: Path
    layout: CsvLayout


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


def tolerant_csv(path: Path, layout: CsvLayout, target: Path, block_bytes: int = 1 << 24) -> int:
    """Parse a UTF-8 CSV into Parquet keeping every data row, when DuckDB's strict reader refuses it.

    Arrow's CSV reader parses the file (in C++, one block of `block_bytes` at a time) and hands each
    row with too few or too many fields to Python, which pads or cuts it to the header and names it as
    ragged; a last row cut inside a quoted field is named as truncated. Each row gets `__source_row`
    (the 1-based data row; blank lines are skipped and not counted, as DuckDB does) and
    `__read_problem`. Returns the data rows written.
    """
    width = len(layout.names)
    schema = pyarrow.schema(
        [(name, pyarrow.string()) for name in layout.names]
        + [(SOURCE_ROW, pyarrow.int64()), (READ_PROBLEM, pyarrow.string())]
    )
    ragged: list[tuple[int, list[str]]] = []  # (data row, fields) in file order

    def set_aside(row: pyarrow_csv.InvalidRow) -> str:
        fields = next(csv.reader(io.StringIO(row.text, newline=""), delimiter=layout.delimiter), [])
        ragged.append((row.number, fields))
        return "skip"

    with path.open("rb") as handle:
        for _ in range(layout.skip_lines):
            handle.readline()
        reader = pyarrow_csv.open_csv(
            handle,
            read_options=pyarrow_csv.ReadOptions(
                column_names=layout.names, use_threads=False, block_size=block_bytes
            ),
            parse_options=pyarrow_csv.ParseOptions(
                delimiter=layout.delimiter, newlines_in_values=True, invalid_row_handler=set_aside
            ),
            convert_options=pyarrow_csv.ConvertOptions(
                column_types=dict.fromkeys(layout.names, pyarrow.string()),
                null_values=[""],
                strings_can_be_null=True,
            ),
        )
        with pq.ParquetWriter(target, schema, compression="none", use_dictionary=False) as writer:
            numbering = _GoodRows(ragged)
            last: pyarrow.RecordBatch | None = None  # held back: its last row may be the truncated one
            for batch in reader:
                if batch.num_rows:
                    numbered = batch.append_column(SOURCE_ROW, numbering.next(batch.num_rows))
                    if last is not None:
                        writer.write_batch(last)
                    last = numbered.append_column(
                        READ_PROBLEM, pyarrow.nulls(batch.num_rows, pyarrow.string())
                    )
            truncated = _ends_inside_quotes(path)
            problems = [f"ragged row: {len(fields)} fields, the header has {width}" for _, fields in ragged]
            if truncated and (last is None or (ragged and ragged[-1][0] > last[SOURCE_ROW][-1].as_py())):
                problems[-1] = TRUNCATED
            elif truncated and last is not None:
                marked = [None] * (last.num_rows - 1) + [TRUNCATED]
                last = last.set_column(width + 1, READ_PROBLEM, pyarrow.array(marked, pyarrow.string()))
            if last is not None:
                writer.write_batch(last)
            if ragged:
                columns = list(zip(*[(fields + [""] * width)[:width] for _, fields in ragged], strict=True))
                arrays = [
                    pc.if_else(pc.equal(a := pyarrow.array(c, pyarrow.string()), ""), None, a)
                    for c in columns
                ]
                arrays += [
                    pyarrow.array([number for number, _ in ragged], pyarrow.int64()),
                    pyarrow.array(problems),
                ]
                writer.write_table(pyarrow.Table.from_arrays(arrays, schema=schema))
    return numbering.rows + len(ragged)


TRUNCATED = "truncated last row: the file ends inside a quoted field"


class _GoodRows:
    """Data-row numbers of the rows Arrow's reader keeps, in order: every number that is not a ragged
    row's (`ragged` grows while the file is read; a ragged row is reported before the rows after it)."""

    def __init__(self, ragged: list[tuple[int, list[str]]]) -> None:
        self.ragged = ragged
        self.skipped = 0  # ragged rows passed so far
        self.number = 1  # the next data row number
        self.rows = 0  # rows numbered

    def next(self, count: int) -> pyarrow.Array:
        numbers = np.empty(count, dtype=np.int64)
        done = 0
        while done < count:
            upcoming = self.ragged[self.skipped][0] if self.skipped < len(self.ragged) else None
            take = count - done if upcoming is None else min(count - done, upcoming - self.number)
            numbers[done : done + take] = np.arange(self.number, self.number + take)
            done += take
            self.number += take
            if done < count:  # the next number is a ragged row's
                self.number += 1
                self.skipped += 1
        self.rows += count
        return pyarrow.array(numbers)


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
    rows = [row for row in cells if any(value is not None and value != "" for value in row)]
    if not rows:
        return None
    header = unique_names([_cell_text(value) for value in rows[0]])
    width = len(header)
    data = [row if len(row) == width else (row + [None] * width)[:width] for row in rows[1:]]
    # Columns as numpy views of one object matrix (at 1M people 0.16 s, where zip(*rows) took 1.0 s).
    matrix = np.empty((len(data), width), dtype=object)
    if data:
        matrix[:] = data
    arrays = {name: _column_text(matrix[:, i]) for i, name in enumerate(header)}
    arrays[SOURCE_ROW] = pyarrow.array(range(1, len(data) + 1), pyarrow.int64())
    return pyarrow.table(arrays)


def _column_text(values: np.ndarray) -> pyarrow.Array:
    """A worksheet column as text (`_cell_text`). A column of text cells and blanks is converted by
    Arrow at once, empty text as null; any other cell makes it convert cell by cell."""
    try:
        text = pyarrow.array(values, pyarrow.string())
    except (pyarrow.ArrowTypeError, pyarrow.ArrowInvalid):
        return pyarrow.array([_cell_text(value) for value in values], pyarrow.string())
    return pc.if_else(pc.equal(text, ""), pyarrow.scalar(None, pyarrow.string()), text)


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
    marks = scan_bytes(path, delimiter=layout.delimiter)
    if tolerant:
        target = work_dir / f"{source.table}.rows.parquet"
        try:
            tolerant_csv(path, layout, target)
        except UnicodeDecodeError:
            raise_encoding_error(source)
        relation = f"read_parquet({literal(str(target))})"
        return SourceRelation(
            relation,
            layout.names,
            relation,
            SOURCE_ROW,
            read_problem=READ_PROBLEM,
            may_be_wide=marks.wide,
            may_be_spaced=marks.spaced,
            may_be_edged=marks.edged,
        )
    relation = _strict_csv(path, layout.names, layout.delimiter, layout.skip_lines)
    return SourceRelation(
        relation,
        layout.names,
        f"{relation} WITH ORDINALITY",
        "ordinality",
        may_be_wide=marks.wide,
        may_be_spaced=marks.spaced,
        may_be_edged=marks.edged,
        csv=CsvFile(path, layout),
    )


def _strict_csv(path: Path, names: list[str], delimiter: str, skip_lines: int, number: bool = False) -> str:
    """DuckDB's strict reader over a UTF-8 CSV below `skip_lines` lines, every column as text
    (`number`: a first BIGINT column `__source_row` before `names`)."""
    columns = ", ".join(
        [
            *([f"{literal(SOURCE_ROW)}: 'BIGINT'"] if number else []),
            *(f"{literal(n)}: 'VARCHAR'" for n in names),
        ]
    )
    return (
        f"read_csv({literal(str(path))}, header = false, skip = {skip_lines}, "
        f"columns = {{{columns}}}, delim = {literal(delimiter)}, quote = '\"', escape = '\"', "
        "auto_detect = false, strict_mode = true)"
    )


def data_lines(
    path: Path, skip_lines: int, wanted: np.ndarray, chunk_bytes: int = 1 << 26
) -> list[tuple[int, bytes]]:
    """(data row, line) for the 1-based data rows `wanted` (sorted, not empty) of a UTF-8 CSV, counted
    as DuckDB's strict reader counts them when no quoted field spans lines: the lines below
    `skip_lines`, blank lines ("\n", "\r\n") not counted; each line without its "\n". One vectorised
    pass over the newlines, `chunk_bytes` of the file memory-mapped at a time (no copy of its bytes:
    reading it in chunks took 2.1 of 3.4 CPU s on a 1.4 GB file), then the wanted lines are read by
    their offsets. A number past the last line is left out."""
    size = path.stat().st_size
    spans: list[tuple[int, int, int]] = []  # (data row, first byte, end byte)
    line = data_row = 0  # physical lines and data rows before the window
    start = 0  # where the window's first line starts
    for offset in range(0, size, chunk_bytes):
        low = max(0, offset - 1)  # one byte before the window: a one-byte line ending at its start
        window = np.memmap(
            path, dtype=np.uint8, mode="r", offset=low, shape=(min(size, offset + chunk_bytes) - low,)
        )
        ends = np.flatnonzero(window[offset - low :] == 0x0A) + offset
        if offset + chunk_bytes >= size and window[-1] != 0x0A:  # a last line without its newline
            ends = np.append(ends, size)
        if len(ends):
            starts = np.concatenate(([start], ends[:-1] + 1))
            start = int(ends[-1]) + 1
            lengths = ends - starts
            carriage = window[np.maximum(ends - 1 - low, 0)] == 0x0D  # a one-byte line's byte
            counted = (lengths > 1) | ((lengths == 1) & ~carriage)
            counted[: max(0, skip_lines - line)] = False
            data = np.flatnonzero(counted)  # the window's data lines: rows data_row + 1, + 2, ...
            first, last = np.searchsorted(wanted, [data_row + 1, data_row + len(data) + 1])
            chosen = wanted[first:last]
            lines = data[chosen - data_row - 1]
            spans += zip(chosen.tolist(), starts[lines].tolist(), ends[lines].tolist(), strict=True)
            line += len(ends)
            data_row += len(data)
        del window  # unmapped: the file's pages do not stay in this process's memory
    with path.open("rb") as handle:
        return [(number, os.pread(handle.fileno(), end - begin, begin)) for number, begin, end in spans]


def rejected_rows(
    workspace: Workspace, relation: SourceRelation, rows: str, mapped_columns: str, canonical: list[str]
) -> SourceRelation:
    """`relation` with `numbered` holding only the rows of work table `rows` with problems (what the
    quarantine shows of the export), so that their original text is not read again from the whole file.

    For a CSV read by DuckDB's strict reader on DuckDB: the lines of those rows (`data_lines`) go to a
    small CSV in the work folder, each behind its row number, read with the same reader. Each line must
    give back its row: the hash of its canonical columns (`mapped_columns`, `canonical`) equals the work
    table's `row_hash` and the lines must parse, else (a quoted field spanning lines, a line ending
    DuckDB reads otherwise) `relation` is returned as it is and the whole file is read again."""
    if relation.csv is None or workspace.engine is not workspace.reader:
        return relation
    reader = workspace.reader
    rejected = reader.query(f"SELECT source_row FROM {rows} WHERE problems <> '' ORDER BY source_row")
    wanted = rejected["source_row"].to_numpy(np.int64)
    layout = relation.csv.layout
    found = data_lines(relation.csv.path, layout.skip_lines, wanted) if len(wanted) else []
    if len(found) != len(wanted):
        return relation
    target = workspace.directory / f"{rows}.rejected.csv"
    separator = layout.delimiter.encode()
    target.write_bytes(b"".join(b"%d%s%s\n" % (number, separator, text) for number, text in found))
    subset = _strict_csv(target, layout.names, layout.delimiter, 0, number=True)
    hashed = ", ".join(f"s.{quote(name)}" for name in canonical)
    try:
        matched = reader.query(
            f"SELECT count(*) AS rows FROM (SELECT {SOURCE_ROW}, {mapped_columns} FROM {subset}) AS s "
            f"JOIN {rows} AS r ON r.source_row = s.{SOURCE_ROW} AND r.row_hash = hash({hashed})"
        )
    except duckdb.Error:  # a line cut out of a row spanning lines does not parse
        return relation
    if int(matched["rows"].iloc[0]) != len(wanted):
        return relation
    return replace(relation, numbered=subset, row_number=SOURCE_ROW)


def read_source(
    workspace: Workspace, source: TableSource, build: Callable[[SourceRelation], T]
) -> tuple[SourceRelation, T]:
    """`build` (the checks) over the export's relation as the workspace's engine sees it
    (`Workspace.hand_over`), and that relation. A CSV the strict reader refuses for anything but a real
    decoding error is read again row by row (`tolerant_csv`) and `build` runs on that; any other read
    failure stops with one line naming the file (`DataContractError`)."""
    reader, work_dir = workspace.reader, workspace.directory
    try:
        relation = workspace.hand_over(source.table, source_relation(reader, source, work_dir))
        return relation, build(relation)
    except duckdb.Error as error:
        if source.format != "csv":
            _raise_read_error(source, error)
        message = str(error).lower()
        if ("unicode" in message or "utf" in message) and find_encoding_error(source.path, source.encoding):
            raise_encoding_error(source)
    try:
        relation = workspace.hand_over(source.table, source_relation(reader, source, work_dir, tolerant=True))
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
