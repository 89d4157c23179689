"""`python -m helpers init-config RAW_DIR -o my.yml`: propose a run config for a folder of exports.

Every CSV, Excel and Parquet file in the folder is sampled: encoding (UTF-8 with or without BOM,
else GB18030), delimiter, title rows above the header, and each column's content (phones, e-mails,
dates, amounts, integers, its distinct values). Columns are placed on canonical columns by header
synonyms (Chinese and English, `header_synonyms.yml`) and, for a required or identifier column no
header names, by content; each file gets the canonical table its columns fit best. Date formats
are the candidates that parse the column's values; value maps come from the known vocabularies;
event tables without a record key link by the identifier column they carry (`key_by`). The
config is written with comments for the analyst to review, listing the columns it could not place.
"""

from __future__ import annotations

import argparse
import codecs
import csv
import io
import re
import sys
import unicodedata
from collections import Counter
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from functools import cache, cached_property
from pathlib import Path
from typing import Any

import pandas as pd
import yaml
from python_calamine import CalamineWorkbook

from helpers.core.config import ConfigError, load_config
from helpers.core.paths import PROJECT_ROOT
from helpers.core.tables import TABLES, Table

SYNONYMS_FILE = Path(__file__).with_name("header_synonyms.yml")
SAMPLE_BYTES = 32 << 20  # read at most this much of a CSV
SAMPLE_ROWS = 200_000  # rows whose values are profiled, spread evenly over what was read
HEADER_SCAN_ROWS = 20  # title rows are looked for this far down
CONTENT_SHARE = 0.8  # share of a column's values that must fit a content kind
DATE_FORMATS = (
    "%Y-%m-%d %H:%M:%S",
    "%Y-%m-%d %H:%M",
    "%Y/%m/%d %H:%M:%S",
    "%Y/%m/%d %H:%M",
    "%Y年%m月%d日 %H:%M:%S",
    "%Y年%m月%d日 %H:%M",
    "%Y年%m月%d日",
    "%d/%m/%Y %H:%M:%S",
    "%d/%m/%Y %H:%M",
    "%m/%d/%Y %H:%M:%S",
    "%m/%d/%Y %H:%M",
    "%Y-%m-%d",
    "%Y/%m/%d",
    "%Y.%m.%d",
    "%d/%m/%Y",
    "%m/%d/%Y",
    "%d.%m.%Y",
)
PHONE = re.compile(r"(\+?86|0086)?[-\s]?0?\(?\d{2,4}\)?[-\s]?\d{3,4}[-\s]?\d{3,4}(([-转]|ext\.?)\d{1,6})?")
EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[a-z]{2,}")
AMOUNT = re.compile(r"-?[¥￥$]?-?\d{1,3}(,\d{3})*(\.\d+)?元?|-?[¥￥$]?-?\d+(\.\d+)?元?")
INTEGER = re.compile(r"-?\d+")
DATE_LIKE = re.compile(r"\d{1,4}[-/.年]\d{1,2}[-/.月]\d{1,4}|\d{8}$|\d{5}(\.\d+)?$")


@dataclass
class Sheet:
    """A sampled export: how it is read and its data rows as text (None for an empty cell)."""

    path: Path
    format: str
    header: list[str]
    rows: list[list[str | None]]
    encoding: str | None = None
    delimiter: str | None = None
    sheet: str | None = None
    skip_rows: int = 0

    @cached_property
    def kinds(self) -> dict[str, dict[str, float]]:
        """Content kinds per column (see `content_kinds`)."""
        return {column: content_kinds(self.values(column)[:1000]) for column in self.header}

    def values(self, column: str) -> list[str]:
        index = self.header.index(column)
        return [row[index] for row in self.rows if index < len(row) and row[index] not in (None, "")]


@dataclass
class Proposal:
    """What init-config proposes for one file."""

    sheet: Sheet
    table: Table
    score: float
    columns: dict[str, str | dict[str, Any]]
    key_by: str = "record"
    values: dict[str, dict[str, str]] = field(default_factory=dict)
    date_formats: list[str] = field(default_factory=list)
    datetime_formats: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def main(argv: list[str] | None = None) -> int:
    """Write the proposed config; exit 0, 2 for unreadable input (one line on stderr)."""
    parser = argparse.ArgumentParser(
        prog="python -m helpers init-config", description=__doc__.splitlines()[0]
    )
    parser.add_argument("raw_dir", help="folder with the exports (CSV, Excel, Parquet)")
    parser.add_argument("-o", "--output", required=True, help="config file to write")
    args = parser.parse_args(argv)
    raw_dir = Path(args.raw_dir)
    try:
        text = propose_config(raw_dir)
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    output = Path(args.output)
    output.write_text(text, encoding="utf-8")
    try:
        load_config(output)
    except ConfigError as error:  # the proposal must always be a valid config
        print(f"error: the proposed config does not validate: {error}", file=sys.stderr)
        return 1
    print(f"wrote {output}: review every mapping (comments mark guesses and columns not placed)")
    return 0


def propose_config(raw_dir: Path) -> str:
    """The commented YAML config proposed for the exports in `raw_dir`."""
    files = sorted(
        p
        for p in raw_dir.iterdir()
        if p.is_file() and p.suffix.lower() in {".csv", ".txt", ".xlsx", ".xls", ".parquet"}
    )
    if not files:
        raise ValueError(f"{raw_dir}: no CSV, Excel or Parquet files found")
    proposals = assign_tables([read_sheet(path) for path in files])
    return render(raw_dir, proposals)


# --- reading ---------------------------------------------------------------------------------


def read_sheet(path: Path) -> Sheet:
    """Sample one export: encoding, delimiter, title rows, header and data rows as text."""
    suffix = path.suffix.lower()
    if suffix == ".parquet":
        frame = pd.read_parquet(path)
        frame = frame.iloc[:: -(-len(frame) // SAMPLE_ROWS) or 1]
        rows = frame.astype(object).where(frame.notna(), None).map(_cell_text).values.tolist()
        return Sheet(path, "parquet", [str(c) for c in frame.columns], rows)
    if suffix in {".xlsx", ".xls"}:
        return _read_excel(path)
    return _read_csv(path)


def _cell_text(value: Any) -> str | None:
    """A cell as the text a CSV would hold: whole numbers without `.0`, dates in ISO form."""
    if value is None or value == "" or (isinstance(value, float) and value != value):
        return None
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, datetime | pd.Timestamp):
        return value.isoformat(sep=" ")
    if isinstance(value, date):
        return value.isoformat()
    return str(value)


def _read_excel(path: Path) -> Sheet:
    workbook = CalamineWorkbook.from_path(str(path))
    for name in workbook.sheet_names:
        cells = workbook.get_sheet_by_name(name).to_python(skip_empty_area=False)
        if any(any(c not in (None, "") for c in row) for row in cells):
            break
    else:
        raise ValueError(f"{path.name}: every sheet is empty")
    skip = _header_row([[_cell_text(c) for c in row] for row in cells[:HEADER_SCAN_ROWS]])
    header = _unique([_cell_text(c) or f"column_{i + 1}" for i, c in enumerate(cells[skip])])
    body = [row for row in _spread(cells[skip + 1 :]) if any(c not in (None, "") for c in row)]
    rows = [[_cell_text(c) for c in row] for row in body]
    return Sheet(path, "excel", header, rows, sheet=name, skip_rows=skip)


def _read_csv(path: Path) -> Sheet:
    with path.open("rb") as handle:
        data = handle.read(SAMPLE_BYTES)
    if len(data) == SAMPLE_BYTES:
        data = data[: data.rfind(b"\n") + 1]
    encoding, text = _decode(path, data)
    lines = text.splitlines()
    try:
        delimiter = csv.Sniffer().sniff("\n".join(lines[:50]), delimiters=",;\t|").delimiter
    except csv.Error:
        delimiter = ","
    records = list(csv.reader(io.StringIO(text, newline=""), delimiter=delimiter))
    skip = _header_row([[c or None for c in row] for row in records[:HEADER_SCAN_ROWS]])
    header = _unique([c.strip() or f"column_{i + 1}" for i, c in enumerate(records[skip])])
    rows = [[c.strip() or None for c in row] for row in _spread(records[skip + 1 :]) if any(row)]
    return Sheet(path, "csv", header, rows, encoding=encoding, delimiter=delimiter, skip_rows=skip)


def _spread(rows: list) -> list:
    """At most SAMPLE_ROWS rows, evenly spaced from first to last (the newest dates are at the end)."""
    return rows[:: -(-len(rows) // SAMPLE_ROWS) or 1]


def _decode(path: Path, data: bytes) -> tuple[str, str]:
    """UTF-8 (with BOM: utf-8-sig), else GB18030; anything else is an error naming the byte offset."""
    if data.startswith(codecs.BOM_UTF8):
        return "utf-8-sig", data[len(codecs.BOM_UTF8) :].decode("utf-8", errors="replace")
    try:
        return "utf-8", data.decode("utf-8")
    except UnicodeDecodeError:
        pass
    try:
        return "gb18030", data.decode("gb18030")
    except UnicodeDecodeError as error:
        raise ValueError(
            f"{path.name}: neither UTF-8 nor GB18030 (byte {error.start}); save it as UTF-8 and retry"
        ) from error


def _header_row(rows: list[list[str | None]]) -> int:
    """Index of the header: the first row about as wide as the widest, mostly text, no blanks inside."""
    widths = [sum(c is not None for c in row) for row in rows]
    widest = max(widths, default=0)
    for index, (row, width) in enumerate(zip(rows, widths, strict=True)):
        filled = [c for c in row if c is not None]
        if width >= max(2, 0.8 * widest) and sum(not _is_number(c) for c in filled) >= 0.8 * width:
            return index
    return 0


def _is_number(text: str) -> bool:
    return bool(re.fullmatch(r"[-+]?[\d,.]+", text))


def _unique(names: list[str]) -> list[str]:
    seen: Counter[str] = Counter()
    out = []
    for name in names:
        seen[name] += 1
        out.append(name if seen[name] == 1 else f"{name}_{seen[name]}")
    return out


# --- content -----------------------------------------------------------------------------------


def normalize_header(text: str) -> str:
    """NFKC, lower case, bracketed units and punctuation and spaces removed."""
    text = unicodedata.normalize("NFKC", text).lower()
    text = re.sub(r"[(\[（【].*?[)\]）】]", "", text)
    return re.sub(r"[\W_]+", "", text)


def _ascii(value: str) -> str:
    return unicodedata.normalize("NFKC", value).strip()


def content_kinds(values: list[str]) -> dict[str, float]:
    """Share of `values` that look like each content kind."""
    if not values:
        return {}
    sample = [_ascii(v) for v in values[:5000]]
    n = len(sample)

    def share(test) -> float:
        return sum(bool(test(v)) for v in sample) / n

    return {
        "email": share(lambda v: EMAIL.fullmatch(v.lower())),
        "phone": share(lambda v: PHONE.fullmatch(v) and 7 <= len(re.sub(r"\D", "", v.split("转")[0])) <= 15),
        "integer": share(INTEGER.fullmatch),
        "amount": share(AMOUNT.fullmatch),
        "date": 1.0 if share(DATE_LIKE.match) >= CONTENT_SHARE and date_formats(values) else 0.0,
    }


def date_formats(values: list[str]) -> list[str]:
    """Candidate formats that parse the values, in the order they are needed ('excel', 'yyyymmdd' too;
    Excel date cells arrive as ISO text).

    Empty when fewer than CONTENT_SHARE of the values parse at all.
    """
    sample = [_ascii(v) for v in values[:5000]]
    if not sample:
        return []
    left = list(sample)
    kept: list[str] = []
    if re.fullmatch(r"\d{8}", next((v for v in left if v.isdigit()), "")) and _yyyymmdd(left):
        kept.append("yyyymmdd")
        left = [v for v in left if not _yyyymmdd([v])]
    if any(re.fullmatch(r"\d{5}(\.\d+)?", v) and 20_000 < float(v) < 60_000 for v in left):
        kept.append("excel")
        left = [v for v in left if not re.fullmatch(r"\d{5}(\.\d+)?", v)]
    for fmt in _ordered_formats(left):
        parsed = [v for v in left if _parses(v, fmt)]
        if parsed and len(parsed) >= max(1, 0.001 * len(sample)):
            kept.append(fmt)
            left = [v for v in left if v not in set(parsed)]
    return kept if len(sample) - len(left) >= CONTENT_SHARE * len(sample) else []


def _ordered_formats(values: list[str]) -> list[str]:
    """The candidate formats; day-first and month-first swapped where more values parse month-first."""
    day_first = sum(_parses(v, "%d/%m/%Y") or _parses(v, "%d/%m/%Y %H:%M") for v in values[:2000])
    month_first = sum(_parses(v, "%m/%d/%Y") or _parses(v, "%m/%d/%Y %H:%M") for v in values[:2000])
    if month_first <= day_first:
        return list(DATE_FORMATS)
    return sorted(DATE_FORMATS, key=lambda fmt: not fmt.startswith("%m/%d"))


def _parses(value: str, fmt: str) -> bool:
    """Whether `value` is a valid date in `fmt` (a regex screens first: strptime is slow)."""
    if not _pattern(fmt).fullmatch(value):
        return False
    try:
        datetime.strptime(value, fmt)
    except ValueError:
        return False
    return True


@cache
def _pattern(fmt: str) -> re.Pattern[str]:
    """A regex for the shape of a strptime format (%Y four digits, other fields one or two)."""
    parts = re.split(r"(%[YmdHMS])", fmt)
    return re.compile(
        "".join(
            r"\d{4}" if p == "%Y" else r"\d{1,2}" if p.startswith("%") else re.escape(p) for p in parts if p
        )
    )


def _yyyymmdd(values: list[str]) -> bool:
    return any(re.fullmatch(r"(19|20)\d{6}", v) and _parses(v, "%Y%m%d") for v in values)


# --- synonyms and matching ----------------------------------------------------------------------


@cache
def synonyms() -> dict[str, Any]:
    """The synonym file, headers normalized like file headers."""
    data = yaml.safe_load(SYNONYMS_FILE.read_text(encoding="utf-8"))
    for entry in data["columns"]:
        entry["headers"] = [normalize_header(str(h)) for h in entry["headers"]]
    data["tables"] = {t: [normalize_header(str(w)) for w in words] for t, words in data["tables"].items()}
    data["conditions"] = {
        name: {"headers": [normalize_header(str(h)) for h in rule["headers"]], "equals": rule["equals"]}
        for name, rule in data["conditions"].items()
    }
    return data


def header_score(header: str, synonyms_: list[str]) -> float:
    """How well a file header matches a synonym list: 3 equal, 1-2 contained, 0 none."""
    name = normalize_header(header)
    if not name:
        return 0.0
    if name in synonyms_:
        return 3.0
    contained = [s for s in synonyms_ if len(s) >= (2 if not s.isascii() else 4) and s in name]
    return 1.0 + max(len(s) for s in contained) / len(name) if contained else 0.0


def _fits(kind: str | None, kinds: dict[str, float]) -> bool:
    """Whether the column content does not contradict a concept's content kind."""
    if kind is None or not kinds:
        return True
    if kind in ("date", "datetime"):
        return kinds["date"] > 0
    if kind == "phone":
        return kinds["phone"] >= 0.3 or kinds["email"] < 0.3
    return kinds.get(kind, 0.0) >= 0.5


def match_table(sheet: Sheet, table: Table) -> Proposal:
    """Place the file's columns on the table's canonical columns: header synonyms first, content second."""
    data = synonyms()
    contract = table.keyed_by("phone") if table.kind == "event" else table
    kinds = sheet.kinds
    # a header spelling the canonical name itself beats every synonym
    candidates = [
        (4.0, canonical, column)
        for canonical in contract.column_names
        for column in sheet.header
        if normalize_header(column) == normalize_header(canonical)
    ]
    for entry in data["columns"]:
        canonical = next((c for c in entry["canonical"] if c in contract.column_names), None)
        if canonical is None:
            continue
        for column in sheet.header:
            score = header_score(column, entry["headers"])
            if score and _fits(entry.get("content"), kinds[column]):
                candidates.append((score, canonical, column))
    placed: dict[str, str] = {}
    for _, canonical, column in sorted(candidates, key=lambda c: -c[0]):
        if canonical not in placed and column not in placed.values():
            placed[canonical] = column
    _place_by_content(sheet, contract, kinds, placed)
    columns: dict[str, str | dict[str, Any]] = {c: placed[c] for c in contract.column_names if c in placed}
    proposal = Proposal(sheet, table, 0.0, columns)
    _conditions(proposal, contract)
    required = [c for c in TABLES[table.name].required_columns if c not in table.record_key_columns]
    hits = sum(c in proposal.columns for c in required) / max(len(required), 1)
    key_bonus = 2.0 if table.key in proposal.columns else 0.0
    hint = header_score(sheet.path.stem, data["tables"][table.name])  # the file name
    proposal.score = 4 * hits + key_bonus + 0.3 * len(proposal.columns) + 0.5 * min(hint, 2)
    return proposal


def _place_by_content(sheet: Sheet, contract: Table, kinds: dict, placed: dict[str, str]) -> None:
    """Required or identifier columns no header named: the free column whose content fits best."""
    rules = {
        "customer_ref": ("phone", "email"),
        "mobile": ("phone",),
        "phone": ("phone",),
        "email": ("email",),
    }
    for column in contract.columns:
        if column.name in placed:
            continue
        wanted = rules.get(column.name)
        if wanted is None and column.required and column.type in ("date", "datetime", "float"):
            wanted = ("date",) if column.type != "float" else ("amount",)
        if wanted is None:
            continue
        free = [c for c in sheet.header if c not in placed.values()]
        best = max(free, key=lambda c: sum(kinds[c].get(k, 0) for k in wanted), default=None)
        if best is not None and sum(kinds[best].get(k, 0) for k in wanted) >= CONTENT_SHARE:
            if column.type == "float" and kinds[best].get("integer", 0) >= CONTENT_SHARE:
                continue  # whole numbers are counts or ids, not amounts
            placed[column.name] = best


def _conditions(proposal: Proposal, contract: Table) -> None:
    """Booleans from a status column (`is_refund`: 订单状态 in [已退款])."""
    for name, rule in synonyms()["conditions"].items():
        if name not in contract.column_names or name in proposal.columns:
            continue
        for column in proposal.sheet.header:
            if column in proposal.columns.values() or not header_score(column, rule["headers"]):
                continue
            seen = {v for v in proposal.sheet.values(column)}
            equals = sorted(v for v in seen if _ascii(v).lower() in {str(e).lower() for e in rule["equals"]})
            if equals:
                proposal.columns[name] = {"column": column, "equals": equals}
                break


def assign_tables(sheets: list[Sheet]) -> list[Proposal]:
    """Give each file the canonical table it fits best (each table at most once), then finish it."""
    options = sorted(
        (match_table(sheet, table) for sheet in sheets for table in TABLES.values()),
        key=lambda p: -p.score,
    )
    chosen: list[Proposal] = []
    used_files: set[Path] = set()
    used_tables: set[str] = set()
    for proposal in options:
        if proposal.sheet.path in used_files or proposal.table.name in used_tables or proposal.score < 3:
            continue
        used_files.add(proposal.sheet.path)
        used_tables.add(proposal.table.name)
        chosen.append(_finish(proposal))
    for sheet in sheets:
        if sheet.path not in used_files:
            chosen.append(
                Proposal(sheet, TABLES["crm_customers"], -1.0, {}, notes=["no canonical table fits"])
            )
    return sorted(chosen, key=lambda p: list(TABLES).index(p.table.name) if p.score >= 0 else len(TABLES))


def _finish(proposal: Proposal) -> Proposal:
    """key_by, date formats and value maps for a matched file."""
    table, sheet = proposal.table, proposal.sheet
    if table.kind == "event":
        record_keys = [c for c in table.record_key_columns if c in proposal.columns]
        if record_keys and len(record_keys) == len(table.record_key_columns):
            proposal.key_by = "record"
            proposal.columns.pop("customer_ref", None)
        elif "customer_ref" in proposal.columns:
            kinds = content_kinds(sheet.values(str(proposal.columns["customer_ref"])))
            proposal.key_by = next((k for k in ("phone", "email") if kinds.get(k, 0) >= 0.98), "identifier")
        else:
            proposal.notes.append("no customer reference found: map customer_ref (or the record key) by hand")
    contract = table.keyed_by(proposal.key_by)
    for column in contract.columns:
        source = proposal.columns.get(column.name)
        if not isinstance(source, str):
            continue
        values = sheet.values(source)
        if column.type in ("date", "datetime"):
            found = date_formats(values)
            target = proposal.date_formats if column.type == "date" else proposal.datetime_formats
            target.extend(f for f in found if f not in target)
        elif column.type in ("str", "bool"):
            _value_map(proposal, column.name, column.type, values)
    for column in contract.required_columns:
        if column not in proposal.columns:
            proposal.notes.append(f"REQUIRED column {column} not found: map it (or give a constant) by hand")
    return proposal


def _value_map(proposal: Proposal, column: str, kind: str, values: list[str]) -> None:
    vocabularies = synonyms()["values"]
    vocabulary = vocabularies.get(f"{proposal.table.name}.{column}") or vocabularies.get(
        "bool" if kind == "bool" else column
    )
    if vocabulary is None:
        return
    lookup = {str(word).lower(): canonical for canonical, words in vocabulary.items() for word in words}
    lookup.update({canonical.lower(): canonical for canonical in vocabulary})
    counts = Counter(_ascii(v) for v in values)
    mapping = {value: lookup[value.lower()] for value in counts if value.lower() in lookup}
    if any(value != canonical for value, canonical in mapping.items()):
        proposal.values[column] = dict(sorted(mapping.items()))
    unknown = [f"{value} ({n})" for value, n in counts.most_common() if value.lower() not in lookup]
    if unknown:
        proposal.notes.append(f"{column}: values outside the vocabulary: {', '.join(unknown[:8])}")


# --- writing ------------------------------------------------------------------------------------


def _scalar(value: Any) -> str:
    return (
        yaml.safe_dump(value, allow_unicode=True, default_flow_style=True, width=10_000)
        .strip()
        .removesuffix("\n...")
    )


def _flow(mapping: dict[str, Any]) -> str:
    return "{" + ", ".join(f"{_scalar(k)}: {_scalar(v)}" for k, v in mapping.items()) + "}"


def render(raw_dir: Path, proposals: list[Proposal]) -> str:
    """The commented YAML config."""
    matched = [p for p in proposals if p.score >= 0]
    raw = raw_dir.resolve()
    shown = raw.relative_to(PROJECT_ROOT) if raw.is_relative_to(PROJECT_ROOT) else raw
    lines = [
        f"# Proposed by `python -m helpers init-config {raw_dir}`. Review every mapping before a run:",
        "# columns come from header synonyms and content, formats and value maps from the values seen.",
        "run:",
        "  seed: 42",
        f"  reference_date: {_scalar(str(_latest_event_date(matched)))}   # the 'as of' date: check it",
        "",
        "data:",
        f"  raw_dir: {_scalar(str(shown))}",
        "  home_region: CN",
    ]
    area = _home_area_code(matched)
    if area:
        lines.append(
            f"  home_area_code: {_scalar(area)}   # guessed (commonest area code); bare local numbers get it"
        )
    else:
        lines.append(
            '  # home_area_code: "21"   # set it when phones carry local numbers without an area code'
        )
    absent = [name for name in TABLES if name not in {p.table.name for p in matched}]
    if absent:
        lines.append(f"  # no file found for: {', '.join(absent)} (left out: the run goes without them)")
    lines.append("  tables:")
    for proposal in matched:
        lines += _render_table(proposal)
    for proposal in proposals:
        if proposal.score < 0:
            lines.append(
                f"  # {proposal.sheet.path.name}: no canonical table fits; "
                f"columns: {', '.join(proposal.sheet.header)}"
            )
    return "\n".join(lines) + "\n"


def _render_table(proposal: Proposal) -> list[str]:
    sheet = proposal.sheet
    lines = [f"    {proposal.table.name}:   # {proposal.table.meaning}"]
    lines.append(f"      file: {_scalar(sheet.path.name)}")
    lines.append(f"      format: {sheet.format}")
    if sheet.encoding:
        lines.append(f"      encoding: {sheet.encoding}")
    if sheet.sheet is not None:
        lines.append(f"      sheet: {_scalar(sheet.sheet)}")
    if sheet.skip_rows:
        lines.append(f"      skip_rows: {sheet.skip_rows}   # title and blank rows above the header")
    if sheet.delimiter and sheet.delimiter != ",":
        lines.append(f"      delimiter: {_scalar(sheet.delimiter)}")
    for key, formats in (
        ("date_format", proposal.date_formats),
        ("datetime_format", proposal.datetime_formats),
    ):
        if formats:
            lines.append(f"      {key}: {_scalar(formats)}")
    if proposal.table.kind == "event":
        lines.append(f"      key_by: {proposal.key_by}")
    lines.append("      columns:")
    for canonical, source in proposal.columns.items():
        text = _flow(source) if isinstance(source, dict) else _scalar(source)
        lines.append(f"        {canonical}: {text}")
    placed = {s if isinstance(s, str) else s["column"] for s in proposal.columns.values()}
    for column in sheet.header:
        if column not in placed:
            lines.append(f"        # not placed: {column}")
    if proposal.values:
        lines.append("      values:")
        lines += [f"        {column}: {_flow(mapping)}" for column, mapping in proposal.values.items()]
    lines += [f"      # CHECK: {note}" for note in proposal.notes]
    return lines


def _latest_event_date(proposals: list[Proposal]) -> date:
    """The last day closing a week of busy days (at least a fifth of the median daily events), a
    proposal for run.reference_date (today without events): stray future dates do not count."""
    days: Counter[date] = Counter()
    for proposal in proposals:
        formats = [f for f in proposal.datetime_formats if f not in ("excel", "yyyymmdd")]
        for column in proposal.table.keyed_by(proposal.key_by).columns:
            source = proposal.columns.get(column.name)
            if proposal.table.kind != "event" or column.type != "datetime" or not isinstance(source, str):
                continue
            stamps = (_parse_any(v, formats) for v in proposal.sheet.values(source))
            days.update(stamp.date() for stamp in stamps if stamp is not None)
    if not days:
        return date.today()
    busy = {day for day, count in days.items() if count >= sorted(days.values())[len(days) // 2] / 5}
    week = [day for day in busy if all(day - timedelta(days=back) in busy for back in range(7))]
    return max(week or days)


def _parse_any(value: str, formats: list[str]) -> datetime | None:
    for fmt in formats:
        try:
            return datetime.strptime(_ascii(value), fmt)
        except ValueError:
            continue
    return None


def _home_area_code(proposals: list[Proposal]) -> str | None:
    """The area code that bare local numbers (7-8 digits) carry where the same number appears in full
    elsewhere; None when no bare number matches one."""
    full: dict[str, Counter[str]] = {}
    bare: list[str] = []
    for proposal in proposals:
        for canonical in ("landline", "phone", "mobile", "customer_ref"):
            source = proposal.columns.get(canonical)
            if not isinstance(source, str):
                continue
            for value in proposal.sheet.values(source)[:50_000]:
                digits = re.sub(r"\D", "", _ascii(value).split("转")[0].split("ext")[0])
                digits = re.sub(r"^(0086|86)(?=[2-9]|10)", "0", digits)
                match = re.fullmatch(r"0(10|2\d|[3-9]\d\d)(\d{7,8})", digits)
                if match:
                    full.setdefault(match.group(2), Counter())[match.group(1)] += 1
                elif re.fullmatch(r"[2-9]\d{6,7}", digits):
                    bare.append(digits)
    codes: Counter[str] = Counter()
    for number in bare:
        codes.update(full.get(number, Counter()))
    return codes.most_common(1)[0][0] if codes else None
