"""Presets by short name (a YAML file shipped in the `deployments` package) or by path."""

from __future__ import annotations

import os
from pathlib import Path

from deployments import CATALOGUE, DIR
from facenet_core.errors import UserError
from facenet_core.safepath import safe_name

SUFFIXES = (".yaml", ".yml")


def preset_names() -> list[str]:
    """The short names of the packaged presets (every YAML file of the package but the catalogue)."""
    return sorted(path.stem for path in DIR.glob("*.yaml") if path != CATALOGUE)


def is_short_name(preset: str | os.PathLike) -> bool:
    """True for a name without a path separator or a .yaml/.yml suffix, such as 'lfw_view1'."""
    text = os.fspath(preset)
    separators = {"/", os.sep, os.altsep} - {None}
    return not text.lower().endswith(SUFFIXES) and not any(sep in text for sep in separators)


def preset_path(preset: str | os.PathLike) -> Path:
    """The preset file: a short name is looked up in the packaged presets, anything else is a path."""
    names = ", ".join(preset_names())
    if is_short_name(preset):
        name = safe_name(os.fspath(preset), what="preset name")
        if name not in preset_names():
            raise UserError(f"preset {name!r} is not a packaged preset ({names}): name one of them or give a file path")
        return DIR / f"{name}.yaml"
    path = Path(preset)
    if not path.is_file():
        raise UserError(f"preset {path} not found: give the path of a YAML file or a packaged preset name ({names})")
    return path
