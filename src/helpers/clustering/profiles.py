"""Step 04: profiles of the chosen segments, rule-based names, merge and split suggestions."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from helpers.clustering.candidates import (
    BUSINESS_AREAS,
    CHUNK,
    PROFILE_COLUMNS,
    PROSPECT_ID,
    business_columns,
    column_moments,
    segment_means,
)
from helpers.core.config import resolve_path
from helpers.core.i18n import LANGUAGES, Catalog, Language
from helpers.core.settings import ClusteringSettingsSection

DEFAULT_NAMING_RULES = ClusteringSettingsSection().naming_rules

CONDITION = re.compile(r"^\s*(?P<metric>[\w:=.<>+\- ]+?)\s*(?P<op>>=|<=|>|<)\s*(?P<value>-?[\d.]+)\s*$")


def feature_of_column(column: str) -> str:
    """The feature a model-matrix column comes from (one-hot `gender=F` -> `gender`)."""
    return column.split("=", 1)[0]


def described_features(dictionary: pd.DataFrame) -> list[str]:
    """Features the segments are described by although the segmentation leaves them out: the
    lifecycle-dependent ones with a matrix treatment (spend, purchases, recency, tenure, CLV ...)."""
    chosen = dictionary["lifecycle_dependent"] & (dictionary["treatment"] != "")
    return dictionary.loc[chosen, "name"].tolist()


def feature_columns(dictionary: pd.DataFrame) -> list[str]:
    """The columns of the step-03 feature table step 04 reads: customer_id, n_purchases (prospects),
    monetary_total (value share), the business-area columns, the profile columns (customers known
    only from events) and `described_features`."""
    wanted = ["customer_id", "n_purchases", "monetary_total", *sum(BUSINESS_AREAS.values(), ())]
    wanted += PROFILE_COLUMNS
    wanted += described_features(dictionary)
    return [c for c in dict.fromkeys(wanted) if c in set(dictionary["name"])]


def zscores(matrix: pd.DataFrame, segment_id: np.ndarray, means: pd.DataFrame | None = None) -> pd.DataFrame:
    """Per segment and column: (segment mean - population mean) / population sd (0 for constants).

    `means`: `segment_means(matrix.to_numpy(), segment_id)` if already computed."""
    values = matrix.to_numpy()
    mean, sd = column_moments(values, np.ones(len(values), dtype=bool))
    if means is None:
        means = segment_means(values, segment_id)
    z = (means.to_numpy() - mean) / np.where(sd > 0, sd, np.nan)
    return pd.DataFrame(np.nan_to_num(z), index=means.index, columns=matrix.columns)


def segment_profiles(
    segments: pd.DataFrame,
    matrix: pd.DataFrame,
    features: pd.DataFrame,
    dictionary: pd.DataFrame,
    extra: pd.DataFrame | None = None,
    top_n: int = 2,
    means: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """One row per segment: size, shares, business means, top features per factor group, z-scores.

    `matrix` (the model columns, indexed by customer_id, covering the customers of `segments`)
    and `extra` (other transformed feature columns worth describing the segments with, e.g. the
    lifecycle-dependent ones the segmentation left out; indexed by customer_id) are z-scored per
    segment, prefixed `z:`. `top_features` lists per factor group the `top_n` columns with the
    largest |z| (sign shown), e.g. "value: +avg_order_value, -refund_rate".
    `means`: `clustering.segment_means` of `matrix` by the segment ids aligned with `matrix.index`,
    if already computed (e.g. for `clustering.segment_centroids`), to avoid a second pass.
    """
    seg = segments.set_index("customer_id")["segment_id"].reindex(matrix.index).to_numpy()
    money = "monetary_total" if "monetary_total" in features.columns else None
    described = list(dict.fromkeys([*([money] if money else []), *business_columns(features).values()]))
    frame = features.set_index("customer_id")[described].reindex(matrix.index)
    z = zscores(matrix, seg, means)
    if extra is not None:
        z = z.join(zscores(extra.reindex(matrix.index), seg))
    groups = dict(zip(dictionary["name"], dictionary["group"], strict=False))
    counts = pd.Series(seg).value_counts().sort_index()
    profile = pd.DataFrame({"segment_id": counts.index, "n_customers": counts.to_numpy()})
    profile["share"] = profile["n_customers"] / len(seg)
    if money:
        totals = frame[money].fillna(0).groupby(seg).sum()
        profile["value_share"] = (totals / max(totals.sum(), 1e-12)).reindex(profile["segment_id"]).to_numpy()
    for column in business_columns(frame).values():
        profile[f"mean_{column}"] = (
            frame[column].groupby(seg).mean().reindex(profile["segment_id"]).to_numpy()
        )
    tops = []
    for segment in profile["segment_id"]:
        row = z.loc[segment]
        parts = []
        by_group: dict[str, list[tuple[float, str]]] = {}
        for column, value in row.items():
            group = groups.get(feature_of_column(column), "other")
            by_group.setdefault(group, []).append((abs(value), column))
        for group in sorted(by_group, key=lambda g: -max(v for v, _ in by_group[g])):
            best = sorted(by_group[group], key=lambda item: (-item[0], item[1]))[:top_n]
            parts.append(f"{group}: " + ", ".join(f"{'+' if row[c] >= 0 else '-'}{c}" for _, c in best))
        tops.append("; ".join(parts))
    profile["top_features"] = tops
    z_columns = z.add_prefix("z:").reindex(profile["segment_id"]).reset_index(drop=True)
    return pd.concat([profile.reset_index(drop=True), z_columns], axis=1)


# ----------------------------------------------------------------------------- names


def rule_name(rule: dict[str, Any], language: Language) -> str:
    """A naming rule's name in `language` (a plain string names the segment in every language)."""
    name = rule["name"]
    return name if isinstance(name, str) else name[language]


def load_naming_rules(path: str | Path) -> list[dict[str, Any]]:
    """Read and check the naming rules file (see config/naming_rules.yml)."""
    rules = (yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}).get("rules", [])
    for number, rule in enumerate(rules, 1):
        if "name" not in rule or not rule.get("when"):
            raise ValueError(f"{path}: rule {number} needs a `name` and a non-empty `when` list")
        name = rule["name"]
        if isinstance(name, dict) and not all(
            isinstance(name.get(lang), str) and name[lang] for lang in LANGUAGES
        ):
            raise ValueError(f"{path}: rule {number}: `name` needs a text for each of {', '.join(LANGUAGES)}")
        if not isinstance(name, dict | str):
            raise ValueError(
                f"{path}: rule {number}: `name` must be a text or a mapping {{zh: ..., en: ...}}"
            )
        for condition in rule["when"]:
            if not CONDITION.match(condition):
                raise ValueError(
                    f"{path}: rule {number}: cannot read condition {condition!r}; "
                    "write e.g. 'z:monetary_total > 1' or 'share < 0.05'"
                )
    return rules


def _metric(profile_row: pd.Series, metric: str) -> float | None:
    """A profile value: `z:<column>` (one-hot `z:gender=F`) or a profile column; None if absent."""
    value = profile_row.get(metric.strip())
    return None if value is None or pd.isna(value) else float(value)


def rule_margin(profile_row: pd.Series, rule: dict[str, Any]) -> float | None:
    """How far a segment clears all of a rule's conditions (the smallest margin), None if one fails."""
    margins = []
    for condition in rule["when"]:
        parts = CONDITION.match(condition)
        value = _metric(profile_row, parts["metric"])
        if value is None:
            return None
        threshold = float(parts["value"])
        margin = value - threshold if parts["op"] in (">", ">=") else threshold - value
        if margin < 0 or (margin == 0 and parts["op"] in (">", "<")):
            return None
        margins.append(margin)
    return min(margins)


def name_segments(profiles: pd.DataFrame, rules: list[dict[str, Any]], text: Catalog) -> dict[int, str]:
    """A name per segment in the catalog's language: each rule names at most one segment, best margin
    first; the rest get a name generated from their two strongest z-scores. Prospects (segment 0) are
    `clustering.prospects` (潜在客户 / Prospects)."""
    names: dict[int, str] = {}
    if PROSPECT_ID in set(profiles["segment_id"]):
        names[PROSPECT_ID] = text("clustering.prospects")
    rows = profiles[profiles["segment_id"] != PROSPECT_ID].set_index("segment_id")
    options = []
    for segment, row in rows.iterrows():
        for order, rule in enumerate(rules):
            margin = rule_margin(row, rule)
            if margin is not None:
                options.append((-margin, order, int(segment), rule_name(rule, text.language)))
    used: set[str] = set()
    for _, _, segment, name in sorted(options):
        if segment not in names and name not in used:
            names[segment] = name
            used.add(name)
    for segment, row in rows.iterrows():
        if int(segment) not in names:
            names[int(segment)] = _unique(_generated_name(row, text), used, text)
            used.add(names[int(segment)])
    return dict(sorted(names.items()))


def segment_display_name(
    text: Catalog, segment_id: int, name: str, rules: list[dict[str, Any]] | None = None
) -> str:
    """A stored segment name shown in the catalog's language.

    Step 04 stores names in its run's language; this also turns a name from a run in the other
    language (an earlier run, a model bundle) into the page's: segment 0 is always
    `clustering.prospects`, a rule name (`rules`, by default config/naming_rules.yml) in any
    language becomes the rule's name in this one; any other name (generated) is returned unchanged.
    """
    if int(segment_id) == PROSPECT_ID:
        return text("clustering.prospects")
    for rule in load_naming_rules(resolve_path(DEFAULT_NAMING_RULES)) if rules is None else rules:
        if isinstance(rule["name"], dict) and name in rule["name"].values():
            return rule_name(rule, text.language)
    return name


# Model columns with a plain phrase (catalog `clustering.phrases.<column>.high|low`); level columns
# by prefix (`clustering.prefix_phrases.<kind>`, "{level}"), one-hot columns `feature=level`
# (`clustering.level_phrase`, the level named through values.yml where it has a label).
PREFIXES = {"category_share_": "category", "interest_": "interest", "season_share_": "season"}
CHANNEL_PREFIX = "channel_share_"
LEVEL_VOCABULARY = {
    "loyalty_tier": "values.tier",
    "age_band": "values.age_band",
    "city_tier": "values.city_tier",
    "primary_device": "values.device",
    "lifestyle": "values.lifestyle",
    "company_size_band": "values.company_size",
    "gender": "values.gender",
    "industry": "clustering.industries",
    "category": "values.category",
    "channel": "values.channel",
    "interest": "clustering.interests",
}
VAGUE_LEVELS = {"unknown", "none", "nan", "other", "blank", "no"}


def _level_label(text: Catalog, vocabulary: str | None, level: str) -> str:
    """A level's label (`<vocabulary>.<level>` in the catalog), else the level in plain words."""
    return text.label(f"{vocabulary}.{level}", level.replace("_", " "))


def plain_phrase(column: str, high: bool, text: Catalog) -> str | None:
    """A plain phrase (catalog language) for a segment that is high (or low) in a model column; None
    when the column says nothing a manager can use (e.g. a low share of an "unknown" level)."""
    side = "high" if high else "low"
    if f"clustering.phrases.{column}.{side}" in text:
        return text(f"clustering.phrases.{column}.{side}")
    if "=" in column:  # one-hot level: only "mostly this level" is worth a name
        feature, level = column.split("=", 1)
        if not high or level.lower() in VAGUE_LEVELS:
            return None
        label = _level_label(text, LEVEL_VOCABULARY.get(feature), level)
        feature_key = f"clustering.features.{feature}"
        shown = text.label(feature_key, feature.replace("_", " "))
        return text("clustering.level_phrase", level=label, feature=shown)
    for prefix, kind in PREFIXES.items():
        if column.startswith(prefix):
            level = column.removeprefix(prefix)
            if level in VAGUE_LEVELS:
                return None
            label = _level_label(text, LEVEL_VOCABULARY.get(kind), level)
            return text(f"clustering.prefix_phrases.{kind}.{side}", level=label)
    if column.startswith(CHANNEL_PREFIX):
        label = _level_label(text, LEVEL_VOCABULARY["channel"], column.removeprefix(CHANNEL_PREFIX))
        return text(f"clustering.prefix_phrases.channel.{side}", level=label)
    feature_key = f"clustering.features.{column}"
    shown = text.label(feature_key, column.replace("_", " "))
    return text(f"clustering.generic_phrase.{side}", feature=shown)


def _strongest_phrases(row: pd.Series, text: Catalog, count: int, min_z: float = 0.5) -> list[str]:
    """The plain phrases of the `count` strongest z-scores (|z| >= min_z); phrases of one kind are
    joined ("buy a lot of groceries and baby")."""
    z = row[[c for c in row.index if str(c).startswith("z:")]].astype(float)
    lead_texts = {
        str(text.raw(f"clustering.prefix_phrases.{kind}.{side}")).split("{level}")[0]
        for kind in (*PREFIXES.values(), "channel")
        for side in ("high", "low")
    }
    phrases: list[str] = []
    for column in z.abs().sort_values(ascending=False, kind="stable").index:
        if abs(z[column]) < min_z or len(phrases) == count:
            break
        phrase = plain_phrase(str(column)[2:], bool(z[column] > 0), text)
        if not phrase or phrase in phrases:
            continue
        lead = next((lead for lead in lead_texts if lead and phrase.startswith(lead)), None)
        joined = text("clustering.and")
        if lead and phrases and phrases[-1].startswith(lead):
            if joined not in phrases[-1]:
                phrases[-1] += joined + phrase.removeprefix(lead)
        else:
            phrases.append(phrase)
    return phrases


def _generated_name(row: pd.Series, text: Catalog) -> str:
    """The phrases of the two strongest features, e.g. "Buy a lot of gifts, big spend per order";
    `clustering.average` when nothing stands out."""
    phrases = _strongest_phrases(row, text, 2)
    name = text("clustering.separator").join(phrases) if phrases else text("clustering.average")
    return name[0].upper() + name[1:]


def _unique(name: str, used: set[str], text: Catalog) -> str:
    candidate, suffix = name, 2
    while candidate in used:
        candidate = text("clustering.numbered", name=name, number=suffix)
        suffix += 1
    return candidate


def segment_descriptions(profiles: pd.DataFrame, text: Catalog, count: int = 4) -> dict[int, str]:
    """What sets each segment apart, in plain words of the catalog's language (its `count` strongest
    features); segment 0 gets `clustering.prospects_description`."""
    descriptions = {}
    for _, row in profiles.iterrows():
        segment = int(row["segment_id"])
        if segment == PROSPECT_ID:
            descriptions[segment] = text("clustering.prospects_description")
            continue
        phrases = _strongest_phrases(row, text, count)
        descriptions[segment] = (
            text("clustering.separator").join(phrases) if phrases else text("clustering.average_description")
        )
    return descriptions


# ----------------------------------------------------------------------------- suggestions


def merge_split_suggestions(
    x: np.ndarray, segment_id: np.ndarray, merge_ratio: float = 1.0, split_ratio: float = 1.6
) -> pd.DataFrame:
    """Segments that barely differ (merge) or are very heterogeneous (split), in the clustering space.

    `x` (customers x clustering dimensions) and `segment_id` align. Merge: centroid distance below
    `merge_ratio` x the mean within-segment radius of the pair. Split: mean squared distance to the
    centroid above `split_ratio` x the median over segments. Prospects (segment 0) are rule-based
    and not considered.
    """
    clustered = segment_id != PROSPECT_ID
    x, seg = x[clustered], segment_id[clustered]
    centroids_frame = segment_means(x, seg)
    ids, centroids = centroids_frame.index.to_numpy(), centroids_frame.to_numpy()
    codes = np.searchsorted(ids, seg)
    squared = np.zeros(len(ids))
    for start in range(0, len(x), CHUNK):
        block = x[start : start + CHUNK].astype(np.float64)
        own = codes[start : start + CHUNK]
        squared += np.bincount(own, weights=((block - centroids[own]) ** 2).sum(axis=1), minlength=len(ids))
    spread = squared / np.bincount(codes, minlength=len(ids))
    radius = np.sqrt(spread)
    rows = []
    for a in range(len(ids)):
        for b in range(a + 1, len(ids)):
            distance = float(np.linalg.norm(centroids[a] - centroids[b]))
            ratio = distance / ((radius[a] + radius[b]) / 2)
            if ratio < merge_ratio:
                rows.append(
                    {
                        "suggestion": "merge",
                        "segments": f"{ids[a]} + {ids[b]}",
                        "measure": ratio,
                        "why": f"centroids {distance:.2f} apart, {ratio:.2f} x their mean radius",
                    }
                )
    median = float(np.median(spread))
    for i, segment in enumerate(ids):
        ratio = spread[i] / median if median > 0 else 0.0
        if ratio > split_ratio:
            rows.append(
                {
                    "suggestion": "split",
                    "segments": str(segment),
                    "measure": ratio,
                    "why": f"spread {ratio:.2f} x the median segment's: consider k+1 or a sub-clustering",
                }
            )
    return pd.DataFrame(rows, columns=["suggestion", "segments", "measure", "why"])


def suggestions_markdown(suggestions: pd.DataFrame, names: dict[int, str] | None = None, top: int = 3) -> str:
    """A short markdown summary of `merge_split_suggestions`: the `top` closest merge pairs and all splits.

    Merge pairs are ranked by `measure` (smaller = more alike); the full "why" text is kept.
    """
    names = names or {}

    def label(segments: str) -> str:
        parts = [p.strip() for p in str(segments).split("+")]
        return " + ".join(f"{p} {names.get(int(p), '')}".strip() if p.isdigit() else p for p in parts)

    if suggestions.empty:
        return "No merge or split suggestions: the segments are distinct and of similar spread."
    merges = suggestions[suggestions["suggestion"] == "merge"].sort_values("measure", kind="stable")
    splits = suggestions[suggestions["suggestion"] == "split"]
    splits = splits.sort_values("measure", ascending=False, kind="stable")
    lines = []
    if len(merges):
        shown = min(top, len(merges))
        lines.append(
            f"**Merge candidates:** {len(merges)} pair(s) of segments have centres closer than their typical "
            f"radius; the {shown} most alike (worth checking whether they differ in a way that matters):"
        )
        lines += [f"- merge **{label(r.segments)}**: {r.why}" for r in merges.head(top).itertuples()]
    if len(splits):
        lines.append("\n**Split candidates:** segments much more spread out than the others:")
        lines += [f"- split **{label(r.segments)}**: {r.why}" for r in splits.itertuples()]
    return "\n".join(lines)
