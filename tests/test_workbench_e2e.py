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
from helpers.core.preflight import PreflightError
from helpers.core.runner import RunResult, run_workbench
from helpers.core.steps import AUDIT, STEPS, STRATEGY

ROOT = Path(__file__).resolve().parents[1]
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("small_world")]


def test_every_step_ran_and_recorded_itself(small_run: RunResult) -> None:
    manifest = json.loads((small_run.run_dir / "run.json").read_text())
    steps = [step.name for step in STEPS]
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
    ledger = pd.read_parquet(small_run.run_dir / AUDIT.name / "ledger.parquet")
    assert len(ledger) == 8
    assert (ledger.input_rows == ledger.accepted_rows + ledger.quarantined_rows).all()
    assert ledger.quarantined_rows.sum() > 0  # the demo world plants defects


def test_notebooks_in_git_carry_only_reference_outputs() -> None:
    import nbformat

    from helpers.core.notebook_checks import KEEP_OUTPUT, is_checked, stripped

    for step in STEPS:
        notebook = nbformat.read(step.notebook, as_version=4)
        assert notebook == stripped(notebook), f"{step.notebook.name} is not as the git filter stores it"
        assert notebook.metadata["kernelspec"]["name"] == "python3"
        checked = [cell for cell in notebook.cells if is_checked(cell)]
        assert checked and all(cell.outputs and cell.metadata[KEEP_OUTPUT] for cell in checked), step.name


def test_strip_notebooks_stores_them_as_the_filter_does(tmp_path: Path) -> None:
    import nbformat

    from helpers.core.notebook_checks import is_checked, strip_notebooks, stripped

    for step in STEPS:
        shutil.copy(step.notebook, tmp_path / step.notebook.name)
    path = tmp_path / STRATEGY.notebook.name
    notebook = nbformat.read(path, as_version=4)
    for cell in notebook.cells:
        if cell.cell_type == "code" and not is_checked(cell):
            cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text="left over\n")]
            cell.execution_count = 3
    nbformat.write(notebook, path)
    assert strip_notebooks(tmp_path) == [path]
    assert path.read_text(encoding="utf-8") == STRATEGY.notebook.read_text(encoding="utf-8")
    assert nbformat.read(path, as_version=4) == stripped(notebook)
    assert strip_notebooks(tmp_path) == []


def test_the_git_filter_stores_notebooks_without_outputs(tmp_path: Path) -> None:
    """`make setup`'s git filter (nbstripout, .gitattributes) in a scratch repository: a committed
    notebook goes through unchanged, and one with outputs, counts and run metadata is stored as it was."""
    import nbformat

    repo = tmp_path / "repo"
    (repo / "notebooks").mkdir(parents=True)

    def git(*arguments: str) -> str:
        return subprocess.run(
            ["git", *arguments], cwd=repo, capture_output=True, text=True, check=True
        ).stdout

    git("init", "-q")
    shutil.copy(ROOT / ".gitattributes", repo / ".gitattributes")
    subprocess.run(
        ["make", "-s", "-C", str(repo), "-f", str(ROOT / "Makefile"), "git-filter", f"PY={sys.executable}"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert git("check-attr", "filter", "notebooks/x.ipynb").strip().endswith("filter: nbstripout")
    assert "--keep-id" in git("config", "filter.nbstripout.clean")
    for step in STEPS:
        shutil.copy(step.notebook, repo / "notebooks" / step.notebook.name)
    git("add", "notebooks")
    for step in STEPS:
        stored = git("show", f":notebooks/{step.notebook.name}")
        assert stored == step.notebook.read_text(encoding="utf-8"), f"the filter changes {step.name}"
    # As if run in JupyterLab (or copied from a run folder): outputs, counts, run metadata.
    path = repo / "notebooks" / STRATEGY.notebook.name
    notebook = nbformat.read(path, as_version=4)
    notebook.metadata["papermill"] = {"duration": 1.0}
    for count, cell in enumerate(c for c in notebook.cells if c.cell_type == "code"):
        cell.execution_count = count + 1
        cell.metadata["papermill"] = {"duration": 0.1}
        cell.metadata["execution"] = {"iopub.status.idle": "2026-01-01T00:00:00Z"}
        cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text=f"printed {count}\n")]
    nbformat.write(notebook, path)
    git("add", "notebooks")
    stored = nbformat.reads(git("show", f":notebooks/{path.name}"), as_version=4)
    original = nbformat.read(STRATEGY.notebook, as_version=4)
    assert [cell.id for cell in stored.cells] == [cell.id for cell in original.cells]
    kept = [cell.outputs for cell in stored.cells if cell.get("metadata", {}).get("keep_output")]
    assert kept and all(output == [{"name": "stdout", "output_type": "stream", "text": output[0]["text"]}]
                        for output in kept)  # fmt: skip
    for stored_cell, original_cell in zip(stored.cells, original.cells, strict=True):
        if not stored_cell.get("metadata", {}).get("keep_output"):
            assert stored_cell == original_cell
    assert "papermill" not in stored.metadata


def test_nbval_reproduces_the_checked_cells(small_run: RunResult, tmp_path: Path) -> None:
    from helpers.core.notebook_checks import write_nbval_references

    run_copy = tmp_path / "outputs" / "runs" / small_run.run_dir.name  # a finished run: read only
    shutil.copytree(small_run.run_dir, run_copy)
    notebooks = write_nbval_references((step.notebook for step in STEPS), tmp_path / "notebooks")
    env = {**os.environ, "WORKBENCH_RUN_DIR": str(run_copy), "WORKBENCH_OUTPUTS": str(tmp_path / "outputs")}
    completed = subprocess.run(
        [sys.executable, "-m", "pytest", "--nbval-lax", "-p", "no:xdist", "-p", "no:cacheprovider", "-q",
         "--sanitize-with", str(ROOT / "tests" / "nbval_sanitize.cfg"), "--rootdir", str(tmp_path),
         *[str(p) for p in notebooks]],
        capture_output=True, text=True, cwd=tmp_path, env=env, check=False,
    )  # fmt: skip
    assert completed.returncode == 0, completed.stdout[-4000:] + completed.stderr[-2000:]
    # The copy is a finished run, so each notebook wrote to a scratch folder of its own.
    scratch = sorted(p.name.split("-")[0] for p in (tmp_path / "outputs" / "interactive").iterdir())
    assert scratch == [step.name for step in STEPS]


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
    with pytest.raises(PreflightError) as failure:  # found from the header, before any kernel starts
        run_workbench(config, outputs_dir=outputs, progress=False)
    message = str(failure.value)
    assert "nothing was run" in message and "crm_customers.csv" in message and "customer_type" in message
    assert (outputs / "latest").resolve() == latest_before
    completed = subprocess.run(
        [sys.executable, "-m", "helpers", "run", "--config", str(config), "--outputs", str(outputs),
         "--quiet"],
        capture_output=True, text=True, cwd=ROOT, check=False,
    )  # fmt: skip
    assert completed.returncode == 2
    assert "customer_type" in completed.stderr


def test_management_reports_carry_no_personal_data(small_run: RunResult) -> None:
    from helpers.core.privacy import collect_pii_values, scan_reports

    values = collect_pii_values(small_run.run_dir)
    reports = small_run.run_dir / "reports"
    management = sorted(reports.glob("*.management.html"))
    assert len(management) == len(STEPS)
    assert scan_reports(management, values) == []
    # The scan is live: the full render of step 06 shows the call list, with contact details.
    assert scan_reports([reports / f"{STRATEGY.name}.html"], values)
