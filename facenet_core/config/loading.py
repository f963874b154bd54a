"""Presets (YAML) + overrides -> a validated Config; the resolved config saved beside a run."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from facenet_core.config.schema import Config
from facenet_core.fileio import atomic_write_text


class ConfigError(ValueError):
    """A preset or override that does not validate; the message names the field."""


def _deep_merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def read_preset(preset: str | os.PathLike) -> dict[str, Any]:
    """The raw mapping of a YAML preset file."""
    path = Path(preset)
    if not path.is_file():
        raise ConfigError(f"preset {path} not found (presets live in deployments/, e.g. deployments/demo.yaml)")
    data = yaml.safe_load(path.read_text()) or {}
    if not isinstance(data, dict):
        raise ConfigError(f"preset {path} must be a mapping of config fields, got {type(data).__name__}")
    return data


def format_validation_error(error: ValidationError, source: str) -> str:
    """One line per bad field: its dotted name, the problem and the value given."""
    lines = [f"invalid configuration ({source}):"]
    for item in error.errors():
        field = ".".join(str(part) for part in item["loc"]) or "(config)"
        lines.append(f"  {field}: {item['msg']}; got {item.get('input')!r}")
    return "\n".join(lines)


def load_config(preset: str | os.PathLike | None = None, overrides: dict[str, Any] | None = None) -> Config:
    """Validate a preset merged with overrides (nested mappings merge key by key)."""
    data = read_preset(preset) if preset else {}
    data = _deep_merge(data, overrides or {})
    try:
        return Config.model_validate(data)
    except ValidationError as error:
        raise ConfigError(format_validation_error(error, str(preset or "overrides"))) from None


def config_to_dict(config: Config) -> dict[str, Any]:
    """Plain JSON-able mapping of every field, defaults included."""
    return config.model_dump(mode="json")


def save_config(config: Config, path: str | os.PathLike) -> Path:
    """Write the resolved config as YAML (atomically); reloading it gives the same Config."""
    text = yaml.safe_dump(config_to_dict(config), sort_keys=False)
    return atomic_write_text(path, text)
