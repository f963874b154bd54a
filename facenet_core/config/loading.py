"""Presets (YAML) + overrides -> a validated Config; the resolved config saved beside a run."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from facenet_core.config.presets import is_short_name, preset_path
from facenet_core.config.schema import Config, bounds_text, canonical_fields, field_bounds
from facenet_core.errors import UserError
from facenet_core.fileio import atomic_write_text

# The key of a preset naming the preset it starts from.
EXTENDS = "extends"
RANGE_ERRORS = ("greater_than", "greater_than_equal", "less_than", "less_than_equal")


class ConfigError(UserError):
    """A preset or override that does not validate; the message names the field."""


def _deep_merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def read_preset(preset: str | os.PathLike, _seen: tuple[Path, ...] = ()) -> dict[str, Any]:
    """The raw mapping of a YAML preset: a packaged preset's short name ('demo') or a file path.

    A preset may start from another: `extends: <name or path>` (a path relative to the preset's own
    folder) reads that one first and merges this one's fields over it, nested mappings key by key.
    """
    path = preset_path(preset)
    data = parse_yaml(path.read_bytes(), f"preset {path}") or {}
    if not isinstance(data, dict):
        raise ConfigError(f"preset {path} must be a mapping of config fields, got {type(data).__name__}")
    parent = data.pop(EXTENDS, None)
    if parent is None:
        return data
    if not isinstance(parent, str) or not parent:
        raise ConfigError(
            f"preset {path}: {EXTENDS} must name a preset (a packaged name or a YAML path), got {parent!r}"
        )
    chain = (*_seen, path.resolve())
    base_preset = parent if is_short_name(parent) else path.parent / parent
    if preset_path(base_preset).resolve() in chain:
        names = " -> ".join(str(p) for p in (*chain, preset_path(base_preset).resolve()))
        raise ConfigError(f"preset {path}: {EXTENDS} makes a cycle ({names}); break it")
    return _deep_merge(canonical_fields(read_preset(base_preset, chain)), canonical_fields(data))


def parse_yaml(text: str | bytes, source: str) -> Any:
    """YAML with only plain types (no python/object tags); ConfigError naming `source`, line and column."""
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as error:
            raise ConfigError(f"{source}: byte {error.start} is not UTF-8: save it as UTF-8 text") from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""
        problem = getattr(error, "problem", None) or str(error).splitlines()[0]
        if "constructor" in problem:
            problem += "; only plain YAML is accepted (mappings, lists, strings, numbers, booleans)"
        raise ConfigError(f"{source} is not valid YAML{where}: {problem}") from None


def format_validation_error(error: ValidationError, source: str) -> str:
    """One line: per bad field its dotted name, the problem (with the allowed range) and the value given."""
    problems = []
    for item in error.errors():
        message = item["msg"].removeprefix("Value error, ")
        bounds = field_bounds(item["loc"]) if item["type"] in RANGE_ERRORS else {}
        if bounds:
            message += f" (allowed range {bounds_text(bounds)})"
        if item["loc"]:
            field = ".".join(str(part) for part in item["loc"])
            problems.append(f"{field}: {message}, got {item.get('input')!r}")
        else:
            problems.append(message)  # a check across fields: the message names them
    return f"invalid configuration ({source}): " + "; ".join(problems)


def load_config(preset: str | os.PathLike | None = None, overrides: dict[str, Any] | None = None) -> Config:
    """Validate a preset merged with overrides (nested mappings merge key by key; the seed's spelling
    of a renamed field counts as the field)."""
    sources = [f"preset {preset}"] if preset else []
    sources += ["overrides"] if overrides else []
    source = " + ".join(sources) or "defaults"
    layers = [read_preset(preset) if preset else {}, overrides or {}]
    try:
        preset_values, override_values = (canonical_fields(layer) for layer in layers)
        return Config.model_validate(_deep_merge(preset_values, override_values))
    except ValidationError as error:
        raise ConfigError(format_validation_error(error, source)) from None
    except ValueError as error:
        raise ConfigError(f"invalid configuration ({source}): {error}") from None


def config_to_dict(config: Config) -> dict[str, Any]:
    """Plain JSON-able mapping of every field, defaults included."""
    return config.model_dump(mode="json")


def save_config(config: Config, path: str | os.PathLike) -> Path:
    """Write the resolved config as YAML (atomically); reloading it gives the same Config."""
    text = yaml.safe_dump(config_to_dict(config), sort_keys=False)
    return atomic_write_text(path, text)
