"""The step registry: the steps in run order, their packages and notebooks, and the artifacts
each reads and writes. The runner, the docs and the tests read it instead of typing step names.

An artifact is `<step name>/<artifact>` (Parquet unless it has a suffix) under the run folder.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from helpers.core.paths import NOTEBOOKS_DIR
from helpers.core.tables import EVENT_TABLES, TABLES


@dataclass(frozen=True)
class Step:
    """One step: `name` is the notebook stem and the run-folder subfolder; `package` is
    `helpers.<package>`, which exposes `run_step(ctx)`."""

    name: str
    package: str
    title: str
    reads: tuple[str, ...]
    writes: tuple[str, ...]

    @property
    def notebook(self) -> Path:
        return NOTEBOOKS_DIR / f"{self.name}.ipynb"

    @property
    def module(self) -> str:
        return f"helpers.{self.package}"


AUDIT = Step(
    "01_data_audit", "audit", "Data audit",
    reads=(),
    writes=(
        *(f"01_data_audit/clean_{table}" for table in TABLES),
        *(f"01_data_audit/quarantine_{table}" for table in TABLES),
        "01_data_audit/ledger", "01_data_audit/quality", "01_data_audit/coverage",
    ),
)  # fmt: skip
IDENTITY = Step(
    "02_identity_merge", "identity", "Identity merge",
    reads=(
        *(f"01_data_audit/clean_{table}" for table in TABLES),
        *(f"01_data_audit/quarantine_{table}" for table in TABLES),
        "01_data_audit/ledger",
    ),
    writes=tuple(
        f"02_identity_merge/{name}" for name in
        ("crosswalk", "golden", "identifiers", "suspicious_identifiers", "review_pairs", "merge_summary",
         "event_customers", "row_trace", "id_history")
    ),
)  # fmt: skip
FEATURES = Step(
    "03_features", "features", "Multi-factor features",
    reads=(
        *(f"01_data_audit/clean_{table.name}" for table in EVENT_TABLES),
        "02_identity_merge/crosswalk", "02_identity_merge/golden",
    ),
    writes=("03_features/features", "03_features/feature_dictionary", "03_features/model_matrix"),
)  # fmt: skip
CLUSTERING = Step(
    "04_clustering", "clustering", "Clustering comparison",
    reads=("03_features/features", "03_features/feature_dictionary", "03_features/model_matrix"),
    writes=(
        "04_clustering/segments", "04_clustering/segment_profiles", "04_clustering/comparison",
        "04_clustering/centroids", "04_clustering/scaling", "04_clustering/models/chosen.joblib",
    ),
)  # fmt: skip
LIFECYCLE = Step(
    "05_lifecycle", "lifecycle", "Lifecycle",
    reads=("03_features/features", "04_clustering/segments"),
    writes=("05_lifecycle/lifecycle", "05_lifecycle/funnel", "05_lifecycle/stage_by_segment"),
)  # fmt: skip
STRATEGY = Step(
    "06_strategy", "strategy", "Strategy",
    reads=("03_features/features", "04_clustering/segments", "05_lifecycle/lifecycle"),
    writes=(
        "06_strategy/plan", "06_strategy/segment_metrics", "06_strategy/team_usage",
        "06_strategy/playbook_matrix",
        "06_strategy/call_list.csv", "06_strategy/call_list.xlsx",
    ),
)  # fmt: skip

STEPS: tuple[Step, ...] = (AUDIT, IDENTITY, FEATURES, CLUSTERING, LIFECYCLE, STRATEGY)
STEP_BY_NAME = {step.name: step for step in STEPS}
STEP_BY_PACKAGE = {step.package: step for step in STEPS}


def artifact_path(run_dir: Path, artifact: str) -> Path:
    """Where `<step>/<artifact>` lives in a run folder (Parquet unless the name has a suffix)."""
    path = run_dir / artifact
    return path if path.suffix else path.with_suffix(".parquet")
