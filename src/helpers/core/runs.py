"""Earlier runs: finding the run a new run is compared with (segment migration, stage flows)."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from helpers.core.config import setting

# A run is comparable when it has the features and the plan (steps 03 and 06).
PREVIOUS_ARTIFACTS = ("03_features/features.parquet", "06_strategy/plan.parquet")


def find_previous_run(run_dir: Path, choice: str | None = "auto") -> Path | None:
    """The run to compare with: `choice` if it is a folder, none for `none`, else the newest
    sibling run folder started before `run_dir` (by its frozen config.yml) on the same raw data
    folder (`data.raw_dir`), with 03 and 06 artifacts and, when it has a run.json, status ok."""
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
    own_data = _raw_dir(own_config)
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
            and _finished_ok(sibling)
            and _raw_dir(config) == own_data
        ):
            candidates.append((config.stat().st_mtime, sibling.name, sibling))
    return max(candidates)[2] if candidates else None


def _raw_dir(config: Path) -> str | None:
    if not config.is_file():
        return None
    try:
        return setting(yaml.safe_load(config.read_text(encoding="utf-8")) or {}, "data.raw_dir")
    except yaml.YAMLError:
        return None


def _finished_ok(run: Path) -> bool:
    manifest = run / "run.json"
    if not manifest.is_file():
        return True
    try:
        return json.loads(manifest.read_text()).get("status") == "ok"
    except json.JSONDecodeError:
        return False
