"""The audit of step 01: scores and coverage on the hand-built fixture, planted defects on the demo world."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pytest
import yaml
from test_contract import fixture_config, make_context, write_world

import helpers.core.plots
from helpers.audit import display, plots
from helpers.audit import report as audit
from helpers.audit.display import reason_label
from helpers.core.config import resolve_path, setting
from helpers.core.context import StepContext, open_step
from helpers.core.factors import FACTOR_GROUPS, SOURCE_GROUPS
from helpers.core.i18n import catalog
from helpers.core.steps import AUDIT
from helpers.core.tables import TABLES

# Planted defect kind (helpers.demo.world truth) -> the quarantine reason that must name it. An impossible
# birth date is an optional attribute of an identity record: dropped, the record kept (IMPOSSIBLE_BIRTH).
IMPOSSIBLE_BIRTH = "birth_date gives an impossible age, set to null"
DEFECT_REASONS = {
    "unparseable_date": "unparseable ",
    "future_date": "after reference date",
    "negative_amount": "negative amount on non-refund",
    "negative_quantity": "negative quantity",
    "orphan": "orphan reference",
    "exact_duplicate": "exact duplicate row",
}


@pytest.fixture(scope="module")
def fixture_report(tmp_path_factory: pytest.TempPathFactory) -> audit.AuditReport:
    base = tmp_path_factory.mktemp("audit")
    config = fixture_config(base / "raw")
    write_world(base / "raw", config)
    return audit.run_step(make_context(base, config))


def test_quality_score_parts_on_the_fixture(fixture_report: audit.AuditReport) -> None:
    quality = fixture_report.quality.set_index("table")
    # transactions: 9 rows, 4 with value problems, 1 exact duplicate, 1 orphan, 1 reference to a
    # quarantined customer (a problem of the customer table, not of integrity), every cell filled.
    transactions = quality.loc["transactions"]
    assert transactions.validity == pytest.approx(5 / 9)
    assert transactions.uniqueness == pytest.approx(8 / 9)
    assert transactions.integrity == pytest.approx(8 / 9)
    assert transactions.completeness == pytest.approx(1.0)
    assert transactions.score == pytest.approx(100 * (0.4 * 5 / 9 + 0.2 * 1 + 0.2 * 8 / 9 + 0.2 * 8 / 9))
    # calls: 3 rows, 1 value problem, 1 orphan; resolved and satisfaction empty once each (of 8 columns).
    calls = quality.loc["calls"]
    completeness = (6 + 2 * 2 / 3) / 8
    assert calls.completeness == pytest.approx(completeness)
    assert calls.score == pytest.approx(100 * (0.4 * 2 / 3 + 0.2 * completeness + 0.2 * 1 + 0.2 * 2 / 3))
    assert quality.loc["crm_customers", "uniqueness"] == pytest.approx(7 / 8)  # one duplicate crm_id


def test_quality_weights_come_from_the_config(fixture_report: audit.AuditReport) -> None:
    only_validity = {"validity": 1.0, "completeness": 0.0, "uniqueness": 0.0, "integrity": 0.0}
    quality = audit.quality_scores(fixture_report.ledger, fixture_report.column_profile, only_validity)
    assert quality.set_index("table").loc["transactions", "score"] == pytest.approx(100 * 5 / 9)


def test_coverage_per_factor_group_on_the_fixture(fixture_report: audit.AuditReport) -> None:
    # Accepted identity records: CRM001, CRM002, CRM003, CRM005, CRM006 (bad birth dates dropped, the
    # records kept), CTI01, S1, S2, L001. Purchases (value, behaviour): CRM001 and S1; marketing
    # touches: CRM001 and L001; a company: CRM002. The groups are those of helpers.core.factors with
    # source columns (lifetime_value is modelled from the value group's purchases).
    coverage = fixture_report.coverage.set_index("group")
    expected = {"value": 2, "behaviour": 2, "service": 2, "marketing": 2, "demographic": 6, "geographic": 4,
                "technographic": 1, "psychographic": 1, "firmographic": 1}  # fmt: skip
    assert list(coverage.index) == [group.name for group in FACTOR_GROUPS if group.name != "lifetime_value"]
    assert coverage["records_with"].to_dict() == expected
    assert (coverage["records"] == 9).all()
    assert coverage.loc["demographic", "share"] == pytest.approx(6 / 9)
    by_system = fixture_report.coverage_by_system.set_index("system")
    assert by_system.loc["cti", "service"] == 1 and by_system.loc["crm", "service"] == 1
    assert "shop_accounts.primary_device" in coverage.loc["technographic", "feeds"]


def test_column_profile_counts_missing_and_invalid(fixture_report: audit.AuditReport) -> None:
    profile = fixture_report.column_profile.set_index(["table", "column"])
    assert profile.loc[("crm_customers", "email"), "missing"] == 6
    assert profile.loc[("crm_customers", "gender"), "invalid"] == 1  # "X"; "f" is standardized to F
    assert profile.loc[("crm_customers", "crm_id"), "distinct"] == 7
    assert profile.loc[("transactions", "amount"), "invalid"] == 1
    assert profile.loc[("transactions", "amount"), "min"] == "-20.0"  # refunds are accepted negatives
    assert profile.loc[("calls", "call_at"), "max"] == "2024-01-06 09:15:00"
    checks = fixture_report.invalid_values.set_index(["table", "check"])["rows"]
    assert checks[("crm_customers", "unknown gender value (kept, set to null)")] == 1
    assert checks[("crm_customers", "birth_date gives an impossible age (kept, set to null)")] == 2
    assert profile.loc[("crm_customers", "birth_date"), "invalid"] == 1  # unparseable; impossible ages parse
    assert checks[("transactions", "orphan reference (quarantined)")] == 1
    assert checks[("transactions", "reference to a quarantined record (quarantined)")] == 1


def test_integrity_ranges_and_months_on_the_fixture(fixture_report: audit.AuditReport) -> None:
    integrity = fixture_report.integrity.set_index("table")
    assert integrity.loc["calls", "orphan_rows"] == 1 and integrity.loc["transactions", "orphan_rows"] == 1
    ranges = fixture_report.numeric_ranges.set_index(["table", "column"])
    assert (
        ranges.loc[("transactions", "quantity"), "max"] == 2
        and ranges.loc[("transactions", "amount"), "n"] == 2
    )
    monthly = fixture_report.monthly_rows
    transactions = monthly[monthly["table"] == "transactions"]
    assert transactions["rows"].tolist() == [1, 1] and transactions["column"].iloc[0] == "txn_at"


def test_summary_and_figures_render(fixture_report: audit.AuditReport) -> None:
    summary = audit.summary_text(fixture_report).splitlines()
    assert summary[0].split() == ["crm_customers", "in", "8", "ok", "5", "quarantined", "3", "score",
                                  f"{fixture_report.quality.score.iloc[0]:.1f}"]  # fmt: skip
    report = fixture_report
    helpers.core.plots.setup()  # the CJK font, as every notebook does
    for language in ("zh", "en"):
        text = catalog(language)
        figures = (plots.plot_missingness(text, report.column_profile),
                   plots.plot_quality(text, report.quality),
                   plots.plot_coverage(text, report.coverage_by_system),
                   plots.plot_monthly(text, report.monthly_rows),
                   plots.plot_reasons(text, report.quarantine_reasons))  # fmt: skip
        assert all(figure.axes for figure in figures)
    zh_title = plots.plot_quality(catalog("zh"), report.quality).axes[0].get_title()
    assert zh_title.startswith("各表数据质量")


def test_reasons_in_plain_words() -> None:
    zh, en = catalog("zh"), catalog("en")
    assert reason_label(zh, "unparseable call_at") == "通话时间无法解析"
    assert reason_label(zh, "txn_at after reference date (quarantined)") == "下单时间晚于截至日期(已隔离)"
    assert reason_label(zh, "invalid mobile format (kept, _norm null)").startswith("手机格式错误")
    assert reason_label(en, "orphan reference") == "no such customer (orphan)"
    assert reason_label(zh, "ragged row: 3 fields, 5 expected") == "ragged row: 3 fields, 5 expected"


def test_knobs_override_the_config(tmp_path: Path) -> None:
    config = fixture_config(tmp_path / "raw")
    write_world(tmp_path / "raw", config)
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "config.yml").write_text(yaml.safe_dump(config, allow_unicode=True))
    # Notebook 01's parameters min_age=5, max_age=None (None keeps the config's value).
    ctx = open_step(AUDIT.name, str(run_dir), overrides={"audit.min_age": 5, "audit.max_age": None})
    assert ctx.config["audit"]["min_age"] == 5 and ctx.config["audit"]["max_age"] == 100
    assert ctx.settings.audit.min_age == 5 and ctx.settings.audit.max_age == 100
    report = audit.run_step(ctx)
    dropped = report.contract.dropped_values.set_index(["table", "column", "reason"])["rows"]
    assert (
        dropped[("crm_customers", "birth_date", "gives an impossible age")] == 1
    )  # the 11-year-old's is plausible
    manifest = json.loads(ctx.path("step.json").read_text())
    assert manifest["ledger"]["crm_customers"] == {"input_rows": 8, "accepted_rows": 5, "quarantined_rows": 3}
    assert set(manifest["quality"]) == set(TABLES)
    assert list(manifest["coverage"]) == [group.name for group in SOURCE_GROUPS]
    for name in ("quality", "coverage", "column_profile", "quarantine_reasons"):
        assert ctx.path(f"{name}.parquet").is_file()


def test_factor_group_feeds_are_canonical_columns() -> None:
    feeds = [feed.split(".") for group in FACTOR_GROUPS for feed in group.feeds]
    assert feeds and all(column in TABLES[table].column_names for table, column in feeds)
    derived = [group for group in FACTOR_GROUPS if not group.feeds]
    assert [group.name for group in derived] == ["lifetime_value"] and derived[0].derived_from == "value"


# ---------------------------------------------------------------- the demo world


@pytest.fixture(scope="module")
def demo_run(small_world_config: dict, tmp_path_factory: pytest.TempPathFactory) -> tuple[StepContext, dict]:
    """The audit of the small demo world (generated once per session by conftest)."""
    base = tmp_path_factory.mktemp("demo_audit")
    ctx = make_context(base, copy.deepcopy(small_world_config))
    audit.run_step(ctx)
    return ctx, small_world_config


@pytest.mark.xdist_group("small_world")
def test_demo_world_ledger_balances_and_clean_data_is_consistent(demo_run: tuple[StepContext, dict]) -> None:
    ctx, _ = demo_run
    ledger = ctx.read("01_data_audit", "ledger").set_index("table")
    assert list(ledger.index) == list(TABLES)
    assert (ledger.input_rows == ledger.accepted_rows + ledger.quarantined_rows).all()
    assert (ledger.quarantined_rows > 0).sum() >= 6
    keys = set()
    for table in TABLES.values():
        clean = ctx.read("01_data_audit", f"clean_{table.name}")
        quarantine = ctx.read("01_data_audit", f"quarantine_{table.name}")
        assert len(clean) == ledger.loc[table.name, "accepted_rows"]
        assert len(quarantine) == ledger.loc[table.name, "quarantined_rows"]
        assert clean[table.key].is_unique and clean[table.required_columns].notna().all().all()
        if table.kind == "identity":
            keys |= set(zip(clean["source_system"], clean["source_record_id"], strict=True))
            assert (clean["source_record_id"] == clean[table.key]).all()
    transactions = ctx.read("01_data_audit", "clean_transactions")
    referenced = set(zip(transactions["source_system"], transactions["source_customer_id"], strict=True))
    assert referenced <= keys  # no orphan survives cleaning
    calls = ctx.read("01_data_audit", "clean_calls")
    assert set(calls["cti_id"]) <= {key for system, key in keys if system == "cti"}


@pytest.mark.xdist_group("small_world")
def test_demo_world_planted_defects_are_all_quarantined(demo_run: tuple[StepContext, dict]) -> None:
    ctx, config = demo_run
    truth_dir = resolve_path(Path("data/truth") / resolve_path(setting(config, "data.raw_dir")).name)
    planted = pd.read_parquet(truth_dir / "planted_defects.parquet")
    births = planted[planted["defect"] == "impossible_birth_date"]
    for table, defects in births.groupby("table"):  # kept, the birth date dropped and noted
        clean = ctx.read("01_data_audit", f"clean_{table}").set_index(TABLES[table].key)
        kept = clean.reindex(defects["key"])
        assert kept["birth_date"].isna().all() and kept["notes"].str.contains(IMPOSSIBLE_BIRTH).all(), table
    assert len(births) > 5
    missed = []
    for table, defects in planted[planted["defect"] != "impossible_birth_date"].groupby("table"):
        quarantine = ctx.read("01_data_audit", f"quarantine_{table}")
        key = TABLES[table].key
        reasons = quarantine.groupby(quarantine[key].str.strip())["reason"].agg("; ".join)
        for defect in defects.itertuples():
            if DEFECT_REASONS[defect.defect] not in reasons.get(defect.key, ""):
                missed.append((table, defect.key, defect.defect))
    assert not missed, missed[:10]
    assert len(planted) > 50


@pytest.mark.xdist_group("small_world")
def test_distinct_counts_never_exceed_the_filled_values(demo_run: tuple[StepContext, dict]) -> None:
    ctx, _ = demo_run
    profile = ctx.read("01_data_audit", "column_profile")
    keys = profile[profile["column"].isin([table.key for table in TABLES.values()])]
    # Event-table counts are HyperLogLog estimates, which overshoot on unique keys unless capped.
    assert (keys["distinct"] == keys["rows"] - keys["missing"] - keys["invalid"]).any()
    assert (profile["distinct"] <= profile["rows"] - profile["missing"]).all()


def test_coverage_view_counts_events_keyed_by_an_identifier_as_data() -> None:
    """Calls keyed by the caller number and orders keyed by the shop account feed service, value and
    behaviour although no record key ties them to a record in step 01: those groups show their event
    rows and no record share (unknown before step 02), not 0 %."""
    groups = ["value", "behaviour", "service", "demographic", "firmographic"]
    report = SimpleNamespace(
        coverage=pd.DataFrame(
            {"group": groups, "feeds": "", "records_with": [0, 0, 0, 5, 0], "records": 8,
             "share": [0.0, 0.0, 0.0, 5 / 8, 0.0]}
        ),
        column_profile=pd.DataFrame(
            [("calls", "customer_ref", 7, 0), ("calls", "reason", 7, 0), ("calls", "satisfaction", 7, 7),
             ("transactions", "customer_ref", 9, 1), ("transactions", "amount", 9, 0),
             ("transactions", "txn_at", 9, 0), ("crm_customers", "gender", 8, 3)],
            columns=["table", "column", "rows", "missing"],
        ),
        ledger=pd.DataFrame(
            {"table": ["crm_customers", "transactions", "calls"], "accepted_rows": [8, 9, 7]}
        ),
    )  # fmt: skip
    view = display.coverage_view(report).set_index("group")
    assert view["identifier_event_rows"].to_dict() == {
        "value": 9, "behaviour": 9, "service": 7, "demographic": 0, "firmographic": 0
    }  # fmt: skip
    assert view.loc[["value", "behaviour", "service"], "records_with"].isna().all()
    assert view.loc[["value", "behaviour", "service"], "share"].isna().all()
    assert view.loc["demographic", "records_with"] == 5 and view.loc["demographic", "share"] == 5 / 8
    assert view.loc["firmographic", "records_with"] == 0  # no data at all stays 0
    for language in ("zh", "en"):
        shown = display.coverage_table(catalog(language), report).data
        assert list(shown.iloc[:, -1]) == [9, 9, 7, 0, 0]
        assert "audit.headers" not in shown.columns[-1]
