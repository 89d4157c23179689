"""Run every step's notebook (the registry `helpers.core.steps.STEPS`, in order) with papermill,
into a fresh run folder.

A run folder holds the frozen config, `run.json` (versions, data fingerprints, per-step
timings, status and recorded values), the executed notebooks, each step's artifacts and
two HTML renders per notebook (full, and a management version without code).
`outputs/latest` moves only when every step finished.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import papermill
import psutil
import yaml

from helpers.core.config import load_config, resolve_path
from helpers.core.context import STEP_MANIFEST
from helpers.core.paths import NOTEBOOKS_DIR, OUTPUTS_DIR, PROJECT_ROOT
from helpers.core.render import render_reports, write_index
from helpers.core.steps import STEPS, Step

PINNED_PACKAGES = (
    "numpy", "pandas", "pyarrow", "duckdb", "splink", "scikit-learn", "umap-learn",
    "pymc-marketing", "pandera", "matplotlib", "seaborn", "papermill", "nbconvert",
)  # fmt: skip


class StepFailedError(RuntimeError):
    """A notebook step raised; the message names the step and the cause."""


@dataclass(frozen=True)
class RunResult:
    """Where a finished run lives."""

    run_id: str
    run_dir: Path


def step_notebooks(steps: Sequence[Step] = STEPS, notebooks_dir: Path = NOTEBOOKS_DIR) -> list[Path]:
    """The notebook of each step (`<notebooks_dir>/<step name>.ipynb`), in run order.

    Raises `FileNotFoundError` naming every missing notebook, before anything runs.
    """
    notebooks = [notebooks_dir / f"{step.name}.ipynb" for step in steps]
    missing = [str(path) for path in notebooks if not path.is_file()]
    if missing:
        raise FileNotFoundError(f"Step notebook(s) missing: {', '.join(missing)}")
    return notebooks


def run_workbench(
    config_path: str | Path | None = None,
    overrides: list[str] | None = None,
    outputs_dir: Path = OUTPUTS_DIR,
    notebooks_dir: Path = NOTEBOOKS_DIR,
    progress: bool = True,
    steps: Sequence[Step] = STEPS,
) -> RunResult:
    """Run `steps` (default: every registered step) in order; raise `StepFailedError` naming the
    failed step (latest stays untouched). The config is validated before any data is generated."""
    config = load_config(config_path, overrides)
    notebooks = step_notebooks(steps, notebooks_dir)
    ensure_demo_data(config, progress=progress)
    run_id = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ") + "-" + os.urandom(2).hex()
    run_dir = outputs_dir / "runs" / run_id
    (run_dir / "notebooks").mkdir(parents=True)
    (run_dir / "reports").mkdir()
    frozen_config = run_dir / "config.yml"
    frozen_config.write_text(yaml.safe_dump(config, sort_keys=False, allow_unicode=True), encoding="utf-8")
    manifest: dict[str, Any] = {
        "run_id": run_id,
        "started_at": _now(),
        "status": "running",
        "config_source": str(resolve_path(config_path)) if config_path else "config/demo.yml",
        "overrides": overrides or [],
        "config": config,
        "environment": environment_versions(),
        "input_fingerprints": fingerprint_inputs(config),
        "steps": {},
    }
    _write_manifest(run_dir, manifest)
    _say(progress, f"Run {run_id}: {len(notebooks)} steps -> {run_dir}")
    for position, (step, notebook) in enumerate(zip((s.name for s in steps), notebooks, strict=True), 1):
        _say(progress, f"[{position}/{len(notebooks)}] {step} ...")
        started = time.perf_counter()
        executed = run_dir / "notebooks" / notebook.name
        error: Exception | None = None
        with PeakMemory() as memory:
            try:
                papermill.execute_notebook(
                    str(notebook),
                    str(executed),
                    parameters={"run_dir": str(run_dir), "config_path": str(frozen_config)},
                    kernel_name="python3",
                    cwd=str(PROJECT_ROOT),
                    progress_bar=progress,
                    request_save_on_cell_execute=False,
                    # The kernel's own log (e.g. "running over TCP without encryption" on a local
                    # kernel) is noise for analysts; cell output and errors are unaffected.
                    extra_arguments=["--IPKernelApp.log_level=ERROR"],
                )
            except Exception as caught:  # papermill wraps cell errors; anything else is a failure too
                error = caught
        seconds = round(time.perf_counter() - started, 2)
        step_record: dict[str, Any] = {
            "seconds": seconds,
            "peak_kernel_rss_mb": memory.peak_mb,
            "status": "failed" if error else "ok",
        }
        step_manifest = run_dir / step / STEP_MANIFEST
        if step_manifest.is_file():
            step_record["recorded"] = json.loads(step_manifest.read_text())
        if executed.is_file():
            render_reports(executed, run_dir / "reports")
        if error is not None:
            cause = describe_error(error)
            step_record["error"] = cause
            manifest["steps"][step] = step_record
            manifest.update(status="failed", failed_step=step, finished_at=_now())
            _write_manifest(run_dir, manifest)
            write_index(run_dir)
            raise StepFailedError(
                f"Step {step} failed: {cause}\n"
                f"  executed notebook with the error: {executed}\n"
                f"  outputs/latest was not changed."
            ) from error
        manifest["steps"][step] = step_record
        _write_manifest(run_dir, manifest)
        _say(progress, f"[{position}/{len(notebooks)}] {step} done in {seconds:.1f} s")
    manifest.update(status="ok", finished_at=_now())
    _write_manifest(run_dir, manifest)
    write_index(run_dir)
    point_latest(outputs_dir, run_dir)
    _say(progress, f"Run {run_id} finished. Reports: {run_dir / 'reports'}")
    return RunResult(run_id=run_id, run_dir=run_dir)


class PeakMemory:
    """Samples the resident memory of this process's children (the notebook kernel) while active."""

    def __init__(self, interval_seconds: float = 0.25) -> None:
        self.interval_seconds = interval_seconds
        self.peak_bytes = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    @property
    def peak_mb(self) -> float:
        return round(self.peak_bytes / 2**20, 1)

    def _sample(self) -> None:
        me = psutil.Process()
        while not self._stop.is_set():
            total = 0
            for child in me.children(recursive=True):
                try:
                    total += child.memory_info().rss
                except psutil.Error:
                    continue
            self.peak_bytes = max(self.peak_bytes, total)
            self._stop.wait(self.interval_seconds)

    def __enter__(self) -> PeakMemory:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()


def ensure_demo_data(config: dict[str, Any], progress: bool = True) -> None:
    """Generate the demo world into `data.raw_dir` when the config has a `demo` section and the
    folder is missing or empty (`config` is validated: every default is filled in)."""
    demo = config.get("demo")
    raw_dir = resolve_path(config["data"]["raw_dir"])
    if not demo or (raw_dir.is_dir() and any(raw_dir.iterdir())):
        return
    from helpers.demo.world import generate_demo_world

    truth_dir = resolve_path(demo["truth_dir"] or Path("data/truth") / raw_dir.name)
    _say(progress, f"Generating the demo world ({demo['customers']} customers) into {raw_dir}")
    generate_demo_world(
        raw_dir,
        truth_dir,
        n_customers=demo["customers"],
        seed=demo["seed"],
        style=demo["style"],
        reference_date=str(config["run"]["reference_date"]),
        progress=progress,
    )


def fingerprint_inputs(config: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """SHA-256 and size of every configured raw file, so a run records exactly what it read."""
    raw_dir = resolve_path(config["data"]["raw_dir"])
    fingerprints: dict[str, dict[str, Any]] = {}
    for table, spec in config["data"]["tables"].items():
        path = raw_dir / spec["file"]
        if not path.is_file():
            fingerprints[table] = {"file": str(path), "missing": True}
            continue
        digest = hashlib.sha256()
        with path.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 22), b""):
                digest.update(block)
        fingerprints[table] = {"file": str(path), "bytes": path.stat().st_size, "sha256": digest.hexdigest()}
    return fingerprints


def environment_versions() -> dict[str, str]:
    """Python, platform and the versions of the packages that shape results."""
    versions = {"python": sys.version.split()[0], "platform": platform.platform()}
    for package in PINNED_PACKAGES:
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = "not installed"
    return versions


def describe_error(error: Exception) -> str:
    """One line: the exception type and message from inside the notebook."""
    name = getattr(error, "ename", type(error).__name__)
    value = getattr(error, "evalue", str(error))
    return f"{name}: {value}".strip()


def point_latest(outputs_dir: Path, run_dir: Path) -> None:
    """Atomically repoint `outputs/latest` at `run_dir`."""
    latest = outputs_dir / "latest"
    temporary = outputs_dir / f".latest-{os.getpid()}"
    if temporary.is_symlink() or temporary.exists():
        temporary.unlink()
    temporary.symlink_to(run_dir.relative_to(outputs_dir))
    temporary.replace(latest)


def _write_manifest(run_dir: Path, manifest: dict[str, Any]) -> None:
    partial = run_dir / "run.json.partial"
    partial.write_text(json.dumps(manifest, indent=2, default=str), encoding="utf-8")
    partial.replace(run_dir / "run.json")


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _say(enabled: bool, message: str) -> None:
    if enabled:
        print(message, flush=True)
