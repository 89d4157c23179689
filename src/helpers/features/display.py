"""Page 03 in the run's language: the summary block, tables and charts of the customer features
(what `helpers.features.build.run_step` returned, made readable)."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, PercentFormatter
from pandas.io.formats.style import Styler

from helpers.audit.display import column_label, group_label
from helpers.core.i18n import Catalog
from helpers.features.build import StepOutputs, value_concentration

TIERS = ("high", "middle", "low")
# profile column -> value vocabulary in values.yml
PROFILE_VALUES = {
    "preferred_channel": "channel",
    "age_band": "age_band",
    "city_tier": "city_tier",
    "primary_device": "device",
    "lifestyle": "lifestyle",
    "company_size_band": "company_size",
}


def value_label(text: Catalog, kind: str, value: object) -> str:
    """A data value's name for readers (`values.<kind>.<value>`; the value itself when not listed)."""
    return text.label(f"values.{kind}.{value}", str(value))


def summary_block(text: Catalog, outputs: StepOutputs) -> str:
    """Markdown: the page's key findings."""
    table = outputs.build.features
    n_customers = max(len(table), 1)
    tiers = table["value_tier"].astype(str).value_counts()
    spend = table.groupby(table["value_tier"].astype(str))["monetary_12m"].sum()
    thin = outputs.coverage.sort_values("share_covered").head(3)
    return "\n".join(
        [
            text("features.summary_heading"),
            text(
                "features.summary.customers",
                customers=text.number(len(table)),
                buyers=text.number(int(table["has_purchases"].sum())),
                buyer_share=text.share(table["has_purchases"].mean(), 0),
            ),
            text(
                "features.summary.concentration",
                top_share=text.share(value_concentration(table["monetary_total"]), 0),
            ),
            text(
                "features.summary.tiers",
                high=text.number(int(tiers.get("high", 0))),
                high_share=text.share(tiers.get("high", 0) / n_customers, 0),
                high_spend=text.share(spend.get("high", 0) / max(spend.sum(), 1), 0),
                middle=text.number(int(tiers.get("middle", 0))),
                low=text.number(int(tiers.get("low", 0))),
            ),
            text(
                "features.summary.thin",
                groups=text("audit.list_separator").join(
                    f"{group_label(text, r.group)} {text.share(r.share_covered, 0)}"
                    for r in thin.itertuples()
                ),
            ),
        ]
    )


def groups_table(text: Catalog, dictionary: pd.DataFrame) -> Styler:
    """Per factor group: features and how many the model matrix uses."""
    counts = (
        dictionary[dictionary["group"] != "key"]
        .groupby("group", sort=False)
        .agg(features=("name", "size"), in_matrix=("in_matrix", "sum"))
    )
    frame = counts.reset_index()
    frame["group"] = frame["group"].map(lambda g: group_label(text, g))
    frame = frame.rename(columns={name: text(f"features.headers.{name}") for name in frame.columns})
    return frame.style.hide(axis="index")


def tiers_table(text: Catalog, table: pd.DataFrame) -> Styler:
    """Per value tier: customers and medians of CLV, 12-month spend and purchases."""
    tier = table["value_tier"].astype(str).rename("value_tier")
    frame = (
        table[["customer_id", "clv_12m", "monetary_12m", "n_purchases"]]
        .groupby(tier)
        .agg(
            customers=("customer_id", "size"),
            median_clv_12m=("clv_12m", "median"),
            median_net_spend_12m=("monetary_12m", "median"),
            median_purchases=("n_purchases", "median"),
        )
        .reindex([t for t in TIERS if t in set(tier)])
        .reset_index()
    )
    frame["value_tier"] = frame["value_tier"].map(lambda t: value_label(text, "value_tier", t))
    money = {text(f"features.headers.{c}") for c in ("median_clv_12m", "median_net_spend_12m")}
    frame = frame.rename(columns={name: text(f"features.headers.{name}") for name in frame.columns})
    formats = {
        name: (lambda v: text.money(v)) if name in money else (lambda v: text.number(v))
        for name in frame.columns[1:]
    }
    return frame.style.hide(axis="index").format(formats, na_rep="–")


def plot_coverage(text: Catalog, coverage: pd.DataFrame) -> Figure:
    """Bars: share of customers with real data per factor group."""
    data = coverage.assign(group=[group_label(text, g) for g in coverage["group"]])
    figure, axis = plt.subplots(figsize=(8, 4))
    sns.barplot(data=data, y="group", x="share_covered", color="tab:blue", ax=axis)
    axis.set(xlabel=text("features.plots.coverage_x"), ylabel="", xlim=(0, 1),
             title=text("features.plots.coverage_title"))  # fmt: skip
    axis.xaxis.set_major_formatter(PercentFormatter(1))
    for container in axis.containers:
        axis.bar_label(container, fmt="{:.0%}", padding=3)
    return figure


def plot_value(text: Catalog, table: pd.DataFrame) -> Figure:
    """Left: value concentration curve; right: customers per classic RFM group."""
    spend = np.sort(table["monetary_total"].clip(lower=0).to_numpy())[::-1]
    points = np.unique(np.linspace(0, max(len(spend) - 1, 0), 1001).astype(int))
    figure, axes = plt.subplots(1, 2, figsize=(12, 4))
    if spend.sum() > 0:
        axes[0].plot((points + 1) / len(spend), np.cumsum(spend)[points] / spend.sum())
    axes[0].axvline(0.2, color="grey", linestyle="--")
    share = text.share(value_concentration(table["monetary_total"]), 0)
    axes[0].set(xlabel=text("features.plots.concentration_x"), ylabel=text("features.plots.concentration_y"),
                title=text("features.plots.concentration_title", share=share))  # fmt: skip
    axes[0].xaxis.set_major_formatter(PercentFormatter(1))
    axes[0].yaxis.set_major_formatter(PercentFormatter(1))
    counts = table["rfm_segment"].astype(str).value_counts()
    labels = [value_label(text, "rfm_segment", name) for name in counts.index]
    sns.barplot(x=counts.to_numpy(), y=labels, color="tab:blue", ax=axes[1])
    axes[1].set(xlabel=text("features.plots.rfm_x"), ylabel="", title=text("features.plots.rfm_title"))
    figure.tight_layout()
    return figure


def clv_model_note(text: Catalog, outputs: StepOutputs) -> str:
    """Markdown for analysts: which model was fitted, on how many buyers, its parameters."""
    fitted = outputs.build.clv
    if fitted is None:
        return text("features.no_clv")
    params = {**fitted.transaction_params, **fitted.spend_params}
    return text(
        "features.clv_model",
        model=fitted.model.upper(),
        buyers=text.number(fitted.n_fit_customers),
        seconds=f"{fitted.fit_seconds:.1f}",
        params=", ".join(f"{name} = {value:.3f}" for name, value in params.items()),
    )


def plot_lifetime_value(text: Catalog, table: pd.DataFrame, seed: int) -> Figure:
    """Left: probability of no purchase next period vs recency (by purchase days); right: buyers'
    12-month CLV on a log-scaled money axis."""
    buyers = table.loc[
        table["n_purchases"] > 0, ["n_purchase_days", "recency_days", "p_no_purchase_next_period", "clv_12m"]
    ]
    shown = buyers.sample(min(len(buyers), 5000), random_state=seed)
    days = shown["n_purchase_days"].clip(upper=5).astype(int).astype(str).replace("5", "5+")
    hue = text("features.plots.purchase_days")
    shown = shown.assign(**{hue: days})
    figure, axes = plt.subplots(1, 2, figsize=(12, 4))
    sns.scatterplot(data=shown, x="recency_days", y="p_no_purchase_next_period", hue=hue, s=10, ax=axes[0],
                    hue_order=[h for h in ("1", "2", "3", "4", "5+") if h in set(days)])  # fmt: skip
    axes[0].set(title=text("features.plots.no_purchase_title"), xlabel=text("features.plots.no_purchase_x"),
                ylabel=text("features.plots.no_purchase_y"))  # fmt: skip
    axes[0].yaxis.set_major_formatter(PercentFormatter(1))
    values = buyers["clv_12m"].clip(lower=1)
    bins = np.logspace(0, np.log10(max(values.max(), 10)), 50)
    axes[1].hist(values, bins=bins, color="tab:blue", edgecolor="white")
    axes[1].set_xscale("log")
    axes[1].xaxis.set_major_formatter(FuncFormatter(lambda value, _: text.money(value)))
    axes[1].set(xlabel=text("features.plots.clv_x"), ylabel=text("features.plots.clv_y"),
                title=text("features.plots.clv_title"))  # fmt: skip
    figure.tight_layout()
    return figure


def plot_profiles(text: Catalog, table: pd.DataFrame) -> Figure:
    """Bars: customers per value of six profile columns (top 10 values each)."""
    figure, axes = plt.subplots(2, 3, figsize=(14, 7))
    for axis, (column, kind) in zip(axes.flat, PROFILE_VALUES.items(), strict=True):
        counts = table[column].astype(str).value_counts().head(10)
        labels = [value_label(text, kind, value) for value in counts.index]
        sns.barplot(x=counts.to_numpy(), y=labels, color="tab:blue", ax=axis)
        axis.set(title=column_label(text, column), xlabel=text("features.plots.customers"), ylabel="")
    figure.tight_layout()
    return figure


def category_shares(text: Catalog, table: pd.DataFrame) -> str:
    """Markdown: buyers' mean share of spend per purchase category."""
    shares = table.filter(like="category_share_").mean().sort_values(ascending=False)
    listed = ", ".join(
        f"{value_label(text, 'category', name.removeprefix('category_share_'))} {text.share(value, 0)}"
        for name, value in shares.items()
    )
    return text("features.categories", shares=listed)
