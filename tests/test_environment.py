"""The conda and pip install paths pin the same versions, and the lock agrees with both."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
PIN = re.compile(r"^([A-Za-z0-9_.\-]+)==([^\s;#]+)$")


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
