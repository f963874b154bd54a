"""Locate preset files: as given, else in the project's deployments/ folder."""

from __future__ import annotations

from pathlib import Path

DEPLOYMENTS_DIR = Path(__file__).resolve().parents[1] / "deployments"


def resolve_preset(preset: str | Path) -> Path:
    """The preset's path; a bare name such as 'demo' means deployments/demo.yaml."""
    candidates = [Path(preset), DEPLOYMENTS_DIR / Path(preset).name, DEPLOYMENTS_DIR / f"{preset}.yaml"]
    for candidate in candidates:
        if candidate.is_file():
            return candidate.resolve()
    names = ", ".join(sorted(p.stem for p in DEPLOYMENTS_DIR.glob("*.yaml")))
    raise FileNotFoundError(f"preset {preset!r} not found; presets in {DEPLOYMENTS_DIR}: {names}")
