"""The engine seam: no module outside `helpers.engine` reaches an engine directly.

Reaching an engine directly: importing `duckdb` or `pyspark` (anywhere in the module, inside functions
too), Splink's engine-specific database APIs (`DuckDBAPI`, `SparkAPI`: `helpers.engine.splink_api`
gives the configured one), the engine classes (`DuckDBEngine`, `SparkEngine`) or `connect` (an engine
by name, not the configured one: `connect_configured`). The modules that still do are listed once,
per step, in `helpers.engine.base.DUCKDB_ONLY_STEPS` (the runner says which steps' SQL runs on
DuckDB from it); this test fails on a new violator and on a module that is fixed but still listed.
"""

from __future__ import annotations

import ast
from pathlib import Path

from helpers.engine.base import DUCKDB_ONLY_STEPS

SRC = Path(__file__).resolve().parents[1] / "src" / "helpers"
ENGINE_LIBRARIES = {"duckdb", "pyspark"}
ENGINE_NAMES = {"DuckDBAPI", "SparkAPI", "DuckDBEngine", "SparkEngine", "connect"}


def engine_imports(tree: ast.AST) -> set[str]:
    """What a module's code imports that reaches an engine directly (library or name)."""
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {alias.name.split(".")[0] for alias in node.names} & ENGINE_LIBRARIES
            found |= {alias.name for alias in node.names if alias.name.startswith("splink.backends")}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            root = node.module.split(".")[0]
            if root in ENGINE_LIBRARIES:
                found.add(root)
            if root in ("splink", "helpers"):
                found |= {alias.name for alias in node.names} & ENGINE_NAMES
    return found


def modules_reaching_an_engine() -> dict[str, set[str]]:
    """Module name -> its direct engine imports, for every module outside `helpers.engine`."""
    found = {}
    for path in sorted(SRC.rglob("*.py")):
        module = ".".join(path.relative_to(SRC.parent).with_suffix("").parts).removesuffix(".__init__")
        if module == "helpers.engine" or module.startswith("helpers.engine."):
            continue
        names = engine_imports(ast.parse(path.read_text(encoding="utf-8")))
        if names:
            found[module] = names
    return found


def test_the_scan_sees_every_kind_of_direct_engine_import() -> None:
    code = """
import duckdb
from pyspark.sql import SparkSession
from splink import DuckDBAPI, Linker
from helpers.engine.base import DuckDBEngine, SqlEngine, connect, connect_configured
def later():
    import splink.backends.spark
    from helpers.engine.spark import SparkEngine
"""
    assert engine_imports(ast.parse(code)) == {
        "duckdb",
        "pyspark",
        "DuckDBAPI",
        "DuckDBEngine",
        "connect",
        "splink.backends.spark",
        "SparkEngine",
    }
    assert engine_imports(ast.parse("from helpers.engine.base import SqlEngine, connect_configured")) == set()


def test_only_the_listed_modules_reach_an_engine_outside_the_seam() -> None:
    # Being moved behind the seam (issue 14): the modules of DUCKDB_ONLY_STEPS.
    listed = {module for modules in DUCKDB_ONLY_STEPS.values() for module in modules}
    found = modules_reaching_an_engine()
    new = {module: sorted(names) for module, names in found.items() if module not in listed}
    assert not new, f"modules reaching an engine directly (use the configured engine): {new}"
    fixed = listed - set(found)
    assert not fixed, f"behind the seam now, remove from DUCKDB_ONLY_STEPS: {sorted(fixed)}"


def test_no_module_outside_the_seam_imports_pyspark() -> None:
    assert not [module for module, names in modules_reaching_an_engine().items() if "pyspark" in names]
