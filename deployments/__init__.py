"""The presets (`<name>.yaml`) and the dataset catalogue (`datasets.yaml`) shipped with facenet-flow."""

from pathlib import Path

DIR = Path(__file__).resolve().parent
CATALOGUE = DIR / "datasets.yaml"
