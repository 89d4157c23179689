"""Where the project lives: every relative path is resolved from the project root."""

from __future__ import annotations

import os
from pathlib import Path


def _find_project_root() -> Path:
    override = os.environ.get("WORKBENCH_ROOT")
    if override:
        return Path(override).resolve()
    for parent in Path(__file__).resolve().parents:
        if (parent / "pyproject.toml").is_file() and (parent / "notebooks").is_dir():
            return parent
    return Path.cwd().resolve()


PROJECT_ROOT = _find_project_root()
NOTEBOOKS_DIR = PROJECT_ROOT / "notebooks"
OUTPUTS_DIR = PROJECT_ROOT / "outputs"
RUNS_DIR = OUTPUTS_DIR / "runs"
LATEST_LINK = OUTPUTS_DIR / "latest"
