"""Step 06: playbook, priority, capacity-limited call list, segment metrics and segment migration."""

from __future__ import annotations

import json
import os
import re
import time
from dataclasses import replace
from datetime import date
from pathlib import Path

import numpy as np
import openpyxl
import pandas as pd
import pytest
import yaml

from helpers.core import runs
from helpers.core.config import ConfigError, load_config, parse_config
from helpers.core.i18n import catalog
from helpers.core.paths import PROJECT_ROOT
from helpers.core.settings import StrategySettingsSection
from helpers.lifecycle.stages import stage_labels
from helpers.strategy import migration
from helpers.strategy import plan as strategy
from helpers.strategy.synthetic import synthetic_inputs, write_synthetic_run

PLAYBOOK = strategy.load_playbook(PROJECT_ROOT / "config" / "playbook.yml", "en")
EN, ZH = catalog("en"), catalog("zh")


def demo_settings() -> strategy.StrategySettings:
    """The demo config's strategy settings."""
    return strategy.StrategySettings.from_config(parse_config(load_config()).strategy)


def settings_with(teams: dict[str, dict], period_days: int = 30) -> strategy.StrategySettings:
    section = {**load_config()["strategy"], "capacity": teams, "period_days": period_days}
    return strategy.StrategySettings.from_config(StrategySettingsSection.model_validate(section))


@pytest.fixture(scope="module")
def synthetic() -> dict[str, pd.DataFrame]:
    return synthetic_inputs(6000, seed=3)


@pytest.fixture(scope="module")
def customers(synthetic: dict[str, pd.DataFrame]) -> pd.DataFrame:
    return strategy.assemble_customers(synthetic["features"], synthetic["segments"], synthetic["lifecycle"])


def hand_built(rows: list[dict]) -> pd.DataFrame:
    """Customers with the given overrides on neutral defaults, already assembled."""
    defaults = {
        "segment_id": 0, "segment_name": "Mixed", "stage": "retention", "churn_risk": 0.2, "clv_12m": 1000.0,
        "value_tier": "middle", "response_rate": 0.2, "n_marketing_contacts": 10, "conversion_rate": 0.05,
        "monetary_12m": 1000.0, "csat_mean": 4.0, "nps_mean": 8.0, "n_calls": 2, "contacts_per_month": 0.5,
        "n_complaints": 0, "avg_handle_sec": 300.0, "purchases_last_90d": 1,
        "purchases_prev_90d": 1,
    }  # fmt: skip
    frame = pd.DataFrame([{**defaults, "customer_id": f"C{i}", **row} for i, row in enumerate(rows)])
    features = frame[strategy.FEATURE_COLUMNS]
    return strategy.assemble_customers(
        features,
        frame[["customer_id", "segment_id", "segment_name"]],
        frame[["customer_id", "stage", "churn_risk"]],
    )


def test_high_value_at_risk_outranks_low_value_loyal() -> None:
    customers = hand_built(
        [
            {"stage": "loyalty", "value_tier": "low", "clv_12m": 300.0, "churn_risk": 0.05},
            {"stage": "at_risk", "value_tier": "high", "clv_12m": 20000.0, "churn_risk": 0.8},
            {"stage": "retention", "value_tier": "middle", "clv_12m": 3000.0, "churn_risk": 0.3},
        ]
    )
    # One team for every tier with room for exactly one at-risk customer's two calls.
    settings = settings_with(
        {"all": {"agents": 1, "hours_per_day": 1, "calls_per_hour": 0.1, "tiers": ["high", "middle", "low"]}}
    )
    assert settings.teams[0].capacity == 2
    plan = strategy.assign_calls(strategy.build_plan(customers, PLAYBOOK, settings), settings)
    by_id = plan.set_index("customer_id")
    assert by_id.loc["C1", "priority"] > max(by_id.loc["C0", "priority"], by_id.loc["C2", "priority"])
    assert by_id.loc["C1", "value_at_risk"] == pytest.approx(16000.0)
    # Upside: the segment's 75th-percentile CLV (11,500) minus own CLV, weighted and discounted by risk.
    assert by_id.loc["C0", "upside"] == pytest.approx(11200.0)
    expected = 300 * 0.05 + settings.upside_weight * 11200 * 0.95
    assert by_id.loc["C0", "value_at_stake"] == pytest.approx(expected)
    assert by_id["on_call_list"].to_dict() == {"C0": False, "C1": True, "C2": False}
    assert by_id.loc["C1", "call_rank"] == 1
    assert by_id.loc["C1", "calls_planned"] == 2  # at-risk: every 15 days in a 30-day period


@pytest.mark.parametrize(
    "teams",
    [
        {},  # the demo config's teams
        {"solo": {"agents": 1, "hours_per_day": 2, "calls_per_hour": 3, "tiers": ["high", "middle", "low"]}},
        {
            "vip": {"agents": 1, "hours_per_day": 4, "calls_per_hour": 2, "tiers": ["high"]},
            "shared_a": {"agents": 2, "hours_per_day": 1, "calls_per_hour": 5, "tiers": ["middle", "low"]},
            "shared_b": {"agents": 1, "hours_per_day": 3, "calls_per_hour": 7, "tiers": ["low"]},
            # a team with no capacity this period (the schema requires agents >= 1; 0.21 calls round to 0)
            "idle": {"agents": 1, "hours_per_day": 0.01, "calls_per_hour": 1, "tiers": ["middle"]},
        },
    ],
)
def test_call_list_never_exceeds_capacity_and_fills_it(customers: pd.DataFrame, teams: dict) -> None:
    settings = settings_with(teams) if teams else demo_settings()
    assert all(team.capacity == 0 for team in settings.teams if team.name == "idle")
    plan = strategy.assign_calls(strategy.build_plan(customers, PLAYBOOK, settings), settings)
    usage = strategy.team_usage(plan, settings).set_index("team")
    assert (usage["calls_planned"] <= usage["calls_capacity"]).all()
    assert plan.loc[plan["on_call_list"], "priority"].gt(0).all()
    assert plan.loc[plan["on_call_list"], "call_eligible"].all()
    cents = plan["priority"].round(strategy.PRIORITY_DECIMALS)
    ranked = plan.assign(cents=cents).sort_values(["cents", "customer_id"], ascending=[False, True])
    taken = set()
    for team in settings.teams:
        members = plan.loc[plan["team"] == team.name]
        assert members["value_tier"].astype(str).isin(team.tiers).all()
        left_out = ranked.loc[
            ranked["call_eligible"]
            & ranked["priority"].gt(0)
            & ranked["value_tier"].astype(str).isin(team.tiers)
            & ~ranked["customer_id"].isin(taken)
            & ~ranked["on_call_list"]
        ]
        room = team.capacity - members["calls_planned"].sum()
        lead_calls = members.loc[members["stage"].isin(strategy.PROSPECT_STAGES), "calls_planned"].sum()
        assert lead_calls <= settings.max_prospect_share * team.capacity
        for is_lead, group in left_out.groupby(left_out["stage"].isin(strategy.PROSPECT_STAGES)):
            # Maximal: the best one left out does not fit in what is left (or in the prospect cap).
            needed = group["contacts_planned"].iloc[0]
            lead_room = settings.max_prospect_share * team.capacity - lead_calls
            assert needed > room or (is_lead and needed > lead_room)
        taken |= set(members["customer_id"])
    on_list = plan.loc[plan["on_call_list"]].sort_values("call_rank")
    assert on_list["call_rank"].tolist() == list(range(1, len(on_list) + 1))
    assert on_list["priority"].round(strategy.PRIORITY_DECIMALS).is_monotonic_decreasing


def test_priorities_equal_to_the_cent_keep_input_order() -> None:
    """Float noise (an engine's parallel sums) below a cent must not reorder the call list."""
    noise = 1e-9
    customers = hand_built(
        [
            {"stage": "at_risk", "value_tier": "high", "clv_12m": 20000.0, "churn_risk": 0.8},
            {"stage": "at_risk", "value_tier": "high", "clv_12m": 20000.0 + noise, "churn_risk": 0.8},
        ]
    )
    settings = settings_with(
        {"all": {"agents": 1, "hours_per_day": 1, "calls_per_hour": 0.1, "tiers": ["high", "middle", "low"]}}
    )
    plan = strategy.assign_calls(strategy.build_plan(customers, PLAYBOOK, settings), settings)
    by_id = plan.set_index("customer_id")
    assert by_id.loc["C1", "priority"] > by_id.loc["C0", "priority"]  # by the noise alone
    assert by_id["call_rank"].to_dict() == {"C0": 1, "C1": 0}  # room for one: the first in input order


def test_call_list_export_carries_contacts_and_reasons(
    synthetic: dict[str, pd.DataFrame], customers: pd.DataFrame, tmp_path: Path
) -> None:
    settings = demo_settings()
    plan = strategy.assign_calls(strategy.build_plan(customers, PLAYBOOK, settings), settings)
    assert not {"full_name", "mobile", "email"} & set(plan.columns)
    calls = strategy.build_call_list(plan, synthetic["golden"], date(2026, 6, 30), date(2026, 7, 30), EN)
    assert len(calls) == plan["on_call_list"].sum()
    assert list(calls.columns) == strategy.CALL_LIST_COLUMNS
    assert calls["mobile"].str.match(r"^\+861\d{10}$").all()
    assert (
        calls["reason"]
        .str.match(
            r"^[a-z ]+ stage, (?:high|middle|low) value: (?:churn risk \d+% on 12-month "
            r"CLV ¥[\d,]+|upside ¥[\d,]+ to the segment's top customers)$"
        )
        .all()
    )
    churn = calls["reason"].str.contains("churn risk")
    assert (
        calls["reason_code"] == calls["stage"].astype(str) + np.where(churn, ".churn_risk", ".upside")
    ).all()
    csv_path, xlsx_path = strategy.write_call_list(calls, tmp_path, EN)
    from_csv = pd.read_csv(csv_path, encoding="utf-8-sig")
    from_xlsx = pd.read_excel(xlsx_path, sheet_name="call_list")
    assert list(from_csv.columns) == [
        "Call order", "Team", "Customer id", "Name", "Mobile", "Email", "City", "Segment", "Lifecycle stage",
        "Value tier", "Predicted 12-month value (CNY)", "Churn risk", "Priority", "Calls planned", "Action",
        "Offer", "Script theme", "Reason for the call", "reason_code", "As of", "Plan until",
    ]  # fmt: skip
    assert from_csv["Name"].tolist() == calls["full_name"].tolist()
    assert from_xlsx["Customer id"].tolist() == calls["customer_id"].tolist()
    assert set(from_csv["Team"]) <= {"Account managers", "Callback team", "Outbound team"}
    for frame in (from_csv, from_xlsx):
        assert (frame["As of"] == "2026-06-30").all() and (frame["Plan until"] == "2026-07-30").all()


def test_call_list_for_chinese_agents(
    synthetic: dict[str, pd.DataFrame], customers: pd.DataFrame, tmp_path: Path
) -> None:
    """A zh run: headers, team, stage, tier, playbook texts and reasons in Chinese; codes unchanged."""
    settings = demo_settings()
    playbook = strategy.load_playbook(PROJECT_ROOT / "config" / "playbook.yml", "zh")
    plan = strategy.assign_calls(strategy.build_plan(customers, playbook, settings), settings)
    calls = strategy.build_call_list(plan, synthetic["golden"], date(2026, 6, 30), date(2026, 7, 30), ZH)
    english = strategy.build_call_list(
        strategy.assign_calls(strategy.build_plan(customers, PLAYBOOK, settings), settings),
        synthetic["golden"], date(2026, 6, 30), date(2026, 7, 30), EN,
    )  # fmt: skip
    assert calls["customer_id"].tolist() == english["customer_id"].tolist()  # same plan in both languages
    assert calls["reason_code"].tolist() == english["reason_code"].tolist()
    _, xlsx_path = strategy.write_call_list(calls, tmp_path, ZH)
    sheet = pd.read_excel(xlsx_path, sheet_name="外呼名单")
    assert list(sheet.columns[:4]) == ["外呼顺序", "团队", "客户编号", "姓名"] and "reason_code" in sheet
    assert set(sheet["价值层级"]) <= {"高价值", "中价值", "低价值"}
    assert set(sheet["生命周期阶段"]) <= set(stage_labels(ZH).values())
    at_risk = sheet["reason_code"] == "at_risk.churn_risk"
    assert (
        at_risk.any()
        and sheet.loc[at_risk, "致电原因"].str.match(r"^流失风险阶段，[高中低]价值：流失风险 \d+%").all()
    )
    assert (
        sheet.loc[sheet["生命周期阶段"] == "流失风险", "话术主题"] == "先致歉并解决遗留问题，再提供挽回优惠"
    ).all()
    assert not sheet["行动"].str.contains("[A-Za-z]{4}").any()  # no English action left
    widths = openpyxl.load_workbook(xlsx_path).active.column_dimensions
    reason_column = openpyxl.utils.get_column_letter(list(sheet.columns).index("致电原因") + 1)
    assert widths[reason_column].width > 40  # reasons are long; Chinese characters count double


def test_strategy_config_problems_are_caught_by_the_schema() -> None:
    """What StrategySettings.from_config used to check itself: teams, their keys and tiers."""
    section = load_config()["strategy"]
    team = {"agents": 1, "hours_per_day": 6, "calls_per_hour": 6, "tiers": ["middle"]}
    for capacity, problem in (
        ({}, "at least 1 item"),
        ({"t": {k: v for k, v in team.items() if k != "calls_per_hour"}}, "capacity.t.calls_per_hour"),
        ({"t": {**team, "tiers": ["gold"]}}, "capacity.t.tiers.0"),
    ):
        with pytest.raises(ConfigError, match=re.escape(problem)):
            parse_config({**load_config(), "strategy": {**section, "capacity": capacity}})


def _run_config(run_dir: Path, reference_date: str) -> None:
    """Set the frozen config's run.reference_date (as a run started with that config would have it)."""
    config = yaml.safe_load((run_dir / "config.yml").read_text(encoding="utf-8"))
    config["run"]["reference_date"] = reference_date
    (run_dir / "config.yml").write_text(yaml.safe_dump(config), encoding="utf-8")


def test_run_step_writes_the_artifacts_and_dates_the_call_list(tmp_path: Path) -> None:
    from helpers.core.context import open_step
    from helpers.strategy import run_step

    first = write_synthetic_run(tmp_path / "runs" / "first", 3000, seed=5)
    _run_config(first, "2025-03-31")
    ctx = open_step("06_strategy", str(first), overrides={"strategy.period_days": 45})
    result = run_step(ctx)  # report.language: zh (the default)
    assert result.moved is None and result.settings.period_days == 45
    assert (result.as_of_date, result.plan_until) == (date(2025, 3, 31), date(2025, 5, 15))
    from_csv = pd.read_csv(result.csv_path, encoding="utf-8-sig")
    from_xlsx = pd.read_excel(result.xlsx_path, sheet_name="外呼名单")  # report.language: zh by default
    assert len(from_csv) == len(from_xlsx) == len(result.calls) == int(result.plan["on_call_list"].sum()) > 0
    headers = [
        c if c == "reason_code" else ZH(f"strategy.call_list.columns.{c}") for c in strategy.CALL_LIST_COLUMNS
    ]
    for frame in (from_csv, from_xlsx):
        assert list(frame.columns) == headers
        assert (frame["截至日期"] == "2025-03-31").all() and (frame["计划截止日期"] == "2025-05-15").all()
    assert result.lifecycle_rules["horizon_days"] > 0
    assert all("**" in paragraph and "原因：" in paragraph for paragraph in result.paragraphs.values())
    manifest = json.loads((first / "06_strategy" / "step.json").read_text())
    assert manifest["as_of_date"] == "2025-03-31" and manifest["plan_until"] == "2025-05-15"
    assert manifest["call_list_customers"] == len(result.calls)
    assert manifest["calls_planned"] <= manifest["calls_capacity"]
    assert manifest["previous_run"] is None and manifest["flagged_segments"] == 0
    for name in ("plan", "segment_metrics", "team_usage", "playbook_matrix"):
        assert (first / "06_strategy" / f"{name}.parquet").is_file()
    written = pd.read_parquet(first / "06_strategy" / "plan.parquet")
    assert len(written) == 3000 and not {"mass_cost", "call_cost"} & set(written.columns)

    # A rerun in a new folder compares with the first: stable segments and the migration artifacts.
    second = write_synthetic_run(tmp_path / "runs" / "second", 3000, seed=5)
    os.utime(first / "config.yml", (time.time() - 60, time.time() - 60))
    rerun = second / "04_clustering" / "segments.parquet"
    relabel(
        pd.read_parquet(rerun), {0: 2, 1: 3, 2: 4, 3: 0, 4: 1}, {i: f"Cluster {i}" for i in range(5)}
    ).to_parquet(rerun, index=False)
    # The first run's names were English; this run is Chinese (the default): a naming-rule name is
    # shown in Chinese on the page, in the summary, the transitions and the call list.
    previous_plan = first / "06_strategy" / "plan.parquet"
    renamed = pd.read_parquet(previous_plan)
    renamed["segment_name"] = (
        renamed["segment_name"].astype(str).where(renamed["segment_id"] != 1, "Young online shoppers")
    )
    renamed.to_parquet(previous_plan, index=False)
    again = run_step(open_step("06_strategy", str(second)))
    moved = again.moved
    assert moved is not None and moved.previous_run == first.resolve()
    assert not moved.summary["flagged"].any()
    assert moved.summary.set_index("segment_id").loc[1, "segment_name"] == "年轻网购客户"
    assert (
        "年轻网购客户" in moved.segment_transitions.index
        and "年轻网购客户" in moved.segment_transitions.columns
    )
    assert "年轻网购客户" in again.paragraphs and "Young online shoppers" not in set(
        again.calls["segment_name"]
    )
    for name in ("segment_mapping", "segment_migration", "segment_transitions", "stage_transitions"):
        assert (second / "06_strategy" / f"{name}.parquet").is_file()
    manifest = json.loads((second / "06_strategy" / "step.json").read_text())
    assert manifest["previous_run"] == str(first.resolve()) and manifest["plan_until"] == "2026-07-30"


def test_bad_inputs_name_frame_column_and_count_without_ids(synthetic: dict[str, pd.DataFrame]) -> None:
    features = synthetic["features"].copy()
    features.loc[7, "value_tier"] = "gold"
    with pytest.raises(strategy.StrategyInputError, match=r"03_features/features\.value_tier: 1 rows") as bad:
        strategy.assemble_customers(features, synthetic["segments"], synthetic["lifecycle"])
    assert "C000000007" not in str(bad.value) and "gold" not in str(bad.value)  # no row contents
    lifecycle = synthetic["lifecycle"].drop(index=11)
    with pytest.raises(
        strategy.StrategyInputError,
        match=r"04_clustering/segments\.customer_id: 1 rows have no row in 05_lifecycle/lifecycle$",
    ):
        strategy.assemble_customers(synthetic["features"], synthetic["segments"], lifecycle)
    lifecycle = synthetic["lifecycle"].copy()
    lifecycle.loc[3, "churn_risk"] = 1.5
    with pytest.raises(strategy.StrategyInputError, match=r"churn_risk: 1 rows are outside 0\.\.1$"):
        strategy.assemble_customers(synthetic["features"], synthetic["segments"], lifecycle)
    with pytest.raises(strategy.StrategyInputError, match=r"lacks columns.*clv_12m"):
        strategy.assemble_customers(
            synthetic["features"].drop(columns="clv_12m"), synthetic["segments"], synthetic["lifecycle"]
        )


def test_smoothed_response_shrinks_to_population_rate() -> None:
    rates = pd.Series([np.nan, 1.0, 0.0])
    contacts = pd.Series([0, 1, 9])
    # population: 1 response in 10 contacts = 0.1; k = 10
    smoothed = strategy.smoothed_response(rates, contacts, prior_strength=10)
    assert smoothed.tolist() == pytest.approx([0.1, (1 + 1.0) / 11, (0 + 1.0) / 19])


def test_segment_metrics_known_values() -> None:
    customers = hand_built(
        [
            {"segment_id": 0, "segment_name": "A", "monetary_12m": 300.0, "nps_mean": 10, "n_calls": 4,
             "n_complaints": 1, "purchases_prev_90d": 2, "purchases_last_90d": 0, "stage": "at_risk"},
            {"segment_id": 0, "segment_name": "A", "monetary_12m": 300.0, "nps_mean": 3, "n_calls": 4,
             "n_complaints": 1, "purchases_prev_90d": 1, "purchases_last_90d": 2},
            {"segment_id": 1, "segment_name": "B", "monetary_12m": 400.0, "nps_mean": np.nan, "n_calls": 0,
             "n_complaints": 0, "purchases_prev_90d": 0, "csat_mean": 2.0},
        ]
    )  # fmt: skip
    settings = demo_settings()
    plan = strategy.assign_calls(strategy.build_plan(customers, PLAYBOOK, settings), settings)
    metrics = strategy.segment_metrics(customers, plan, settings).set_index("segment_name")
    assert metrics.loc["A", "customers"] == 2
    assert metrics.loc["A", "value_share"] == pytest.approx(0.6)
    assert metrics.loc["A", "nps"] == pytest.approx(0.0)  # one promoter, one detractor
    assert metrics.loc["A", "complaint_rate"] == pytest.approx(0.25)
    assert metrics.loc["A", "retention_rate"] == pytest.approx(0.5)
    assert metrics.loc["A", "at_risk_share"] == pytest.approx(0.5)
    assert np.isnan(metrics.loc["B", "nps"]) and np.isnan(metrics.loc["B", "complaint_rate"])
    assert metrics.loc["All customers", "csat"] == pytest.approx((4 + 4 + 2) / 3)
    assert metrics.loc["All customers", "customers"] == 3
    assert (metrics["cost_to_serve"] > 0).all()
    moved = strategy.metric_deltas(metrics.reset_index(), metrics.reset_index().assign(customers=1))
    assert moved.set_index("segment_name").loc["A", "delta_customers"] == 1


def test_playbook_segment_override_and_errors(tmp_path: Path) -> None:
    text = (PROJECT_ROOT / "config" / "playbook.yml").read_text(encoding="utf-8")
    edited = tmp_path / "playbook.yml"
    edited.write_text(
        text.replace(
            "segment_overrides: {}", 'segment_overrides:\n  "B":\n    at_risk: {script_theme: "Fix it"}'
        ),
        encoding="utf-8",
    )
    matrix = strategy.playbook_matrix(strategy.load_playbook(edited, "en"), ["A", "B"]).set_index(
        ["segment_name", "stage"]
    )
    assert matrix.loc[("B", "at_risk"), "script_theme"] == "Fix it"
    assert matrix.loc[("A", "at_risk"), "script_theme"] == PLAYBOOK.stages["at_risk"]["script_theme"]
    assert len(matrix) == 2 * len(strategy.STAGES)
    broken = tmp_path / "broken.yml"
    broken.write_text(text.replace("  churned:", "  gone:"), encoding="utf-8")
    with pytest.raises(strategy.StrategyInputError, match=r"stages section lacks \['churned'\]"):
        strategy.load_playbook(broken, "en")


def test_playbook_texts_in_the_run_language(tmp_path: Path) -> None:
    chinese = strategy.load_playbook(PROJECT_ROOT / "config" / "playbook.yml", "zh")
    assert (
        chinese.stages["at_risk"]["offer"] == "挽回激励"
        and PLAYBOOK.stages["at_risk"]["offer"] == "Win-back incentive"
    )
    assert chinese.tiers["middle"]["channel"] == "定期电话回访 + 邮件"
    assert chinese.stages["at_risk"]["frequency_days"] == PLAYBOOK.stages["at_risk"]["frequency_days"] == 15
    for language in ("zh", "en"):  # every text of the shipped playbook exists in both languages
        playbook = strategy.load_playbook(PROJECT_ROOT / "config" / "playbook.yml", language)
        for fields in [*playbook.stages.values(), *playbook.tiers.values()]:
            assert all(isinstance(fields[f], str) for f in strategy.TEXT_FIELDS if f in fields)
    text = (PROJECT_ROOT / "config" / "playbook.yml").read_text(encoding="utf-8")
    edited = tmp_path / "playbook.yml"
    edited.write_text(
        text.replace(
            "offer: {zh: 挽回激励, en: Win-back incentive}", "offer: {en: Win-back incentive}"
        ).replace("segment_overrides: {}", 'segment_overrides:\n  "B":\n    loyalty: {offer: 同一句}'),
        encoding="utf-8",
    )
    assert strategy.load_playbook(edited, "en").segment_overrides["B"]["loyalty"]["offer"] == "同一句"
    with pytest.raises(strategy.StrategyInputError, match=r"stages\.at_risk\.offer has no 'zh' text"):
        strategy.load_playbook(edited, "zh")


def test_recommendation_paragraph_reflects_metrics(customers: pd.DataFrame) -> None:
    settings = demo_settings()
    plan = strategy.assign_calls(strategy.build_plan(customers, PLAYBOOK, settings), settings)
    metrics = strategy.metric_deltas(strategy.segment_metrics(customers, plan, settings), None)
    paragraphs = strategy.recommendations(metrics, plan, PLAYBOOK, EN)
    assert list(paragraphs) == ["High-value loyal", "Growing regulars", "Price seekers", "Complaint-prone",
                                "New prospects"]  # fmt: skip
    assert paragraphs["Complaint-prone"].startswith("**Complaint-prone**: **Fix the service first**")
    assert paragraphs["High-value loyal"].startswith("**High-value loyal**: **Keep and grow")
    assert "so dedicated account manager" in paragraphs["High-value loyal"]
    assert paragraphs["New prospects"].startswith("**New prospects**: **Turn leads into first purchases**")
    for text in paragraphs.values():
        assert text.count(". ") + 1 <= 4 and len(text.split()) < 110  # short: at most four sentences


# --- migration -------------------------------------------------------------------------------


def relabel(segments: pd.DataFrame, permutation: dict[int, int], names: dict[int, str]) -> pd.DataFrame:
    """What a rerun of clustering may return: same groups, other raw ids and generated names."""
    moved = segments.copy()
    moved["segment_id"] = moved["segment_id"].map(permutation)
    moved["segment_name"] = moved["segment_id"].map(names)
    return moved


def test_unchanged_rerun_keeps_segment_ids_and_names(synthetic: dict[str, pd.DataFrame]) -> None:
    features, old = synthetic["features"], synthetic["segments"]
    # Other raw ids, other generated names, rows in another order.
    new = relabel(old, {0: 3, 1: 0, 2: 4, 3: 1, 4: 2}, {0: "X0", 1: "X1", 2: "X2", 3: "X3", 4: "X4"})
    new = new.sample(frac=1.0, random_state=0)
    center, scale = migration.standardization(features, features)
    matching = migration.match_profiles(
        migration.segment_profiles(features, old, center, scale),
        migration.segment_profiles(features, new, center, scale),
    )
    old_names = old.drop_duplicates("segment_id").set_index("segment_id")["segment_name"].to_dict()
    stable, mapping = migration.stable_segments(new, matching, old_names)
    pd.testing.assert_frame_equal(
        stable.sort_values("customer_id")[["customer_id", "segment_id", "segment_name"]].reset_index(
            drop=True
        ),
        old[["customer_id", "segment_id", "segment_name"]],
    )
    assert mapping["profile_distance"].max() == pytest.approx(0.0)
    previous_plan = old.assign(stage=synthetic["lifecycle"]["stage"])
    summary = migration.migration_summary(previous_plan, stable, mapping, 0.7, 0.25)
    assert not summary["flagged"].any() and (summary["stability"] == 1.0).all()
    transitions = migration.transition_matrix(
        previous_plan.set_index("customer_id")["segment_name"],
        stable.set_index("customer_id")["segment_name"],
    )
    assert np.trace(transitions.loc[transitions.columns].to_numpy()) == len(old)


def test_changed_segments_are_flagged_and_new_ones_get_fresh_ids(synthetic: dict[str, pd.DataFrame]) -> None:
    features, old = synthetic["features"], synthetic["segments"]
    new = old.copy()
    # Split segment 2 in two by value, merge 3 into 1: four old groups survive, one new appears.
    rich = (new["segment_id"] == 2) & (
        features["clv_12m"] > features.loc[new["segment_id"] == 2, "clv_12m"].median()
    )
    new.loc[rich, "segment_id"] = 7
    new.loc[new["segment_id"] == 3, "segment_id"] = 1
    new["segment_name"] = "gen-" + new["segment_id"].astype(str)
    center, scale = migration.standardization(features, features)
    matching = migration.match_profiles(
        migration.segment_profiles(features, old, center, scale),
        migration.segment_profiles(features, new, center, scale),
    )
    old_names = old.drop_duplicates("segment_id").set_index("segment_id")["segment_name"].to_dict()
    stable, mapping = migration.stable_segments(new, matching, old_names)
    assert sorted(stable["segment_id"].unique()) == sorted(mapping["segment_id"]) and len(mapping) == 5
    assert set(mapping["segment_id"]) <= set(old_names)  # five new segments, five old ones: all matched
    summary = migration.migration_summary(old.assign(stage="retention"), stable, mapping, 0.7, 0.25)
    flagged = summary.set_index("segment_id")
    assert flagged.loc[0, "flagged"] == False  # noqa: E712 - untouched segment
    assert flagged["flagged"].sum() >= 2
    # A truly new segment (more segments than before) gets the next id no old segment had.
    extra = old.copy()
    extra.loc[(extra["segment_id"] == 4) & (features["clv_12m"] > 150), "segment_id"] = 9
    matching = migration.match_profiles(
        migration.segment_profiles(features, old, center, scale),
        migration.segment_profiles(features, extra, center, scale),
    )
    _, mapping = migration.stable_segments(extra, matching, old_names)
    fresh = mapping.loc[mapping["old_segment_id"].isna()]
    assert len(fresh) == 1 and fresh["segment_id"].iloc[0] == 5


def test_transition_matrix_counts_new_and_left_customers() -> None:
    before = pd.Series({"a": "S1", "b": "S1", "c": "S2"})
    after = pd.Series({"a": "S1", "b": "S2", "d": "S2"})
    matrix = migration.transition_matrix(before, after)
    assert matrix.loc["S1", "S1"] == 1 and matrix.loc["S1", "S2"] == 1
    assert matrix.loc["S2", migration.LEFT] == 1
    assert matrix.loc[migration.NEW_CUSTOMER, "S2"] == 1
    assert matrix.to_numpy().sum() == 4


def test_find_previous_run_picks_newest_earlier_complete_run(tmp_path: Path) -> None:
    def make_run(name: str, started: float, complete: bool, raw_dir: str = "data/raw/demo") -> Path:
        run = tmp_path / name
        for artifact in runs.PREVIOUS_ARTIFACTS if complete else runs.PREVIOUS_ARTIFACTS[:1]:
            (run / artifact).parent.mkdir(parents=True, exist_ok=True)
            (run / artifact).write_bytes(b"")
        (run / "config.yml").write_text(f"data: {{raw_dir: {raw_dir}}}\n")
        os.utime(run / "config.yml", (started, started))
        return run

    now = time.time()
    make_run("r1", now - 300, complete=True)
    r2 = make_run("r2", now - 200, complete=True)
    make_run("r2b", now - 150, complete=True, raw_dir="data/raw/small")  # another world: not comparable
    make_run("r3", now - 100, complete=False)
    current = make_run("r4", now, complete=False)
    make_run("r5", now + 100, complete=True)
    assert runs.find_previous_run(current, "auto") == r2
    assert runs.find_previous_run(current, "none") is None
    with pytest.raises(FileNotFoundError, match="lacks"):
        runs.find_previous_run(current, str(tmp_path / "r3"))


def test_rerun_in_a_new_run_folder_keeps_ids_names_and_deltas(tmp_path: Path) -> None:
    settings = demo_settings()
    first = write_synthetic_run(tmp_path / "run1", 3000, seed=5)
    inputs = synthetic_inputs(3000, seed=5)
    customers = strategy.assemble_customers(inputs["features"], inputs["segments"], inputs["lifecycle"])
    plan = strategy.assign_calls(strategy.build_plan(customers, PLAYBOOK, settings), settings)
    (first / "06_strategy").mkdir()
    plan.to_parquet(first / "06_strategy" / "plan.parquet")
    strategy.segment_metrics(customers, plan, settings).to_parquet(
        first / "06_strategy" / "segment_metrics.parquet"
    )
    second = write_synthetic_run(tmp_path / "run2", 3000, seed=5)
    os.utime(first / "config.yml", (time.time() - 60, time.time() - 60))
    rerun = relabel(inputs["segments"], {0: 2, 1: 3, 2: 4, 3: 0, 4: 1}, {i: f"Cluster {i}" for i in range(5)})

    previous = runs.find_previous_run(second, "auto")
    assert previous == first.resolve()
    moved = migration.compare_with_previous(
        previous, inputs["features"], rerun, inputs["lifecycle"], 0.7, 0.25
    )
    pd.testing.assert_frame_equal(
        moved.segments[["customer_id", "segment_id", "segment_name"]],
        inputs["segments"][["customer_id", "segment_id", "segment_name"]],
    )
    assert not moved.summary["flagged"].any()
    stages = moved.stage_transitions
    assert np.trace(stages.loc[stages.columns].to_numpy()) == 3000
    assert list(stages.index) == [s for s in strategy.STAGES if s in stages.index]
    customers = strategy.assemble_customers(inputs["features"], moved.segments, inputs["lifecycle"])
    plan = strategy.assign_calls(strategy.build_plan(customers, PLAYBOOK, settings), settings)
    deltas = strategy.metric_deltas(
        strategy.segment_metrics(customers, plan, settings), moved.previous_metrics
    )
    assert (deltas["delta_customers"] == 0).all() and (deltas["delta_nps"].fillna(0) == 0).all()


def test_key_numbers_and_metrics_table_match_the_plan(customers: pd.DataFrame) -> None:
    settings = demo_settings()
    plan = strategy.assign_calls(strategy.build_plan(customers, PLAYBOOK, settings), settings)
    usage = strategy.team_usage(plan, settings)
    metrics = strategy.metric_deltas(strategy.segment_metrics(customers, plan, settings), None)
    text = strategy.key_numbers(plan, metrics, EN)
    assert f"**{len(customers):,} customers** in **5 segments**" in text
    assert "Most valuable segment: **High-value loyal**" in text
    decided = strategy.decisions(plan, usage, metrics, EN)
    on_list, calls = int(plan["on_call_list"].sum()), int(usage["calls_planned"].sum())
    assert decided.startswith(f"- **Call {on_list:,} customers with {calls:,} calls**")
    assert "- **Fix the service first**: Complaint-prone." in decided
    table = strategy.metrics_table(metrics, EN).set_index("Segment")
    assert table.loc["All customers", "Customers"] == f"{len(customers):,}"
    assert table.loc["All customers", "Customer share"] == "100%"
    assert "Satisfaction (1-5)" in table.columns and "Cost to serve per customer per period" in table.columns
    assert not any("(change)" in column for column in table.columns)  # no previous run, no changes
    chinese = strategy.metrics_table(metrics.assign(delta_customers=1.0), ZH)
    assert list(chinese.columns[:3]) == ["客户群", "客户数（变化）", "客户占比"]
    assert chinese.iloc[0, 0] == "全部客户"
    assert chinese["客户数（变化）"].tolist() == [f"{n:,}（+1）" for n in metrics["customers"]]
    coverage = strategy.playbook_coverage(PLAYBOOK, plan)
    assert coverage["customers"].sum() == len(customers)
    assert coverage["on_call_list"].sum() == plan["on_call_list"].sum()
    assert len(coverage) == 5 * len(strategy.STAGES)


# --- report sentences on hand-built inputs ------------------------------------------------------


def _segment_row(**values: object) -> pd.Series:
    base = {
        "segment_id": 2, "segment_name": "Quiet savers", "customers": 1200, "customer_share": 0.25,
        "value_share": 0.4, "clv_share": 0.35, "csat": 4.4, "nps": 30.0, "retention_rate": 0.5,
        "complaint_rate": 0.06, "at_risk_share": 0.3, "value_at_risk": 50_000.0, "growth_potential": 8_000.0,
        "on_call_list": 140,
        "delta_customers": np.nan, "delta_nps": np.nan, "delta_at_risk_share": np.nan,
    }  # fmt: skip
    return pd.Series({**base, **values})


def _mix(at_risk_stake: float = 80_000.0) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "segment_id": 2,
            "segment_name": "Quiet savers",
            "stage": ["retention", "at_risk", "churned", "loyalty"],
            "customers": [600, 300, 60, 240],
            "value_at_stake": [20_000.0, at_risk_stake, 1_000.0, 5_000.0],
            "on_call_list": [40, 90, 0, 10],
        }
    )


def _paragraph(
    segment: pd.Series, mix: pd.DataFrame, tier: str = "middle", overall: pd.Series | None = None
) -> str:
    if overall is None:
        overall = _segment_row(csat=4.0, nps=10.0, retention_rate=0.55, complaint_rate=0.03)
    matrix = strategy.playbook_matrix(PLAYBOOK, [segment["segment_name"]])
    return strategy.recommendation(segment, overall, mix, matrix, PLAYBOOK.tiers, tier, EN)


def test_recommendation_sentences_on_a_hand_built_segment() -> None:
    text = _paragraph(_segment_row(), _mix())
    # Revenue share 40% on 25% of customers, few complaints: protect, not a win-back opener.
    assert text == (
        "**Keep and grow these valuable customers**: VIP care, referral program, exclusive service, "
        "offering loyalty perks and exclusive service. "
        "Why: 1,200 customers (25% of the base) with 40% of 12-month revenue, mostly retention (50%) and "
        "at risk (25%); complaints 6% of calls (average 3%); satisfaction 4.4/5 (average 4.0). "
        "How: most are middle value, so scheduled phone callbacks + email; 140 get agent calls this period; "
        "KPI: NPS, referrals per customer. "
        "At stake: ¥50,000 of predicted value at risk and ¥8,000 of growth potential."
    )
    assert "Win back" not in text


@pytest.mark.parametrize(
    ("changes", "opener"),
    [
        ({"complaint_rate": 0.2}, "**Fix the service first**: resolve every open complaint"),
        ({"csat": 3.3, "value_share": 0.1}, "**Fix the service first**"),
        ({"value_share": 0.2}, "**Grow what they buy**: care calls, cross-sell"),
        ({"value_share": 0.2, "retention_rate": 0.4}, "**Win back customers who are drifting away**"),
        ({"value_share": 0.2, "at_risk_share": 0.45}, "**Win back customers who are drifting away**"),
    ],
)
def test_recommendation_opener_follows_the_segment_profile(changes: dict, opener: str) -> None:
    overall = _segment_row(csat=4.0, nps=10.0, retention_rate=0.55, complaint_rate=0.03, at_risk_share=0.3)
    text = _paragraph(_segment_row(**changes), _mix(), overall=overall)
    assert text.startswith(opener)
    assert text.count(". ") + 1 <= 4


def test_prospect_segment_opens_with_lead_conversion_and_mass_channel() -> None:
    mix = pd.DataFrame(
        {"segment_id": 2, "stage": ["acquisition", "contact", "conversion"], "customers": [700, 450, 50]}
    )
    segment = _segment_row(value_share=0.0, clv_share=0.0, value_at_risk=0.0, growth_potential=90_000.0)
    text = _paragraph(segment, mix, tier="low")
    assert text.startswith("**Turn leads into first purchases**: callbacks + needs discovery")
    assert (
        "How: most are low value, so mass email, SMS and social media; agent calls only for new leads" in text
    )
    assert "mostly acquisition (58%) and contact (38%)" in text
    low_buyers = _paragraph(_segment_row(value_share=0.2), _mix(), tier="low")
    # Retention calls are for high and middle tiers only: a low-value segment is grown by campaign.
    assert low_buyers.startswith("**Grow what they buy**: targeted campaigns offering cross-sell bundle.")
    assert text.endswith("At stake: ¥0 of predicted value at risk and ¥90,000 of growth potential.")


def test_recommendation_reports_changes_since_the_previous_run() -> None:
    segment = _segment_row(delta_customers=-35.0, delta_nps=4.4, delta_at_risk_share=-0.021)
    text = _paragraph(segment, _mix(), tier="high")
    assert "How: most are high value, so dedicated account manager (one-to-one) + VIP events;" in text
    assert text.endswith(
        "of growth potential; since the previous run: size -35, NPS +4 pts, at-risk share -2 pts."
    )
    unchanged = _paragraph(
        _segment_row(delta_customers=0.0, delta_nps=0.2, delta_at_risk_share=0.001), _mix()
    )
    assert unchanged.endswith("of growth potential; unchanged since the previous run.")


def test_one_in_picks_the_nearest_simple_fraction() -> None:
    assert strategy.one_in(0.05) == (1, 20)
    assert strategy.one_in(0.34) == (1, 3)
    assert strategy.one_in(0.379) == (2, 5)
    assert strategy.one_in(0.7) == (2, 3)


def test_prospects_are_capped_and_low_tier_calls_have_a_stated_reason() -> None:
    leads = [{"stage": "acquisition", "value_tier": "low", "clv_12m": 0.0, "churn_risk": 0.0}] * 20
    slipping = [{"stage": "at_risk", "value_tier": "low", "clv_12m": 2000.0, "churn_risk": 0.6}] * 5
    cheap = [{"stage": "at_risk", "value_tier": "low", "clv_12m": 600.0, "churn_risk": 0.5}] * 5
    steady = [{"stage": "retention", "value_tier": "low", "clv_12m": 2000.0, "churn_risk": 0.3}] * 5
    buyers = [{"stage": "loyalty", "value_tier": "high", "clv_12m": 30000.0, "churn_risk": 0.0}] * 3
    customers = hand_built(leads + slipping + cheap + steady + buyers)
    team = {"agents": 1, "hours_per_day": 1, "calls_per_hour": 2, "tiers": ["low"]}
    settings = settings_with({"outbound": team})  # 2 calls x 21 working days = 42 calls
    assert settings.max_prospect_share == pytest.approx(0.2)
    plan = strategy.assign_calls(strategy.build_plan(customers, PLAYBOOK, settings), settings)
    stage = plan["stage"].astype(str)
    listed = plan.loc[plan["on_call_list"]]
    lead_calls = listed.loc[stage[plan["on_call_list"]].isin(strategy.PROSPECT_STAGES), "calls_planned"]
    assert lead_calls.sum() == 8  # 4 leads x 2 calls = the most that fits in 20% of 42 calls
    # Low tier: at risk with at least ¥500 at risk (2000 x 0.6) is called; ¥300 at risk or retention is not.
    assert plan.loc[plan["clv_12m"].eq(2000.0) & stage.eq("at_risk"), "on_call_list"].all()
    assert not plan.loc[plan["clv_12m"].eq(600.0) | stage.eq("retention"), "call_eligible"].any()
    uncapped = replace(settings, max_prospect_share=1.0)
    plan = strategy.assign_calls(strategy.build_plan(customers, PLAYBOOK, uncapped), uncapped)
    assert plan.loc[plan["stage"].isin(strategy.PROSPECT_STAGES), "calls_planned"].sum() > 8
    assert strategy.call_rules(PLAYBOOK, settings, ZH) == (
        "坐席致电：低价值客户只在预测流失风险价值达到 ¥500 时致电；新线索（接触和获客阶段，还没有购买）最多占"
        "每个团队通话产能的 20%。其他客户通过其价值层级的渠道联系。"
    )
    assert strategy.call_rules(PLAYBOOK, settings, EN) == (
        "Agents call low value customers only when at least ¥500 of their predicted value is at risk; "
        "new leads (contact and acquisition stages, no purchase yet) take at most 20% of each team's "
        "call capacity. Everyone else is reached through their tier's channel."
    )


def _hand_built_page() -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """A five-customer plan in two segments, its team usage and metrics."""
    plan = pd.DataFrame(
        {
            "customer_id": ["a", "b", "c", "d", "e"],
            "segment_id": [0, 0, 1, 1, 1],
            "segment_name": ["Big spenders", "Big spenders", "Grumblers", "Grumblers", "Grumblers"],
            "stage": ["at_risk", "acquisition", "retention", "churned", "churned"],
            "on_call_list": [True, True, False, False, True],
            "calls_planned": [2, 2, 0, 0, 1],
            "clv_12m": [5000.0, 0.0, 900.0, 20.0, 4000.0],
            "call_cost": [10.0, 5.0, 5.0, 5.0, 10.0],
            "value_at_risk": [600.0, 0.0, 200.0, 10.0, 190.0],
            "growth_potential": [0.0, 300.0, 100.0, 0.0, 0.0],
        }
    )
    plan["value_at_stake"] = plan["value_at_risk"] + plan["growth_potential"]
    usage = pd.DataFrame(
        {
            "team": ["account_managers", "outbound_team"],
            "calls_capacity": [100, 300],
            "calls_planned": [80, 120],
            "utilisation": [0.8, 0.4],
        }
    )
    overall = _segment_row(
        segment_id=-1, segment_name="All customers", at_risk_share=0.22, value_at_risk=123_456.0,
        growth_potential=7_890.0, csat=4.1, nps=12.0, retention_rate=0.61, complaint_rate=0.379,
    )  # fmt: skip
    metrics = pd.DataFrame(
        [
            overall,
            _segment_row(segment_id=0, segment_name="Big spenders", customer_share=0.1, value_share=0.6,
                         complaint_rate=0.02),
            _segment_row(segment_id=1, segment_name="Grumblers", customer_share=0.9, value_share=0.4,
                         complaint_rate=0.69),
        ]
    )  # fmt: skip
    return plan, usage, metrics


def test_decisions_and_key_numbers_on_a_hand_built_plan() -> None:
    plan, usage, metrics = _hand_built_page()
    assert strategy.decisions(plan, usage, metrics, EN).split("\n") == [
        "- **Call 3 customers with 200 calls**, 50% of the agents' capacity this period; 200 calls stay free "
        "for inbound service.",
        "- **Fix the service first**: Grumblers.",
        "- **Keep and grow these valuable customers**: Big spenders.",
        "- **2 churned customers** get a low-cost reactivation by SMS and e-mail, as the playbook keeps "
        "calls for the valuable ones (median predicted 12-month value ¥2,010; 1 on the call list).",
    ]
    cheap = plan.assign(clv_12m=[5000.0, 0.0, 900.0, 2.0, 3.0])
    assert "as most are worth less than one call (median predicted 12-month value ¥2;" in (
        strategy.decisions(cheap, usage, metrics, EN)
    )
    assert strategy.key_numbers(plan, metrics, EN).split("\n") == [
        "- **5 customers** in **2 segments**; 22% are at risk or churned.",
        "- **Value at risk: ¥123,456**; **growth potential: ¥7,890**, of which ¥300 from new leads who have "
        "not bought yet.",
        "- The call list holds 79% of the value at risk and 75% of the growth potential.",
        "- Most valuable segment: **Big spenders**, 10% of customers and 60% of 12-month revenue.",
        "- Satisfaction 4.10/5, NPS +12, retention 61%, complaint rate 37.9% per service call; about 2 in 5 "
        "calls; highest in **Grumblers** (69.0%).",
    ]
    assert strategy.capacity_note(usage, EN) == (
        "**Team utilisation** (calls planned of the period's capacity): Account managers 80 of 100 calls "
        "(80%); Outbound team 120 of 300 calls (40%). 200 calls (50% of capacity) stay free for inbound "
        "service."
    )


def test_chinese_page_opening_is_short_and_formatted_for_chinese_readers() -> None:
    plan, usage, metrics = _hand_built_page()
    numbers = strategy.key_numbers(plan, metrics, ZH)
    assert numbers.split("\n") == [
        "- **5 位客户**，分为 **2 个客户群**；22% 处于流失风险或已流失。",
        "- **流失风险价值 ¥12.3万**；**增长潜力 ¥7,890**，其中 ¥300 来自尚未购买的新线索。",
        "- 外呼名单覆盖 79% 的流失风险价值和 75% 的增长潜力。",
        "- 最有价值的客户群：**Big spenders**，10% 的客户贡献 60% 的 12 个月收入。",
        "- 满意度 4.10/5，NPS +12，留存率 61%，投诉率 37.9%"
        "（按服务电话计，约每 5 通 2 次；最高的是**Grumblers**，69.0%）。",
    ]
    visible = re.sub(r"^- |\*\*", "", numbers, flags=re.MULTILINE).replace("\n", "")
    assert len(visible) <= 300  # the five-minute page: about 300 characters of key numbers
    decided = strategy.decisions(plan, usage, metrics, ZH)
    assert decided.split("\n")[:3] == [
        "- **外呼 3 位客户、共 200 通电话**，用掉坐席本期产能的 50%；其余 200 通留给来电服务。",
        "- **先解决投诉再推销**：「Grumblers」。",
        "- **留住并培养高价值客户**：「Big spenders」。",
    ]
    note = strategy.period_note(
        date(2026, 6, 30),
        date(2026, 7, 30),
        30,
        {"horizon_days": 273, "churned": {"min_recency_days": 270}},
        ZH,
    )
    assert "从截至日期 2026年6月30日 起 30 天，到 2026年7月30日 为止" in note
    assert "未来 273 天内不再购买" in note and "超过 270 天没有购买" in note


def test_recommendation_in_chinese() -> None:
    segment, overall = (
        _segment_row(),
        _segment_row(csat=4.0, nps=10.0, retention_rate=0.55, complaint_rate=0.03),
    )
    playbook = strategy.load_playbook(PROJECT_ROOT / "config" / "playbook.yml", "zh")
    matrix = strategy.playbook_matrix(playbook, [segment["segment_name"]])
    text = strategy.recommendation(segment, overall, _mix(), matrix, playbook.tiers, "middle", ZH)
    assert text == (
        "**留住并培养高价值客户**：VIP 关怀、推荐有礼、专属服务，提供会员权益和专属服务。"
        "原因：1,200 位客户（占全部客户的 25%），贡献 12 个月收入的 40%，"
        "主要处于留存（50%）和流失风险（25%）阶段"
        "；投诉率 6%（按电话计，平均 3%）；满意度 4.4/5（平均 4.0）。"
        "做法：多数是中价值客户，所以采用定期电话回访 + 邮件；本期 140 位由坐席致电；"
        "看的指标：NPS、人均推荐数。"
        "涉及金额：流失风险价值 ¥50,000，增长潜力 ¥8,000。"
    )


def test_review_note_names_flagged_segments_and_reasons() -> None:
    summary = pd.DataFrame(
        {
            "segment_name": ["Big spenders", "Grumblers", "Savers"],
            "customers": [100, 140, 80],
            "customers_before": [100, 100, 80],
            "size_change": [0.0, 0.4, 0.0],
            "stability": [0.95, 0.9, 0.55],
            "flagged": [False, True, True],
            "review_codes": ["", "size_change", "low_stability"],
        }
    )
    assert migration.review_note(summary, EN) == (
        "Compared with the previous run: **2 segment(s) changed enough to review**: "
        "Grumblers (size changed +40%); Savers (only 55% of its customers stayed)."
    )
    assert migration.review_note(summary, ZH) == (
        "与上次运行相比：**2 个客户群变化较大，需要复核**："
        "Grumblers（人数变化 +40%）；Savers（只有 55% 的客户留在该群）。"
    )
    assert migration.review_note(summary.assign(flagged=False), EN).endswith(
        "**0 segment(s) changed enough to review**."
    )
    table = migration.summary_table(summary, ZH)
    assert list(table.columns) == ["客户群", "客户数", "上次客户数", "人数变化", "留在原群的比例", "复核原因"]
    assert table["复核原因"].tolist() == ["–", "人数变化 +40%", "只有 55% 的客户留在该群"]
