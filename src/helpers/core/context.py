"""Shared I/O for notebook steps: the run folder, artifacts, figures and the step manifest.

Every step reads the artifacts earlier steps wrote into the run folder and writes its
own under `<run_dir>/<step>/`; no notebook depends on another's in-memory state.

A finished run is never changed. The runner passes `run_dir` of the run it is making (its
run.json says "running"); a folder without run.json (a test's or a benchmark's) is written in
place too. Anything else is interactive, e.g. a notebook opened in JupyterLab with an empty
`run_dir`: it reads the chosen finished run (`outputs/latest` by default) and writes this step's
artifacts, figures and manifest to a scratch folder `outputs/interactive/<step>-<UTC time>/`.
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass
from datetime import UTC, date, datetime
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
from helpers.core.i18n import Catalog, catalog
from helpers.core.paths import OUTPUTS_DIR
from helpers.core.settings import WorkbenchConfig

RUN_DIR_ENV = "WORKBENCH_RUN_DIR"
# The outputs folder an interactive session reads `latest` from and puts its scratch folders in.
OUTPUTS_ENV = "WORKBENCH_OUTPUTS"
INTERACTIVE_DIR = "interactive"
RUN_MANIFEST = "run.json"
RUNNING = "running"
STEP_MANIFEST = "step.json"
FIGURE_DPI = 110  # saved figures (PNG files and the pages' images)


class ArtifactMissingError(FileNotFoundError):
    """An artifact an earlier step should have written is not in the run folder."""


@dataclass(frozen=True)
class StepContext:
    """What a notebook step needs: its run folder, its config and a place for its outputs.

    `run_dir` is the run whose artifacts the step reads. With a `scratch_dir` (interactive use)
    the step writes there instead of into `run_dir`, and reads its own artifacts from the scratch
    folder first.
    """

    run_dir: Path
    step: str
    config: dict[str, Any]
    scratch_dir: Path | None = None

    @property
    def interactive(self) -> bool:
        """True when this step writes to a scratch folder, not into the run folder."""
        return self.scratch_dir is not None

    @property
    def step_dir(self) -> Path:
        """Where this step writes: `<run_dir>/<step>`, or the scratch folder."""
        return self.scratch_dir or self.run_dir / self.step

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
    def text(self) -> Catalog:
        """The message catalog of `report.language` (what managers and agents read)."""
        return catalog(self.settings.report.language)

    @property
    def reference_date(self) -> pd.Timestamp:
        return pd.Timestamp(self.settings.run.reference_date)

    def setting(self, dotted: str) -> Any:
        """A config value by key path (`section.key`), as validated (defaults filled in)."""
        return setting(self.config, dotted)

    def path(self, name: str, step: str | None = None) -> Path:
        """Path of an artifact of this step (where it writes) or of an earlier `step` (in the run)."""
        if step is None or step == self.step:
            return self.step_dir / name
        return self.run_dir / step / name

    def read(self, step: str, name: str, columns: list[str] | None = None) -> pd.DataFrame:
        """Read a Parquet artifact an earlier step wrote (`name` without extension); this step's own
        artifact comes from where it writes, else (interactive, not written yet) from the run."""
        path = self.path(f"{name}.parquet", step)
        if not path.is_file() and self.interactive and step == self.step:
            path = self.run_dir / step / f"{name}.parquet"
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
        """Save a matplotlib figure as PNG next to the step's artifacts.

        In a notebook kernel the page shows that same PNG (at the figure's on-screen size) and the
        figure is closed, so it is drawn once: `plt.show()` after it has nothing left to draw."""
        path = self.figures_dir / f"{name}.png"
        figure.savefig(path, dpi=FIGURE_DPI, bbox_inches="tight")
        if _in_kernel():
            show_saved_figure(figure, path)
        return path


def open_step(
    step: str, run_dir: str = "", config_path: str = "", overrides: dict[str, Any] | None = None
) -> StepContext:
    """Context for a notebook step.

    `run_dir` defaults to $WORKBENCH_RUN_DIR, else `<outputs>/latest` (outputs: $WORKBENCH_OUTPUTS,
    else `outputs/`); the config defaults to the frozen `config.yml` inside the run folder.
    `overrides` maps key paths to notebook parameters; those that are not None replace the
    config's values and are validated by the same schema as the config file. When the folder is
    a finished run (see `is_finished_run`), the step writes to a new scratch folder and says so
    in one printed line.
    """
    chosen = run_dir or os.environ.get(RUN_DIR_ENV) or str(outputs_dir() / "latest")
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
    scratch = new_scratch_dir(step, resolved) if is_finished_run(resolved) else None
    context = StepContext(run_dir=resolved, step=step, config=config, scratch_dir=scratch)
    context.step_dir.mkdir(parents=True, exist_ok=True)
    if scratch is not None:
        print(f"Interactive {step}: reading run {resolved}; writing to {scratch} (the run is not changed)")
    return context


def outputs_dir() -> Path:
    """The outputs folder: $WORKBENCH_OUTPUTS, else `outputs/` in the project."""
    override = os.environ.get(OUTPUTS_ENV)
    return resolve_path(override) if override else OUTPUTS_DIR


def is_finished_run(folder: Path) -> bool:
    """True unless `folder` has no run.json or its run.json says the run is still running.

    A finished run (ok or failed; an unreadable run.json counts as finished) is only read.
    """
    manifest = folder / RUN_MANIFEST
    if not manifest.is_file():
        return False
    try:
        return json.loads(manifest.read_text(encoding="utf-8")).get("status") != RUNNING
    except (json.JSONDecodeError, OSError, AttributeError):
        return True


def new_scratch_dir(step: str, source_run: Path) -> Path:
    """A new folder `<outputs>/interactive/<step>-<UTC time>/` next to the runs of `source_run`
    (`<outputs>/runs/<run_id>`), else in `outputs_dir()`."""
    outputs = source_run.parent.parent if source_run.parent.name == "runs" else outputs_dir()
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    base = outputs / INTERACTIVE_DIR / f"{step}-{stamp}"
    candidate, number = base, 1
    while True:
        try:
            candidate.mkdir(parents=True)
            return candidate
        except FileExistsError:
            number += 1
            candidate = base.with_name(f"{base.name}-{number}")


def _in_kernel() -> bool:
    """True inside a Jupyter kernel (where displayed output goes to the notebook)."""
    shell = sys.modules["IPython"].get_ipython() if "IPython" in sys.modules else None
    return getattr(shell, "kernel", None) is not None


def show_saved_figure(figure: Any, path: Path) -> None:
    """Display the PNG `path` (saved from `figure` at `FIGURE_DPI`) at the size the inline backend
    would show the figure, then close the figure."""
    import matplotlib.pyplot as plt
    from IPython.display import Image, display

    png = path.read_bytes()
    pixels_wide = int.from_bytes(png[16:20], "big")  # the PNG header's IHDR width
    display(Image(data=png, format="png", width=round(pixels_wide * figure.dpi / FIGURE_DPI)))
    plt.close(figure)


def _json_default(value: Any) -> Any:
    if isinstance(value, (datetime, date, pd.Timestamp)):
        return value.isoformat()
    if hasattr(value, "item"):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"Cannot record {type(value).__name__} in a manifest")
