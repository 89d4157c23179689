"""Step 04 figures. Management page (in the run's language, one colour per segment from
`helpers.core.plots.segment_colors`): `segment_sizes` and the 2-D `segment_map` (its coordinates are
computed by the step, `helpers.clustering.embedding`). Analyst cells: metric-vs-k curves, selection,
stability, profile heatmap, PCA loadings.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.ticker import PercentFormatter
from sklearn.decomposition import PCA

from helpers.clustering.candidates import Space, sample_rows
from helpers.core.i18n import Catalog
from helpers.core.plots import segment_colors

CURVE_METRICS = (
    "silhouette",
    "calinski_harabasz",
    "davies_bouldin",
    "bic",
    "stability",
    "business_separation",
)


def metric_curves(scored: pd.DataFrame, chosen: str) -> plt.Figure:
    """One panel per metric, one line per algorithm over k; the chosen candidate circled."""
    algorithm, k = chosen.split(":")
    order = sorted(scored["algorithm"].unique())
    palette = dict(zip(order, sns.color_palette("tab10", len(order)), strict=True))
    fig, axes = plt.subplots(2, 3, figsize=(14, 7), sharex=True)
    for ax, metric in zip(axes.flat, CURVE_METRICS, strict=True):
        data = scored.dropna(subset=[metric])
        if not data.empty:
            sns.lineplot(
                data=data.astype({"algorithm": str}),
                x="k",
                y=metric,
                hue="algorithm",
                hue_order=[a for a in order if a in set(data["algorithm"])],
                palette=palette,
                marker="o",
                ax=ax,
                legend=metric == "silhouette",
            )
            pick = data[(data["algorithm"] == algorithm) & (data["k"] == int(k))]
            ax.scatter(pick["k"], pick[metric], s=250, facecolors="none", edgecolors="black", linewidths=2)
        better = "lower is better" if metric in ("davies_bouldin", "bic") else "higher is better"
        ax.set_title(f"{metric} ({better})", fontsize=10)
    handles, legend_labels = axes.flat[0].get_legend_handles_labels()
    if axes.flat[0].get_legend():
        axes.flat[0].get_legend().remove()
    if handles:
        fig.legend(
            handles,
            legend_labels,
            title="algorithm",
            loc="upper left",
            bbox_to_anchor=(1.0, 0.93),
            fontsize=8,
        )
    for ax in axes[-1]:
        ax.set_xlabel("number of segments k")
    fig.suptitle(f"Scores by number of segments (circled: chosen {chosen})")
    fig.tight_layout()
    return fig


def selection_chart(scored: pd.DataFrame, chosen: str, top: int = 15) -> plt.Figure:
    """Stacked bars of the combined score's parts for the best candidates; labels name failed gates
    (the `failed_gates` column of `clustering.combined_scores`)."""
    parts = [c for c in scored.columns if c.startswith("part_")]
    best = scored.sort_values("score", ascending=False).head(top)
    labels = best["algorithm"] + ":" + best["k"].astype(str)
    fig, ax = plt.subplots(figsize=(11, 5))
    left = np.zeros(len(best))
    for part in parts:
        ax.barh(labels, best[part], left=left, label=part.removeprefix("part_"))
        left += best[part].to_numpy()
    for y, (ok, label, failed) in enumerate(
        zip(best["admissible"], labels, best["failed_gates"], strict=True)
    ):
        note = "" if ok else f"  failed: {failed}"
        ax.text(left[y] + 0.005, y, ("<- chosen" if label == chosen else "") + note, va="center", fontsize=8)
    ax.invert_yaxis()
    ax.set_xlim(0, max(float(left.max()) if len(left) else 1.0, 1e-9) * 1.45)
    ax.set_xlabel("combined score (weighted percentile ranks of each metric across candidates)")
    ax.legend(title="score part", loc="upper left", bbox_to_anchor=(1.01, 1), fontsize=8)
    ax.set_title("Selection: combined score of the best candidates")
    fig.tight_layout()
    return fig


def stability_bars(scored: pd.DataFrame, min_stability: float) -> plt.Figure:
    """Stability's lower bound (mean ARI of the bootstrap refits against the candidate, minus z
    standard errors: the figure the gate uses) per algorithm and k, with the gate line.

        Candidates without a stability score (fewer than 2 segments, e.g. HDBSCAN finding one
        cluster) are left out: a segmentation into one segment has no stability to show.
    """
    data = scored[(scored["n_segments"] >= 2) & scored["stability_lower"].notna()]
    fig, ax = plt.subplots(figsize=(13, 4.5))
    sns.barplot(
        data=data.astype({"algorithm": str, "k": str}).assign(
            stability_lower=data["stability_lower"].clip(lower=0)
        ),
        x="k",
        y="stability_lower",
        hue="algorithm",
        hue_order=sorted(data["algorithm"].unique()),
        ax=ax,
        order=sorted(data["k"].astype(str).unique(), key=int),
    )
    ax.axhline(min_stability, color="black", linestyle="--", linewidth=1, label="gate")
    ax.set_ylim(0, 1.05)
    ax.set_title("Stability: lower bound of the mean adjusted Rand index of bootstrap refits")
    ax.set_xlabel("number of segments k")
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1))
    fig.tight_layout()
    return fig


def profile_heatmap(profiles: pd.DataFrame, names: dict[int, str], max_columns: int = 15) -> plt.Figure:
    """z-scores (segment vs population) of the most distinguishing model columns."""
    z = profiles.set_index("segment_id")[[c for c in profiles.columns if c.startswith("z:")]]
    keep = z.abs().max().sort_values(ascending=False, kind="stable").index[:max_columns]
    data = z[keep].rename(columns=lambda c: c[2:])
    data.index = [f"{s} {names.get(int(s), '')}" for s in data.index]
    fig, ax = plt.subplots(figsize=(min(4 + 0.6 * len(keep), 18), 2 + 0.5 * len(data)))
    sns.heatmap(
        data,
        cmap="RdBu_r",
        center=0,
        vmin=-2.5,
        vmax=2.5,
        annot=len(data) * len(keep) <= 150,
        fmt=".1f",
        annot_kws={"fontsize": 9},
        ax=ax,
        cbar_kws={"label": "z vs population"},
    )
    ax.set_title("Segment profiles: how each segment differs from the population")
    fig.tight_layout()
    return fig


def pca_loadings(
    pca: PCA, columns: list[str], n_components: int = 3, top: int = 12
) -> tuple[plt.Figure, pd.DataFrame]:
    """Loadings of the first principal components of a fitted `pca` over `columns` (top columns by
    |loading|) and the share of variance each explains."""
    n_components = min(n_components, pca.n_components_)
    loadings = pd.DataFrame(
        pca.components_[:n_components].T,
        index=columns,
        columns=[f"PC{i + 1} ({v:.0%})" for i, v in enumerate(pca.explained_variance_ratio_[:n_components])],
    )
    keep = loadings.abs().max(axis=1).sort_values(ascending=False, kind="stable").index[:top]
    fig, ax = plt.subplots(figsize=(8, 0.4 * len(keep) + 1.5))
    sns.heatmap(loadings.loc[keep], cmap="RdBu_r", center=0, annot=True, fmt=".2f", ax=ax)
    ax.set_title("PCA loadings: which columns span the main directions of variation")
    fig.tight_layout()
    return fig, loadings


def loadings_pca(space: Space, matrix: pd.DataFrame, clustered: np.ndarray, seed: int) -> PCA:
    """The PCA whose loadings `pca_loadings` shows: the clustering space's components, or without a
    projection (`components: 0`) a 3-component PCA of a sample of the scaled clustered customers."""
    if space.pca is not None:
        return space.pca
    sample = clustered.nonzero()[0][sample_rows(int(clustered.sum()), 20_000, seed)]
    return PCA(n_components=3, random_state=seed).fit(space.scale(matrix.to_numpy()[sample]))


def segment_sizes(profiles: pd.DataFrame, text: Catalog) -> plt.Figure:
    """Per segment: its share of the customers next to its share of the spend (when known)."""
    ordered = profiles.sort_values("segment_id")
    names = ordered["segment_name"].astype(str).tolist()
    colours = segment_colors(ordered["segment_id"])
    fig, ax = plt.subplots(figsize=(10, 0.55 * len(ordered) + 1.8))
    positions = np.arange(len(ordered))
    has_value = "value_share" in ordered.columns
    height = 0.4 if has_value else 0.7
    fill = [colours[int(s)] for s in ordered["segment_id"]]
    bars = ax.barh(
        positions - (height / 2 if has_value else 0),
        ordered["share"],
        height=height,
        color=fill,
        label=text("clustering.page.sizes.customers"),
    )
    labels = [text.share(v) for v in ordered["share"]]
    ax.bar_label(bars, labels=labels, padding=3, fontsize=9)
    if has_value:
        value = ordered["value_share"].fillna(0)
        bars = ax.barh(
            positions + height / 2,
            value,
            height=height,
            color=fill,
            alpha=0.45,
            hatch="//",
            label=text("clustering.page.sizes.value"),
        )
        ax.bar_label(bars, labels=[text.share(v) for v in value], padding=3, fontsize=9)
    ax.set_yticks(positions, names)
    ax.invert_yaxis()
    ax.xaxis.set_major_formatter(PercentFormatter(1, decimals=0))
    ax.set_xlim(
        0, float(max(ordered["share"].max(), ordered.get("value_share", ordered["share"]).max())) * 1.2
    )
    ax.set_title(text("clustering.page.sizes.title"))
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.06), ncol=2, frameon=False)
    fig.tight_layout()
    return fig


def segment_map(
    coordinates: np.ndarray, segment_ids: np.ndarray, names: dict[int, str], text: Catalog, note: str = ""
) -> plt.Figure:
    """Customers on a plane (the first two principal components, `helpers.clustering.embedding`),
    one colour per segment; `note` is added under the title. A picture, not evidence."""
    fig, ax = plt.subplots(figsize=(10, 7))
    ids = sorted({int(s) for s in segment_ids})
    colours = segment_colors(ids)
    for segment in ids:
        shown = np.asarray(segment_ids) == segment
        ax.scatter(
            coordinates[shown, 0],
            coordinates[shown, 1],
            s=6,
            linewidths=0,
            alpha=0.6,
            color=colours[segment],
            label=names.get(segment, str(segment)),
        )
    ax.set_xticks([])
    ax.set_yticks([])
    ax.legend(
        markerscale=4,
        fontsize=9,
        loc="upper left",
        bbox_to_anchor=(1.01, 1),
        title=text("clustering.page.map.legend"),
    )
    ax.set_title(text("clustering.page.map.title") + (f"\n{note}" if note else ""))
    fig.tight_layout()
    return fig
