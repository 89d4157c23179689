"""Step 06 figures: where customers and value are, stages by segment, who each team calls, migration."""

from __future__ import annotations

from typing import Any

import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns

from helpers.strategy.migration import Migration
from helpers.strategy.plan import STAGES, plain_label, stage_mix


def plot_segment_value_shares(metrics: pd.DataFrame) -> Any:
    """Per segment: its share of customers, of 12-month revenue and of predicted 12-month value."""
    shares = metrics.loc[metrics["segment_id"] >= 0].melt(
        id_vars="segment_name", value_vars=["customer_share", "value_share", "clv_share"], var_name="measure"
    )
    shares["measure"] = shares["measure"].map(
        {
            "customer_share": "customers",
            "value_share": "12-month revenue",
            "clv_share": "predicted 12-month value",
        }
    )
    fig, ax = plt.subplots(figsize=(10, 4.5))
    sns.barplot(data=shares, y="segment_name", x="value", hue="measure", ax=ax)
    ax.legend(title="", bbox_to_anchor=(1.01, 1), loc="upper left")
    ax.set(xlabel="share of total", ylabel="", title="Where the customers and the value are")
    ax.xaxis.set_major_formatter(lambda v, _: f"{v:.0%}")
    return fig


def plot_segment_stage_customers(plan: pd.DataFrame, metrics: pd.DataFrame) -> Any:
    """Heatmap of customers per segment (in metrics order) and lifecycle stage."""
    mix = stage_mix(plan)
    counts = mix.pivot_table(
        index="segment_name", columns="stage", values="customers", fill_value=0, observed=True
    )
    segment_order = metrics.loc[metrics["segment_id"] >= 0, "segment_name"].tolist()
    counts = counts.reindex(index=segment_order, columns=[s for s in STAGES if s in counts.columns])
    counts.columns = [plain_label(s) for s in counts.columns]
    fig, ax = plt.subplots(figsize=(10, 0.6 * len(counts) + 1.5))
    sns.heatmap(counts, annot=True, fmt=",.0f", cmap="Blues", cbar=False, ax=ax)
    ax.set(xlabel="Lifecycle stage", ylabel="", title="Customers by segment and lifecycle stage")
    return fig


def plot_call_list_by_team_stage(plan: pd.DataFrame) -> Any:
    """Customers on the call list per team, by lifecycle stage."""
    listed = plan.loc[plan["on_call_list"]]
    by_stage = listed.groupby(["team", "stage"], observed=True).size().rename("customers").reset_index()
    by_stage["team"] = by_stage["team"].astype(str).map(plain_label)
    by_stage["stage"] = by_stage["stage"].astype(str).map(plain_label)
    fig, ax = plt.subplots(figsize=(10, 4))
    stage_order = [plain_label(s) for s in STAGES if plain_label(s) in set(by_stage["stage"])]
    sns.barplot(data=by_stage, x="customers", y="team", hue="stage", hue_order=stage_order, ax=ax)
    ax.legend(title="Lifecycle stage", bbox_to_anchor=(1.01, 1), loc="upper left")
    ax.set(xlabel="Customers on the call list", ylabel="", title="Who each team calls, by lifecycle stage")
    return fig


def plot_migration_transitions(moved: Migration) -> Any:
    """Row shares of the segment and lifecycle-stage transitions since the previous run."""
    fig, axes = plt.subplots(1, 2, figsize=(14, 5.5))
    for ax, table, title in (
        (axes[0], moved.segment_transitions, "Segment transitions (customers)"),
        (axes[1], moved.stage_transitions, "Lifecycle stage transitions (customers)"),
    ):
        share = table.div(table.sum(axis=1), axis=0)
        sns.heatmap(share, annot=True, fmt=".0%", cmap="Greens", cbar=False, ax=ax)
        ax.set(title=title + ", row shares", xlabel="this run", ylabel="previous run")
    return fig
