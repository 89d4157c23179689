"""Step 05 figures in the run's language (catalog `lifecycle.plots.*`), one colour per stage on every
page (`helpers.core.plots.stage_colors`): purchase gaps behind the rules, churn risk by stage, funnel,
stages by segment, flows."""

from __future__ import annotations

from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.ticker import FuncFormatter, PercentFormatter

from helpers.core.i18n import Catalog
from helpers.core.plots import stage_colors
from helpers.lifecycle.stages import FUNNEL_STEPS, STAGES, stage_label, stage_labels

FLOW_ENDS = ("(new)", "(gone)")  # stage_flows' rows and columns for customers in one run only


def _rule_histogram(ax: Any, values: pd.Series, threshold: float, rule: str, xlabel: str, ylabel: str,
                    title: str, text: Catalog) -> None:  # fmt: skip
    """A histogram with a rule's threshold as a dashed line."""
    sns.histplot(values, bins=60, ax=ax, color="steelblue")
    ax.axvline(threshold, color="black", linestyle="--", label=rule)
    ax.set(xlabel=xlabel, ylabel=ylabel, title=title)
    ax.yaxis.set_major_formatter(FuncFormatter(lambda value, _: text.number(value)))
    ax.legend()


def plot_purchase_gaps(labeled: pd.DataFrame, rules: dict[str, Any], text: Catalog) -> Any:
    """Gap ratio of repeat buyers with the at-risk rule, and recency of all buyers with the churned rule."""
    repeat = labeled[labeled["n_purchases"] >= rules["at_risk"]["min_purchases_for_rhythm"]]
    buyers = labeled[labeled["n_purchases"] > 0]
    figure, (left, right) = plt.subplots(1, 2, figsize=(12, 4))
    gap, recency = rules["at_risk"]["gap_ratio"], rules["churned"]["min_recency_days"]
    say = "lifecycle.plots.gaps."
    _rule_histogram(left, repeat["gap_ratio"].clip(upper=5), gap, text(say + "rule", ratio=gap),
                    text(say + "xlabel"), text(say + "ylabel"), text(say + "title"), text)  # fmt: skip
    _rule_histogram(right, buyers["recency_days"], recency, text(say + "churned_rule", days=recency),
                    text(say + "recency_xlabel"), text(say + "recency_ylabel"), text(say + "recency_title"),
                    text)  # fmt: skip
    figure.tight_layout()
    return figure


def plot_churn_risk_by_stage(labeled: pd.DataFrame, horizon_days: int, risk_threshold: float,
                             text: Catalog) -> Any:  # fmt: skip
    """Box plot of the buyers' churn risk per stage (stage colours), with the at-risk threshold."""
    buyers = labeled[labeled["n_purchases"] > 0]
    figure, axis = plt.subplots(figsize=(10, 4))
    labels = stage_labels(text)
    shown = buyers.assign(stage=buyers["stage"].astype(str).map(labels))
    order = [labels[s] for s in STAGES if labels[s] in set(shown["stage"])]
    palette = {labels[stage]: colour for stage, colour in stage_colors().items()}
    sns.boxplot(data=shown, x="stage", y="churn_risk", order=order, hue="stage", hue_order=order,
                palette=palette, legend=False, ax=axis)  # fmt: skip
    say = "lifecycle.plots.risk."
    axis.axhline(risk_threshold, color="black", linestyle="--",
                 label=text(say + "threshold", threshold=text.share(risk_threshold, 0)))  # fmt: skip
    axis.yaxis.set_major_formatter(PercentFormatter(1))
    axis.set(xlabel="", ylabel=text(say + "ylabel", days=horizon_days))
    axis.set_title(text(say + "title", days=horizon_days))
    axis.legend(loc="upper left")
    return figure


def funnel_labels(text: Catalog) -> dict[str, str]:
    """Funnel step label (as in `stages.funnel`'s `step` column) -> its text in the page language."""
    return {label: text(f"lifecycle.funnel.{key}") for key, label in FUNNEL_STEPS}


def plot_funnel(table: pd.DataFrame, text: Catalog) -> Any:
    """Horizontal funnel bars with the conversion rate from the step before."""
    figure, axis = plt.subplots(figsize=(9, 3.8))
    positions = np.arange(len(table))[::-1]
    axis.barh(positions, table["customers"], color=sns.color_palette("Blues_r", len(table)))
    axis.set_yticks(positions, table["step"].map(funnel_labels(text)))
    for position, (_, row) in zip(positions, table.iterrows(), strict=True):
        rate = row["rate_from_previous"]
        note = "" if pd.isna(rate) else text("lifecycle.plots.funnel.rate", rate=text.share(rate, 0))
        axis.text(row["customers"], position, f" {text.number(int(row['customers']))}{note}", va="center")
    axis.set_xlim(0, table["customers"].max() * 1.5)
    axis.xaxis.set_major_formatter(FuncFormatter(lambda value, _: text.number(value)))
    axis.set_xlabel(text("lifecycle.plots.funnel.xlabel"))
    axis.set_title(text("lifecycle.plots.funnel.title"))
    return figure


def plot_stage_by_segment(labeled: pd.DataFrame, segments: pd.DataFrame, text: Catalog) -> Any:
    """Share of each stage within each segment (stacked bars in the stage colours, one per segment)."""
    joined = labeled[["customer_id", "stage"]].merge(
        segments[["customer_id", "segment_id", "segment_name"]], on="customer_id"
    )
    order = joined.drop_duplicates("segment_id").sort_values("segment_id")["segment_name"].astype(str)
    shares = pd.crosstab(joined["segment_name"].astype(str), joined["stage"], normalize="index")
    shares = shares.reindex(index=order, columns=[s for s in STAGES if s in shares.columns])
    colours = stage_colors()
    figure, axis = plt.subplots(figsize=(10, 0.5 * len(shares) + 2))
    shares.rename(columns=stage_labels(text)).plot.barh(
        stacked=True, ax=axis, color=[colours[s] for s in shares.columns], width=0.8
    )
    say = "lifecycle.plots.by_segment."
    axis.set_xlabel(text(say + "xlabel"))
    axis.set_ylabel("")
    axis.invert_yaxis()
    axis.legend(title=text(say + "legend"), bbox_to_anchor=(1.01, 1), loc="upper left")
    axis.set_title(text(say + "title"))
    axis.xaxis.set_major_formatter(PercentFormatter(1))
    return figure


def flow_label(stage: str, text: Catalog) -> str:
    """A stage, or `(new)` / `(gone)` of `stage_flows`, in the page language."""
    if stage in FLOW_ENDS:
        return text(f"lifecycle.flows.{stage.strip('()')}")
    return stage_label(stage, text)


def plot_flows(flows: pd.DataFrame, text: Catalog) -> Any:
    """Heatmap of customers moving between stages since the previous run."""
    figure, axis = plt.subplots(figsize=(9, 6))
    shown = flows.rename(index=lambda s: flow_label(s, text), columns=lambda s: flow_label(s, text))
    sns.heatmap(shown, annot=True, fmt=",d", cmap="Blues", cbar=False, ax=axis)
    axis.set(xlabel=text("lifecycle.flows.now"), ylabel=text("lifecycle.flows.before"))
    axis.tick_params(axis="y", rotation=0)
    axis.set_title(text("lifecycle.plots.flows_title"))
    return figure
