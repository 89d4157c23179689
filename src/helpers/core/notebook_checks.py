"""Keep notebooks in git reviewable and checkable.

Notebooks are committed with outputs stripped, except the cells tagged
`nbval-check-output`: their output, computed on the small test world
(`config/small.yml`), is the reference nbval compares against in lax mode.

The stripping is nbstripout's, run as a git filter (`.gitattributes`, installed by `make setup`)
with cell ids kept: it keeps the outputs of cells whose metadata says `"keep_output": true`, which
`make notebook-outputs` sets on exactly the checked cells. Execution counts are always dropped, so
`nbval_reference` marks the checked cells executed before nbval reads a notebook.
"""

from __future__ import annotations

import copy
import tempfile
from collections.abc import Iterable
from pathlib import Path

import nbformat
from nbstripout import strip_output

from helpers.core.paths import NOTEBOOKS_DIR, PROJECT_ROOT
from helpers.core.steps import STEPS

CHECK_TAG = "nbval-check-output"
INJECTED_TAG = "injected-parameters"
KEEP_OUTPUT = "keep_output"  # nbstripout keeps the outputs of a cell with this metadata set to true
# What the git filter drops besides outputs and counts: nbstripout's default keys, plus papermill's
# (the Makefile's git-filter target sets the same two as filter.nbstripout.extrakeys).
FILTER_EXTRA_KEYS = ("metadata.papermill", "cell.metadata.papermill")
STRIPPED_KEYS = (
    "metadata.signature", "metadata.widgets", "cell.metadata.collapsed", "cell.metadata.ExecuteTime",
    "cell.metadata.execution", "cell.metadata.heading_collapsed", "cell.metadata.hidden",
    "cell.metadata.scrolled", *FILTER_EXTRA_KEYS,
)  # fmt: skip
SMALL_WORLD_CONFIG = PROJECT_ROOT / "config" / "small.yml"


def _tags(cell: nbformat.NotebookNode) -> set[str]:
    return set(cell.get("metadata", {}).get("tags", []))


def is_checked(cell: nbformat.NotebookNode) -> bool:
    """A code cell whose output nbval compares (tag `nbval-check-output`)."""
    return cell.cell_type == "code" and CHECK_TAG in _tags(cell)


def mark_kept_outputs(notebook: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """Set `"keep_output": true` on the checked cells and remove it from every other cell (in place)."""
    for cell in notebook.cells:
        if is_checked(cell):
            cell.metadata[KEEP_OUTPUT] = True
        else:
            cell.get("metadata", {}).pop(KEEP_OUTPUT, None)
    return notebook


def stripped(notebook: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """A copy as the git filter stores it: checked cells marked `keep_output` and keeping their
    outputs, every other output removed, no execution counts, cell ids kept."""
    clean = mark_kept_outputs(nbformat.from_dict(copy.deepcopy(notebook)))
    return strip_output(
        clean, keep_output=False, keep_count=False, keep_id=True, extra_keys=list(STRIPPED_KEYS)
    )


def nbval_reference(notebook: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """A copy nbval can check: checked cells with outputs get execution count 1 (nbval skips a cell
    without a count and rejects one that has outputs but no count)."""
    reference = nbformat.from_dict(copy.deepcopy(notebook))
    for cell in reference.cells:
        if is_checked(cell) and cell.outputs:
            cell.execution_count = 1
            for output in cell.outputs:
                if "execution_count" in output:
                    output["execution_count"] = 1
    return reference


def write_nbval_references(notebooks: Iterable[Path], folder: Path) -> list[Path]:
    """`nbval_reference` of each notebook, written into `folder` under the same name."""
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for path in notebooks:
        target = folder / path.name
        nbformat.write(nbval_reference(nbformat.read(path, as_version=4)), target)
        written.append(target)
    return written


def copy_reference_outputs(source: Path, executed: Path) -> None:
    """Put the outputs of `executed`'s checked cells into `source` (all else stripped)."""
    notebook = nbformat.read(source, as_version=4)
    executed_cells = [
        cell for cell in nbformat.read(executed, as_version=4).cells if INJECTED_TAG not in _tags(cell)
    ]
    if len(executed_cells) != len(notebook.cells):
        raise ValueError(f"{executed} does not have the cells of {source}; was it run from it?")
    for cell, ran in zip(notebook.cells, executed_cells, strict=True):
        if is_checked(cell):
            cell.outputs = ran.outputs
    nbformat.write(stripped(notebook), source)


def strip_notebooks(notebooks_dir: Path = NOTEBOOKS_DIR) -> list[Path]:
    """Store each step notebook as the git filter would (`stripped`), keeping the checked cells'
    outputs as they are; returns the notebooks that changed."""
    changed = []
    for step in STEPS:
        path = notebooks_dir / f"{step.name}.ipynb"
        notebook = nbformat.read(path, as_version=4)
        clean = stripped(notebook)
        if clean != notebook:
            nbformat.write(clean, path)
            changed.append(path)
    return changed


def refresh_reference_outputs(notebooks_dir: Path = NOTEBOOKS_DIR) -> None:
    """Run the workbench on the small test world and store the checked cells' outputs."""
    from helpers.core.runner import run_workbench

    with tempfile.TemporaryDirectory() as outputs:
        result = run_workbench(SMALL_WORLD_CONFIG, outputs_dir=Path(outputs), notebooks_dir=notebooks_dir)
        for step in STEPS:
            name = f"{step.name}.ipynb"
            copy_reference_outputs(notebooks_dir / name, result.run_dir / "notebooks" / name)
            print(f"refreshed {name}")
