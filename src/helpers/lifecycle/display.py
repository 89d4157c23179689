"""Page 05 in the run's language: the summary block, the "period" note, stage and rule tables
(what `helpers.lifecycle.step.run_step` returned, made readable; catalog `lifecycle.*`)."""

from __future__ import annotations

import re
from typing import Any

import pandas as pd
from pandas.io.formats.style import Styler

from helpers.core.i18n import Catalog
from helpers.lifecycle.plots import flow_label, funnel_labels
from helpers.lifecycle.stages import STAGES, stage_label
from helpers.lifecycle.step import LifecycleResult

# `assign_stages`' rule texts (after "<stage>: ") -> catalog key under lifecycle.rules and the values
# its placeholders take from the match.
RULE_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"^no purchase, engaged"), "engaged"),
    (re.compile(r"^no purchase, known but not engaged"), "not_engaged"),
    (re.compile(r"^no purchase for (?P<days>\d+)\+ days"), "churned"),
    (re.compile(r"^first purchase within (?P<days>\d+) days"), "first_purchase"),
    (re.compile(r"^churn risk >= (?P<risk>[\d.]+)"), "churn_risk"),
    (re.compile(r"^gap >= (?P<ratio>[\d.]+)x own purchase rhythm"), "overdue"),
    (re.compile(r"^complaints rising, overdue"), "complaints"),
    (re.compile(r"^satisfaction falling, overdue"), "satisfaction"),
    (re.compile(r"^NPS promoter \(>= (?P<nps>[\d.]+)\), (?P<days>\d+)\+ days, (?P<per_year>[\d.]+)\+"),
     "promoter"),
    (re.compile(r"^(?P<days>\d+)\+ days, (?P<per_year>[\d.]+)\+ purchases/year, no NPS answer"), "sustained"),
    (re.compile(r"^repeat buyer, active"), "repeat"),
    (re.compile(r"^one purchase, not yet repeated"), "one_purchase"),
)  # fmt: skip


def _months(days: float) -> str:
    return f"{days / 30.4:.0f}"


def rule_label(stage_rule: str, text: Catalog) -> str:
    """A `stage_rule` value ("at_risk: churn risk >= 0.42") in plain words of the page language."""
    _, _, rule = stage_rule.partition(": ")
    for pattern, key in RULE_PATTERNS:
        found = pattern.match(rule)
        if found:
            values: dict[str, Any] = found.groupdict()
            if "risk" in values:
                values["risk"] = text.share(float(values["risk"]), 0)
            if "days" in values:
                values["years"] = f"{int(values['days']) / 365:.0f}"
            return text(f"lifecycle.rules.{key}", **values)
    return rule


def summary_markdown(result: LifecycleResult, text: Catalog) -> str:
    """The page's summary block: active, at risk, churned, new and not yet buying customers."""
    counts, n = result.stage_counts, len(result.labeled)
    total = max(n, 1)

    def part(value: int) -> dict[str, str]:
        return {"n": text.number(value), "share": text.share(value / total, 0)}

    active = int(counts["retention"] + counts["loyalty"])
    say = "lifecycle.summary."
    lines = [
        text(say + "active", total=text.number(n), **part(active)),
        text(say + "at_risk", **part(int(counts["at_risk"]))),
        text(say + "churned", **part(int(counts["churned"]))),
        text(say + "new", **part(int(counts["conversion"]))),
        text(say + "not_bought", **part(int(counts["contact"] + counts["acquisition"]))),
    ]
    return f"**{text(say + 'heading')}**\n\n" + "\n".join(f"- {line}" for line in lines)


def period_markdown(result: LifecycleResult, text: Catalog, next_period_days: int) -> str:
    """The one explanation of the page's periods: the churn-risk horizon, the churned rule and step
    03's next period."""
    horizon, churned = result.horizon_days, int(result.rules["churned"]["min_recency_days"])
    return text(
        "lifecycle.period",
        horizon=horizon,
        horizon_months=_months(horizon),
        threshold=text.share(result.risk_threshold, 0),
        churned=churned,
        churned_months=_months(churned),
        next_days=next_period_days,
    )


def stage_table(result: LifecycleResult, text: Catalog) -> Styler:
    """One row per stage: name, meaning (with the rules' thresholds), call-center use, customers, share."""
    rules, counts = result.rules, result.stage_counts
    loyal = rules["loyalty"]
    values = {
        "days": rules["churned"]["min_recency_days"],
        "window": rules["conversion"]["window_days"],
        "ratio": rules["at_risk"]["gap_ratio"],
        "threshold": text.share(result.risk_threshold, 0),
        "years": f"{loyal['min_tenure_days'] / 365:.0f}",
        "per_year": loyal["min_purchases_per_year"],
        "horizon": result.horizon_days,
    }
    total = max(len(result.labeled), 1)
    col = "lifecycle.columns."
    frame = pd.DataFrame(
        {
            text(col + "stage"): [stage_label(s, text) for s in STAGES],
            text(col + "meaning"): [text(f"lifecycle.meaning.{s}", **values) for s in STAGES],
            text(col + "use"): [text(f"lifecycle.use.{s}") for s in STAGES],
            text(col + "customers"): [text.number(int(counts[s])) for s in STAGES],
            text(col + "share"): [text.share(counts[s] / total) for s in STAGES],
        }
    )
    return _left(frame, [text(col + "meaning"), text(col + "use")])


def rule_table(labeled: pd.DataFrame, text: Catalog) -> Styler:
    """Customers per stage and the rule that assigned them (plain words), stages in lifecycle order."""
    counts = labeled.groupby(["stage", "stage_rule"]).size().rename("customers").reset_index()
    counts["order"] = counts["stage"].map({s: i for i, s in enumerate(STAGES)})
    counts = counts.sort_values(["order", "customers"], ascending=[True, False])
    col = "lifecycle.columns."
    frame = pd.DataFrame(
        {
            text(col + "stage"): counts["stage"].map(lambda s: stage_label(s, text)),
            text(col + "rule"): counts["stage_rule"].map(lambda r: rule_label(r, text)),
            text(col + "customers"): counts["customers"].map(text.number),
        }
    )
    return _left(frame, [text(col + "rule")])


def funnel_table(table: pd.DataFrame, text: Catalog) -> Styler:
    """The funnel: step, customers, rate from the step before, share of all known customers."""
    col = "lifecycle.columns."
    frame = pd.DataFrame(
        {
            text(col + "step"): table["step"].map(funnel_labels(text)),
            text(col + "customers"): table["customers"].map(text.number),
            text(col + "rate_from_previous"): table["rate_from_previous"].map(lambda v: text.share(v, 0)),
            text(col + "share_of_known"): table["share_of_known"].map(lambda v: text.share(v, 0)),
        }
    )
    return _left(frame, [])


def stage_by_segment_table(result: LifecycleResult, text: Catalog) -> Styler:
    """Customers per segment (rows, in segment order) and stage (columns), stage names translated."""
    order = (
        result.segments.drop_duplicates("segment_id").sort_values("segment_id")["segment_name"].astype(str)
    )
    by_segment = result.stage_by_segment.reindex(
        [name for name in order if name in result.stage_by_segment.index]
    )
    frame = by_segment.rename(columns=lambda s: stage_label(s, text)).map(text.number)
    frame.insert(0, text("lifecycle.columns.segment"), by_segment.index.astype(str))
    return _left(frame.reset_index(drop=True), [])


def flows_table(flows: pd.DataFrame, text: Catalog) -> Styler:
    """Customers from the previous run's stage (rows) to this run's (columns), labels translated."""
    frame = flows.rename(columns=lambda s: flow_label(s, text)).map(text.number)
    frame.insert(0, text("lifecycle.flows.before"), [flow_label(s, text) for s in flows.index])
    return _left(frame.reset_index(drop=True), [])


def risk_model_markdown(result: LifecycleResult, text: Catalog) -> str:
    """How the churn risk was worked out (backtest model and the recall its limit reached there, or the
    CLV model alone), and that non-purchase rows are contacts: two paragraphs of the page language."""
    info = result.model_info
    calibration = info.get("recall_calibration", {})
    if "backtest_days" in info and "backtest_recall" in calibration:
        first = text(
            "lifecycle.risk_model.backtest",
            days=text.number(info["backtest_days"]),
            recall=text.share(calibration["backtest_recall"], 0),
        )
    else:
        first = text("lifecycle.risk_model.model_only")
    return first + "\n\n" + text("lifecycle.risk_model.contacts")


def rhythm_markdown(result: LifecycleResult, text: Catalog) -> str:
    """How many repeat buyers are far beyond their own rhythm, and whether that counts as a warning."""
    at_risk = result.rules["at_risk"]
    repeat = result.labeled[result.labeled["n_purchases"] >= at_risk["min_purchases_for_rhythm"]]
    beyond = float((repeat["gap_ratio"] >= at_risk["gap_ratio"]).mean()) if len(repeat) else 0.0
    used = "used" if result.model_info["rhythm_rule"]["use"] else "not_used"
    return text(f"lifecycle.rhythm.{used}", share=text.share(beyond), ratio=at_risk["gap_ratio"])


def _left(frame: pd.DataFrame, left: list[str]) -> Styler:
    """A table for reading: no row numbers; the first column unwrapped, the `left` text columns and
    their headers left-aligned."""
    styler = frame.style.hide(axis="index")
    styler = styler.set_table_styles([{"selector": "th, td", "props": "padding: 3px 8px"}])
    headers = {
        column: [{"selector": "th", "props": "text-align: left"}] for column in [frame.columns[0], *left]
    }
    styler = styler.set_table_styles(headers, overwrite=False)
    styler = styler.set_properties(
        subset=[frame.columns[0]], **{"white-space": "nowrap", "text-align": "left"}
    )
    return styler.set_properties(subset=left, **{"text-align": "left"}) if left else styler
