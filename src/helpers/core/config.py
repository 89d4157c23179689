"""Run configuration: a YAML file plus `section.key=value` overrides, validated by one schema.

The schema (`helpers.core.settings.WorkbenchConfig`) holds every key, type and default; the
config returned here is the validated one with every default filled in.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from helpers.core.paths import PROJECT_ROOT
from helpers.core.settings import WorkbenchConfig, validation_messages

DEFAULT_CONFIG = PROJECT_ROOT / "config" / "demo.yml"


class ConfigError(ValueError):
    """The run config is missing, unreadable or inconsistent."""


def load_config(path: str | Path | None = None, overrides: list[str] | None = None) -> dict[str, Any]:
    """Read a YAML config (default: the demo config), apply `a.b.c=value` overrides and validate.

    Returns the config with every default filled in; raises `ConfigError` naming the file and
    every unknown key (with the closest valid one) or wrong value.
    """
    config_path = resolve_path(path) if path else DEFAULT_CONFIG
    if not config_path.is_file():
        raise ConfigError(f"Config file not found: {config_path}")
    config = _read_with_base(config_path)
    for override in overrides or []:
        config = apply_override(config, override)
    source = str(config_path) + (f" with --set {' '.join(overrides)}" if overrides else "")
    return validate_config(config, source)


def validate_config(config: dict[str, Any], source: str = "the run config") -> dict[str, Any]:
    """The config checked against the schema, defaults filled in; `ConfigError` lists every problem."""
    return parse_config(config, source).model_dump(mode="json")


def parse_config(config: dict[str, Any], source: str = "the run config") -> WorkbenchConfig:
    """The typed config; `ConfigError` names `source`, each bad key path and the closest valid key."""
    try:
        return WorkbenchConfig.model_validate(config)
    except ValidationError as error:
        problems = validation_messages(error)
        raise ConfigError(
            f"{source}: {len(problems)} config problem(s):\n" + "\n".join(f"  {line}" for line in problems)
        ) from None


def _read_with_base(config_path: Path, seen: tuple[Path, ...] = ()) -> dict[str, Any]:
    """Read one YAML config; `extends: other.yml` (relative to this file) is merged underneath."""
    if config_path in seen:
        raise ConfigError(f"Config {config_path} extends itself (via {seen})")
    try:
        config = yaml.safe_load(config_path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as error:
        raise ConfigError(f"Config file {config_path} is not valid YAML: {error}") from error
    base_name = config.pop("extends", None)
    if base_name is None:
        return config
    base_path = (config_path.parent / base_name).resolve()
    if not base_path.is_file():
        raise ConfigError(f"Config {config_path} extends {base_name}, which does not exist ({base_path})")
    return deep_merge(_read_with_base(base_path, (*seen, config_path)), config)


def deep_merge(base: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    """`base` with `update` merged in, section by section."""
    merged = copy.deepcopy(base)
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def apply_override(config: dict[str, Any], override: str, value: Any = None) -> dict[str, Any]:
    """Return a copy of `config` with one override: `a.b.c=value` (value parsed as YAML), or the
    key path `a.b.c` and a `value`."""
    if value is not None:
        dotted = override
    elif "=" not in override:
        raise ConfigError(f"Override {override!r} must look like section.key=value")
    else:
        dotted, raw_value = override.split("=", 1)
        value = yaml.safe_load(raw_value)
    updated = copy.deepcopy(config)
    node = updated
    *parents, leaf = dotted.strip().split(".")
    for part in parents:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise ConfigError(f"Override {override!r}: {part!r} is not a section")
    node[leaf] = value
    return updated


def resolve_path(path: str | Path) -> Path:
    """Resolve a path from the project root unless it is absolute."""
    candidate = Path(path).expanduser()
    return candidate if candidate.is_absolute() else PROJECT_ROOT / candidate


def setting(config: dict[str, Any], dotted: str, default: Any = None) -> Any:
    """Look up `section.key` in a config, with a default."""
    node: Any = config
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return default
        node = node[part]
    return node
