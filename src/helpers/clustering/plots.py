"""Step 04 figures: metric-vs-k curves, selection, stability, profile heatmap, PCA loadings, UMAP map.

The UMAP coordinates themselves are computed by the step (`helpers.clustering.embedding`).
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from sklearn.decomposition import PCA

from helpers.clustering.candidates import Space, sample_rows

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
    """Stability (mean ARI between refits) per algorithm and k, with the gate line.

    Candidates without a stability score (fewer than 2 segments, e.g. HDBSCAN finding one
    cluster) are left out: a segmentation into one segment has no stability to show.
    """
    data = scored[(scored["n_segments"] >= 2) & scored["stability"].notna()]
    fig, ax = plt.subplots(figsize=(13, 4.5))
    sns.barplot(
        data=data.astype({"algorithm": str, "k": str}),
        x="k",
        y="stability",
        hue="algorithm",
        hue_order=sorted(data["algorithm"].unique()),
        ax=ax,
        order=sorted(data["k"].astype(str).unique(), key=int),
    )
    ax.axhline(min_stability, color="black", linestyle="--", linewidth=1, label="gate")
    ax.set_ylim(0, 1.05)
    ax.set_title("Stability: mean adjusted Rand index between refits on resamples with new seeds")
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


def umap_map(coordinates: np.ndarray, labels: list[str], note: str = "") -> plt.Figure:
    """Customers on the map's plane (PCA, `helpers.clustering.embedding`) coloured by segment name;
    `note` is added under the title. The name is kept from when the map was UMAP."""
    fig, ax = plt.subplots(figsize=(10, 7))
    frame = pd.DataFrame(
        {"x": coordinates[:, 0], "y": coordinates[:, 1], "segment": [str(v) for v in labels]}
    )
    sns.scatterplot(
        data=frame,
        x="x",
        y="y",
        hue="segment",
        s=4,
        linewidth=0,
        alpha=0.6,
        ax=ax,
        hue_order=sorted(frame["segment"].unique()),
    )
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_xlabel("")
    ax.set_ylabel("")
    ax.legend(markerscale=4, fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1), title="segment")
    ax.set_title(
        "Customers by segment on the first two principal components - a visual aid, not evidence\n"
        "(segments apart in later components overlap here; the scores above are the evidence)"
        + (f"\n{note}" if note else "")
    )
    fig.tight_layout()
    return fig
