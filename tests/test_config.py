"""Config validation end to end: the CLI, `--set` overrides and notebook parameters go through the one
schema (core/settings.py); a valid config round-trips with every default filled; `extends:` merges."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from pydantic import BaseModel

from helpers.core.config import ConfigError, load_config
from helpers.core.context import open_step
from helpers.core.notebook_checks import SMALL_WORLD_CONFIG
from helpers.core.settings import WorkbenchConfig
from helpers.core.steps import CLUSTERING, IDENTITY

ROOT = Path(__file__).resolve().parents[1]
MISSPELLED = """\
extends: {base}
demo: {{customers: 50, seed: 3}}
data: {{raw_dir: {raw}}}
identty:
  method: deterministic
identity:
  match_treshold: 0.5
clustering:
  k_maxx: 4
  algoritms: [kmeans]
  k_max: "ten"
"""
EXPECTED_LINES = (
    "identty: unknown section; did you mean identity?",
    "identity.match_treshold: unknown key; did you mean match_threshold?",
    "clustering.k_maxx: unknown key; did you mean k_max?",
    "clustering.algoritms: unknown key; did you mean algorithms?",
)


def _cli(*arguments: str, module: bool = True) -> tuple[subprocess.CompletedProcess[str], float]:
    """`python -m helpers <arguments>` (or `python <arguments>`), its result and wall time."""
    started = time.perf_counter()
    completed = subprocess.run(
        [sys.executable, *(["-m", "helpers"] if module else []), *arguments],
        capture_output=True, text=True, cwd=ROOT, env=os.environ.copy(), check=False, timeout=60,
    )  # fmt: skip
    return completed, time.perf_counter() - started


def test_cli_stops_a_misspelled_config_fast_naming_every_key(tmp_path: Path) -> None:
    raw = tmp_path / "raw"  # empty: a run that got past validation would generate the demo world here
    raw.mkdir()
    config = tmp_path / "my.yml"
    config.write_text(MISSPELLED.format(base=SMALL_WORLD_CONFIG, raw=raw), encoding="utf-8")
    outputs = tmp_path / "outputs"
    completed, seconds = _cli("run", "--config", str(config), "--outputs", str(outputs), "--quiet")
    assert completed.returncode == 2, completed.stderr
    assert seconds < 10
    message = completed.stderr
    assert message.startswith("error: ") and message.count("error:") == 1
    assert str(config) in message
    for line in EXPECTED_LINES:
        assert line in message
    assert "clustering.k_max: " in message and "'ten'" in message
    assert "5 config problem(s)" in message
    assert "Traceback" not in message and completed.stdout == ""
    assert list(raw.iterdir()) == [] and not outputs.exists()  # no demo data, no run folder


def test_cli_validates_set_overrides_the_same_way(tmp_path: Path) -> None:
    outputs = tmp_path / "outputs"
    completed, seconds = _cli(
        "run", "--config", str(SMALL_WORLD_CONFIG), "--outputs", str(outputs), "--quiet",
        "--set", "clustering.k_maxx=4", "--set", "identity.match_threshold=high",
    )  # fmt: skip
    assert completed.returncode == 2 and seconds < 10
    message = completed.stderr
    assert "--set clustering.k_maxx=4 identity.match_threshold=high" in message
    assert "clustering.k_maxx: unknown key; did you mean k_max?" in message
    assert "identity.match_threshold: " in message and "'high'" in message
    assert "Traceback" not in message and not outputs.exists()


def test_cli_demo_command_validates_too(tmp_path: Path) -> None:
    config = tmp_path / "my.yml"
    config.write_text(MISSPELLED.format(base=SMALL_WORLD_CONFIG, raw=tmp_path / "raw"), encoding="utf-8")
    completed, _ = _cli("demo", "--config", str(config))
    assert completed.returncode == 2
    assert all(line in completed.stderr for line in EXPECTED_LINES)
    assert not (tmp_path / "raw").exists()


@pytest.fixture()
def run_folder(tmp_path: Path) -> Path:
    """A run folder with the small world's frozen config (no run.json: written in place)."""
    folder = tmp_path / "run"
    folder.mkdir()
    frozen = yaml.safe_dump(load_config(SMALL_WORLD_CONFIG), sort_keys=False, allow_unicode=True)
    (folder / "config.yml").write_text(frozen, encoding="utf-8")
    return folder


def test_notebook_parameters_are_validated_by_the_same_schema(run_folder: Path) -> None:
    with pytest.raises(ConfigError) as unknown:
        open_step(CLUSTERING.name, str(run_folder), overrides={"clustering.k_maxx": 4})
    assert "notebook parameters" in str(unknown.value)
    assert "clustering.k_maxx: unknown key; did you mean k_max?" in str(unknown.value)
    with pytest.raises(ConfigError, match=r"clustering\.k_max: .*'ten'"):
        open_step(CLUSTERING.name, str(run_folder), overrides={"clustering.k_max": "ten"})
    with pytest.raises(ConfigError, match=r"identty: unknown section; did you mean identity\?"):
        open_step(IDENTITY.name, str(run_folder), overrides={"identty.method": "deterministic"})
    ctx = open_step(
        CLUSTERING.name, str(run_folder), overrides={"clustering.k_max": 5, "clustering.choose": None}
    )
    assert ctx.settings.clustering.k_max == 5
    assert ctx.settings.clustering.choose == load_config(SMALL_WORLD_CONFIG)["clustering"]["choose"]


def test_a_valid_config_round_trips_with_every_default_filled(tmp_path: Path) -> None:
    minimal = tmp_path / "minimal.yml"  # only the required keys
    minimal.write_text(
        "run: {reference_date: '2026-06-30'}\n"
        "strategy: {capacity: {inbound: {agents: 3, hours_per_day: 8, calls_per_hour: 6, tiers: [high]}}}\n"
    )
    config = load_config(minimal)
    assert set(config) == set(WorkbenchConfig.model_fields)
    defaulted = 0
    for name, field in WorkbenchConfig.model_fields.items():
        model = field.annotation
        assert isinstance(model, type) and issubclass(model, BaseModel)
        assert set(config[name]) == set(model.model_fields), name
        if name not in ("run", "strategy"):  # sections the file leaves out: exactly the schema defaults
            assert config[name] == model().model_dump(mode="json"), name
            defaulted += 1
    assert defaulted == len(WorkbenchConfig.model_fields) - 2
    assert config["strategy"]["capacity"]["inbound"]["cost_per_call"] == 0.0
    for source in (minimal, SMALL_WORLD_CONFIG):
        loaded = load_config(source)
        frozen = tmp_path / f"frozen-{source.stem}.yml"  # what the runner writes into a run folder
        frozen.write_text(yaml.safe_dump(loaded, sort_keys=False, allow_unicode=True), encoding="utf-8")
        assert load_config(frozen) == loaded


def test_extends_merges_section_by_section(tmp_path: Path) -> None:
    (tmp_path / "base").mkdir()
    base = tmp_path / "base" / "base.yml"
    base.write_text(
        f"extends: {SMALL_WORLD_CONFIG}\nidentity: {{match_threshold: 0.8, method: deterministic}}\n"
    )
    child = tmp_path / "child.yml"
    child.write_text("extends: base/base.yml\nidentity: {match_threshold: 0.95}\nrun: {seed: 5}\n")
    config = load_config(child, ["clustering.k_max=6"])
    small = load_config(SMALL_WORLD_CONFIG)
    assert config["identity"]["match_threshold"] == 0.95 and config["identity"]["method"] == "deterministic"
    assert config["run"] == {**small["run"], "seed": 5}
    assert config["data"] == small["data"] and config["clustering"]["k_max"] == 6
    assert "extends" not in config
    missing = tmp_path / "orphan.yml"
    missing.write_text("extends: nowhere.yml\n")
    with pytest.raises(ConfigError, match=r"extends nowhere\.yml, which does not exist"):
        load_config(missing)
    loop = tmp_path / "loop.yml"
    loop.write_text("extends: loop.yml\n")
    with pytest.raises(ConfigError, match="extends itself"):
        load_config(loop)
    typo = tmp_path / "typo.yml"
    typo.write_text("extends: child.yml\nlifecycle: {rulez: x.yml}\n")
    with pytest.raises(
        ConfigError,
        match=r"typo\.yml: 1 config problem.*\n  lifecycle\.rulez: unknown key; did you mean rules\?",
    ):
        load_config(typo)


def test_validation_comes_before_any_heavy_import(tmp_path: Path) -> None:
    config = tmp_path / "my.yml"
    config.write_text(MISSPELLED.format(base=SMALL_WORLD_CONFIG, raw=tmp_path / "raw"), encoding="utf-8")
    completed, _ = _cli_with_import_log("run", "--config", str(config), "--quiet")
    imported = {
        line.split("|")[-1].strip() for line in completed.stderr.splitlines() if "import time:" in line
    }
    assert "helpers.core.settings" in imported and EXPECTED_LINES[0] in completed.stderr
    heavy = {"pandas", "numpy", "papermill", "nbformat", "duckdb", "helpers.core.runner", "helpers.demo"}
    assert not heavy & imported


def _cli_with_import_log(*arguments: str) -> tuple[subprocess.CompletedProcess[str], float]:
    return _cli("-X", "importtime", "-m", "helpers", *arguments, module=False)
