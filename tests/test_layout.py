"""The package layout holds: the import graph follows the step registry and has no loops."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import helpers
from helpers.core.steps import STEPS, artifact_path

PACKAGE_DIR = Path(helpers.__file__).parent
STEP_ORDER = {step.package: position for position, step in enumerate(STEPS)}
# Shared layers: what each may import besides itself.
SHARED_ALLOWED = {"core": {"core", "engine", "demo"}, "engine": {"core"}, "demo": {"core", "engine"}}
EVALUATION_MODULES = {"helpers.demo.truth"}  # planted truth: step packages may evaluate against it


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE_DIR.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def helpers_imports(path: Path) -> set[str]:
    """Every `helpers.*` module a file imports, at any depth (local imports included)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name.startswith("helpers"))
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("helpers"):
            found.add(node.module)
            found.update(
                f"{node.module}.{alias.name}" for alias in node.names
                if (PACKAGE_DIR.parent / node.module.replace(".", "/") / f"{alias.name}.py").is_file()
            )  # fmt: skip
    return found


MODULES = {module_name(path): helpers_imports(path) for path in sorted(PACKAGE_DIR.rglob("*.py"))}


def layer(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else None


def test_every_subpackage_is_a_registered_step_or_a_shared_layer() -> None:
    subpackages = {p.name for p in PACKAGE_DIR.iterdir() if (p / "__init__.py").is_file()}
    assert subpackages == set(STEP_ORDER) | set(SHARED_ALLOWED)


@pytest.mark.parametrize("step", STEPS, ids=lambda step: step.name)
def test_every_step_package_exposes_run_step(step) -> None:
    package = __import__(step.module, fromlist=["run_step"])
    assert callable(package.run_step), f"{step.module} has no run_step"


def layering_violations(modules: dict[str, set[str]]) -> list[str]:
    """Imports that break the layering: a shared layer importing a step, or a step a later step."""
    violations = []
    for module, imported in modules.items():
        own = layer(module)
        if own not in SHARED_ALLOWED and own not in STEP_ORDER:  # the entry point (`__main__`) uses all
            continue
        for target in imported:
            other = layer(target)
            if other is None or other == own or target in EVALUATION_MODULES:
                continue
            if own in SHARED_ALLOWED:
                allowed = other in SHARED_ALLOWED[own]
            else:
                allowed = other in ("core", "engine") or (
                    other in STEP_ORDER and STEP_ORDER[other] < STEP_ORDER[own]
                )
            if not allowed:
                violations.append(f"{module} imports {target}")
    return sorted(violations)


def test_no_module_imports_a_later_step() -> None:
    assert not layering_violations(MODULES), "\n".join(layering_violations(MODULES))


def test_layering_rule_catches_later_steps_demo_and_core_importing_steps() -> None:
    planted = {
        "helpers.lifecycle.stages": {
            "helpers.strategy.migration",
            "helpers.features.clv",
            "helpers.demo.truth",
            "helpers.core.runs",
        },
        "helpers.features.build": {"helpers.demo.world"},
        "helpers.core.runs": {"helpers.identity.merge"},
    }
    assert layering_violations(planted) == [
        "helpers.core.runs imports helpers.identity.merge",
        "helpers.features.build imports helpers.demo.world",
        "helpers.lifecycle.stages imports helpers.strategy.migration",
    ]


def test_import_graph_has_no_cycles() -> None:
    graph = {
        module: {target for target in imported if target in MODULES and target != module}
        for module, imported in MODULES.items()
    }
    state: dict[str, str] = {}
    cycles = []

    def visit(node: str, trail: list[str]) -> None:
        state[node] = "open"
        for target in sorted(graph[node]):
            if state.get(target) == "open":
                cycles.append(" -> ".join([*trail[trail.index(target) :], target]))
            elif target not in state:
                visit(target, [*trail, target])
        state[node] = "done"

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])
    assert not cycles, "\n".join(cycles)


def test_every_step_reads_only_what_an_earlier_step_writes() -> None:
    written: set[str] = set()
    for step in STEPS:
        unknown = set(step.reads) - written
        assert not unknown, f"{step.name} reads {sorted(unknown)}, which no earlier step writes"
        assert all(artifact.startswith(f"{step.name}/") for artifact in step.writes), step.name
        written |= set(step.writes)


def test_every_step_notebook_exists_in_run_order() -> None:
    notebooks = sorted(path.name for path in STEPS[0].notebook.parent.glob("[0-9][0-9]_*.ipynb"))
    assert notebooks == [step.notebook.name for step in STEPS]


@pytest.mark.slow
@pytest.mark.xdist_group("small_world")
def test_a_finished_run_holds_every_registered_artifact(small_run) -> None:
    missing = [
        artifact for step in STEPS for artifact in step.writes
        if not artifact_path(small_run.run_dir, artifact).is_file()
    ]  # fmt: skip
    assert not missing, missing
