"""Page 02 in the run's language: the summary block, tables and charts of the identity merge
(what `helpers.identity.merge.run_step` returned, made readable; no personal data)."""

from __future__ import annotations

import math

import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns
from matplotlib.figure import Figure
from pandas.io.formats.style import Styler

from helpers.audit.display import column_label, table_label
from helpers.core.i18n import Catalog
from helpers.identity.merge import IdentityResult, cluster_size_counts, merge_sources

METHODS = ("deterministic", "probabilistic", "single")


def _label(text: Catalog, domain: str, value: str) -> str:
    return text.label(f"identity.{domain}.{value}", value)


def _system(text: Catalog, system: str) -> str:
    return text.label(f"audit.systems.{system}", system)


def summary_block(text: Catalog, result: IdentityResult) -> str:
    """Markdown: the page's key findings."""
    summary = result.merge_summary.set_index("source_system")
    records = int(summary.loc["all", "records"]) if "all" in summary.index else 0
    customers = int(summary.loc["all", "customers"]) if "all" in summary.index else 0
    methods = result.crosswalk["match_method"].value_counts()
    lines = [
        text("identity.summary_heading"),
        text(
            "identity.summary.records",
            records=text.number(records),
            customers=text.number(customers),
            per_customer=f"{records / customers:.2f}" if customers else "–",
        ),
        text(
            "identity.summary.deterministic",
            **{method: text.number(int(methods.get(method, 0))) for method in METHODS},
        ),
        text("identity.summary.suspicious", suspicious=text.number(len(result.suspicious_identifiers))),
        text("identity.summary.review", review=text.number(len(result.review_pairs))),
    ]
    stats = result.stats
    if stats.get("previous_run"):
        retired = int(stats["ids_retired_merged"]) + int(stats["ids_retired_removed"])
        lines.append(
            text(
                "identity.summary.ids",
                kept=text.number(int(stats["ids_kept"])),
                new=text.number(int(stats["ids_new"])),
                split=text.number(int(stats["ids_new_from_split"])),
                retired=text.number(retired),
            )
        )
    return "\n".join(lines)


def _style(text: Catalog, frame: pd.DataFrame, shares: tuple[str, ...] = ()) -> Styler:
    formats = {
        name: (lambda value: text.share(value)) if name in shares else (lambda value: text.number(value))
        for name in frame.columns
        if pd.api.types.is_numeric_dtype(frame[name]) and not pd.api.types.is_bool_dtype(frame[name])
    }
    return frame.style.hide(axis="index").format(formats, na_rep="–")


def _headers(text: Catalog, frame: pd.DataFrame) -> pd.DataFrame:
    return frame.rename(columns={name: text(f"identity.headers.{name}") for name in frame.columns})


def systems_table(text: Catalog, result: IdentityResult) -> Styler:
    frame = result.merge_summary.assign(
        source_system=lambda f: f["source_system"].map(lambda s: _system(text, s))
    )
    return _style(text, _headers(text, frame))


def methods_table(text: Catalog, result: IdentityResult) -> Styler:
    counts = result.crosswalk["match_method"].value_counts().reindex(METHODS, fill_value=0)
    frame = pd.DataFrame(
        {"method": [_label(text, "methods", m) for m in counts.index], "records": counts.to_numpy()}
    )
    return _style(text, _headers(text, frame))


def suspicious_table(text: Catalog, result: IdentityResult) -> Styler:
    counts = result.suspicious_identifiers.groupby(["identifier_type", "reason"]).size()
    frame = counts.rename("identifiers").reset_index()
    frame["identifier_type"] = frame["identifier_type"].map(lambda t: _label(text, "identifier_types", t))
    frame["reason"] = frame["reason"].map(lambda r: _label(text, "suspicious_reasons", r))
    return _style(text, _headers(text, frame))


def golden_table(text: Catalog, result: IdentityResult) -> Styler:
    filled = result.golden.drop(columns=["customer_id", "lineage"]).notna().mean()
    frame = pd.DataFrame(
        {"attribute": [column_label(text, name) for name in filled.index], "share_filled": filled.to_numpy()}
    )
    return _style(text, _headers(text, frame), shares=(text("identity.headers.share_filled"),))


def review_table(text: Catalog, result: IdentityResult) -> Styler:
    review = result.review_pairs
    frame = pd.DataFrame(
        {
            "reason": [_label(text, "review_reasons", r) for r in review["reason"]],
            "merged": review["same_customer"].astype(bool),
        }
    )
    counts = frame.groupby("reason")["merged"].agg(same_customer="sum", pairs="size").reset_index()
    counts["not_same_customer"] = counts["pairs"] - counts["same_customer"]
    return _style(text, _headers(text, counts[["reason", "same_customer", "not_same_customer", "pairs"]]))


def plot_cluster_sizes(text: Catalog, result: IdentityResult) -> Figure:
    """Bars with counts: customers by number of source records."""
    sizes = cluster_size_counts(result.crosswalk)
    figure, axis = plt.subplots()
    sns.barplot(data=sizes, x="records_per_customer", y="customers", color="tab:blue", ax=axis)
    for container in axis.containers:
        axis.bar_label(container, labels=[text.number(v) for v in sizes["customers"]], padding=2)
    axis.set(xlabel=text("identity.plots.sizes_x"), ylabel=text("identity.plots.sizes_y"),
             title=text("identity.plots.sizes_title"))  # fmt: skip
    return figure


def plot_sources(text: Catalog, result: IdentityResult) -> Figure:
    """Bars: per source system, records by how they were merged."""
    sources = merge_sources(result.crosswalk)
    sources = sources.assign(
        source_system=lambda f: [_system(text, s) for s in f["source_system"].astype(str)],
        match_method=lambda f: [_label(text, "methods", m) for m in f["match_method"].astype(str)],
    )
    figure, axis = plt.subplots()
    sns.barplot(data=sources, x="source_system", y="records", hue="match_method", ax=axis)
    axis.set(xlabel="", ylabel=text("identity.plots.sources_y"), title=text("identity.plots.sources_title"))
    axis.legend(title="")
    return figure


def plot_match_weights(text: Catalog, result: IdentityResult, threshold: float) -> Figure | None:
    """Histogram of the probabilistic candidates' match weights with the threshold line (None when the
    deterministic method ran)."""
    scored = result.scored_pairs
    if not len(scored):
        return None
    figure, axis = plt.subplots()
    axis.hist(scored["match_weight"], bins=40, color="tab:purple", edgecolor="white")
    axis.axvline(math.log2(threshold / (1 - threshold)), color="black", linestyle="--",
                 label=text("identity.plots.threshold", threshold=threshold))  # fmt: skip
    axis.set(xlabel=text("identity.plots.weights_x"), ylabel=text("identity.plots.weights_y"),
             title=text("identity.plots.weights_title"))  # fmt: skip
    axis.legend()
    return figure


def trace_line(text: Catalog, result: IdentityResult) -> str:
    """One sentence: every input row accounted for (accepted, linked, quarantined)."""
    trace = result.row_trace
    accepted = trace["status"].eq("accepted")
    linked = accepted & trace["customer_id"].notna() & trace["customer_id"].ne("")
    return text(
        "identity.trace_line",
        rows=text.number(len(trace)),
        accepted=text.number(int(accepted.sum())),
        linked=text.number(int(linked.sum())),
        quarantined=text.number(int((~accepted).sum())),
    )


def events_table(text: Catalog, result: IdentityResult) -> Styler:
    """Identifier-keyed events per table and how their customer was found."""
    grouped = result.event_customers.groupby(["event_table", "resolved_by"])
    counts = grouped.size().rename("events").reset_index()
    counts["event_table"] = counts["event_table"].map(lambda t: table_label(text, t))
    counts["resolved_by"] = counts["resolved_by"].map(lambda r: _label(text, "resolved_by", r))
    return _style(text, _headers(text, counts))
