"""A tiny preset that runs the whole facenet-train flow in seconds, and the Prefect harness."""

from pathlib import Path

import pytest
import yaml
from support.tiny import TINY


@pytest.fixture
def tiny_preset(tmp_path) -> Path:
    """A preset whose workspace lives in the test's temporary folder."""
    preset = tmp_path / "tiny.yaml"
    preset.write_text(yaml.safe_dump({**TINY, "workspace": str(tmp_path / "workspace")}))
    return preset
