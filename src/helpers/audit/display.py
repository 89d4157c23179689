"""Page 01 in the run's language: labels for tables, columns and quarantine reasons, the key findings,
and the tables the page shows (what `helpers.audit.report.run_step` computed, made readable)."""

from __future__ import annotations

import re

import pandas as pd
from pandas.io.formats.style import Styler

from helpers.audit.report import QUALITY_PARTS, AuditReport, profile_for_report, table_overview
from helpers.core.factors import SOURCE_GROUPS
from helpers.core.i18n import Catalog

_COLUMN_REASON = re.compile(r"^(missing|unparseable|invalid|negative|out-of-range) (\w+)$")
_AFTER_REFERENCE = re.compile(r"^(\w+) after reference date$")
_INVALID_CHECK = re.compile(r"^invalid (\w+) format \(kept, _norm null\)$")
_UNKNOWN_CHECK = re.compile(r"^unknown (\w+) value \(kept, set to null\)$")
_DROPPED_CHECK = re.compile(r"^(\w+) (.+) \(kept, set to null\)$")  # a bad optional attribute of a record


def table_label(text: Catalog, table: str) -> str:
    """A canonical table's name for readers (the code name when the catalog has none)."""
    return text.label(f"audit.tables.{table}", table)


def column_label(text: Catalog, column: str) -> str:
    """A canonical column's name for readers (the code name when the catalog has none)."""
    return text.label(f"audit.column_names.{column}", column)


def reason_label(text: Catalog, reason: str) -> str:
    """A quarantine reason or invalid-value check (step 01's codes) in plain words."""
    quarantined = reason.endswith(" (quarantined)")
    code = reason.removesuffix(" (quarantined)")
    suffix = text("audit.reasons.quarantined_suffix") if quarantined else ""
    if f"audit.reasons.fixed.{code}" in text:
        return text(f"audit.reasons.fixed.{code}") + suffix
    for pattern, key in ((_INVALID_CHECK, "invalid_format"), (_UNKNOWN_CHECK, "unknown_value")):
        if match := pattern.match(code):
            return text(f"audit.reasons.{key}", column=column_label(text, match.group(1))) + suffix
    if (match := _DROPPED_CHECK.match(code)) and f"audit.reasons.dropped.{match.group(2)}" in text:
        column, problem = match.groups()
        problem_label = text(f"audit.reasons.dropped.{problem}")
        return text("audit.reasons.dropped_value", column=column_label(text, column), problem=problem_label)
    if match := _AFTER_REFERENCE.match(code):
        return text("audit.reasons.after_reference", column=column_label(text, match.group(1))) + suffix
    if match := _COLUMN_REASON.match(code):
        kind, column = match.groups()
        return text(f"audit.reasons.{kind}", column=column_label(text, column)) + suffix
    return reason  # a reason without a catalog entry is shown as step 01 wrote it


def key_findings(text: Catalog, report: AuditReport) -> str:
    """Markdown: the page's summary block (loud quarantine warnings first)."""
    quality = report.quality
    input_rows = int(quality["input_rows"].sum())
    quarantined = int(quality["quarantined_rows"].sum())
    lines = [text("audit.summary_heading")]
    lines += [text("audit.summary.warning", line=line) for line in report.contract.quarantine_warnings]
    lines.append(
        text(
            "audit.summary.quarantined",
            rows=text.number(input_rows),
            quarantined=text.number(quarantined),
            share=text.share(quarantined / input_rows if input_rows else 0.0),
        )
    )
    contract = report.contract
    status = contract.table_status
    absent = status[status["status"] != "loaded"]["table"].tolist() if len(status) else []
    if absent:
        groups = [group_label(text, group) for group in contract.groups_without_data]
        lines.append(
            text(
                "audit.absent_line",
                tables=_join(text, [table_label(text, table) for table in absent]),
                groups=_join(text, groups) or "–",
            )
        )
    unmapped = contract.unmapped_values
    if len(unmapped):
        lines.append(
            text(
                "audit.unmapped_line",
                values=text.number(len(unmapped)),
                rows=text.number(int(unmapped["rows"].sum())),
            )
        )
    quality = quality[quality["input_rows"] > 0]
    if len(quality):
        worst = quality.sort_values("score").iloc[0]
        part = min(QUALITY_PARTS, key=lambda name: worst[name])
        line = text(
            "audit.summary.worst",
            table=table_label(text, worst["table"]),
            score=f"{worst['score']:.1f}",
            part=text(f"audit.parts.{part}"),
            value=text.share(worst[part]),
        )
        if part == "completeness":
            columns = report.column_profile[report.column_profile["table"] == worst["table"]]
            emptiest = ", ".join(
                f"{column_label(text, r.column)} {text.share(r.missing_share, 0)}"
                for r in columns.nlargest(3, "missing_share").itertuples()
            )
            line += " " + text("audit.summary.worst_empty", columns=emptiest)
        lines.append(line)
    # Groups at 0 are either fed by tables not provided (listed above) or only by events keyed by an
    # identifier, which reach customers in step 02 (page 03 measures them per customer).
    known = report.coverage[report.coverage["records_with"] > 0]
    if len(known):
        coverage = known.sort_values("share").iloc[0]
        lines.append(
            text(
                "audit.summary.coverage",
                group=group_label(text, coverage["group"]),
                share=text.share(coverage["share"]),
                with_group=text.number(int(coverage["records_with"])),
                records=text.number(int(coverage["records"])),
            )
        )
    return "\n".join(lines)


def group_label(text: Catalog, group: str) -> str:
    """A factor group's name for readers (catalog `features.groups.<group>`)."""
    return text.label(f"features.groups.{group}", group)


def _headers(text: Catalog, frame: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    shown = frame[columns].copy()
    if "table" in shown:
        shown["table"] = shown["table"].map(lambda name: table_label(text, name))
    if "column" in shown:
        shown["column"] = shown["column"].map(lambda name: column_label(text, name))
    return shown.rename(columns={name: text(f"audit.headers.{name}") for name in columns})


def _style(
    text: Catalog, frame: pd.DataFrame, shares: tuple[str, ...] = (), scores: tuple[str, ...] = ()
) -> Styler:
    """Numbers with separators (mixed magnitudes: 2 decimals below 100), shares as percentages,
    `scores` with one decimal, no row numbers."""
    formats: dict[str, object] = {}
    for name in frame.columns:
        if name in shares:
            formats[name] = lambda value: text.share(value)
        elif name in scores:
            formats[name] = "{:.1f}"
        elif pd.api.types.is_integer_dtype(frame[name]):
            formats[name] = lambda value: text.number(value)
        elif pd.api.types.is_float_dtype(frame[name]):
            formats[name] = lambda value: text.number(value, 2 if abs(value) < 100 else 0)
    return frame.style.hide(axis="index").format(formats, na_rep="–")


def ledger_table(text: Catalog, report: AuditReport) -> Styler:
    columns = ["table", "input_rows", "accepted_rows", "quarantined_rows"]
    return _style(text, _headers(text, report.ledger, columns))


def overview_table(text: Catalog, report: AuditReport) -> Styler:
    overview = table_overview(report)
    overview["absent_columns"] = overview["absent_columns"].map(
        lambda names: _join(text, [column_label(text, name) for name in names.split(", ") if name]) or "–"
    )
    shown = _headers(text, overview, list(overview.columns))
    return _style(text, shown, scores=(text("audit.headers.score"),))


def profile_table(text: Catalog, report: AuditReport) -> Styler:
    profile = profile_for_report(report.column_profile)
    profile["type"] = profile["type"].map(lambda t: text(f"audit.types.{t}"))
    profile["required"] = profile["required"].map({True: text("common.yes"), False: text("common.no")})
    columns = [c for c in ("table", "column", "type", "required", "missing", "missing_share", "distinct",
                           "invalid", "min", "max") if c in profile.columns]  # fmt: skip
    shown = _headers(text, profile, columns)
    return _style(text, shown, shares=(text("audit.headers.missing_share"),))


def duplicates_table(text: Catalog, report: AuditReport) -> Styler:
    columns = ["table", "input_rows", "exact_duplicate_rows", "duplicate_key_rows"]
    return _style(text, _headers(text, report.ledger, columns))


def invalid_table(text: Catalog, report: AuditReport) -> Styler:
    frame = report.invalid_values.assign(check=lambda f: f["check"].map(lambda c: reason_label(text, c)))
    return _style(text, _headers(text, frame, ["table", "check", "rows"]))


def ranges_table(text: Catalog, report: AuditReport) -> Styler:
    columns = ["table", "column", "n", "min", "p01", "median", "mean", "p99", "max", "outliers"]
    frame = report.numeric_ranges
    return _style(text, _headers(text, frame, [c for c in columns if c in frame.columns]))


def _reference_label(text: Catalog, reference: str) -> str:
    """`column -> parent` (step 01's wording) in the page language."""
    column, target = reference.split(" -> ")
    parent = (
        text("audit.reference_parent")
        if target.startswith("the identity table")
        else table_label(text, target)
    )
    return f"{column_label(text, column)} → {parent}"


def integrity_table(text: Catalog, report: AuditReport) -> Styler:
    frame = report.integrity.copy()
    frame["reference"] = frame["reference"].map(lambda r: _reference_label(text, r))
    shown = _headers(text, frame, ["table", "reference", "rows", "orphan_rows", "orphan_share"])
    return _style(text, shown, shares=(text("audit.headers.orphan_share"),))


def dates_table(text: Catalog, report: AuditReport) -> Styler:
    frame = report.date_coverage.assign(
        first=lambda f: pd.to_datetime(f["first"]).map(lambda d: text.day(d) if pd.notna(d) else "–"),
        last=lambda f: pd.to_datetime(f["last"]).map(lambda d: text.day(d) if pd.notna(d) else "–"),
    )
    return _style(text, _headers(text, frame, ["table", "column", "first", "last", "months_with_rows"]))


def quality_table(text: Catalog, report: AuditReport) -> Styler:
    frame = report.quality.copy()
    columns = ["table", "score", *QUALITY_PARTS, "input_rows", "accepted_rows", "quarantined_rows"]
    shown = _headers(text, frame, columns)
    parts = tuple(text(f"audit.headers.{part}") for part in QUALITY_PARTS)
    return _style(text, shown, shares=parts, scores=(text("audit.headers.score"),))


def _join(text: Catalog, items: list[str]) -> str:
    """Items as a list in the page language (、 in Chinese)."""
    return text("audit.list_separator").join(items)


def _feeds_label(text: Catalog, feeds: str) -> str:
    """`table.column, ...` as column names for readers."""
    return _join(text, [column_label(text, feed.split(".")[1]) for feed in feeds.split(", ") if feed])


def identifier_event_rows(report: AuditReport) -> pd.Series:
    """Per factor group: accepted rows of the event tables keyed by an identifier (a phone, e-mail or
    account in `customer_ref`, not a record key) that have one of the group's source columns. Step 01
    cannot tie them to records; step 02 finds their customers, so they are data for the group."""
    profile = report.column_profile
    keyed = set(profile.loc[profile["column"] == "customer_ref", "table"])
    filled = profile[profile["missing"] < profile["rows"]]
    has = set(zip(filled["table"], filled["column"], strict=True))
    accepted = report.ledger.set_index("table")["accepted_rows"]
    rows = {}
    for group in SOURCE_GROUPS:
        tables = {
            feed.split(".")[0] for feed in group.feeds
            if feed.split(".")[0] in keyed and tuple(feed.split(".")) in has
        }  # fmt: skip
        rows[group.name] = int(sum(int(accepted.get(table, 0)) for table in tables))
    return pd.Series(rows, name="identifier_event_rows", dtype="int64")


def coverage_view(report: AuditReport) -> pd.DataFrame:
    """`report.coverage` with `identifier_event_rows`; a group whose data so far come only from events
    keyed by an identifier shows no record count or share (unknown before step 02), not 0."""
    frame = report.coverage.copy()
    rows = frame["group"].map(identifier_event_rows(report)).fillna(0)
    frame["identifier_event_rows"] = rows.astype("int64")
    from_events = (frame["records_with"] == 0) & (frame["identifier_event_rows"] > 0)
    frame["records_with"] = frame["records_with"].astype("Int64").mask(from_events)
    frame["share"] = frame["share"].astype("Float64").mask(from_events)
    return frame


def coverage_table(text: Catalog, report: AuditReport) -> Styler:
    frame = coverage_view(report).assign(
        group=lambda f: f["group"].map(lambda g: group_label(text, g)),
        feeds=lambda f: f["feeds"].map(lambda feeds: _feeds_label(text, feeds)),
    )
    columns = ["group", "feeds", "records_with", "records", "share"]
    if frame["identifier_event_rows"].any():
        columns.append("identifier_event_rows")
    shown = _headers(text, frame, [c for c in columns if c != "identifier_event_rows"])
    if "identifier_event_rows" in columns:
        shown[text("audit.headers.identifier_event_rows")] = frame["identifier_event_rows"].to_numpy()
    return _style(text, shown, shares=(text("audit.headers.share"),))


def sources_table(text: Catalog, report: AuditReport, with_files: bool = False) -> Styler:
    """Per canonical table: read, not provided, empty or header only, and its rows; `with_files` adds
    the file names (for analysts: file names are often English words a Chinese page should not show)."""
    frame = report.contract.table_status.copy()
    frame["status"] = frame["status"].map(lambda status: _status(text, status))
    frame["file"] = frame["file"].fillna("–")
    columns = ["table", "status", "file", "input_rows"] if with_files else ["table", "status", "input_rows"]
    return _style(text, _headers(text, frame, columns))


def unmapped_table(text: Catalog, report: AuditReport) -> Styler:
    """Values outside the value maps, counted per table and column (the values themselves are for
    analysts: see `unmapped_values`)."""
    frame = report.contract.unmapped_values
    counts = frame.groupby(["table", "column", "action"], sort=False)["rows"].sum().reset_index()
    counts["action"] = counts["action"].map(lambda action: _status(text, action, "actions"))
    return _style(text, _headers(text, counts, ["table", "column", "action", "rows"]))


def _status(text: Catalog, value: str, domain: str = "status") -> str:
    return text.label(f"audit.{domain}.{value}", value)
