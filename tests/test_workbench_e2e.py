"""End to end on the small test world: every notebook through papermill, then nbval, then bad input."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from helpers.core.notebook_checks import SMALL_WORLD_CONFIG
from helpers.core.runner import RunResult, StepFailedError, numbered_notebooks, run_workbench

ROOT = Path(__file__).resolve().parents[1]
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("small_world")]


def test_every_step_ran_and_recorded_itself(small_run: RunResult) -> None:
    manifest = json.loads((small_run.run_dir / "run.json").read_text())
    steps = [p.stem for p in numbered_notebooks()]
    assert manifest["status"] == "ok"
    assert list(manifest["steps"]) == steps
    assert all(manifest["steps"][step]["status"] == "ok" for step in steps)
    assert all(entry["sha256"] for entry in manifest["input_fingerprints"].values())
    for step in steps:
        assert (small_run.run_dir / "reports" / f"{step}.html").is_file()
        management = (small_run.run_dir / "reports" / f"{step}.management.html").read_text()
        assert "open_step(" not in management  # no code in the management version
        assert not re.search(r'<(script|link)[^>]*(src|href)="https?://', management)  # self-contained
        assert not re.search(r"<script\b(?:(?!</script>).)*https?://", management, re.DOTALL)


def test_ledger_balances_for_every_table(small_run: RunResult) -> None:
    ledger = pd.read_parquet(small_run.run_dir / "01_data_audit" / "ledger.parquet")
    assert len(ledger) == 8
    assert (ledger.input_rows == ledger.accepted_rows + ledger.quarantined_rows).all()
    assert ledger.quarantined_rows.sum() > 0  # the demo world plants defects


def test_notebooks_in_git_carry_only_reference_outputs() -> None:
    import nbformat

    from helpers.core.notebook_checks import stripped

    for path in numbered_notebooks():
        notebook = nbformat.read(path, as_version=4)
        assert notebook == stripped(notebook), f"{path.name} has outputs beyond its nbval-checked cells"
        assert notebook.metadata["kernelspec"]["name"] == "python3"


def test_nbval_reproduces_the_checked_cells(small_run: RunResult, tmp_path: Path) -> None:
    run_copy = tmp_path / "run"
    shutil.copytree(small_run.run_dir, run_copy)
    env = {**os.environ, "WORKBENCH_RUN_DIR": str(run_copy)}
    completed = subprocess.run(
        [sys.executable, "-m", "pytest", "--nbval-lax", "-p", "no:xdist", "-p", "no:cacheprovider", "-q",
         "--sanitize-with", str(ROOT / "tests" / "nbval_sanitize.cfg"), "--rootdir", str(tmp_path),
         *[str(p) for p in numbered_notebooks()]],
        capture_output=True, text=True, cwd=tmp_path, env=env, check=False,
    )  # fmt: skip
    assert completed.returncode == 0, completed.stdout[-4000:] + completed.stderr[-2000:]


def test_bad_input_stops_the_run_naming_file_and_column(
    small_run: RunResult, small_world_raw_dir: Path, tmp_path: Path
) -> None:
    broken_raw = tmp_path / "raw"
    shutil.copytree(small_world_raw_dir, broken_raw)
    crm = pd.read_csv(broken_raw / "crm_customers.csv", dtype=str)
    crm.drop(columns=["customer_type"]).to_csv(broken_raw / "crm_customers.csv", index=False)
    config = tmp_path / "broken.yml"
    overrides = {"extends": str(SMALL_WORLD_CONFIG), "data": {"raw_dir": str(broken_raw)}}
    config.write_text(yaml.safe_dump(overrides))
    outputs = small_run.run_dir.parent.parent
    latest_before = (outputs / "latest").resolve()
    with pytest.raises(StepFailedError) as failure:
        run_workbench(config, outputs_dir=outputs, progress=False)
    message = str(failure.value)
    assert "01_data_audit" in message and "crm_customers.csv" in message and "customer_type" in message
    assert (outputs / "latest").resolve() == latest_before
    completed = subprocess.run(
        [sys.executable, "-m", "helpers", "run", "--config", str(config), "--outputs", str(outputs),
         "--quiet"],
        capture_output=True, text=True, cwd=ROOT, check=False,
    )  # fmt: skip
    assert completed.returncode == 1
    assert "customer_type" in completed.stderr


def test_management_reports_carry_no_personal_data(small_run: RunResult) -> None:
    from helpers.core.privacy import collect_pii_values, scan_reports

    values = collect_pii_values(small_run.run_dir)
    reports = small_run.run_dir / "reports"
    management = sorted(reports.glob("*.management.html"))
    assert len(management) == len(numbered_notebooks())
    assert scan_reports(management, values) == []
    # The scan is live: the full render of step 06 shows the call list, with contact details.
    assert scan_reports([reports / "06_strategy.html"], values)
