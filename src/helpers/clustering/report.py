"""Step 04's texts and styled tables for the notebook.

Management cells (in the run's language, catalog `clustering.page.*`): `summary_markdown`,
`segments_table`, `choice_markdown`, `map_note`. Analyst cells (method details, English): the key
result with its scores, the working space, the comparison table, the combined rule, the profiles.
"""

from __future__ import annotations

import pandas as pd
from pandas.io.formats.style import Styler

from helpers.clustering.candidates import PROSPECT_ID, ClusteringSettings
from helpers.clustering.profiles import segment_descriptions
from helpers.clustering.step import ClusteringResult
from helpers.core.i18n import Catalog

COMPARISON_COLUMNS = [
    "algorithm", "k", "n_segments", "silhouette", "calinski_harabasz", "davies_bouldin", "bic",
    "stability", "stability_se", "min_jaccard", "smallest_share", "business_separation", "admissible",
    "score",
]  # fmt: skip
COMPARISON_HEADERS = {
    "n_segments": "segments",
    "calinski_harabasz": "Calinski-<br>Harabasz",
    "davies_bouldin": "Davies-<br>Bouldin",
    "smallest_share": "smallest<br>share",
    "stability_se": "stability<br>se",
    "min_jaccard": "weakest segment<br>Jaccard",
    "business_separation": "business<br>separation",
    "admissible": "passes<br>gates",
}
PROFILE_HEADERS = {
    "segment_id": "id",
    "segment_name": "segment",
    "n_customers": "customers",
    "value_share": "share of<br>net spend",
    "mean_clv_12m": "mean CLV<br>(12 months)",
    "mean_monetary_total": "mean net<br>spend",
    "mean_p_no_purchase_next_period": "mean P(no purchase<br>next period)",
    "mean_recency_days": "mean days since<br>last purchase",
    "mean_n_calls": "mean calls",
    "mean_complaint_rate": "mean complaint<br>rate",
    "top_features": "strongest features (3 main groups)",
}


def overview(result: ClusteringResult) -> str:
    """Customers, model columns and prospects in one line."""
    prospects = result.prospects
    return (
        f"{len(result.matrix):,} customers x {result.matrix.shape[1]} model columns; "
        f"{prospects.sum():,} prospects ({prospects.mean():.1%}) go to segment 0"
    )


def key_result_markdown(result: ClusteringResult) -> str:
    """The chosen segmentation, its segments and its quality in plain words (markdown)."""
    chosen_row = result.chosen_row
    silhouette, stable = chosen_row["silhouette"], chosen_row["stability"]
    if pd.isna(silhouette):
        geometry = "silhouette not available"
    else:
        strength = "weak" if silhouette < 0.25 else "moderate" if silhouette < 0.5 else "strong"
        geometry = f"silhouette {silhouette:.2f} ({strength} geometric separation"
        weak_note = ", common for customer data: segments shade into each other)"
        geometry += weak_note if silhouette < 0.25 else ")"
    if pd.isna(stable):
        stability_note = "stability not available"
    else:
        gate = result.settings.min_stability
        level = "high" if stable >= 0.9 else "acceptable" if stable >= gate else "below the gate"
        stability_note = f"stability {stable:.2f} ({level}; 1 = the same segments come back on every refit)"
    segment_lines = "\n".join(
        f"- **{row.segment_id} {row.segment_name}**: {row.n_customers:,} customers ({row.share:.1%})"
        for row in result.profiles.sort_values("segment_id").itertuples()
    )
    failed = "" if chosen_row["admissible"] else "; **this candidate failed a selection gate, review it**"
    return (
        f"**Chosen segmentation: `{result.chosen}`** ({result.reason}); {len(result.profiles)} segments "
        f"including the rule-based Prospects:\n\n{segment_lines}\n\n"
        f"**Quality:** {geometry}; {stability_note}{failed}.\n\n"
        'The analyst can override the choice with `clustering.choose: "algorithm:k"` in the config.'
    )


def lifecycle_note(result: ClusteringResult) -> str:
    """Which lifecycle-dependent features the segmentation leaves out ("" when none)."""
    left_out = result.lifecycle_left_out
    if not left_out:
        return ""
    return (
        f"Lifecycle-dependent features left out of the segmentation ({len(left_out)}): {', '.join(left_out)}."
    )


def dominant_table(dominant: pd.DataFrame) -> Styler:
    """The columns holding more than 20 % of the step-03 matrix's variance, as a styled table."""
    return (
        dominant.rename(columns={"variance_share": "share of total variance"})
        .style.hide(axis="index")
        .format({"share of total variance": "{:.1%}"})
    )


def space_note(result: ClusteringResult) -> str:
    """The column scaling and the space the candidates are fitted in."""
    space, width = result.space, result.matrix.shape[1]
    if space.pca is not None:
        fitted_on = (
            f"Candidates are fitted on the {space.pca.n_components_} leading principal components, "
            f"which keep {space.explained_variance:.0%} of the variance of the {width} scaled columns."
        )
    else:
        fitted_on = f"Candidates are fitted on the {width} scaled columns."
    return f"Column scaling: {result.settings.column_scaling}. {fitted_on}"


def comparison_table(scored: pd.DataFrame, top: int = 20) -> Styler:
    """The `top` candidates by combined score with their scores, as a styled table."""
    formats = {
        "silhouette": "{:.3f}", "calinski_harabasz": "{:,.0f}", "davies_bouldin": "{:.3f}", "bic": "{:,.0f}",
        "stability": "{:.3f}", "stability_se": "{:.3f}", "min_jaccard": "{:.2f}",
        "smallest_share": "{:.1%}", "business_separation": "{:.3f}", "score": "{:.3f}",
        "admissible": lambda ok: "yes" if ok else "no",
    }  # fmt: skip
    return (
        scored[COMPARISON_COLUMNS]
        .sort_values("score", ascending=False)
        .head(top)
        .style.hide(axis="index")
        .format(formats, na_rep="–")
        .relabel_index([COMPARISON_HEADERS.get(c, c) for c in COMPARISON_COLUMNS], axis="columns")
        .set_table_styles([{"selector": "th, td", "props": "padding: 2px 6px; font-size: 90%"}])
    )


def selection_text(result: ClusteringResult) -> str:
    """What each criterion alone would pick, the combined rule's weights and the choice."""
    settings: ClusteringSettings = result.settings
    total_weight = sum(settings.weights.values())
    weights = ", ".join(
        f"{metric.replace('_', ' ')} {weight / total_weight:.0%}"
        for metric, weight in sorted(settings.weights.items(), key=lambda item: -item[1])
    )
    return (
        "What each criterion alone would pick:\n"
        + result.index_choices.round(3).to_string(index=False)
        + f"\n\nCombined rule weights: {weights}\nChosen: {result.chosen} ({result.reason})"
    )


def profiles_table(profiles: pd.DataFrame) -> Styler:
    """The segment profiles without z-scores (the three strongest factor groups per segment)."""
    table = profiles[[c for c in profiles.columns if not c.startswith("z:")]].copy()
    # the three factor groups in which the segment differs most (the full list is in segment_profiles)
    table["top_features"] = table["top_features"].str.split("; ").str[:3].str.join("\n")
    money_columns = [c for c in table.columns if c in ("mean_clv_12m", "mean_monetary_total")]
    formats: dict[str, str] = {"n_customers": "{:,}", "share": "{:.1%}", "value_share": "{:.1%}"}
    formats.update({c: "{:,.0f} CNY" for c in money_columns})
    formats.update({c: "{:.2f}" for c in table.columns if c.startswith("mean_") and c not in money_columns})
    formats = {c: f for c, f in formats.items() if c in table.columns}
    return (
        table.style.hide(axis="index")
        .format(formats, na_rep="–")
        .relabel_index([PROFILE_HEADERS.get(c, c) for c in table.columns], axis="columns")
        .set_properties(
            subset=["top_features"],
            **{"white-space": "pre-wrap", "min-width": "300px", "text-align": "left", "font-size": "85%"},
        )
        .set_table_styles([{"selector": "th, td", "props": "padding: 2px 6px"}])
    )


# ----------------------------------------------------------------------------- management page


def _stability_words(stability: float, text: Catalog) -> str:
    level = "high" if stability >= 0.9 else "good" if stability >= 0.7 else "low"
    return text(f"clustering.page.stability.{level}", value=f"{stability:.2f}")


def summary_markdown(result: ClusteringResult, text: Catalog) -> str:
    """The page's summary block: segments, the largest and the most valuable, prospects, stability."""
    profiles = result.profiles
    clustered = profiles[profiles["segment_id"] != PROSPECT_ID]
    prospects = int(result.prospects.sum())
    say = "clustering.page.summary."
    lines = [
        text(
            say + "segments",
            k=len(clustered),
            clustered=text.number(int(clustered["n_customers"].sum())),
            prospects=text.number(prospects),
        )
    ]
    if len(clustered):
        largest = clustered.loc[clustered["n_customers"].idxmax()]
        lines.append(text(say + "largest", name=largest["segment_name"], share=text.share(largest["share"])))
        if "value_share" in clustered.columns:
            best = clustered.loc[clustered["value_share"].idxmax()]
            lines.append(
                text(
                    say + "valuable",
                    name=best["segment_name"],
                    share=text.share(best["share"]),
                    value=text.share(best["value_share"]),
                )
            )
    stability = result.chosen_row["stability"]
    if pd.notna(stability):
        lines.append(_stability_words(float(stability), text))
    unstable = result.segment_stability[result.segment_stability["unstable"]]
    if len(unstable):
        names = text("clustering.separator").join(f"**{name}**" for name in unstable["segment_name"])
        lines.append(text(say + "unstable", names=names))
    lines.append(text(say + "who_not_when"))
    return f"**{text(say + 'heading')}**\n\n" + "\n".join(f"- {line}" for line in lines)


def segments_table(result: ClusteringResult, text: Catalog, clv_period_days: int) -> Styler:
    """One row per segment in plain words: name, what sets it apart, size, share of spend and the
    business means (money in ¥, shares in %), headers in the page language."""
    profiles = result.profiles.sort_values("segment_id")
    described = segment_descriptions(profiles, text)
    col = "clustering.page.columns."
    shown = pd.DataFrame(
        {
            text(col + "segment"): profiles["segment_name"].astype(str),
            text(col + "description"): profiles["segment_id"].map(described),
            text(col + "customers"): profiles["n_customers"].map(text.number),
            text(col + "share"): profiles["share"].map(text.share),
        }
    )
    means = {
        "value_share": (text(col + "value_share"), text.share),
        "mean_monetary_total": (text(col + "mean_monetary_total"), text.money),
        "mean_clv_12m": (text(col + "mean_clv_12m"), text.money),
        "mean_p_no_purchase_next_period": (
            text(col + "mean_p_no_purchase_next_period", days=clv_period_days),
            text.share,
        ),
        "mean_recency_days": (text(col + "mean_recency_days"), text.number),
        "mean_n_calls": (text(col + "mean_n_calls"), lambda value: text.number(value, decimals=1)),
        "mean_complaint_rate": (text(col + "mean_complaint_rate"), text.share),
    }
    for column, (header, fmt) in means.items():
        if column in profiles.columns:
            shown[header] = profiles[column].map(fmt).to_numpy()
    name, description = text(col + "segment"), text(col + "description")
    left = [{"selector": "th", "props": "text-align: left"}]
    return (
        shown.style.hide(axis="index")
        .set_table_styles([{"selector": "th, td", "props": "padding: 3px 8px"}])
        .set_table_styles({name: left, description: left}, overwrite=False)
        .set_properties(subset=[name], **{"text-align": "left", "min-width": "120px"})
        .set_properties(subset=[description], **{"text-align": "left", "min-width": "220px"})
    )


def reliability_intro(result: ClusteringResult, text: Catalog) -> str:
    """The paragraph introducing the per-segment stability table (refits and the flag threshold)."""
    stability = result.candidate.stability
    return text(
        "clustering.page.reliability_intro",
        refits=text.number(0 if stability is None else stability.refits),
        threshold=text.number(result.settings.min_segment_jaccard, decimals=2),
    )


def reliability_table(result: ClusteringResult, text: Catalog) -> Styler:
    """Per clustered segment: name, share of customers, mean bootstrap Jaccard (fpc::clusterboot)
    and stable / unstable, headers in the page language; unstable rows highlighted."""
    table = result.segment_stability
    shares = result.profiles.set_index("segment_id")["share"]
    col = "clustering.page.reliability."
    status = text(col + "status")
    shown = pd.DataFrame(
        {
            text(col + "segment"): table["segment_name"].astype(str),
            text(col + "share"): table["segment_id"].map(shares).map(text.share),
            text(col + "agreement"): table["jaccard"].map(lambda value: text.number(value, decimals=2)),
            status: [text(col + ("unstable" if flag else "stable")) for flag in table["unstable"]],
        }
    )
    flagged = table["unstable"].to_numpy()
    return (
        shown.style.hide(axis="index")
        .apply(
            lambda column: ["font-weight: bold; color: #b30000" if f else "" for f in flagged],
            subset=[status],
        )
        .set_table_styles([{"selector": "th, td", "props": "padding: 3px 8px"}])
    )


def stability_detail(result: ClusteringResult) -> str:
    """Analyst line: the chosen candidate's stability with its standard error and lower bound."""
    row = result.chosen_row
    stability = result.candidate.stability
    if stability is None:
        return "No stability figures (a single segment)."
    return (
        f"Stability of {result.chosen}: mean ARI {row['stability']:.3f} over {stability.refits} bootstrap "
        f"refits (se {row['stability_se']:.3f}; lower bound {row['stability_lower']:.3f} = mean - "
        f"{result.settings.stability_z:g} se, the figure the gate uses). Per segment, mean Jaccard "
        "with its best match in each refit (fpc::clusterboot): "
        + ", ".join(
            f"{r.segment_id} {r.jaccard:.2f} (se {r.jaccard_se:.2f})"
            for r in result.segment_stability.itertuples()
        )
    )


def choice_markdown(result: ClusteringResult, text: Catalog) -> str:
    """How the segmentation was chosen, in plain words (no method names or scores)."""
    scored = result.scored
    row = result.chosen_row
    key = "clustering.page.choice." + ("ok" if row["admissible"] else "failed_gate")
    return text(
        key,
        candidates=text.number(len(scored)),
        k=int(row["n_segments"]),
        min_share=text.share(result.settings.min_segment_share),
    )


def map_note(result: ClusteringResult, text: Catalog) -> str:
    """The segment map's note on the prospects it leaves out ("" when there are none)."""
    prospects = result.prospects
    if not prospects.any():
        return ""
    return text("clustering.page.map.prospects", n=text.number(int(prospects.sum())))
