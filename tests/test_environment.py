"""The conda and pip install paths pin the same versions, the lock agrees with both, and every direct
dependency is one the project uses."""

from __future__ import annotations

import json
import re
from importlib import metadata
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
PIN = re.compile(r"^([A-Za-z0-9_.\-]+)==([^\s;#]+)$")
IMPORT = re.compile(r"^\s*(?:from|import)\s+([A-Za-z_]\w*)", re.MULTILINE)
# package data read with importlib.resources, or found by importlib.util.find_spec without importing it
RESOURCE = re.compile(r"(?:files|find_spec)\(\"([A-Za-z_]\w*)\"\)")
# Direct dependencies the code never imports: the tools that run, edit, test and lint it.
TOOLS = {"jupyterlab", "ipykernel", "jupytext", "pytest-xdist", "nbval", "ruff"}


def _pins(lines: list[str]) -> dict[str, str]:
    pins = {}
    for line in lines:
        match = PIN.match(line.strip())
        if match:
            pins[match.group(1).lower().replace("_", "-")] = match.group(2)
    return pins


def test_environment_yml_pins_exactly_what_requirements_pins() -> None:
    requirements = _pins((ROOT / "requirements.txt").read_text().splitlines())
    environment = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip_section = next(item["pip"] for item in environment["dependencies"] if isinstance(item, dict))
    assert "python=3.11" in environment["dependencies"]
    assert _pins(pip_section) == requirements


def test_every_direct_pin_agrees_with_the_full_lock() -> None:
    requirements = _pins((ROOT / "requirements.txt").read_text().splitlines())
    lock = _pins((ROOT / "constraints.txt").read_text().splitlines())
    disagreements = {
        name: (version, lock.get(name)) for name, version in requirements.items() if lock.get(name) != version
    }
    assert disagreements == {}


def test_numpy_stays_below_2_5() -> None:
    requirements = _pins((ROOT / "requirements.txt").read_text().splitlines())
    major, minor = (int(part) for part in requirements["numpy"].split(".")[:2])
    assert (major, minor) < (2, 5)


def test_every_direct_dependency_is_imported_or_a_tool() -> None:
    sources = [
        path.read_text()
        for folder in ("src", "benchmarks", "tests")
        for path in (ROOT / folder).rglob("*.py")
    ]
    for notebook in (ROOT / "notebooks").glob("*.ipynb"):
        cells = json.loads(notebook.read_text())["cells"]
        sources += ["".join(cell["source"]) for cell in cells if cell["cell_type"] == "code"]
    modules = {
        module for text in sources for pattern in (IMPORT, RESOURCE) for module in pattern.findall(text)
    }
    providers = metadata.packages_distributions()
    used = {dist.lower().replace("_", "-") for module in modules for dist in providers.get(module, [])}
    requirements = _pins((ROOT / "requirements.txt").read_text().splitlines())
    assert "umap-learn" not in requirements  # the 2-D map is a PCA now (helpers.clustering.embedding)
    assert sorted(set(requirements) - used - TOOLS) == []
