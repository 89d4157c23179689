"""The figures of notebook 01 (data audit), drawn from what `helpers.audit.report.run_step` returns,
labelled in the run's language (`text`, the message catalog)."""

from __future__ import annotations

import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns
from matplotlib.figure import Figure
from matplotlib.ticker import PercentFormatter

from helpers.audit.display import column_label, group_label, reason_label, table_label
from helpers.core.factors import SOURCE_GROUPS
from helpers.core.i18n import Catalog
from helpers.core.tables import TABLES


def plot_missingness(text: Catalog, profile: pd.DataFrame) -> Figure:
    """Heatmap: share of missing values per table (rows) and column (columns).

    Only columns that are empty somewhere are shown (fully filled columns would be all white).
    """
    matrix = profile.pivot(index="table", columns="column", values="missing_share")
    with_missing = sorted(profile.loc[profile["missing"] > 0, "column"].unique())
    matrix = matrix.reindex(
        index=[t for t in TABLES if t in matrix.index], columns=with_missing or sorted(matrix.columns)
    )
    matrix.index = [table_label(text, t) for t in matrix.index]
    matrix.columns = [column_label(text, c) for c in matrix.columns]
    figure, axis = plt.subplots(figsize=(max(10, 0.32 * matrix.shape[1]), 4.2))
    sns.heatmap(matrix, ax=axis, cmap="Reds", vmin=0, vmax=1, linewidths=0.3, linecolor="white",
                cbar_kws={"label": text("audit.plots.missing_bar")})  # fmt: skip
    axis.set_title(text("audit.plots.missing_title"))
    axis.set_xlabel("")
    axis.set_ylabel("")
    return figure


def plot_quality(text: Catalog, quality: pd.DataFrame) -> Figure:
    """Horizontal bars: quality score per table, with the threshold bands."""
    ordered = quality.sort_values("score")
    figure, axis = plt.subplots(figsize=(8, 4))
    colors = ["#c0392b" if s < 80 else "#f39c12" if s < 95 else "#27ae60" for s in ordered["score"]]
    axis.barh([table_label(text, t) for t in ordered["table"]], ordered["score"], color=colors)
    for y, score in enumerate(ordered["score"]):
        axis.text(score + 0.5, y, f"{score:.1f}", va="center")
    axis.set_xlim(0, 105)
    axis.set_xlabel(text("audit.plots.quality_axis"))
    axis.set_title(text("audit.plots.quality_title"))
    return figure


def plot_coverage(text: Catalog, by_system: pd.DataFrame) -> Figure:
    """Bars: share of identity records with each factor group, per source system."""
    long = by_system.melt(id_vars=["system", "records"], value_vars=[group.name for group in SOURCE_GROUPS],
                          var_name="group", value_name="with_group")  # fmt: skip
    long["share"] = long["with_group"] / long["records"].clip(lower=1)
    long["system"] = [text(f"audit.systems.{s}") for s in long["system"].astype(str)]
    long["group"] = [group_label(text, g) for g in long["group"]]
    figure, axis = plt.subplots(figsize=(10, 4.5))
    sns.barplot(data=long, x="group", y="share", hue="system", ax=axis)
    axis.set_ylim(0, 1)
    axis.yaxis.set_major_formatter(PercentFormatter(xmax=1))
    axis.set_ylabel(text("audit.plots.coverage_axis"))
    axis.set_xlabel("")
    axis.tick_params(axis="x", labelrotation=20)
    axis.set_title(text("audit.plots.coverage_title"))
    axis.legend(
        title=text("audit.plots.coverage_legend"), ncols=4, loc="upper center", bbox_to_anchor=(0.5, -0.2)
    )
    return figure


def plot_monthly(text: Catalog, monthly: pd.DataFrame) -> Figure:
    """Lines: accepted rows per month, events (top) and new identity records (bottom)."""
    figure, axes = plt.subplots(2, 1, figsize=(10, 6), sharex=True)
    for axis, kind in zip(axes, ("event", "identity"), strict=True):
        names = [t.name for t in TABLES.values() if t.kind == kind]
        data = monthly[monthly["table"].isin(names)].assign(
            table=lambda f: [table_label(text, t) for t in f["table"].astype(str)]
        )
        sns.lineplot(data=data, x="month", y="rows", hue="table", ax=axis, marker="o", markersize=3)
        axis.set_ylabel(text("audit.plots.per_month"))
        axis.set_title(text("audit.plots.events_title" if kind == "event" else "audit.plots.records_title"))
        axis.legend(loc="upper left", fontsize="small")
    last = pd.to_datetime(monthly["month"]).max() if len(monthly) else None
    if last is not None and pd.notna(last):
        for axis in axes:  # the export ends inside its last month: mark it, do not read it as a drop
            axis.axvspan(last - pd.Timedelta(days=15), last + pd.Timedelta(days=15), color="#bdc3c7",
                         alpha=0.4, zorder=0)  # fmt: skip
    shaded = text("audit.plots.shaded")
    axes[-1].set_xlabel(shaded if last is not None and pd.notna(last) else "")
    figure.tight_layout()
    return figure


def plot_reasons(text: Catalog, reasons: pd.DataFrame, top: int = 15) -> Figure:
    """Bars: the most frequent quarantine reasons across tables."""
    labels = [
        f"{table_label(text, t)}: {reason_label(text, r)}"
        for t, r in zip(reasons["table"], reasons["reason"], strict=True)
    ]
    data = reasons.assign(label=labels).nlargest(top, "rows")
    figure, axis = plt.subplots(figsize=(9, max(3, 0.35 * len(data))))
    axis.barh(data["label"], data["rows"], color="#7f8c8d")
    axis.invert_yaxis()
    axis.set_xlabel(text("audit.plots.reasons_axis"))
    axis.set_title(text("audit.plots.reasons_title"))
    return figure
