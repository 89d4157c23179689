"""Step 01 data audit: profile every table, score its quality, measure factor-group coverage.

The figures of notebook 01 are in `helpers.audit.plots`.

`run_step` runs the data contract (`helpers.audit.contract`) and profiles each work table as the
contract finishes it (`engine/queries/audit/*.sql`), before the table is released: missingness,
distinct and invalid values, duplicates, quarantine reasons, numeric ranges and outliers,
referential integrity and date coverage.

Quality score per table (0-100), from four shares of the table's input rows:
    validity     = 1 - rows with a value problem (unparseable, missing required, impossible,
                   negative, out of range, after the reference date, invalid category) / input
    completeness = mean over the contract's columns of the share of rows where it is filled
    uniqueness   = 1 - (exact duplicate rows + duplicate-key rows) / input
    integrity    = 1 - orphan rows / input (identity tables have no references: 1)
    score        = 100 * sum(weight * part) / sum(weights), weights `audit.quality_weights`
                   (defaults in `helpers.core.settings.AuditSettings`).
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from helpers.audit.contract import CATEGORIES, STEP, ContractResult, ledger_json, run_contract
from helpers.core.context import StepContext
from helpers.core.factors import SOURCE_GROUPS
from helpers.core.settings import AuditSettings, DataSettings
from helpers.core.tables import EVENT_REFERENCE_COLUMNS, IDENTITY_TABLES, SOURCE_SYSTEMS, TABLES
from helpers.engine.base import SqlEngine
from helpers.engine.reading import Workspace
from helpers.engine.reading import quote as _quote

QUALITY_PARTS = ("validity", "completeness", "uniqueness", "integrity")
SYSTEM_OF_TABLE = {table: system for system, table in SOURCE_SYSTEMS.items()}


@dataclass
class AuditReport:
    """Everything notebook 01 shows; each frame is also written as an artifact of the step."""

    contract: ContractResult
    ledger: pd.DataFrame
    column_profile: pd.DataFrame
    quarantine_reasons: pd.DataFrame
    numeric_ranges: pd.DataFrame
    date_coverage: pd.DataFrame
    monthly_rows: pd.DataFrame
    integrity: pd.DataFrame
    invalid_values: pd.DataFrame
    quality: pd.DataFrame
    coverage: pd.DataFrame
    coverage_by_system: pd.DataFrame


# ---------------------------------------------------------------- profiling queries


def quarantine_reasons(engine: SqlEngine, table_name: str) -> pd.DataFrame:
    """Rows per quarantine reason for one table."""
    reasons = engine.run(STEP, "quarantine_reasons", tables={"rows": f"rows_{table_name}"})
    reasons.insert(0, "table", table_name)
    return reasons


def numeric_ranges(engine: SqlEngine, table_name: str, columns: list[str] | None = None) -> pd.DataFrame:
    """Range, exact percentiles and outlier counts of the numeric columns of one table (accepted rows),
    or of `columns` only; the same data in any row order gives the same figures."""
    frames = []
    for column in TABLES[table_name].columns:
        if column.type in ("int", "float") and (columns is None or column.name in columns):
            stats = engine.run(
                STEP,
                "numeric_range",
                tables={"rows": f"rows_{table_name}", "column": f"v_{column.name}"},
            )
            stats.insert(0, "column", column.name)
            stats.insert(0, "table", table_name)
            frames.append(stats)
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def date_columns(table_name: str) -> list[str]:
    """The date/datetime columns of a table that mark events or record creation (not birth dates)."""
    return [
        c.name
        for c in TABLES[table_name].columns
        if c.type in ("date", "datetime") and c.name != "birth_date"
    ]


def monthly_rows(engine: SqlEngine, table_name: str) -> pd.DataFrame:
    """Accepted rows per month of the table's main date column."""
    column = date_columns(table_name)[0]
    counts = engine.run(
        STEP, "monthly_counts", tables={"rows": f"rows_{table_name}", "column": f"v_{column}"}
    )
    counts.insert(0, "column", column)
    counts.insert(0, "table", table_name)
    return counts


def coverage_by_system(engine: SqlEngine, ctx: StepContext) -> pd.DataFrame:
    """Per source system: identity records, and how many have each factor group (the groups with
    source columns of their own, `helpers.core.factors.SOURCE_GROUPS`)."""
    groups = [group.name for group in SOURCE_GROUPS]
    by_table: dict[str, dict[str, list[str]]] = {}
    for group in SOURCE_GROUPS:
        for feed in group.feeds:
            table, column = feed.split(".")
            by_table.setdefault(table, {}).setdefault(group.name, []).append(column)
    for table in TABLES:
        engine.register(f"clean_{table}", ctx.path(f"clean_{table}.parquet"))

    def flags(table: str) -> str:
        columns = by_table.get(table, {})
        return ", ".join(
            "(" + " OR ".join(f"{_quote(c)} IS NOT NULL" for c in columns[g]) + f") AS {g}"
            if g in columns
            else f"false AS {g}"
            for g in groups
        )

    records = " UNION ALL ".join(
        f"SELECT '{SYSTEM_OF_TABLE[t.name]}' AS system, {_quote(t.key)} AS id, {flags(t.name)} "
        f"FROM clean_{t.name}"
        for t in IDENTITY_TABLES
    )
    events = []
    for table in TABLES.values():
        if table.kind != "event":
            continue
        column, parent, _ = table.references[0]
        system = "source_system" if parent == "source_system" else f"'{SYSTEM_OF_TABLE[parent]}'"
        events.append(
            f"SELECT {system} AS system, {_quote(column)} AS id, {flags(table.name)} FROM clean_{table.name}"
        )
    coverage = engine.run(STEP, "coverage", tables={
        "records": records,
        "events": " UNION ALL ".join(events),
        "event_any": ", ".join(f"bool_or({g}) AS {g}" for g in groups),
        "counts": ", ".join(
            f"count(*) FILTER (WHERE records.{g} OR coalesce(events.{g}, false)) AS {g}" for g in groups
        ),
    })  # fmt: skip
    return coverage


def coverage_table(by_system: pd.DataFrame) -> pd.DataFrame:
    """Per factor group: the columns feeding it and the share of identity records that have it."""
    total = int(by_system["records"].sum())
    return pd.DataFrame([
        {"group": group.name, "feeds": ", ".join(group.feeds),
         "records_with": int(by_system[group.name].sum()), "records": total,
         "share": by_system[group.name].sum() / total if total else 0.0}
        for group in SOURCE_GROUPS
    ])  # fmt: skip


# ---------------------------------------------------------------- scores


def quality_scores(ledger: pd.DataFrame, profile: pd.DataFrame, weights: dict[str, float]) -> pd.DataFrame:
    """Quality score per table and its parts (formula in the module docstring). A part missing from
    `weights` takes its weight from the schema default of `audit.quality_weights`."""
    defaults = AuditSettings.model_fields["quality_weights"].get_default(call_default_factory=True)
    weights = {**defaults, **weights}
    completeness = (1 - profile.groupby("table")["missing_share"].mean()).rename("completeness")
    frame = ledger.set_index("table").join(completeness)
    inputs = frame["input_rows"].clip(lower=1)
    frame["validity"] = 1 - frame["value_problem_rows"] / inputs
    frame["uniqueness"] = 1 - (frame["exact_duplicate_rows"] + frame["duplicate_key_rows"]) / inputs
    frame["integrity"] = 1 - frame["orphan_rows"] / inputs
    parts = list(QUALITY_PARTS)
    total_weight = sum(weights[p] for p in parts)
    frame["score"] = 100 * sum(weights[p] * frame[p] for p in parts) / total_weight
    return frame.reset_index()[["table", "score", *parts, "input_rows", "accepted_rows", "quarantined_rows"]]


def integrity_table(ledger: pd.DataFrame) -> pd.DataFrame:
    """Referential integrity of the event tables: rows whose customer record does not exist."""
    rows = []
    for table in TABLES.values():
        if table.references:
            column, parent, _ = table.references[0]
            target = "the identity table named by source_system" if parent == "source_system" else parent
            entry = ledger.set_index("table").loc[table.name]
            rows.append({"table": table.name, "reference": f"{column} -> {target}",
                         "rows": int(entry.input_rows), "orphan_rows": int(entry.orphan_rows),
                         "orphan_share": entry.orphan_rows / max(int(entry.input_rows), 1)})  # fmt: skip
    return pd.DataFrame(rows)


def invalid_values(profile: pd.DataFrame, reasons: pd.DataFrame, contract: ContractResult) -> pd.DataFrame:
    """Invalid values by check: bad phones/e-mails (rows kept), bad categories and bad optional attributes
    of identity records (set to null, rows kept), quarantine reasons."""
    identifiers = contract.invalid_identifiers.assign(
        check=lambda f: "invalid " + f["column"] + " format (kept, _norm null)"
    )[["table", "check", "invalid"]].rename(columns={"invalid": "rows"})
    categories = profile[
        profile.apply(lambda r: (r.table, r.column) in CATEGORIES and not r.required, axis=1)
        & (profile.invalid > 0)
    ].assign(check=lambda f: "unknown " + f["column"] + " value (kept, set to null)")[
        ["table", "check", "invalid"]
    ]
    dropped = contract.dropped_values.assign(
        check=lambda f: f["column"] + " " + f["reason"] + " (kept, set to null)"
    )[["table", "check", "rows"]]
    quarantined = reasons.rename(columns={"reason": "check"}).assign(
        check=lambda f: f["check"] + " (quarantined)"
    )
    frame = pd.concat(
        [identifiers, categories.rename(columns={"invalid": "rows"}), dropped, quarantined], ignore_index=True
    )
    return frame[frame["rows"] > 0].reset_index(drop=True)


# ---------------------------------------------------------------- the step


def run_step(ctx: StepContext) -> AuditReport:
    """Step 01: contract pass plus profiling. Writes every artifact of the step (clean and quarantine
    tables, ledger, profiles, quality, coverage), records the key figures in the step manifest and
    returns what notebook 01 shows."""
    with Workspace(ctx.step_dir, memory_limit=ctx.settings.audit.memory_limit,
                   threads=ctx.settings.audit.threads, settings=ctx.settings) as workspace:  # fmt: skip
        engine = workspace.engine
        found: dict[str, dict[str, pd.DataFrame]] = {"reasons": {}, "ranges": {}, "monthly": {}}

        def inspect(table: str) -> None:  # each work table, before the contract releases it
            found["reasons"][table] = quarantine_reasons(engine, table)
            found["ranges"][table] = numeric_ranges(engine, table)
            found["monthly"][table] = monthly_rows(engine, table)

        contract = run_contract(ctx, workspace, inspect)
        profile = without_inapplicable(contract, ctx.settings.data)
        reasons, ranges, monthly = (
            pd.concat([frames[t] for t in TABLES], ignore_index=True) for frames in found.values()
        )
        by_system = coverage_by_system(engine, ctx)
    monthly["month"] = pd.to_datetime(monthly["month"])
    ledger = contract.ledger
    quality = quality_scores(ledger, profile, ctx.settings.audit.quality_weights)
    dates = profile[profile["type"].isin(["date", "datetime"]) & (profile["column"] != "birth_date")]
    date_coverage = dates[["table", "column", "min", "max"]].rename(columns={"min": "first", "max": "last"})
    months = monthly.groupby(["table", "column"])["month"].agg(months_with_rows="nunique").reset_index()
    date_coverage = date_coverage.merge(months, on=["table", "column"], how="left")
    report = AuditReport(
        contract=contract, ledger=ledger, column_profile=profile, quarantine_reasons=reasons,
        numeric_ranges=ranges, date_coverage=date_coverage, monthly_rows=monthly,
        integrity=integrity_table(ledger), invalid_values=invalid_values(profile, reasons, contract),
        quality=quality, coverage=coverage_table(by_system), coverage_by_system=by_system,
    )  # fmt: skip
    for name in (
        "column_profile",
        "quarantine_reasons",
        "numeric_ranges",
        "date_coverage",
        "monthly_rows",
        "integrity",
        "invalid_values",
        "quality",
        "coverage",
        "coverage_by_system",
    ):
        ctx.write(name, getattr(report, name))  # fmt: skip
    ctx.record(
        ledger=ledger_json(ledger),
        quality={row.table: round(float(row.score), 2) for row in quality.itertuples()},
        coverage={row.group: round(float(row.share), 4) for row in report.coverage.itertuples()},
        quarantined_rows=int(ledger["quarantined_rows"].sum()),
        contract_checked_rows=contract.contract_checked_rows,
        quarantine_warnings=contract.quarantine_warnings,
    )
    return report


def without_inapplicable(contract: ContractResult, data: DataSettings) -> pd.DataFrame:
    """The column profile without the columns a table's `key_by` makes inapplicable (the record-key
    columns of an event table keyed by an identifier, the identifier columns of one keyed by record),
    so they do not count as empty in completeness; also drops them from the absent-column lists."""
    inapplicable: dict[str, set[str]] = {}
    for table in TABLES.values():
        if table.kind != "event":
            continue
        entry = data.tables.get(table.name)
        keyed_by_record = entry is None or entry.key_by == "record"
        inapplicable[table.name] = (
            {column.name for column in EVENT_REFERENCE_COLUMNS}
            if keyed_by_record
            else set(table.record_key_columns)
        )
    for table, columns in contract.missing_optional_columns.items():
        contract.missing_optional_columns[table] = [
            c for c in columns if c not in inapplicable.get(table, set())
        ]
    profile = contract.column_profile
    keep = [
        column not in inapplicable.get(table, set())
        for table, column in zip(profile["table"], profile["column"], strict=True)
    ]
    return profile[keep].reset_index(drop=True)


def table_overview(report: AuditReport) -> pd.DataFrame:
    """Per table: rows in, accepted, quarantined, columns, missing optional columns, score."""
    overview = report.quality[["table", "input_rows", "accepted_rows", "quarantined_rows", "score"]].copy()
    overview.insert(2, "columns", overview["table"].map(lambda t: len(TABLES[t].columns)))
    overview["absent_columns"] = overview["table"].map(
        lambda t: ", ".join(report.contract.missing_optional_columns.get(t, []))
    )
    return overview


PERSONAL_RANGE_COLUMNS = ("birth_date",)  # single people's values: no min/max in reports


def profile_for_report(profile: pd.DataFrame) -> pd.DataFrame:
    """The column profile for display: dates as dates, readable numbers, no personal birth-date ranges."""
    shown = profile.drop(columns=["rows"]).copy()
    for bound in ("min", "max"):
        values = shown[bound].astype("string")
        is_date = shown["type"].eq("date")
        values = values.where(~is_date, values.str.slice(0, 10))
        is_number = shown["type"].isin(["int", "float"])
        numbers = pd.to_numeric(shown[bound].where(is_number), errors="coerce")
        decimals = shown["type"].map({"int": 0, "float": 2}).fillna(0).astype(int)
        readable = pd.Series(
            [f"{v:,.{d}f}" for v, d in zip(numbers, decimals, strict=True)], index=shown.index
        )
        values = values.where(~(is_number & numbers.notna()), readable)
        shown[bound] = values.where(~shown["column"].isin(PERSONAL_RANGE_COLUMNS), pd.NA)
    return shown


def summary_text(report: AuditReport) -> str:
    """A short deterministic text summary: ledger, scores and coverage."""
    lines = [
        f"{r.table:20s} in {r.input_rows:>8d}  ok {r.accepted_rows:>8d}  "
        f"quarantined {r.quarantined_rows:>6d}  score {r.score:5.1f}"
        for r in report.quality.itertuples()
    ]
    lines += [f"coverage {r.group:14s} {r.share:6.1%}" for r in report.coverage.itertuples()]
    return "\n".join(lines)
