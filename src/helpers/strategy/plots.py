"""Step 06 figures: where customers and value are, stages by segment, who each team calls, migration.

Titles, axes and legends come from the run's catalog (`ctx.text`); segments and lifecycle stages
have the colours every page uses (`helpers.core.plots.segment_colors` / `stage_colors`).
"""

from __future__ import annotations

from typing import Any

import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns

from helpers.core.i18n import Catalog
from helpers.core.plots import segment_colors, stage_colors
from helpers.lifecycle.stages import stage_labels
from helpers.strategy.migration import LEFT, NEW_CUSTOMER, Migration
from helpers.strategy.plan import STAGES, capitalized, segment_label, stage_mix, team_label


def plot_segment_value_shares(metrics: pd.DataFrame, text: Catalog) -> Any:
    """Per segment (in its colour): its share of customers, of 12-month revenue and of predicted
    12-month value."""
    say = "strategy.plots.value_shares."
    segments = metrics.loc[metrics["segment_id"] >= 0]
    measures = ["customer_share", "value_share", "clv_share"]
    colours = segment_colors(segments["segment_id"])
    fig, ax = plt.subplots(figsize=(10, 0.5 * len(segments) + 2))
    x = range(len(measures))
    width = 0.8 / max(len(segments), 1)
    for number, row in enumerate(segments.itertuples()):
        ax.bar(
            [position - 0.4 + width * (number + 0.5) for position in x],
            [getattr(row, measure) for measure in measures],
            width=width,
            color=colours[row.segment_id],
            label=segment_label(row.segment_id, row.segment_name, text),
        )
    ax.set_xticks(list(x), [text(say + measure) for measure in measures])
    ax.legend(title="", bbox_to_anchor=(1.01, 1), loc="upper left")
    ax.set(ylabel=text(say + "xlabel"), title=text(say + "title"))
    ax.yaxis.set_major_formatter(lambda v, _: f"{v:.0%}")
    return fig


def plot_segment_stage_customers(plan: pd.DataFrame, metrics: pd.DataFrame, text: Catalog) -> Any:
    """Heatmap of customers per segment (in metrics order) and lifecycle stage."""
    say = "strategy.plots.stage_heatmap."
    mix = stage_mix(plan)
    counts = mix.pivot_table(
        index="segment_name", columns="stage", values="customers", fill_value=0, observed=True
    )
    segment_order = metrics.loc[metrics["segment_id"] >= 0, "segment_name"].tolist()
    counts = counts.reindex(index=segment_order, columns=[s for s in STAGES if s in counts.columns])
    labels = stage_labels(text)
    counts.columns = [capitalized(labels[s]) for s in counts.columns]
    fig, ax = plt.subplots(figsize=(10, 0.6 * len(counts) + 1.5))
    sns.heatmap(counts, annot=True, fmt=",.0f", cmap="Blues", cbar=False, ax=ax)
    ax.set(xlabel=text(say + "xlabel"), ylabel="", title=text(say + "title"))
    return fig


def plot_call_list_by_team_stage(plan: pd.DataFrame, text: Catalog) -> Any:
    """Customers on the call list per team, stacked by lifecycle stage (stage colours)."""
    say = "strategy.plots.team_stage."
    listed = plan.loc[plan["on_call_list"]]
    counts = listed.groupby(["team", "stage"], observed=True).size().unstack("stage", fill_value=0)
    counts = counts.reindex(columns=[s for s in STAGES if s in counts.columns])
    labels, colours = stage_labels(text), stage_colors()
    fig, ax = plt.subplots(figsize=(10, 0.6 * len(counts) + 2))
    left = pd.Series(0, index=counts.index)
    teams = [team_label(str(team), text) for team in counts.index]
    for stage in counts.columns:
        ax.barh(teams, counts[stage], left=left, color=colours[stage], label=capitalized(labels[stage]))
        left = left + counts[stage]
    ax.invert_yaxis()
    ax.legend(title=text(say + "legend"), bbox_to_anchor=(1.01, 1), loc="upper left")
    ax.set(xlabel=text(say + "xlabel"), ylabel="", title=text(say + "title"))
    ax.xaxis.set_major_formatter(lambda v, _: f"{v:,.0f}")
    return fig


def plot_migration_transitions(moved: Migration, text: Catalog) -> Any:
    """Row shares of the segment and lifecycle-stage transitions since the previous run."""
    say = "strategy.plots.transitions."
    stages = {stage: capitalized(label) for stage, label in stage_labels(text).items()}
    markers = {NEW_CUSTOMER: text(say + "new_customer"), LEFT: text(say + "left"), **stages}
    fig, axes = plt.subplots(1, 2, figsize=(15, 6), layout="constrained")
    for ax, table, title in (
        (axes[0], moved.segment_transitions, text(say + "segments")),
        (axes[1], moved.stage_transitions, text(say + "stages")),
    ):
        share = table.div(table.sum(axis=1), axis=0)
        share = share.rename(index=lambda v: markers.get(v, v), columns=lambda v: markers.get(v, v))
        sns.heatmap(share, annot=True, fmt=".0%", cmap="Greens", cbar=False, ax=ax)
        ax.set(title=title, xlabel=text(say + "xlabel"), ylabel=text(say + "ylabel"))
        ax.tick_params(axis="y", rotation=0)
    return fig
