"""Segment migration between runs: stable segment ids, transition matrices and change flags.

A new run's segments are matched one-to-one to the previous run's by the distance between their
profiles (segment means of standardized features) with the Hungarian algorithm
(`helpers.clustering.candidates.match_segments`), so an unchanged rerun keeps every id and name. Segments
without a partner get fresh ids and are flagged.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from helpers.clustering.candidates import match_segments
from helpers.core.i18n import Catalog
from helpers.strategy.plan import FEATURE_COLUMNS, STAGES

PROFILE_COLUMNS = [
    "recency_days", "n_purchases", "tenure_days", "monetary_12m", "avg_order_value", "clv_12m",
    "n_calls", "complaint_rate", "csat_mean", "nps_mean", "response_rate", "conversion_rate",
]  # fmt: skip
# What step 06 reads of 03_features: the strategy inputs plus the profile columns for matching.
FEATURE_INPUTS = [*FEATURE_COLUMNS, *(c for c in PROFILE_COLUMNS if c not in FEATURE_COLUMNS)]
NEW_CUSTOMER, LEFT = "(new customer)", "(left)"


def segment_profiles(
    features: pd.DataFrame, segments: pd.DataFrame, center: pd.Series, scale: pd.Series
) -> pd.DataFrame:
    """Segment means of features standardized with the given center and scale (index: segment_id)."""
    columns = list(center.index)
    same_order = len(features) == len(segments) and np.array_equal(
        features["customer_id"].to_numpy(), segments["customer_id"].to_numpy()
    )
    if same_order:  # usual case (both follow the golden records): no lookup needed
        positions = np.arange(len(features))
    else:
        positions = pd.Index(segments["customer_id"]).get_indexer(features["customer_id"])
    known = positions >= 0
    standardized = (features.loc[known, columns].astype(float) - center) / scale
    segment_ids = segments["segment_id"].to_numpy()[positions[known]]
    return standardized.fillna(0.0).groupby(segment_ids).mean().rename_axis("segment_id")


def standardization(features: pd.DataFrame, other: pd.DataFrame) -> tuple[pd.Series, pd.Series]:
    """Center and scale of the profile columns both feature tables have (from `features`)."""
    columns = [c for c in PROFILE_COLUMNS if c in features.columns and c in other.columns]
    if not columns:
        raise ValueError(
            f"No profile columns in common between the runs' features; expected {PROFILE_COLUMNS}"
        )
    values = features[columns].astype(float)
    scale = values.std().replace(0.0, 1.0).fillna(1.0)
    return values.mean().fillna(0.0), scale


def match_profiles(old_profiles: pd.DataFrame, new_profiles: pd.DataFrame) -> pd.DataFrame:
    """One row per new segment: the old segment it matches or NA, by `clustering.match_segments`
    (Hungarian assignment minimising the total profile distance)."""
    matched = match_segments(old_profiles.reset_index(), new_profiles.reset_index())
    return matched.rename(columns={"distance": "profile_distance"})


def stable_segments(
    segments: pd.DataFrame, matching: pd.DataFrame, old_names: dict[int, str]
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Relabel segments with the matched old ids and names; unmatched ones get fresh ids.

    Returns the relabelled segments and the mapping (new id, generated name -> stable id, name).
    """
    generated = segments.drop_duplicates("segment_id").set_index("segment_id")["segment_name"].astype(str)
    mapping = matching.assign(generated_name=matching["new_segment_id"].map(generated))
    next_id = max(old_names, default=-1) + 1
    stable_ids, stable_names = [], []
    for _, row in mapping.sort_values("new_segment_id").iterrows():
        if pd.notna(row["old_segment_id"]):
            stable_ids.append(int(row["old_segment_id"]))
            stable_names.append(old_names[int(row["old_segment_id"])])
        else:
            stable_ids.append(next_id)
            next_id += 1
            name = row["generated_name"]
            stable_names.append(name if name not in old_names.values() else f"{name} (new)")
    mapping = mapping.sort_values("new_segment_id").assign(segment_id=stable_ids, stable_name=stable_names)
    relabel = mapping.set_index("new_segment_id")
    relabelled = segments.copy()
    relabelled["segment_name"] = relabelled["segment_id"].map(relabel["stable_name"])
    relabelled["segment_id"] = relabelled["segment_id"].map(relabel["segment_id"]).astype("int64")
    return relabelled, mapping.rename(columns={"stable_name": "segment_name"}).reset_index(drop=True)


def transition_matrix(before: pd.Series, after: pd.Series, order: list[str] | None = None) -> pd.DataFrame:
    """Customer counts from `before` (rows) to `after` (columns); both indexed by unique customer_id.

    Customers only in `after` come from `(new customer)`; those only in `before` go to `(left)`.
    Rows and columns follow `order` (other labels after it, sorted), then the new/left markers.
    """
    before_labels = before.astype("category").cat
    after_labels = after.astype("category").cat
    rows = [*before_labels.categories, NEW_CUSTOMER]
    columns = [*after_labels.categories, LEFT]
    positions = before.index.get_indexer(after.index)
    before_codes = before_labels.codes.to_numpy()
    row = np.where(positions >= 0, before_codes[positions], len(rows) - 1)
    still_here = np.zeros(len(before), dtype=bool)
    still_here[positions[positions >= 0]] = True
    row = np.concatenate([row, before_codes[~still_here]])
    column = np.concatenate([after_labels.codes.to_numpy(), np.full((~still_here).sum(), len(columns) - 1)])
    cells = np.bincount(row * len(columns) + column, minlength=len(rows) * len(columns))
    counts = pd.DataFrame(cells.reshape(len(rows), len(columns)), index=rows, columns=columns)
    counts = counts.loc[(counts.index != NEW_CUSTOMER) | (counts.sum(axis=1) > 0)]
    counts = counts.loc[:, (counts.columns != LEFT) | (counts.sum(axis=0) > 0)]

    def arranged(labels: pd.Index, marker: str) -> list[str]:
        known = [label for label in order or [] if label in labels]
        rest = sorted(set(labels) - set(known) - {marker})
        return known + rest + ([marker] if marker in labels else [])

    counts = counts.loc[arranged(counts.index, NEW_CUSTOMER), arranged(counts.columns, LEFT)]
    return counts.rename_axis(index="before", columns="after")


def migration_summary(
    previous_plan: pd.DataFrame,
    segments: pd.DataFrame,
    mapping: pd.DataFrame,
    min_stability: float,
    max_size_change: float,
) -> pd.DataFrame:
    """Per stable segment: size now and before, stability and a review flag with its reasons as codes
    (`review_codes`: comma-separated `new_segment`, `disappeared`, `low_stability`, `size_change`)."""
    before = previous_plan["segment_id"]
    now = segments["segment_id"]
    positions = pd.Index(previous_plan["customer_id"]).get_indexer(segments["customer_id"])
    in_both = positions >= 0
    stayed = before.to_numpy()[positions[in_both]] == now.to_numpy()[in_both]
    stability = pd.Series(stayed).groupby(now.to_numpy()[in_both]).mean()
    names_before = previous_plan.drop_duplicates("segment_id").set_index("segment_id")["segment_name"]
    summary = pd.DataFrame({"customers": now.value_counts(), "customers_before": before.value_counts()})
    summary.index.name = "segment_id"
    summary = summary.reset_index()
    names_now = mapping.set_index("segment_id")["segment_name"]
    summary["segment_name"] = (
        summary["segment_id"].map(names_now).fillna(summary["segment_id"].map(names_before))
    )
    summary["generated_name"] = summary["segment_id"].map(mapping.set_index("segment_id")["generated_name"])
    summary[["customers", "customers_before"]] = (
        summary[["customers", "customers_before"]].fillna(0).astype("int64")
    )
    summary["size_change"] = (
        summary["customers"] / summary["customers_before"].where(summary["customers_before"] > 0) - 1
    )
    summary["stability"] = summary["segment_id"].map(stability)
    codes = []
    for _, row in summary.iterrows():
        if row["customers_before"] == 0:
            codes.append("new_segment")
        elif row["customers"] == 0:
            codes.append("disappeared")
        else:
            parts = []
            if pd.notna(row["stability"]) and row["stability"] < min_stability:
                parts.append("low_stability")
            if abs(row["size_change"]) > max_size_change:
                parts.append("size_change")
            codes.append(",".join(parts))
    summary["review_codes"] = codes
    summary["flagged"] = summary["review_codes"] != ""
    return summary[
        ["segment_id", "segment_name", "generated_name", "customers", "customers_before", "size_change",
         "stability", "flagged", "review_codes"]
    ]  # fmt: skip


@dataclass(frozen=True)
class Migration:
    """How this run's segments and stages relate to the previous run's."""

    previous_run: Path
    segments: pd.DataFrame  # this run's segments with stable ids and names
    mapping: pd.DataFrame  # new raw id, generated name -> stable id and name, profile distance
    summary: pd.DataFrame  # per stable segment: sizes, stability, review flag
    segment_transitions: pd.DataFrame  # customers from previous segment (rows) to this run's (columns)
    stage_transitions: pd.DataFrame  # customers from previous stage (rows) to this run's stage (columns)
    previous_metrics: pd.DataFrame | None  # the previous run's 06_strategy/segment_metrics


def compare_with_previous(
    previous_run: Path,
    features: pd.DataFrame,
    segments: pd.DataFrame,
    lifecycle: pd.DataFrame,
    min_stability: float,
    max_size_change: float,
) -> Migration:
    """Match this run's segments to the previous run's and measure how customers moved."""
    features_path = previous_run / "03_features" / "features.parquet"
    available = set(pq.read_schema(features_path).names)
    columns = ["customer_id", *[c for c in PROFILE_COLUMNS if c in available]]
    previous_features = pd.read_parquet(features_path, columns=columns)
    previous_plan = pd.read_parquet(
        previous_run / "06_strategy" / "plan.parquet",
        columns=["customer_id", "segment_id", "segment_name", "stage"],
    )
    previous_plan["segment_name"] = previous_plan["segment_name"].astype(str)
    previous_plan["stage"] = previous_plan["stage"].astype(str)
    center, scale = standardization(features, previous_features)
    matching = match_profiles(
        segment_profiles(previous_features, previous_plan, center, scale),
        segment_profiles(features, segments, center, scale),
    )
    old_names = previous_plan.drop_duplicates("segment_id").set_index("segment_id")["segment_name"].to_dict()
    stable, mapping = stable_segments(segments, matching, old_names)
    summary = migration_summary(previous_plan, stable, mapping, min_stability, max_size_change)
    before = previous_plan.set_index("customer_id")
    metrics_path = previous_run / "06_strategy" / "segment_metrics.parquet"
    return Migration(
        previous_run=previous_run,
        segments=stable,
        mapping=mapping,
        summary=summary,
        segment_transitions=transition_matrix(
            before["segment_name"],
            stable.set_index("customer_id")["segment_name"].astype(str),
            order=mapping.sort_values("segment_id")["segment_name"].tolist(),
        ),
        stage_transitions=transition_matrix(
            before["stage"], lifecycle.set_index("customer_id")["stage"].astype(str), order=list(STAGES)
        ),
        previous_metrics=pd.read_parquet(metrics_path) if metrics_path.is_file() else None,
    )


def review_reason(row: pd.Series, text: Catalog) -> str:
    """A summary row's review codes in words (empty when not flagged)."""
    words = {
        "new_segment": lambda: text("strategy.migration.reasons.new_segment"),
        "disappeared": lambda: text("strategy.migration.reasons.disappeared"),
        "low_stability": lambda: text(
            "strategy.migration.reasons.low_stability", stability=text.share(row["stability"], 0)
        ),
        "size_change": lambda: text(
            "strategy.migration.reasons.size_change", change=f"{100 * row['size_change']:+.0f}%"
        ),
    }
    return text("strategy.note_sep").join(
        words[code]() for code in str(row["review_codes"]).split(",") if code
    )


def review_note(summary: pd.DataFrame, text: Catalog) -> str:
    """One Markdown line: how many segments changed enough to review, and why."""
    flagged = summary.loc[summary["flagged"]]
    items = text("strategy.note_sep").join(
        text("strategy.migration.item", name=row["segment_name"], reason=review_reason(row, text))
        for _, row in flagged.iterrows()
    )
    colon = text("strategy.migration.colon")
    return text("strategy.migration.review", n=len(flagged), reasons=colon + items if items else "")


def summary_table(summary: pd.DataFrame, text: Catalog) -> pd.DataFrame:
    """The migration summary for readers: translated headers, formatted numbers, reasons in words."""
    say = "strategy.migration.columns."
    return pd.DataFrame(
        {
            text(say + "segment_name"): summary["segment_name"].astype(str).to_numpy(),
            text(say + "customers"): [text.number(v) for v in summary["customers"]],
            text(say + "customers_before"): [text.number(v) for v in summary["customers_before"]],
            text(say + "size_change"): [
                "–" if pd.isna(v) else f"{100 * v:+.0f}%" for v in summary["size_change"]
            ],
            text(say + "stability"): [text.share(v, 0) for v in summary["stability"]],
            text(say + "review"): [review_reason(row, text) or "–" for _, row in summary.iterrows()],
        }
    )
