"""Step 05 against the demo world's planted stages (evaluation only, never used by the labeling)."""

from __future__ import annotations

from typing import Any

import pandas as pd

from helpers.core.config import resolve_path
from helpers.core.context import StepContext
from helpers.demo.truth import customer_person
from helpers.lifecycle.stages import stage_accuracy


def evaluate_planted_stages(ctx: StepContext, labeled: pd.DataFrame) -> dict[str, Any] | None:
    """Accuracy and macro F1 of the stages against the planted ones, recorded as `stage_macro_f1` and
    `stage_accuracy`; None (nothing read or recorded) when the dataset has no planted truth.

    The truth folder is `demo.truth_dir`, else `data/truth/<name of data.raw_dir>`. Customers are
    mapped to planted persons through 02's crosswalk and the truth's source records.
    """
    raw_name = resolve_path(ctx.settings.data.raw_dir).name
    truth_dir = resolve_path(ctx.settings.demo.truth_dir or f"data/truth/{raw_name}")
    if not (truth_dir / "persons.parquet").is_file():
        return None
    crosswalk = ctx.path("crosswalk.parquet", "02_identity_merge")
    person = customer_person(crosswalk, truth_dir / "source_records.parquet", ctx.settings.engine)
    accuracy = stage_accuracy(
        labeled, person, pd.read_parquet(truth_dir / "persons.parquet", columns=["person_id", "stage"])
    )
    ctx.record(stage_macro_f1=accuracy["macro_f1"], stage_accuracy=accuracy["accuracy"])
    return accuracy
