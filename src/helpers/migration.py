"""Segment migration between runs: stable segment ids, transition matrices and change flags.

A new run's segments are matched one-to-one to the previous run's by the distance between their
profiles (segment means of standardized features) with the Hungarian algorithm, so an unchanged
rerun keeps every id and name. Segments without a partner get fresh ids and are flagged.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from scipy.optimize import linear_sum_assignment

PROFILE_COLUMNS = [
    "recency_days", "n_purchases", "tenure_days", "monetary_12m", "avg_order_value", "clv_12m",
    "n_calls", "complaint_rate", "csat_mean", "nps_mean", "response_rate", "conversion_rate",
]  # fmt: skip
PREVIOUS_ARTIFACTS = ("03_features/features.parquet", "06_strategy/plan.parquet")
NEW_CUSTOMER, LEFT = "(new customer)", "(left)"


def find_previous_run(run_dir: Path, choice: str | None = "auto") -> Path | None:
    """The run to compare with: `choice` if it is a folder, none for `none`, else the newest
    sibling run folder started before `run_dir` (by its frozen config.yml) with 03 and 06 artifacts."""
    if choice in (None, "", "none"):
        return None
    if choice != "auto":
        path = Path(choice).expanduser().resolve()
        if not all((path / artifact).is_file() for artifact in PREVIOUS_ARTIFACTS):
            raise FileNotFoundError(f"Previous run {path} lacks one of {list(PREVIOUS_ARTIFACTS)}")
        return path
    run_dir = run_dir.resolve()
    own_config = run_dir / "config.yml"
    started = own_config.stat().st_mtime if own_config.is_file() else float("inf")
    candidates = []
    for sibling in run_dir.parent.iterdir():
        config = sibling / "config.yml"
        if (
            sibling.is_dir()
            and not sibling.is_symlink()
            and sibling.resolve() != run_dir
            and config.is_file()
            and config.stat().st_mtime < started
            and all((sibling / artifact).is_file() for artifact in PREVIOUS_ARTIFACTS)
        ):
            candidates.append((config.stat().st_mtime, sibling.name, sibling))
    return max(candidates)[2] if candidates else None


def segment_profiles(
    features: pd.DataFrame, segments: pd.DataFrame, center: pd.Series, scale: pd.Series
) -> pd.DataFrame:
    """Segment means of features standardized with the given center and scale (index: segment_id)."""
    columns = list(center.index)
    frame = features[["customer_id", *columns]].merge(
        segments[["customer_id", "segment_id"]], on="customer_id"
    )
    standardized = (frame[columns].astype(float) - center) / scale
    return standardized.fillna(0.0).groupby(frame["segment_id"]).mean()


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


def match_segments(old_profiles: pd.DataFrame, new_profiles: pd.DataFrame) -> pd.DataFrame:
    """One row per new segment: the old segment it matches (min total profile distance) or NA."""
    distance = np.sqrt(
        ((new_profiles.to_numpy()[:, None, :] - old_profiles.to_numpy()[None, :, :]) ** 2).sum(axis=2)
    )
    rows, cols = linear_sum_assignment(distance)
    matched = pd.Series(old_profiles.index[cols], index=new_profiles.index[rows])
    result = pd.DataFrame({"new_segment_id": new_profiles.index})
    result["old_segment_id"] = result["new_segment_id"].map(matched).astype("Int64")
    result["profile_distance"] = [
        distance[i, old_profiles.index.get_loc(o)] if pd.notna(o) else np.nan
        for i, o in enumerate(result["old_segment_id"])
    ]
    return result


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


def transition_matrix(before: pd.Series, after: pd.Series) -> pd.DataFrame:
    """Customer counts from `before` (rows) to `after` (columns); both indexed by customer_id.

    Customers only in `after` come from `(new customer)`; those only in `before` go to `(left)`.
    """
    joined = pd.concat([before.rename("before"), after.rename("after")], axis=1)
    joined["before"] = joined["before"].astype(object).where(joined["before"].notna(), NEW_CUSTOMER)
    joined["after"] = joined["after"].astype(object).where(joined["after"].notna(), LEFT)
    counts = joined.groupby(["before", "after"]).size().unstack(fill_value=0)
    return counts.rename_axis(index="before", columns="after")


def migration_summary(
    previous_plan: pd.DataFrame,
    segments: pd.DataFrame,
    mapping: pd.DataFrame,
    min_stability: float,
    max_size_change: float,
) -> pd.DataFrame:
    """Per stable segment: size now and before, stability and a review flag with its reason."""
    before = previous_plan.set_index("customer_id")["segment_id"]
    now = segments.set_index("customer_id")["segment_id"]
    both = pd.concat([before.rename("before"), now.rename("now")], axis=1, join="inner")
    stability = (both["before"] == both["now"]).groupby(both["now"]).mean()
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
    reasons = []
    for _, row in summary.iterrows():
        if row["customers_before"] == 0:
            reasons.append("new segment")
        elif row["customers"] == 0:
            reasons.append("disappeared")
        else:
            parts = []
            if pd.notna(row["stability"]) and row["stability"] < min_stability:
                parts.append(f"only {row['stability']:.0%} of its customers stayed")
            if abs(row["size_change"]) > max_size_change:
                parts.append(f"size changed {row['size_change']:+.0%}")
            reasons.append("; ".join(parts))
    summary["review_reason"] = reasons
    summary["flagged"] = summary["review_reason"] != ""
    return summary[
        ["segment_id", "segment_name", "generated_name", "customers", "customers_before", "size_change",
         "stability", "flagged", "review_reason"]
    ]  # fmt: skip
