"""Keep notebooks in git reviewable and checkable.

Notebooks are committed with outputs stripped, except the cells tagged
`nbval-check-output`: their output, computed on the small test world
(`config/small.yml`), is the reference nbval compares against in lax mode.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import nbformat

from helpers.core.paths import NOTEBOOKS_DIR, PROJECT_ROOT

CHECK_TAG = "nbval-check-output"
INJECTED_TAG = "injected-parameters"
SMALL_WORLD_CONFIG = PROJECT_ROOT / "config" / "small.yml"


def _tags(cell: nbformat.NotebookNode) -> set[str]:
    return set(cell.get("metadata", {}).get("tags", []))


def stripped(notebook: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """A copy without outputs and execution counts, except on `nbval-check-output` cells.

    Checked cells keep their outputs and get execution count 1: nbval only compares cells that
    look executed.
    """
    clean = nbformat.from_dict(notebook)
    for cell in clean.cells:
        if cell.cell_type != "code":
            continue
        checked = CHECK_TAG in _tags(cell)
        cell.execution_count = 1 if checked and cell.outputs else None
        if not checked:
            cell.outputs = []
        for output in cell.outputs:
            if "execution_count" in output:
                output["execution_count"] = cell.execution_count
        cell.metadata.pop("execution", None)
        cell.metadata.pop("papermill", None)
    clean.metadata.pop("papermill", None)
    return clean


def copy_reference_outputs(source: Path, executed: Path) -> None:
    """Put the outputs of `executed`'s checked cells into `source` (all else stripped)."""
    notebook = nbformat.read(source, as_version=4)
    executed_cells = [
        cell for cell in nbformat.read(executed, as_version=4).cells if INJECTED_TAG not in _tags(cell)
    ]
    if len(executed_cells) != len(notebook.cells):
        raise ValueError(f"{executed} does not have the cells of {source}; was it run from it?")
    for cell, ran in zip(notebook.cells, executed_cells, strict=True):
        if cell.cell_type == "code" and CHECK_TAG in _tags(cell):
            cell.outputs = ran.outputs
    nbformat.write(stripped(notebook), source)


def refresh_reference_outputs(notebooks_dir: Path = NOTEBOOKS_DIR) -> None:
    """Run the workbench on the small test world and store the checked cells' outputs."""
    from helpers.core.runner import run_workbench

    with tempfile.TemporaryDirectory() as outputs:
        result = run_workbench(SMALL_WORLD_CONFIG, outputs_dir=Path(outputs), notebooks_dir=notebooks_dir)
        for executed in sorted((result.run_dir / "notebooks").glob("*.ipynb")):
            copy_reference_outputs(notebooks_dir / executed.name, executed)
            print(f"refreshed {executed.name}")
