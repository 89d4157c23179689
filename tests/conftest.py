"""Shared fixtures: the small test world and one end-to-end run over it.

Everything that needs the small world runs in one xdist group ("small_world"), so the data
is generated once and the run happens once per test session.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from helpers.core.config import load_config, resolve_path, setting
from helpers.core.notebook_checks import SMALL_WORLD_CONFIG
from helpers.core.runner import RunResult, ensure_demo_data, run_workbench


@pytest.fixture(scope="session")
def small_world_config() -> dict:
    """The small test world's config, with its raw data generated if missing."""
    config = load_config(SMALL_WORLD_CONFIG)
    ensure_demo_data(config, progress=False)
    return config


@pytest.fixture(scope="session")
def small_world_raw_dir(small_world_config: dict) -> Path:
    return resolve_path(setting(small_world_config, "data.raw_dir"))


@pytest.fixture(scope="session")
def small_world_truth_dir(small_world_raw_dir: Path) -> Path:
    return resolve_path(Path("data/truth") / small_world_raw_dir.name)


@pytest.fixture(scope="session")
def small_run(small_world_config: dict, tmp_path_factory: pytest.TempPathFactory) -> RunResult:
    """One complete papermill run of every notebook on the small world."""
    outputs = tmp_path_factory.mktemp("outputs")
    return run_workbench(SMALL_WORLD_CONFIG, outputs_dir=outputs, progress=False)
