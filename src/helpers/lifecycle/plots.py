"""Step 05 figures: purchase gaps behind the rules, churn risk by stage, funnel, stages by segment, flows."""

from __future__ import annotations

from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.ticker import PercentFormatter

from helpers.lifecycle.stages import STAGES


def _rule_histogram(ax: Any, values: pd.Series, threshold: float, rule: str, xlabel: str, ylabel: str,
                    title: str) -> None:
    """A histogram with a rule's threshold as a dashed line."""
    sns.histplot(values, bins=60, ax=ax)
    ax.axvline(threshold, color="black", linestyle="--", label=rule)
    ax.set(xlabel=xlabel, ylabel=ylabel, title=title)
    ax.legend()


def plot_purchase_gaps(labeled: pd.DataFrame, rules: dict[str, Any]) -> Any:
    """Gap ratio of repeat buyers with the at-risk rule, and recency of all buyers with the churned rule."""
    repeat = labeled[labeled["n_purchases"] >= rules["at_risk"]["min_purchases_for_rhythm"]]
    buyers = labeled[labeled["n_purchases"] > 0]
    figure, (left, right) = plt.subplots(1, 2, figsize=(12, 4))
    gap, recency = rules["at_risk"]["gap_ratio"], rules["churned"]["min_recency_days"]
    _rule_histogram(left, repeat["gap_ratio"].clip(upper=5), gap, f"at-risk rule ({gap}x)",
                    "gap ratio = days since last purchase / own mean gap (capped at 5)", "repeat buyers",
                    "Purchase gap vs own rhythm (repeat buyers)")
    _rule_histogram(right, buyers["recency_days"], recency, f"churned rule ({recency} days)",
                    "days since last purchase", "buyers", "Recency (all buyers)")
    return figure


def plot_churn_risk_by_stage(labeled: pd.DataFrame, horizon_days: int, risk_threshold: float) -> Any:
    """Box plot of the buyers' churn risk per stage, with the at-risk threshold."""
    buyers = labeled[labeled["n_purchases"] > 0]
    figure, axis = plt.subplots(figsize=(10, 4))
    shown = buyers.assign(stage=buyers["stage"].astype(str))
    order = [s for s in STAGES if s in set(shown["stage"])]
    sns.boxplot(data=shown, x="stage", y="churn_risk", order=order, ax=axis)
    axis.axhline(
        risk_threshold,
        color="black",
        linestyle="--",
        label=f"at-risk threshold ({risk_threshold:.0%})",
    )
    axis.yaxis.set_major_formatter(PercentFormatter(1))
    axis.set(xlabel="lifecycle stage", ylabel=f"churn risk (no purchase in {horizon_days} days)")
    axis.set_title(f"Churn risk (P no purchase in {horizon_days} days) by stage, buyers")
    axis.legend(loc="upper left")
    return figure


def plot_funnel(table: pd.DataFrame) -> Any:
    """Horizontal funnel bars with the conversion rate from the step before."""
    figure, axis = plt.subplots(figsize=(9, 3.8))
    positions = np.arange(len(table))[::-1]
    axis.barh(positions, table["customers"], color=sns.color_palette("Blues_r", len(table)))
    axis.set_yticks(positions, table["step"])
    for position, (_, row) in zip(positions, table.iterrows(), strict=True):
        rate = (
            "" if pd.isna(row["rate_from_previous"]) else f"  ({row['rate_from_previous']:.0%} of previous)"
        )
        axis.text(row["customers"], position, f" {row['customers']:,}{rate}", va="center")
    axis.set_xlim(0, table["customers"].max() * 1.45)
    axis.set_xlabel("customers")
    axis.set_title("Lifecycle funnel")
    return figure


def plot_stage_by_segment(labeled: pd.DataFrame, segments: pd.DataFrame) -> Any:
    """Share of each stage within each segment (stacked bars, one per segment)."""
    joined = labeled[["customer_id", "stage"]].merge(
        segments[["customer_id", "segment_name"]], on="customer_id"
    )
    shares = pd.crosstab(joined["segment_name"].astype(str), joined["stage"], normalize="index")
    shares = shares.reindex(columns=[s for s in STAGES if s in shares.columns])
    figure, axis = plt.subplots(figsize=(10, 0.5 * len(shares) + 2))
    shares.plot.barh(stacked=True, ax=axis, color=sns.color_palette("tab10", len(shares.columns)), width=0.8)
    axis.set_xlabel("share of the segment's customers")
    axis.set_ylabel("")
    axis.legend(title="stage", bbox_to_anchor=(1.01, 1), loc="upper left")
    axis.set_title("Lifecycle stage by segment")
    axis.xaxis.set_major_formatter(PercentFormatter(1))
    return figure


def plot_flows(flows: pd.DataFrame) -> Any:
    """Heatmap of customers moving between stages since the previous run."""
    figure, axis = plt.subplots(figsize=(9, 6))
    sns.heatmap(flows, annot=True, fmt=",d", cmap="Blues", cbar=False, ax=axis)
    axis.set_title("Stage flows since the previous run (rows: before, columns: now)")
    return figure
