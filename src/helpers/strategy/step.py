"""Step 06 end to end: segments and stages to a plan, a call list, segment metrics and migration.

Notebook 06 calls `run_step(ctx)` and shows what the returned `StrategyResult` holds.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import date
from pathlib import Path
from typing import Any

import pandas as pd

from helpers.clustering.profiles import segment_display_name
from helpers.core import runs
from helpers.core.config import resolve_path
from helpers.core.context import StepContext
from helpers.core.i18n import Catalog
from helpers.lifecycle.stages import load_rules
from helpers.strategy.migration import FEATURE_INPUTS, Migration, compare_with_previous
from helpers.strategy.plan import (
    CONTACT_COLUMNS,
    Playbook,
    StrategySettings,
    assemble_customers,
    assign_calls,
    build_call_list,
    build_plan,
    load_playbook,
    metric_deltas,
    planning_period,
    playbook_coverage,
    recommendations,
    segment_metrics,
    team_usage,
    write_call_list,
)

SEGMENT_COLUMNS = ["customer_id", "segment_id", "segment_name"]
LIFECYCLE_COLUMNS = ["customer_id", "stage", "churn_risk"]
UNWRITTEN_PLAN_COLUMNS = ("mass_cost", "call_cost")  # used for key numbers, not written to `plan`


@dataclass
class StrategyResult:
    """What notebook 06 shows."""

    settings: StrategySettings
    playbook: Playbook
    customers: pd.DataFrame  # features, stable segment and stage per customer
    plan: pd.DataFrame  # every customer's treatment, priority and call assignment
    usage: pd.DataFrame  # per team: capacity, customers and calls planned
    metrics: pd.DataFrame  # success metrics per segment (and all customers), with deltas
    paragraphs: dict[str, str]  # segment name -> its recommendation (Markdown, run's language)
    playbook_matrix: pd.DataFrame  # segment x stage treatments with customers and value at stake
    calls: pd.DataFrame  # the call list (with contact details)
    csv_path: Path
    xlsx_path: Path
    as_of_date: date  # the run's reference date: the call list plans from it ...
    plan_until: date  # ... to here (as_of_date + strategy.period_days)
    moved: Migration | None  # comparison with the previous run, if any
    lifecycle_rules: dict[str, Any]  # step 05's rules: the churn-risk horizon and churned days


def run_step(ctx: StepContext) -> StrategyResult:
    """Plan the next period from 03's features, 04's segments and 05's stages; write `plan`,
    `segment_metrics`, `team_usage`, `playbook_matrix`, the call list (csv and xlsx) and, with a
    previous run, `segment_mapping`, `segment_migration`, `segment_transitions`, `stage_transitions`;
    record the headline counts, the previous run and the planning period in the manifest.
    """
    section = ctx.settings.strategy
    settings = StrategySettings.from_config(section)
    playbook = load_playbook(resolve_path(section.playbook), ctx.settings.report.language)
    features = ctx.read("03_features", "features", columns=FEATURE_INPUTS)
    segments = ctx.read("04_clustering", "segments", columns=SEGMENT_COLUMNS)
    lifecycle = ctx.read("05_lifecycle", "lifecycle", columns=LIFECYCLE_COLUMNS)

    previous_dir = runs.find_previous_run(ctx.run_dir, section.migration.previous_run)
    moved = None
    if previous_dir is not None:
        moved = compare_with_previous(
            previous_dir,
            features,
            segments,
            lifecycle,
            min_stability=section.migration.min_stability,
            max_size_change=section.migration.max_size_change,
        )
        segments = in_language(moved.segments, ctx.text)  # stable names: the previous run's
        shown = in_language(moved.summary, ctx.text)
        renamed = dict(zip(moved.summary["segment_name"], shown["segment_name"], strict=True))
        moved = replace(
            moved,
            summary=shown,
            segment_transitions=moved.segment_transitions.rename(index=renamed, columns=renamed),
        )

    customers = assemble_customers(features, segments, lifecycle)
    del features
    plan = assign_calls(build_plan(customers, playbook, settings), settings)
    usage = team_usage(plan, settings)
    metrics = metric_deltas(
        segment_metrics(customers, plan, settings), moved.previous_metrics if moved else None
    )
    paragraphs = recommendations(metrics, plan, playbook, ctx.text)
    matrix = playbook_coverage(playbook, plan)
    ctx.write("playbook_matrix", matrix)

    as_of_date, plan_until = planning_period(ctx.settings.run.reference_date, settings.period_days)
    golden = ctx.read("02_identity_merge", "golden", columns=CONTACT_COLUMNS)
    calls = build_call_list(plan, golden, as_of_date, plan_until, ctx.text)
    del golden
    csv_path, xlsx_path = write_call_list(calls, ctx.step_dir, ctx.text)

    ctx.write("plan", plan[[c for c in plan.columns if c not in UNWRITTEN_PLAN_COLUMNS]])
    ctx.write("segment_metrics", metrics)
    ctx.write("team_usage", usage)
    if moved is not None:
        ctx.write("segment_mapping", moved.mapping)
        ctx.write("segment_migration", moved.summary)
        ctx.write("segment_transitions", moved.segment_transitions.reset_index())
        ctx.write("stage_transitions", moved.stage_transitions.reset_index())

    _check(plan, customers, calls, usage)
    ctx.record(
        customers=len(plan),
        segments=int((metrics["segment_id"] >= 0).sum()),
        call_list_customers=len(calls),
        calls_planned=int(usage["calls_planned"].sum()),
        calls_capacity=int(usage["calls_capacity"].sum()),
        previous_run=str(moved.previous_run) if moved else None,
        flagged_segments=int(moved.summary["flagged"].sum()) if moved else 0,
        as_of_date=as_of_date,
        plan_until=plan_until,
    )
    return StrategyResult(
        settings=settings,
        playbook=playbook,
        customers=customers,
        plan=plan,
        usage=usage,
        metrics=metrics,
        paragraphs=paragraphs,
        playbook_matrix=matrix,
        calls=calls,
        csv_path=csv_path,
        xlsx_path=xlsx_path,
        as_of_date=as_of_date,
        plan_until=plan_until,
        moved=moved,
        lifecycle_rules=load_rules(resolve_path(ctx.settings.lifecycle.rules)),
    )


def in_language(frame: pd.DataFrame, text: Catalog) -> pd.DataFrame:
    """`frame` with its `segment_name` in the catalog's language (names matched to a previous run come
    in that run's language); see `helpers.clustering.profiles.segment_display_name`."""
    pairs = frame[["segment_id", "segment_name"]].drop_duplicates()
    shown = {
        (segment_id, name): segment_display_name(text, int(segment_id), str(name))
        for segment_id, name in pairs.itertuples(index=False)
    }
    names = [shown[pair] for pair in zip(frame["segment_id"], frame["segment_name"], strict=True)]
    return frame.assign(segment_name=names)


def _check(plan: pd.DataFrame, customers: pd.DataFrame, calls: pd.DataFrame, usage: pd.DataFrame) -> None:
    """The plan's own guarantees: one row per customer, the call list ranked and within capacity."""
    problems = []
    if not (plan["customer_id"].is_unique and len(plan) == len(customers)):
        problems.append(f"plan has {len(plan):,} rows for {len(customers):,} customers (ids must be unique)")
    if len(calls) != int(plan["on_call_list"].sum()):
        problems.append(f"call list has {len(calls):,} rows, the plan {int(plan['on_call_list'].sum()):,}")
    if not calls["call_rank"].is_monotonic_increasing:
        problems.append("call list is not in call_rank order")
    if not (usage["calls_planned"] <= usage["calls_capacity"]).all():
        problems.append("a team has more calls than capacity")
    if problems:
        raise AssertionError("06_strategy: " + "; ".join(problems))
