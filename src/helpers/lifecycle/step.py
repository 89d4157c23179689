"""Step 05 end to end: read the inputs, label every customer, write the artifacts, record the figures.

Notebook 05 calls `run_step(ctx)` and shows what the returned `LifecycleResult` holds.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from helpers.core.context import StepContext
from helpers.lifecycle.stages import (
    LIFECYCLE_ARTIFACT,
    LIFECYCLE_COLUMNS,
    STAGES,
    find_previous_run,
    funnel,
    label_customers,
    load_rules,
    load_step_inputs,
    reusable_clv_params,
    stage_by_segment,
    stage_flows,
)

SEGMENT_COLUMNS = ["customer_id", "segment_id", "segment_name"]


@dataclass
class LifecycleResult:
    """What notebook 05 shows."""

    rules: dict[str, Any]  # the lifecycle rules used (horizon_days applied)
    labeled: pd.DataFrame  # label_customers output: stage, rule, churn risk and the signals the rules used
    model_info: dict[str, Any]  # churn model, rhythm rule and risk threshold (`labeled.attrs["lifecycle"]`)
    stage_counts: pd.Series  # customers per stage, in STAGES order
    buyers: int  # customers with a purchase on or before the reference date
    purchase_days: int  # purchase occasions (days) of those customers
    segments: pd.DataFrame  # 04_clustering/segments: customer_id, segment_id, segment_name
    funnel: pd.DataFrame
    stage_by_segment: pd.DataFrame  # customers per segment (index) and stage (columns)
    previous_run: Path | None  # the earlier run the flows compare with, if any
    flows: pd.DataFrame | None  # customers from the previous run's stage (rows) to this run's (columns)
    seconds: dict[str, float]  # phases: purchase_summary and service_trends (SQL), labeling, write

    @property
    def horizon_days(self) -> int:
        return int(self.rules["horizon_days"])

    @property
    def risk_threshold(self) -> float:
        return float(self.model_info["risk_threshold"])

    @property
    def kept_customers(self) -> int | None:
        """This run's customers that also appear in the previous run (None without one)."""
        if self.flows is None:
            return None
        new = int(self.flows.loc["(new)"].sum()) if "(new)" in self.flows.index else 0
        return len(self.labeled) - new

    def in_short(self) -> str:
        """The headline paragraph (Markdown): at risk, churned, active and not yet buying customers."""
        counts, n = self.stage_counts, len(self.labeled)
        n_total = max(n, 1)
        active = int(counts["retention"] + counts["loyalty"])
        return (
            f"**In short:** of {n:,} customers, **{counts['at_risk']:,} "
            f"({counts['at_risk'] / n_total:.0%}) are at risk** (win-back calls) and "
            f"{counts['churned']:,} ({counts['churned'] / n_total:.0%}) have churned; "
            f"{active:,} ({active / n_total:.0%}) are active repeat buyers (retention or loyalty) and "
            f"{int(counts['contact'] + counts['acquisition']):,} have not bought yet. "
            f"Churn risk is the probability of no purchase in the next {self.rules['horizon_days']} days; "
            f"customers from {self.model_info['risk_threshold']:.0%} upward count as at risk."
        )

    def rhythm_note(self) -> str:
        """How many repeat buyers are overdue against their own rhythm, and whether the backtest keeps
        the at-risk rule on it."""
        at_risk = self.rules["at_risk"]
        repeat = self.labeled[self.labeled["n_purchases"] >= at_risk["min_purchases_for_rhythm"]]
        share_beyond = (repeat["gap_ratio"] >= at_risk["gap_ratio"]).mean()
        lines = [f"{share_beyond:.1%} of repeat buyers are {at_risk['gap_ratio']}x beyond their own rhythm"]
        rhythm = self.model_info["rhythm_rule"]
        if "backtest_flagged" in rhythm:
            lines.append(
                f"Backtest: of {rhythm['backtest_flagged']:,} customers this far overdue at the cut, "
                f"{rhythm['backtest_no_purchase_share_flagged']:.0%} bought nothing in the following "
                f"{rhythm['backtest_days']} days "
                f"(all customers: {rhythm['backtest_no_purchase_share_all']:.0%}), "
                f"so the rule is {'used' if rhythm['use'] else 'not used: here it is no churn signal'}."
            )
        else:
            lines.append(f"The rule is used ({rhythm['reason']} to check it).")
        return "\n".join(lines)


def run_step(ctx: StepContext, horizon_days: int | None = None) -> LifecycleResult:
    """Label every customer of 03's features as of the run's reference date and write `lifecycle`,
    `funnel`, `stage_by_segment` and, with an earlier run on the same data, `stage_flows`; record the
    stage counts, the churn model and threshold, the horizon and the previous run in the manifest.

    The rules come from `lifecycle.rules` of the run config; `horizon_days` (a rules-file value)
    replaces the file's "following period" of the churn risk when given.
    """
    rules = load_rules(ctx.settings.lifecycle.rules)
    if horizon_days is not None:
        rules["horizon_days"] = int(horizon_days)
    inputs = load_step_inputs(ctx, rules)
    summary, _ = inputs.purchases
    segments = ctx.read("04_clustering", "segments", columns=SEGMENT_COLUMNS)
    start = time.perf_counter()
    labeled = label_customers(
        inputs.features,
        ctx.reference_date,
        rules,
        purchases=inputs.purchases,
        trends=inputs.trends,
        seed=ctx.seed,
        mbgnbd_params=reusable_clv_params(_features_clv_record(ctx), inputs.features, summary),
    )
    model_info = labeled.attrs["lifecycle"]
    seconds = {**inputs.seconds, "labeling": time.perf_counter() - start}
    start = time.perf_counter()
    ctx.write("lifecycle", labeled[LIFECYCLE_COLUMNS])
    seconds["write"] = time.perf_counter() - start
    _check(labeled, n_customers=len(inputs.features))
    stage_counts = labeled["stage"].value_counts().reindex(STAGES, fill_value=0)
    ctx.record(
        stage_counts=stage_counts.to_dict(),
        risk_threshold=model_info["risk_threshold"],
        churn_model=model_info,
        horizon_days=rules["horizon_days"],
    )
    funnel_table = funnel(labeled)
    ctx.write("funnel", funnel_table)
    by_segment = stage_by_segment(labeled, segments)
    ctx.write("stage_by_segment", by_segment.reset_index())
    previous_run = find_previous_run(ctx.run_dir)
    flows = None
    if previous_run is not None:
        previous = pd.read_parquet(previous_run / LIFECYCLE_ARTIFACT, columns=["customer_id", "stage"])
        flows = stage_flows(previous, labeled)
        ctx.write("stage_flows", flows.reset_index())
        ctx.record(previous_run=previous_run.name)
    return LifecycleResult(
        rules=rules,
        labeled=labeled,
        model_info=model_info,
        stage_counts=stage_counts,
        buyers=len(summary),
        purchase_days=int(summary["n_purchases"].sum()),
        segments=segments,
        funnel=funnel_table,
        stage_by_segment=by_segment,
        previous_run=previous_run,
        flows=flows,
        seconds=seconds,
    )


def _features_clv_record(ctx: StepContext) -> dict[str, Any] | None:
    """Step 03's recorded CLV fit (`clv` of its manifest), if any."""
    manifest = ctx.path("step.json", "03_features")
    return json.loads(manifest.read_text()).get("clv") if manifest.is_file() else None


def _check(labeled: pd.DataFrame, n_customers: int) -> None:
    """The labels' own guarantees: one row per customer, a known stage, churn risk in 0..1."""
    problems = []
    if not (labeled["customer_id"].is_unique and len(labeled) == n_customers):
        problems.append(f"{len(labeled):,} labels for {n_customers:,} customers (ids must be unique)")
    if not labeled["stage"].isin(STAGES).all():
        problems.append(f"stages outside {list(STAGES)}")
    if not labeled["churn_risk"].between(0, 1).all():
        problems.append("churn_risk outside 0..1")
    if problems:
        raise AssertionError("05_lifecycle/lifecycle: " + "; ".join(problems))
