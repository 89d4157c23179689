"""Earlier runs: their `run.json` records, the listing `python -m helpers runs`, marking runs whose
process died as stale, and finding the run a new run is compared with (segment migration, stage flows).
"""

from __future__ import annotations

import json
import socket
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psutil
import yaml

from helpers.core.config import setting

RUN_MANIFEST = "run.json"
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


@dataclass(frozen=True)
class RunSummary:
    """One line of the run listing."""

    run_id: str
    status: str
    started_at: str
    seconds: float | None  # finished_at - started_at; None while running or when never finished
    failed_step: str  # or the step an interrupted run was in


def now() -> str:
    """The current UTC time as run.json records it."""
    return datetime.now(UTC).isoformat(timespec="seconds")


def write_manifest(run_dir: Path, manifest: dict[str, Any]) -> None:
    """Write `run.json` through a temporary file, so a reader never sees half of it."""
    partial = run_dir / f"{RUN_MANIFEST}.partial"
    try:
        partial.write_text(json.dumps(manifest, indent=2, default=str), encoding="utf-8")
        partial.replace(run_dir / RUN_MANIFEST)
    except OSError:
        partial.unlink(missing_ok=True)  # a full disk leaves no half file behind
        raise


def read_manifest(run_dir: Path) -> dict[str, Any] | None:
    """A run folder's `run.json`; None when it is missing or unreadable."""
    try:
        return json.loads((run_dir / RUN_MANIFEST).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None


def process_gone(manifest: dict[str, Any]) -> bool:
    """True when the run's recorded process (pid on this host) no longer exists."""
    pid, host = manifest.get("pid"), manifest.get("host")
    if pid is None or host != socket.gethostname():
        return False  # an older run without a pid, or another machine: cannot tell
    return not psutil.pid_exists(int(pid))


def mark_stale_runs(runs_dir: Path, every_running: bool = False) -> list[str]:
    """Mark runs still recorded as running whose process is gone `stale` (with `stale_since`); with
    `every_running` (the caller holds the project's run lock, so none can be running) all of them.
    Returns the run ids marked."""
    marked = []
    for run_dir in sorted(runs_dir.iterdir()) if runs_dir.is_dir() else []:
        manifest = read_manifest(run_dir)
        if manifest is None or manifest.get("status") != "running":
            continue
        if every_running or process_gone(manifest):
            manifest.update(status="stale", stale_since=now())
            write_manifest(run_dir, manifest)
            marked.append(run_dir.name)
    return marked


def list_runs(runs_dir: Path) -> list[RunSummary]:
    """Every run with a `run.json` under `runs_dir`, newest first (stale ones marked first)."""
    mark_stale_runs(runs_dir)
    summaries = []
    for run_dir in runs_dir.iterdir() if runs_dir.is_dir() else []:
        manifest = read_manifest(run_dir)
        if manifest is None:
            continue
        started, finished = manifest.get("started_at", ""), manifest.get("finished_at")
        seconds = (
            (datetime.fromisoformat(finished) - datetime.fromisoformat(started)).total_seconds()
            if started and finished
            else None
        )
        summaries.append(
            RunSummary(
                run_id=manifest.get("run_id", run_dir.name),
                status=manifest.get("status", "unknown"),
                started_at=started,
                seconds=seconds,
                failed_step=manifest.get("failed_step") or manifest.get("interrupted_step", ""),
            )
        )
    return sorted(summaries, key=lambda s: (s.started_at, s.run_id), reverse=True)


def format_runs(summaries: list[RunSummary]) -> str:
    """The listing as aligned text: run id, status, started, duration, failed step."""
    rows = [("run", "status", "started (UTC)", "duration", "failed step")]
    for s in summaries:
        duration = "-" if s.seconds is None else f"{s.seconds / 60:.1f} min"
        rows.append((s.run_id, s.status, s.started_at.replace("+00:00", ""), duration, s.failed_step or "-"))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip() for row in rows)
