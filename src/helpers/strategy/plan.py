"""Step 06: from segments and lifecycle stages to a contact plan, a call list and segment metrics.

The playbook (`config/playbook.yml`) maps value tier -> channel and lifecycle stage -> action,
script theme, offer, contact frequency and KPI, with optional per-segment overrides. Every
customer gets a priority score:

    value at risk     = CLV x churn risk
    growth potential  = upside_weight x upside x (1 - churn risk)
    upside            = max(upside_quantile of the CLV of the segment's buyers - own CLV, 0)
    value at stake    = value at risk + growth potential
    expected response = past marketing response rate, shrunk to the population mean
    priority          = value at stake x expected response - call cost x calls planned

Agents call a customer only where the playbook's `call_tiers` of the stage include the customer's
tier and, outside the prospect stages, the value at risk reaches the tier's
`min_value_at_risk_for_call`. The call list takes the highest priorities per team until the team's
calls for the period are used up, prospects taking at most `max_prospect_share` of them; it never
plans more calls than a team can make.
"""

from __future__ import annotations

import sys
import unicodedata
from dataclasses import dataclass
from datetime import date, timedelta
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import xlsxwriter
import yaml

from helpers.core.i18n import Catalog, Language
from helpers.core.settings import StrategySettingsSection
from helpers.features.catalog import VALUE_TIERS
from helpers.lifecycle.stages import STAGES, stage_labels

STAGE_FIELDS = ("action", "script_theme", "offer", "frequency_days", "kpi", "call_tiers")
PROSPECT_STAGES = ("contact", "acquisition")  # no purchase yet, so no value at risk
PRIORITY_DECIMALS = 2  # priority (CNY) is ranked and shown to the cent
CONTACT_COLUMNS = ["customer_id", "full_name", "mobile", "email", "city"]  # from 02_identity_merge/golden
CALL_LIST_COLUMNS = [
    "call_rank", "team", "customer_id", "full_name", "mobile", "email", "city", "segment_name",
    "stage", "value_tier", "clv_12m", "churn_risk", "priority", "calls_planned", "action",
    "offer", "script_theme", "reason", "reason_code", "as_of_date", "plan_until",
]  # fmt: skip


class StrategyInputError(ValueError):
    """An input frame of step 06 is missing columns or holds values the step cannot use."""


@dataclass(frozen=True)
class Playbook:
    """The analyst-editable playbook."""

    tiers: dict[str, dict[str, Any]]
    stages: dict[str, dict[str, Any]]
    segment_overrides: dict[str, dict[str, dict[str, Any]]]


@dataclass(frozen=True)
class Team:
    """One call-center team and what it can do in the planning period."""

    name: str
    tiers: tuple[str, ...]
    agents: int
    hours_per_day: float
    calls_per_hour: float
    cost_per_call: float
    working_days: int

    @property
    def capacity(self) -> int:
        """Calls the team can make in the period."""
        return int(self.agents * self.hours_per_day * self.calls_per_hour * self.working_days)


@dataclass(frozen=True)
class StrategySettings:
    """The `strategy` section of the run config, as the planning uses it."""

    period_days: int
    teams: tuple[Team, ...]
    agent_cost_per_hour: float
    upside_quantile: float
    upside_weight: float
    response_prior_strength: float
    max_prospect_share: float

    @classmethod
    def from_config(cls, strategy: StrategySettingsSection) -> StrategySettings:
        """From the validated `strategy` section of the run config (`ctx.settings.strategy`)."""
        working_days = round(strategy.period_days * strategy.working_days_per_week / 7)
        teams = tuple(
            Team(
                name=name,
                tiers=tuple(team.tiers),
                agents=team.agents,
                hours_per_day=team.hours_per_day,
                calls_per_hour=team.calls_per_hour,
                cost_per_call=team.cost_per_call,
                working_days=working_days,
            )
            for name, team in strategy.capacity.items()
        )
        priority = strategy.priority
        return cls(
            period_days=strategy.period_days,
            teams=teams,
            agent_cost_per_hour=strategy.agent_cost_per_hour,
            upside_quantile=priority.upside_quantile,
            upside_weight=priority.upside_weight,
            response_prior_strength=priority.response_prior_strength,
            max_prospect_share=priority.max_prospect_share,
        )

    def capacity_table(self) -> pd.DataFrame:
        """One row per team: who they call and how many calls they can make in the period."""
        return pd.DataFrame(
            {
                "team": [t.name for t in self.teams],
                "tiers": [", ".join(t.tiers) for t in self.teams],
                "agents": [t.agents for t in self.teams],
                "working_days": [t.working_days for t in self.teams],
                "calls_capacity": [t.capacity for t in self.teams],
                "cost_per_call": [t.cost_per_call for t in self.teams],
            }
        )


def planning_period(as_of_date: date, period_days: int) -> tuple[date, date]:
    """The period a call list plans: from the run's reference date to `period_days` later."""
    return as_of_date, as_of_date + timedelta(days=period_days)


TEXT_FIELDS = ("channel", "action", "script_theme", "offer", "kpi")  # read by managers and agents


def _in_language(value: Any, language: Language, where: str) -> Any:
    """A playbook text in `language`: `{zh: ..., en: ...}` picks one; a plain value is the same in all."""
    if not isinstance(value, dict):
        return value
    if language not in value or not str(value[language] or "").strip():
        raise StrategyInputError(
            f"{where} has no {language!r} text (report.language); it has {sorted(value)}"
        )
    return value[language]


def load_playbook(path: str | Path, language: Language) -> Playbook:
    """Read and check the playbook YAML; its texts in `language` (the run's report.language)."""
    raw = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
    tiers, stages = raw.get("tiers") or {}, raw.get("stages") or {}
    if missing := sorted(set(VALUE_TIERS) - set(tiers)):
        raise StrategyInputError(f"playbook {path}: tiers section lacks {missing}")
    if missing := sorted(set(STAGES) - set(stages)):
        raise StrategyInputError(f"playbook {path}: stages section lacks {missing}")
    for stage, fields in stages.items():
        if lacking := sorted(set(STAGE_FIELDS) - set(fields)):
            raise StrategyInputError(f"playbook {path}: stage {stage!r} lacks {lacking}")
        if int(fields["frequency_days"]) < 1:
            raise StrategyInputError(f"playbook {path}: stage {stage!r} frequency_days must be >= 1")
    for tier, fields in tiers.items():
        if {"channel", "cost_per_contact"} - set(fields):
            raise StrategyInputError(f"playbook {path}: tier {tier!r} needs channel and cost_per_contact")
        if float(fields.get("min_value_at_risk_for_call", 0)) < 0:
            raise StrategyInputError(
                f"playbook {path}: tier {tier!r} min_value_at_risk_for_call must be >= 0"
            )
    overrides = raw.get("segment_overrides") or {}
    for segment, by_stage in overrides.items():
        for stage, fields in (by_stage or {}).items():
            if stage not in STAGES or set(fields) - set(STAGE_FIELDS):
                raise StrategyInputError(
                    f"playbook {path}: segment_overrides[{segment!r}][{stage!r}] must name a stage "
                    f"({', '.join(STAGES)}) and only fields {list(STAGE_FIELDS)}"
                )

    def localized(fields: dict[str, Any], where: str) -> dict[str, Any]:
        return {
            name: _in_language(value, language, f"playbook {path}: {where}.{name}")
            if name in TEXT_FIELDS
            else value
            for name, value in fields.items()
        }

    return Playbook(
        tiers={tier: localized(fields, f"tiers.{tier}") for tier, fields in tiers.items()},
        stages={stage: localized(fields, f"stages.{stage}") for stage, fields in stages.items()},
        segment_overrides={
            segment: {
                stage: localized(fields, f"segment_overrides[{segment!r}].{stage}")
                for stage, fields in (by_stage or {}).items()
            }
            for segment, by_stage in overrides.items()
        },
    )


def _fail(frame_name: str, column: str, problem: str, bad: pd.DataFrame) -> None:
    """Raise with the count of bad rows only: their ids and values are personal data."""
    raise StrategyInputError(f"{frame_name}.{column}: {len(bad):,} rows {problem}")


def _require(frame: pd.DataFrame, frame_name: str, columns: list[str]) -> None:
    if missing := [c for c in columns if c not in frame.columns]:
        raise StrategyInputError(f"{frame_name} lacks columns {missing}; it has {list(frame.columns)}")


def _check_allowed(frame: pd.DataFrame, frame_name: str, column: str, allowed: tuple[str, ...]) -> None:
    bad = ~frame[column].isin(allowed)
    if bad.any():
        _fail(frame_name, column, f"are not one of {list(allowed)}", frame.loc[bad, ["customer_id", column]])


def _check_not_null(frame: pd.DataFrame, frame_name: str, columns: list[str]) -> None:
    for column in columns:
        bad = frame[column].isna()
        if bad.any():
            _fail(frame_name, column, "are null", frame.loc[bad, ["customer_id", column]])


FEATURE_COLUMNS = [
    "customer_id", "clv_12m", "value_tier", "response_rate", "n_marketing_contacts", "conversion_rate",
    "monetary_12m", "csat_mean", "nps_mean", "n_calls", "contacts_per_month", "n_complaints",
    "avg_handle_sec", "purchases_last_90d", "purchases_prev_90d",
]  # fmt: skip


def assemble_customers(
    features: pd.DataFrame, segments: pd.DataFrame, lifecycle: pd.DataFrame
) -> pd.DataFrame:
    """One row per customer with features, segment and stage; fails on gaps between the inputs."""
    _require(features, "03_features/features", FEATURE_COLUMNS)
    _require(segments, "04_clustering/segments", ["customer_id", "segment_id", "segment_name"])
    _require(lifecycle, "05_lifecycle/lifecycle", ["customer_id", "stage", "churn_risk"])
    keys = {}
    for frame, name in (
        (features, "03_features/features"),
        (segments, "04_clustering/segments"),
        (lifecycle, "05_lifecycle/lifecycle"),
    ):
        keys[name] = pd.Index(frame["customer_id"])
        if not keys[name].is_unique:
            dupes = frame["customer_id"].duplicated(keep=False)
            _fail(name, "customer_id", "are duplicated", frame.loc[dupes, ["customer_id"]])
    _check_allowed(features, "03_features/features", "value_tier", VALUE_TIERS)
    _check_allowed(lifecycle, "05_lifecycle/lifecycle", "stage", STAGES)
    _check_not_null(features, "03_features/features", ["clv_12m", "n_marketing_contacts"])
    _check_not_null(lifecycle, "05_lifecycle/lifecycle", ["churn_risk"])
    _check_not_null(segments, "04_clustering/segments", ["segment_id", "segment_name"])
    out_of_range = ~lifecycle["churn_risk"].between(0, 1)
    if out_of_range.any():
        _fail(
            "05_lifecycle/lifecycle",
            "churn_risk",
            "are outside 0..1",
            lifecycle.loc[out_of_range, ["customer_id", "churn_risk"]],
        )

    customers = segments[["customer_id", "segment_id", "segment_name"]].reset_index(drop=True)
    ids = keys["04_clustering/segments"]
    for frame, name, columns in (
        (lifecycle, "05_lifecycle/lifecycle", ["stage", "churn_risk"]),
        (features, "03_features/features", FEATURE_COLUMNS[1:]),
    ):
        positions = keys[name].get_indexer(ids)
        missing = positions < 0
        if missing.any():
            _fail(
                "04_clustering/segments",
                "customer_id",
                f"have no row in {name}",
                customers.loc[missing, ["customer_id"]],
            )
        if len(frame) > len(customers):  # every segment customer found once, so the rest are extra
            extra = ~keys[name].isin(ids)
            _fail(
                name,
                "customer_id",
                "have no row in 04_clustering/segments",
                frame.loc[extra, ["customer_id"]],
            )
        aligned = frame[columns].iloc[positions].reset_index(drop=True)
        customers = pd.concat([customers, aligned], axis=1)
    customers["segment_id"] = customers["segment_id"].astype("int64")
    for column in ("segment_name", "stage", "value_tier"):
        customers[column] = customers[column].astype(str).astype("category")
    return customers


def playbook_matrix(playbook: Playbook, segment_names: list[str]) -> pd.DataFrame:
    """Segment x stage table of action, script theme, offer, frequency, KPI and call tiers."""
    rows = []
    for segment in segment_names:
        overrides = playbook.segment_overrides.get(segment, {}) or {}
        for stage in STAGES:
            fields = {**playbook.stages[stage], **(overrides.get(stage) or {})}
            rows.append({"segment_name": segment, "stage": stage, **{f: fields[f] for f in STAGE_FIELDS}})
    matrix = pd.DataFrame(rows)
    matrix["frequency_days"] = matrix["frequency_days"].astype(int)
    matrix["call_tiers"] = matrix["call_tiers"].map(lambda tiers: ", ".join(tiers))
    return matrix


def smoothed_response(response_rate: pd.Series, n_contacts: pd.Series, prior_strength: float) -> pd.Series:
    """Response rate shrunk towards the population rate: (responses + k*mean) / (contacts + k).

    Without any observed response (no contacts, or none answered) the rate cannot rank customers:
    every customer gets 1, so priorities rank by value at stake net of cost; a console line says so.
    """
    contacts = n_contacts.astype(float).fillna(0.0)
    responses = (response_rate.astype(float).fillna(0.0) * contacts).to_numpy()
    total_contacts = contacts.sum()
    mean_rate = responses.sum() / total_contacts if total_contacts > 0 else 0.0
    if not mean_rate > 0:
        print(
            "WARNING strategy: no customer has a marketing response (response_rate, n_marketing_contacts); "
            "priorities rank by value at stake net of contact cost",
            file=sys.stderr,
            flush=True,
        )
        return pd.Series(1.0, index=response_rate.index)
    return pd.Series(
        (responses + prior_strength * mean_rate) / (contacts.to_numpy() + prior_strength),
        index=response_rate.index,
    )


def build_plan(customers: pd.DataFrame, playbook: Playbook, settings: StrategySettings) -> pd.DataFrame:
    """Per customer: channel, action, offer, contacts planned, value at stake and priority."""
    names = sorted(customers["segment_name"].astype(str).unique())
    matrix = playbook_matrix(playbook, names)  # rows: segment (sorted) x stage (STAGES order)
    segment_code = pd.Categorical(customers["segment_name"].astype(str), categories=names).codes
    stage_code = pd.Categorical(customers["stage"], categories=list(STAGES)).codes
    positions = segment_code * len(STAGES) + stage_code
    tier_code = pd.Categorical(customers["value_tier"], categories=list(VALUE_TIERS)).codes
    plan = customers[
        ["customer_id", "segment_id", "segment_name", "stage", "value_tier", "clv_12m", "churn_risk"]
    ].copy()
    channels = pd.Categorical([playbook.tiers[t]["channel"] for t in VALUE_TIERS])
    plan["channel"] = pd.Categorical.from_codes(channels.codes[tier_code], channels.categories)
    for column in ("action", "script_theme", "offer", "kpi"):
        values = pd.Categorical(matrix[column])
        plan[column] = pd.Categorical.from_codes(values.codes[positions], values.categories)
    frequency = matrix["frequency_days"].to_numpy()[positions]
    plan["contacts_planned"] = np.maximum(1, settings.period_days // frequency)
    # allowed[row of the segment x stage matrix, tier] = agents call that tier there
    allowed = np.array([[t in tiers.split(", ") for t in VALUE_TIERS] for tiers in matrix["call_tiers"]])
    first_team_cost: dict[str, float] = {}
    for team in settings.teams:
        for team_tier in team.tiers:
            first_team_cost.setdefault(team_tier, team.cost_per_call)
    has_team = np.array([t in first_team_cost for t in VALUE_TIERS])
    plan["mass_cost"] = np.array([float(playbook.tiers[t]["cost_per_contact"]) for t in VALUE_TIERS])[
        tier_code
    ]
    plan["call_cost"] = np.array([first_team_cost.get(t, 0.0) for t in VALUE_TIERS])[tier_code]
    clv = customers["clv_12m"].astype(float).clip(lower=0)
    risk = customers["churn_risk"].astype(float)
    # Potential: the CLV quantile among the segment's buyers (all buyers' for a segment without any).
    buyers_clv = clv.where(clv > 0)
    potential = buyers_clv.groupby(customers["segment_id"]).transform(
        lambda s: s.quantile(settings.upside_quantile)
    )
    potential = potential.fillna(buyers_clv.quantile(settings.upside_quantile)).fillna(0.0)
    plan["value_at_risk"] = clv * risk
    plan["upside"] = (potential - clv).clip(lower=0)
    plan["growth_potential"] = settings.upside_weight * plan["upside"] * (1 - risk)
    plan["value_at_stake"] = plan["value_at_risk"] + plan["growth_potential"]
    min_at_risk = np.array(
        [float(playbook.tiers[t].get("min_value_at_risk_for_call", 0)) for t in VALUE_TIERS]
    )
    worth_a_call = customers["stage"].isin(PROSPECT_STAGES).to_numpy() | (
        plan["value_at_risk"].to_numpy() >= min_at_risk[tier_code]
    )
    plan["call_eligible"] = allowed[positions, tier_code] & has_team[tier_code] & worth_a_call
    unit_cost = np.where(plan["call_eligible"], plan["call_cost"], plan["mass_cost"])
    plan["expected_response"] = smoothed_response(
        customers["response_rate"], customers["n_marketing_contacts"], settings.response_prior_strength
    )
    plan["priority"] = (
        plan["value_at_stake"] * plan["expected_response"] - unit_cost * plan["contacts_planned"]
    )
    return plan


def assign_calls(plan: pd.DataFrame, settings: StrategySettings) -> pd.DataFrame:
    """Fill each team's calls for the period with its tiers' highest-priority customers.

    Teams fill in config order; a team takes the longest run of its eligible customers (by
    priority to the cent, as the call list shows it, ties in input order: float noise of an
    engine's parallel sums cannot reorder the list) whose planned calls fit its capacity, after dropping the
    prospects whose calls would exceed `max_prospect_share` of that capacity. Adds `on_call_list`,
    `team`, `calls_planned` (0 when not called), `call_rank` (1 = call first, else 0) and
    `contact_cost` (the team's call cost on the list, else the tier's mass-channel cost).
    """
    plan = plan.copy()
    order = np.argsort(-plan["priority"].round(PRIORITY_DECIMALS).to_numpy(), kind="stable")
    candidate = (plan["call_eligible"].to_numpy() & (plan["priority"].to_numpy() > 0))[order]
    tier_code = pd.Categorical(plan["value_tier"], categories=list(VALUE_TIERS)).codes[order]
    prospect = plan["stage"].isin(PROSPECT_STAGES).to_numpy()[order]
    calls = plan["contacts_planned"].to_numpy()[order]
    assigned = np.full(len(plan), -1)  # team number in config order, -1: not called
    for number, team in enumerate(settings.teams):
        handles = np.array([t in team.tiers for t in VALUE_TIERS])
        mask = candidate & (assigned < 0) & handles[tier_code]
        leads = np.flatnonzero(mask & prospect)
        over_cap = np.cumsum(calls[leads]) > settings.max_prospect_share * team.capacity
        mask[leads[over_cap]] = False
        taken = np.flatnonzero(mask)[np.cumsum(calls[mask]) <= team.capacity]
        assigned[taken] = number
    team_code = np.empty(len(plan), dtype=int)
    team_code[order] = assigned
    plan["team"] = pd.Categorical.from_codes(team_code, [t.name for t in settings.teams])
    plan["on_call_list"] = team_code >= 0
    plan["calls_planned"] = np.where(plan["on_call_list"], plan["contacts_planned"], 0)
    on_list = assigned >= 0
    call_rank = np.empty(len(plan), dtype="int64")
    call_rank[order] = np.cumsum(on_list) * on_list
    plan["call_rank"] = call_rank
    plan["contact_cost"] = np.where(plan["on_call_list"], plan["call_cost"], plan["mass_cost"])
    return plan


def team_usage(plan: pd.DataFrame, settings: StrategySettings) -> pd.DataFrame:
    """Capacity table plus customers and calls planned per team."""
    usage = (
        plan.loc[plan["on_call_list"]]
        .groupby("team", observed=True)
        .agg(customers=("customer_id", "size"), calls_planned=("calls_planned", "sum"))
    )
    table = settings.capacity_table().merge(usage, left_on="team", right_index=True, how="left")
    table[["customers", "calls_planned"]] = table[["customers", "calls_planned"]].fillna(0).astype("int64")
    table["utilisation"] = table["calls_planned"] / table["calls_capacity"].where(table["calls_capacity"] > 0)
    return table


def call_reasons(calls: pd.DataFrame, text: Catalog) -> tuple[pd.Series, pd.Series]:
    """Per call-list row, a short reason in the catalog's language and its stable code:
    `<stage>.churn_risk` when the value at risk is at least half the value at stake, else
    `<stage>.upside`."""
    churn = (calls["value_at_risk"] >= calls["value_at_stake"] / 2).to_numpy()
    stage = calls["stage"].astype(str).to_numpy()
    stages, tiers = stage_labels(text), tier_labels(text)
    reasons = [
        text(
            f"strategy.reasons.{'churn_risk' if is_churn else 'upside'}",
            stage=stages[row_stage],
            tier=tiers[tier],
            risk=text.share(risk, 0),
            clv=text.money(clv),
            upside=text.money(upside),
        )
        for is_churn, row_stage, tier, risk, clv, upside in zip(
            churn, stage, calls["value_tier"].astype(str), calls["churn_risk"], calls["clv_12m"],
            calls["upside"], strict=True,
        )
    ]  # fmt: skip
    codes = pd.Series(stage, index=calls.index) + np.where(churn, ".churn_risk", ".upside")
    return pd.Series(reasons, index=calls.index, dtype=object), codes.astype(object)


def build_call_list(
    plan: pd.DataFrame, golden: pd.DataFrame, as_of_date: date, plan_until: date, text: Catalog
) -> pd.DataFrame:
    """The ranked call list with contact details (the only frame of step 06 that carries them).

    `reason` is in the catalog's language, `reason_code` stable for machines. Every row carries the
    period it plans (`planning_period`): `as_of_date` (the run's reference date, which the
    priorities are computed as of) and `plan_until`, as ISO dates.
    """
    _require(golden, "02_identity_merge/golden", CONTACT_COLUMNS)
    calls = plan.loc[plan["on_call_list"]].sort_values("call_rank")
    contacts = golden.loc[golden["customer_id"].isin(calls["customer_id"]), CONTACT_COLUMNS]
    calls = calls.merge(
        contacts,
        on="customer_id",
        how="left",
        indicator=True,
    )
    missing = calls["_merge"] == "left_only"
    if missing.any():
        _fail(
            "06_strategy/plan",
            "customer_id",
            "on the call list have no 02_identity_merge/golden row",
            calls.loc[missing, ["customer_id"]],
        )
    calls["reason"], calls["reason_code"] = call_reasons(calls, text)
    calls["priority"] = calls["priority"].round(PRIORITY_DECIMALS)
    calls["clv_12m"] = calls["clv_12m"].round(2)
    calls["churn_risk"] = calls["churn_risk"].round(3)
    calls["as_of_date"] = as_of_date.isoformat()
    calls["plan_until"] = plan_until.isoformat()
    return calls[CALL_LIST_COLUMNS].reset_index(drop=True)


def call_list_for_agents(calls: pd.DataFrame, text: Catalog) -> pd.DataFrame:
    """The call list as agents read it: headers, team, stage and value tier in the catalog's language;
    `reason_code` keeps its name and codes for machines."""
    teams = calls["team"].astype(str)
    shown = calls.assign(
        team=teams.map({name: team_label(name, text) for name in teams.unique()}),
        stage=calls["stage"]
        .astype(str)
        .map({s: capitalized(label) for s, label in stage_labels(text).items()}),
        value_tier=calls["value_tier"]
        .astype(str)
        .map({t: capitalized(v) for t, v in tier_labels(text).items()}),
        segment_name=calls["segment_name"].astype(str),
    )
    headers = {c: c if c == "reason_code" else text(f"strategy.call_list.columns.{c}") for c in calls.columns}
    return shown.rename(columns=headers)


def _display_width(value: str) -> int:
    """Columns a text takes in a spreadsheet: Chinese (wide) characters count twice."""
    return sum(2 if unicodedata.east_asian_width(char) in "WF" else 1 for char in value)


def write_call_list(calls: pd.DataFrame, step_dir: Path, text: Catalog) -> tuple[Path, Path]:
    """Write `call_list_for_agents` as call_list.csv (UTF-8 with BOM, so Excel shows Chinese) and
    call_list.xlsx (sheet named in the catalog's language)."""
    step_dir.mkdir(parents=True, exist_ok=True)
    csv_path, xlsx_path = step_dir / "call_list.csv", step_dir / "call_list.xlsx"
    shown = call_list_for_agents(calls, text)
    shown.to_csv(csv_path, index=False, encoding="utf-8-sig")
    # xlsxwriter row by row: about 1.5x faster than DataFrame.to_excel for a 10,000-row list.
    workbook = xlsxwriter.Workbook(str(xlsx_path), {"constant_memory": True, "strings_to_urls": False})
    sheet = workbook.add_worksheet(text("strategy.call_list.sheet"))
    sheet.freeze_panes(1, 0)
    sheet.autofilter(0, 0, len(shown), len(shown.columns) - 1)
    sheet.write_row(0, 0, list(shown.columns), workbook.add_format({"bold": True}))
    for number, column in enumerate(shown.columns):  # wide enough for the header and the first rows
        sample = [str(column), *shown[column].head(200).astype(str)]
        sheet.set_column(number, number, min(max(_display_width(v) for v in sample) + 2, 60))
    for row_number, row in enumerate(
        shown.astype(object).where(shown.notna(), None).itertuples(index=False), 1
    ):
        sheet.write_row(row_number, 0, row)
    workbook.close()
    return csv_path, xlsx_path


def cost_to_serve(customers: pd.DataFrame, plan: pd.DataFrame, settings: StrategySettings) -> pd.Series:
    """Per customer and period: planned outreach plus service calls (last 12 months' pace) at the
    agent hour cost."""
    outreach = plan["contact_cost"] * plan["contacts_planned"]
    calls_per_period = (
        customers["contacts_per_month"].astype(float).fillna(0) * settings.period_days / 30.4375
    )
    handle_hours = customers["avg_handle_sec"].astype(float).fillna(0) / 3600
    return outreach + calls_per_period * handle_hours * settings.agent_cost_per_hour


METRIC_COLUMNS = [
    "customers", "customer_share", "value_share", "clv_share", "csat", "nps", "retention_rate",
    "conversion_rate", "complaint_rate", "cost_to_serve", "churn_risk", "at_risk_share",
    "value_at_risk", "growth_potential", "on_call_list",
]  # fmt: skip


def segment_metrics(customers: pd.DataFrame, plan: pd.DataFrame, settings: StrategySettings) -> pd.DataFrame:
    """Success metrics per segment (plus an `All customers` row with segment_id -1)."""
    frame = pd.DataFrame(
        {
            "segment_id": customers["segment_id"],
            "segment_name": customers["segment_name"].astype(str),
            "monetary_12m": customers["monetary_12m"].astype(float).fillna(0),
            "clv": customers["clv_12m"].astype(float),
            "csat": customers["csat_mean"].astype(float),
            "promoter": (customers["nps_mean"] >= 9).astype(float).where(customers["nps_mean"].notna()),
            "detractor": (customers["nps_mean"] <= 6).astype(float).where(customers["nps_mean"].notna()),
            "bought_prev": (customers["purchases_prev_90d"].fillna(0) > 0).astype(float),
            "retained": (
                (customers["purchases_prev_90d"].fillna(0) > 0)
                & (customers["purchases_last_90d"].fillna(0) > 0)
            ).astype(float),
            "contacts": customers["n_marketing_contacts"].astype(float),
            "conversions": customers["conversion_rate"].astype(float).fillna(0)
            * customers["n_marketing_contacts"].astype(float),
            "calls": customers["n_calls"].astype(float).fillna(0),
            "complaints": customers["n_complaints"].astype(float).fillna(0),
            "cost": cost_to_serve(customers, plan, settings),
            "churn_risk": customers["churn_risk"].astype(float),
            "at_risk": customers["stage"].isin(["at_risk", "churned"]).astype(float),
            "value_at_risk": plan["value_at_risk"],
            "growth_potential": plan["growth_potential"],
            "on_call_list": plan["on_call_list"].astype(int),
        }
    )
    sum_columns = ["monetary_12m", "clv", "bought_prev", "retained", "contacts", "conversions", "calls",
                   "complaints", "value_at_risk", "growth_potential", "on_call_list"]  # fmt: skip
    mean_columns = ["csat", "promoter", "detractor", "cost", "churn_risk", "at_risk"]
    # Sums and non-null counts per segment; the `All customers` row (-1) adds them up.
    grouped = frame.drop(columns="segment_name").groupby("segment_id", sort=True)
    parts = [
        grouped[sum_columns].sum(),
        grouped[mean_columns].sum().add_suffix("_sum"),
        grouped[mean_columns].count().add_suffix("_n"),
        grouped.size().rename("size"),
    ]
    totals = pd.concat(parts, axis=1)
    totals.loc[-1] = totals.sum()
    totals = totals.sort_index()
    sums = totals[sum_columns]
    means = pd.DataFrame(
        {c: totals[f"{c}_sum"] / totals[f"{c}_n"].where(totals[f"{c}_n"] > 0) for c in mean_columns}
    )
    names = frame.drop_duplicates("segment_id").set_index("segment_id")["segment_name"]
    totals["segment_name"] = names.reindex(totals.index).fillna("All customers")
    sizes = totals["size"].astype("int64")
    total = len(frame)
    metrics = pd.DataFrame(
        {
            "customers": sizes,
            "customer_share": sizes / total,
            "value_share": sums["monetary_12m"] / max(frame["monetary_12m"].sum(), 1e-9),
            "clv_share": sums["clv"] / max(frame["clv"].sum(), 1e-9),
            "csat": means["csat"],
            "nps": 100 * (means["promoter"] - means["detractor"]),
            "retention_rate": sums["retained"] / sums["bought_prev"].where(sums["bought_prev"] > 0),
            "conversion_rate": sums["conversions"] / sums["contacts"].where(sums["contacts"] > 0),
            "complaint_rate": sums["complaints"] / sums["calls"].where(sums["calls"] > 0),
            "cost_to_serve": means["cost"],
            "churn_risk": means["churn_risk"],
            "at_risk_share": means["at_risk"],
            "value_at_risk": sums["value_at_risk"],
            "growth_potential": sums["growth_potential"],
            "on_call_list": sums["on_call_list"].astype("int64"),
        }
    )
    metrics.insert(0, "segment_name", totals["segment_name"])
    return metrics.rename_axis("segment_id").reset_index()[["segment_id", "segment_name", *METRIC_COLUMNS]]


def metric_deltas(current: pd.DataFrame, previous: pd.DataFrame | None) -> pd.DataFrame:
    """`current` plus `delta_<metric>` = current - previous, matched on (stable) segment_id."""
    result = current.copy()
    if previous is None:
        for metric in METRIC_COLUMNS:
            result[f"delta_{metric}"] = np.nan
        return result
    # reindex: a previous run may predate a metric, whose delta is then unknown
    before = previous.set_index("segment_id").reindex(index=current["segment_id"], columns=METRIC_COLUMNS)
    for metric in METRIC_COLUMNS:
        result[f"delta_{metric}"] = current[metric].to_numpy(dtype=float) - before[metric].to_numpy(
            dtype=float
        )
    return result


def stage_mix(plan: pd.DataFrame) -> pd.DataFrame:
    """Customers, value at stake and call-list customers per segment x stage."""
    mix = plan.groupby(["segment_id", "segment_name", "stage"], observed=True).agg(
        customers=("customer_id", "size"),
        value_at_risk=("value_at_risk", "sum"),
        growth_potential=("growth_potential", "sum"),
        value_at_stake=("value_at_stake", "sum"),
        on_call_list=("on_call_list", "sum"),
    )
    return mix.reset_index()


# --- what managers read, in the catalog's language (strategy.yml) ------------------------------
def tier_labels(text: Catalog) -> dict[str, str]:
    """Value tier -> its name for readers (`values.value_tier`: 高价值, high value)."""
    return {tier: text(f"values.value_tier.{tier}") for tier in VALUE_TIERS}


def capitalized(label: str) -> str:
    """A label heading a table row or legend entry: first letter upper-case (Chinese unchanged)."""
    return label[:1].upper() + label[1:]


def team_label(name: str, text: Catalog) -> str:
    """A team's name for readers: the catalog's, or the config name in plain words for a team it lacks."""
    return text.label(f"strategy.teams.{name}", name.replace("_", " ").capitalize())


def segment_label(segment_id: int, name: str, text: Catalog) -> str:
    """A segment name for readers; the all-customers row (id -1) in the catalog's language."""
    return text("strategy.all_customers") if segment_id == -1 else name


def _lower_first(text: str) -> str:
    """Lower-case the first letter unless it starts an acronym ("VIP care" stays; Chinese unchanged)."""
    return text[:1].lower() + text[1:] if text[1:2].islower() else text


def _names(names: list[str], text: Catalog) -> str:
    return text("strategy.list_sep").join(text("strategy.quote", name=name) for name in names)


def one_in(rate: float) -> tuple[int, int]:
    """A rate as (1, N) when 1 in N is within 10% of it, else the nearest k in n with n <= 5."""
    whole = round(1 / rate)
    if whole >= 1 and abs(1 / whole - rate) <= 0.1 * rate:
        return 1, whole
    fraction = Fraction(rate).limit_denominator(5)
    return fraction.numerator, fraction.denominator


def _fmt_delta(value: float, scale: float = 1.0, digits: int = 0) -> str:
    return f"{round(value * scale, digits) + 0.0:+,.{digits}f}"  # + 0.0 turns -0 into 0


def _above(segment: pd.Series, overall: pd.Series, column: str) -> float:
    """Segment minus all customers on one metric; 0 when either is unknown."""
    value, base = segment[column], overall[column]
    return 0.0 if pd.isna(value) or pd.isna(base) else float(value - base)


FOCUSES = ("complaints", "win_back", "protect", "prospects", "grow")  # decisions list them in this order


def segment_focus(segment: pd.Series, overall: pd.Series, mix: pd.DataFrame) -> str:
    """What a segment's recommendation leads with, from its profile and its lifecycle mix.

    The first that holds: `complaints` (complaint rate 10+ points above average or satisfaction
    0.5+ below), `prospects` (half or more in prospect stages), `protect` (revenue share at least
    1.5 times its customer share), `win_back` (retention 8+ points below average or at-risk and
    churned share 10+ points above), else `grow`.
    """
    in_stage = mix.groupby(mix["stage"].astype(str))["customers"].sum()
    prospects = in_stage.reindex(list(PROSPECT_STAGES)).fillna(0).sum() / max(segment["customers"], 1)
    if _above(segment, overall, "complaint_rate") >= 0.10 or _above(segment, overall, "csat") <= -0.5:
        return "complaints"
    if prospects >= 0.5:
        return "prospects"
    if segment["value_share"] >= 1.5 * segment["customer_share"]:
        return "protect"
    if (
        _above(segment, overall, "retention_rate") <= -0.08
        or _above(segment, overall, "at_risk_share") >= 0.10
    ):
        return "win_back"
    return "grow"


def recommendation(
    segment: pd.Series,
    overall: pd.Series,
    mix: pd.DataFrame,
    plan_matrix: pd.DataFrame,
    tiers: dict[str, dict[str, Any]],
    dominant_tier: str,
    text: Catalog,
) -> str:
    """Three or four sentences for managers: the action (see `segment_focus`), why, how, what is at stake."""
    say = "strategy.recommendation."
    treatment = plan_matrix.set_index("stage")
    by_size = mix.assign(stage=mix["stage"].astype(str)).sort_values("customers", ascending=False)
    focus = segment_focus(segment, overall, mix)
    lead = text(f"strategy.focus.{focus}")
    if focus == "complaints":
        action = text(say + "complaints_action", lead=lead)
        kpi = text(say + "complaints_kpi")
    else:
        stage = {"prospects": "acquisition", "protect": "loyalty", "win_back": "at_risk"}.get(focus)
        if stage is None:  # grow: the largest stage of customers who have bought
            bought = by_size.loc[by_size["stage"].isin(["conversion", "retention", "loyalty"])]
            stage = bought["stage"].iloc[0] if len(bought) else "retention"
        row = treatment.loc[stage]
        offer = _lower_first(row["offer"])
        if dominant_tier in row["call_tiers"].split(", "):
            action = text(say + "call_action", lead=lead, action=_lower_first(row["action"]), offer=offer)
        else:  # the playbook does not call most of them in this stage: say so, as the channel does
            action = text(say + "campaign_action", lead=lead, offer=offer)
        kpi = _lower_first(row["kpi"])

    customers = max(segment["customers"], 1)
    labels = stage_labels(text)
    top = by_size.head(2)
    stages = text("strategy.and").join(
        text(say + "stage_share", stage=labels[s], share=text.share(n / customers, 0))
        for s, n in zip(top["stage"], top["customers"], strict=True)
    )
    notes = [
        text(say + f"notes.{column}", value=fmt(segment[column]), base=fmt(overall[column]))
        for column, margin, fmt in (
            ("complaint_rate", 0.02, lambda v: text.share(v, 0)),
            ("csat", 0.15, lambda v: f"{v:.1f}"),
            ("retention_rate", 0.08, lambda v: text.share(v, 0)),
        )
        if abs(_above(segment, overall, column)) >= margin
    ]
    why = text(
        say + "why",
        customers=text.number(segment["customers"]),
        customer_share=text.share(segment["customer_share"], 0),
        value_share=text.share(segment["value_share"], 0),
        stages=stages,
        notes="".join(text("strategy.note_sep") + note for note in notes),
    )
    how = text(
        say + "how",
        tier=tier_labels(text)[dominant_tier],
        channel=_lower_first(tiers[dominant_tier]["channel"]),
        on_call_list=text.number(segment["on_call_list"]),
        kpi=kpi,
    )
    changes = ""
    if pd.notna(segment.get("delta_customers")):
        moved = {
            "size": _fmt_delta(segment["delta_customers"]),
            "nps": _fmt_delta(segment["delta_nps"]),
            "at_risk": _fmt_delta(segment["delta_at_risk_share"], 100),
        }
        unchanged = all(value == "+0" for value in moved.values())
        changes = text(say + "unchanged") if unchanged else text(say + "changes", **moved)
    stake = text(
        say + "stake",
        value_at_risk=text.money(segment["value_at_risk"]),
        growth_potential=text.money(segment["growth_potential"]),
        changes=changes,
    )
    return text(say + "paragraph", action=action, why=why, how=how, stake=stake)


def _dominant_tiers(plan: pd.DataFrame) -> pd.Series:
    """Segment id -> the value tier most of its customers have."""
    tiers = plan.groupby(["segment_id", "value_tier"], observed=True).size().rename("n").reset_index()
    return (
        tiers.sort_values("n", ascending=False, kind="stable")
        .drop_duplicates("segment_id")
        .set_index("segment_id")["value_tier"]
        .astype(str)
    )


def recommendations(
    metrics: pd.DataFrame, plan: pd.DataFrame, playbook: Playbook, text: Catalog
) -> dict[str, str]:
    """Segment name -> its name in bold and its recommendation (segments in id order)."""
    overall = metrics.loc[metrics["segment_id"] == -1].iloc[0]
    mix = stage_mix(plan)
    dominant = _dominant_tiers(plan)
    paragraphs = {}
    for _, segment in metrics.loc[metrics["segment_id"] >= 0].sort_values("segment_id").iterrows():
        name = segment["segment_name"]
        paragraphs[name] = text(
            "strategy.recommendation.segment",
            name=name,
            text=recommendation(
                segment,
                overall,
                mix.loc[mix["segment_id"] == segment["segment_id"]],
                playbook_matrix(playbook, [name]),
                playbook.tiers,
                dominant[segment["segment_id"]],
                text,
            ),
        )
    return paragraphs


def decisions(plan: pd.DataFrame, usage: pd.DataFrame, metrics: pd.DataFrame, text: Catalog) -> str:
    """The decisions of the period, opening the management page (Markdown bullets): the call list,
    what each group of segments gets (their `segment_focus`), and how churned customers are reached."""
    say = "strategy.decisions."
    overall = metrics.loc[metrics["segment_id"] == -1].iloc[0]
    segments = metrics.loc[metrics["segment_id"] >= 0].sort_values("segment_id")
    on_list = plan["on_call_list"].to_numpy()
    capacity, planned = int(usage["calls_capacity"].sum()), int(usage["calls_planned"].sum())
    lines = [
        text(
            say + "call_list",
            customers=text.number(on_list.sum()),
            calls=text.number(planned),
            used=text.share(planned / max(capacity, 1), 0),
            free=text.number(max(capacity - planned, 0)),
        )
    ]
    mix = stage_mix(plan)
    focus = {
        row["segment_name"]: segment_focus(row, overall, mix.loc[mix["segment_id"] == row["segment_id"]])
        for _, row in segments.iterrows()
    }
    for name in FOCUSES:
        if members := [segment for segment, chosen in focus.items() if chosen == name]:
            lines.append(
                text(say + "focus", lead=text(f"strategy.focus.{name}"), segments=_names(members, text))
            )
    churned = (plan["stage"].astype(str) == "churned").to_numpy()
    if churned.any():
        median_clv = plan.loc[churned, "clv_12m"].median()
        calls_cost = plan.loc[plan["call_cost"] > 0, "call_cost"]
        cheap = bool(len(calls_cost)) and median_clv < calls_cost.min()
        lines.append(
            text(
                say + ("churned_cheap" if cheap else "churned"),
                churned=text.number(churned.sum()),
                called=text.number((churned & on_list).sum()),
                median_clv=text.money(median_clv),
            )
        )
    return "\n".join(f"- {line}" for line in lines)


def key_numbers(plan: pd.DataFrame, metrics: pd.DataFrame, text: Catalog) -> str:
    """The key numbers under the decisions (Markdown bullets; about 300 characters of Chinese)."""
    say = "strategy.key_numbers."
    overall = metrics.loc[metrics["segment_id"] == -1].iloc[0]
    segments = metrics.loc[metrics["segment_id"] >= 0]
    top = segments.sort_values("value_share", ascending=False).iloc[0]
    on_list = plan["on_call_list"].to_numpy()
    prospect = plan["stage"].astype(str).isin(PROSPECT_STAGES).to_numpy()

    def covered(column: str) -> str:
        total = plan[column].sum()
        return text.share(plan.loc[on_list, column].sum() / total, 0) if total > 0 else "–"

    rate = overall["complaint_rate"]
    detail = ""
    if pd.notna(rate) and rate > 0:
        k, n = one_in(rate)
        detail = text(say + "one_in", k=k, n=n)
    complaints = segments.dropna(subset=["complaint_rate"]).sort_values("complaint_rate", ascending=False)
    if len(complaints):
        worst = complaints.iloc[0]
        detail += text(say + "worst", name=worst["segment_name"], rate=text.share(worst["complaint_rate"]))
    lines = [
        text(
            say + "customers",
            customers=text.number(len(plan)),
            segments=text.number(len(segments)),
            at_risk_share=text.share(overall["at_risk_share"], 0),
        ),
        text(
            say + "value",
            value_at_risk=text.money(overall["value_at_risk"]),
            growth=text.money(overall["growth_potential"]),
            prospects=text.money(plan.loc[prospect, "growth_potential"].sum()),
        ),
        text(say + "coverage", risk=covered("value_at_risk"), growth=covered("growth_potential")),
        text(
            say + "top",
            name=top["segment_name"],
            customer_share=text.share(top["customer_share"], 0),
            value_share=text.share(top["value_share"], 0),
        ),
        text(
            say + "service",
            csat="–" if pd.isna(overall["csat"]) else f"{overall['csat']:.2f}",
            nps="–" if pd.isna(overall["nps"]) else f"{overall['nps']:+.0f}",
            retention=text.share(overall["retention_rate"], 0),
            complaint_rate=text.share(rate),
            detail=detail,
        ),
    ]
    return "\n".join(f"- {line}" for line in lines)


def period_note(
    as_of_date: date, plan_until: date, period_days: int, rules: dict[str, Any], text: Catalog
) -> str:
    """The page's periods in plain words: the planning period, the churn-risk horizon and when a
    customer counts as churned (`rules`: the lifecycle rules of step 05)."""
    return text(
        "strategy.period",
        days=period_days,
        start=text.day(as_of_date),
        end=text.day(plan_until),
        horizon=text.number(rules["horizon_days"]),
        churned_days=text.number(rules["churned"]["min_recency_days"]),
    )


def capacity_note(usage: pd.DataFrame, text: Catalog) -> str:
    """Calls planned of each team's capacity, and what stays free for inbound service (Markdown)."""
    capacity, planned = int(usage["calls_capacity"].sum()), int(usage["calls_planned"].sum())
    teams = text("strategy.note_sep").join(
        text(
            "strategy.capacity.team",
            team=team_label(str(row.team), text),
            planned=text.number(row.calls_planned),
            capacity=text.number(row.calls_capacity),
            used="–" if pd.isna(row.utilisation) else text.share(row.utilisation, 0),
        )
        for row in usage.itertuples()
    )
    free = max(capacity - planned, 0)
    return text(
        "strategy.capacity.note",
        teams=teams,
        free=text.number(free),
        free_share=text.share(free / max(capacity, 1), 0),
    )


METRIC_FORMATS = {
    "customers": "number", "customer_share": "share0", "value_share": "share0", "csat": "csat",
    "nps": "signed", "retention_rate": "share0", "conversion_rate": "share", "complaint_rate": "share",
    "cost_to_serve": "money1", "at_risk_share": "share0", "value_at_risk": "money",
    "growth_potential": "money", "on_call_list": "number",
}  # fmt: skip
DELTA_COLUMNS = {
    "customers": (1, 0),
    "nps": (1, 0),
    "at_risk_share": (100, 0),
    "csat": (1, 2),
}  # scale, digits


def _metric_text(value: float, kind: str, text: Catalog) -> str:
    if pd.isna(value):
        return "–"
    return {
        "number": lambda: text.number(value),
        "share0": lambda: text.share(value, 0),
        "share": lambda: text.share(value),
        "csat": lambda: f"{value:.2f}",
        "signed": lambda: f"{value:+.0f}",
        "money1": lambda: text.money(value, 1),
        "money": lambda: text.money(value),
    }[kind]()


def metrics_table(metrics: pd.DataFrame, text: Catalog) -> pd.DataFrame:
    """Segment metrics for readers: translated headers, formatted values, deltas when a previous run
    exists (first column: the segment; no index to show)."""
    say = "strategy.metrics."
    table = pd.DataFrame(
        {
            text(say + "segment_name"): [
                segment_label(i, n, text)
                for i, n in zip(metrics["segment_id"], metrics["segment_name"], strict=True)
            ]
        }
    )
    for column, kind in METRIC_FORMATS.items():
        values = [_metric_text(value, kind, text) for value in metrics[column]]
        delta = f"delta_{column}"
        if column in DELTA_COLUMNS and delta in metrics and metrics[delta].notna().any():
            scale, digits = DELTA_COLUMNS[column]  # the change in the same cell: "1,578 (+12)"
            changes = [
                text(say + "new") if pd.isna(v) else _fmt_delta(v, scale, digits) for v in metrics[delta]
            ]
            table[text(say + "delta", label=text(say + column))] = [
                text(say + "with_change", value=value, change=change)
                for value, change in zip(values, changes, strict=True)
            ]
        else:
            table[text(say + column)] = values
    return table


def retention_note(customers: pd.DataFrame, metrics: pd.DataFrame, text: Catalog) -> str:
    """Markdown under the metrics table: what retention counts, where it is undefined or 100%, and
    what the complaint rate is per."""
    say = "strategy.retention_note."
    earlier_buyers = (customers["purchases_prev_90d"].fillna(0) > 0).groupby(customers["segment_id"]).sum()
    named = metrics.loc[metrics["segment_id"] >= 0].set_index("segment_id")
    undefined = [n for i, n in named["segment_name"].items() if earlier_buyers.get(i, 0) == 0]
    full = [
        text(say + "full_group", name=n, n=text.number(earlier_buyers.get(i, 0)))
        for i, n in named["segment_name"].items()
        if named.loc[i, "retention_rate"] >= 0.995
    ]
    parts = [text(say + "base")]
    if undefined:
        parts.append(text(say + "undefined", names=_names(undefined, text)))
    if full:
        parts.append(text(say + "full", groups=text("strategy.list_sep").join(full)))
    parts.append(text(say + "complaints"))
    return " ".join(parts)


def playbook_coverage(playbook: Playbook, plan: pd.DataFrame) -> pd.DataFrame:
    """The segment x stage playbook with customers, value at stake and call-list customers per cell."""
    mix = stage_mix(plan).drop(columns="segment_id")
    mix[["segment_name", "stage"]] = mix[["segment_name", "stage"]].astype(str)
    matrix = playbook_matrix(playbook, sorted(mix["segment_name"].unique()))
    matrix = matrix.merge(mix, on=["segment_name", "stage"], how="left")
    matrix[["customers", "on_call_list"]] = matrix[["customers", "on_call_list"]].fillna(0).astype("int64")
    matrix["value_at_stake"] = matrix["value_at_stake"].fillna(0.0)
    return matrix


def treatments_table(playbook: Playbook, text: Catalog) -> pd.DataFrame:
    """The playbook per lifecycle stage for readers (segment overrides are in `playbook_matrix`)."""
    say = "strategy.playbook."
    tiers = tier_labels(text)
    return pd.DataFrame(
        {
            text(say + "stage"): [capitalized(label) for label in stage_labels(text).values()],
            **{
                text(say + field): [playbook.stages[stage][field] for stage in STAGES]
                for field in ("action", "script_theme", "offer", "kpi")
            },
            text(say + "frequency_days"): [int(playbook.stages[stage]["frequency_days"]) for stage in STAGES],
            text(say + "call_tiers"): [
                capitalized(
                    text("strategy.list_sep").join(tiers[t] for t in playbook.stages[stage]["call_tiers"])
                )
                for stage in STAGES
            ],
        }
    )


def channels_table(playbook: Playbook, text: Catalog) -> pd.DataFrame:
    """Value tier -> contact channel, for readers."""
    tiers = tier_labels(text)
    return pd.DataFrame(
        {
            text("strategy.playbook.tier"): [capitalized(tiers[t]) for t in VALUE_TIERS],
            text("strategy.playbook.channel"): [playbook.tiers[t]["channel"] for t in VALUE_TIERS],
        }
    )


def team_table(usage: pd.DataFrame, text: Catalog) -> pd.DataFrame:
    """Team capacity and use for readers: translated headers and tiers, formatted numbers."""
    say = "strategy.teams_table."
    tiers = tier_labels(text)
    return pd.DataFrame(
        {
            text(say + "team"): [team_label(str(t), text) for t in usage["team"]],
            text(say + "tiers"): [
                capitalized(text("strategy.list_sep").join(tiers[t] for t in str(names).split(", ")))
                for names in usage["tiers"]
            ],
            **{
                text(say + column): [text.number(v) for v in usage[column]]
                for column in ("agents", "working_days", "calls_capacity")
            },
            text(say + "cost_per_call"): [text.money(v) for v in usage["cost_per_call"]],
            **{
                text(say + column): [text.number(v) for v in usage[column]]
                for column in ("customers", "calls_planned")
            },
            text(say + "utilisation"): [
                "–" if pd.isna(v) else text.share(v, 0) for v in usage["utilisation"]
            ],
        }
    )


def call_rules(playbook: Playbook, settings: StrategySettings, text: Catalog) -> str:
    """One sentence on who gets agent calls beyond the playbook's stage x tier grid (Markdown)."""
    tiers = tier_labels(text)
    limits = [
        text(
            "strategy.call_rules.limit",
            tier=tiers[tier],
            amount=text.money(float(fields["min_value_at_risk_for_call"])),
        )
        for tier, fields in playbook.tiers.items()
        if float(fields.get("min_value_at_risk_for_call", 0)) > 0
    ]
    return text(
        "strategy.call_rules.text",
        limits=text("strategy.note_sep").join(limits) if limits else text("strategy.call_rules.no_limit"),
        share=text.share(settings.max_prospect_share, 0),
    )
