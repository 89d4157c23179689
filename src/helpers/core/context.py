"""Shared I/O for notebook steps: the run folder, artifacts, figures and the step manifest.

Every step reads the artifacts earlier steps wrote into the run folder and writes its
own under `<run_dir>/<step>/`; no notebook depends on another's in-memory state.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from datetime import date, datetime
from functools import cached_property
from pathlib import Path
from typing import Any

import pandas as pd

from helpers.core.config import (
    apply_override,
    load_config,
    parse_config,
    resolve_path,
    setting,
    validate_config,
)
from helpers.core.paths import LATEST_LINK
from helpers.core.settings import WorkbenchConfig

RUN_DIR_ENV = "WORKBENCH_RUN_DIR"
STEP_MANIFEST = "step.json"


class ArtifactMissingError(FileNotFoundError):
    """An artifact an earlier step should have written is not in the run folder."""


@dataclass(frozen=True)
class StepContext:
    """What a notebook step needs: its run folder, its config and a place for its outputs."""

    run_dir: Path
    step: str
    config: dict[str, Any]

    @property
    def step_dir(self) -> Path:
        return self.run_dir / self.step

    @property
    def figures_dir(self) -> Path:
        path = self.step_dir / "figures"
        path.mkdir(parents=True, exist_ok=True)
        return path

    @cached_property
    def settings(self) -> WorkbenchConfig:
        """The typed, validated config (defaults filled in)."""
        return parse_config(self.config)

    @property
    def seed(self) -> int:
        return self.settings.run.seed

    @property
    def reference_date(self) -> pd.Timestamp:
        return pd.Timestamp(self.settings.run.reference_date)

    def setting(self, dotted: str) -> Any:
        """A config value by key path (`section.key`), as validated (defaults filled in)."""
        return setting(self.config, dotted)

    def path(self, name: str, step: str | None = None) -> Path:
        """Path of an artifact of this step (or of an earlier `step`)."""
        return self.run_dir / (step or self.step) / name

    def read(self, step: str, name: str, columns: list[str] | None = None) -> pd.DataFrame:
        """Read a Parquet artifact an earlier step wrote (`name` without extension)."""
        path = self.path(f"{name}.parquet", step)
        if not path.is_file():
            raise ArtifactMissingError(
                f"{path} is missing: run step {step} first (or point run_dir at a run that has it)."
            )
        return pd.read_parquet(path, columns=columns)

    def write(self, name: str, frame: pd.DataFrame) -> Path:
        """Write a Parquet artifact of this step atomically (`name` without extension)."""
        path = self.path(f"{name}.parquet")
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(".parquet.partial")
        frame.to_parquet(partial, index=False)
        partial.replace(path)
        return path

    def record(self, **values: Any) -> None:
        """Add values to this step's manifest; the runner copies them into run.json."""
        manifest_path = self.path(STEP_MANIFEST)
        manifest_path.parent.mkdir(parents=True, exist_ok=True)
        manifest = json.loads(manifest_path.read_text()) if manifest_path.is_file() else {}
        manifest.update(values)
        manifest_path.write_text(json.dumps(manifest, indent=2, default=_json_default))

    def save_figure(self, figure: Any, name: str) -> Path:
        """Save a matplotlib figure as PNG next to the step's artifacts."""
        path = self.figures_dir / f"{name}.png"
        figure.savefig(path, dpi=110, bbox_inches="tight")
        return path


def open_step(
    step: str, run_dir: str = "", config_path: str = "", overrides: dict[str, Any] | None = None
) -> StepContext:
    """Context for a notebook step.

    `run_dir` defaults to $WORKBENCH_RUN_DIR, else `outputs/latest`; the config defaults
    to the frozen `config.yml` inside the run folder. `overrides` maps key paths to notebook
    parameters; those that are not None replace the config's values and are validated by the
    same schema as the config file.
    """
    chosen = run_dir or os.environ.get(RUN_DIR_ENV) or str(LATEST_LINK)
    resolved = resolve_path(chosen).resolve()
    if not resolved.is_dir():
        raise FileNotFoundError(
            f"Run folder {resolved} does not exist. Start a run with `make run`, "
            f"or set run_dir / ${RUN_DIR_ENV} to an existing run."
        )
    config = load_config(config_path or resolved / "config.yml")
    given = {key: value for key, value in (overrides or {}).items() if value is not None}
    for key, value in given.items():
        config = apply_override(config, key, value)
    if given:
        config = validate_config(config, f"notebook parameters {given}")
    context = StepContext(run_dir=resolved, step=step, config=config)
    context.step_dir.mkdir(parents=True, exist_ok=True)
    return context


def _json_default(value: Any) -> Any:
    if isinstance(value, (datetime, date, pd.Timestamp)):
        return value.isoformat()
    if hasattr(value, "item"):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"Cannot record {type(value).__name__} in a manifest")
