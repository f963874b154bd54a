"""Session-wide test settings: telemetry off, temporary files contained, the shared LFW copy located (or skipped)."""

import atexit
import os
import shutil
import tempfile
from pathlib import Path

import pytest

from facenet_core.env import disable_telemetry

disable_telemetry()

REPO_ROOT = Path(__file__).resolve().parents[1]
LFW_DIR = Path(os.environ.get("FACENET_LFW_DIR", REPO_ROOT.parent / "shared" / "data" / "lfw"))


@pytest.fixture(scope="session", autouse=True)
def contained_temporary_files(tmp_path_factory):
    """Point TMPDIR (ours, torch's, torchrun's, subprocesses') at one folder, removed when the process exits."""
    tmp_path_factory.getbasetemp()  # pytest's own folders stay where they are
    folder = tempfile.mkdtemp(prefix="facenet-tests-")
    # atexit runs last-registered first: the Prefect harness removes its folder inside this one before this runs.
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    previous = os.environ.get("TMPDIR")
    os.environ["TMPDIR"] = folder
    tempfile.tempdir = folder
    yield
    tempfile.tempdir = None
    if previous is None:
        os.environ.pop("TMPDIR", None)
    else:
        os.environ["TMPDIR"] = previous


@pytest.fixture(scope="session")
def lfw_dir() -> Path:
    """The full LFW copy (deep-funneled images + pairs files); skips the test when absent."""
    if not (LFW_DIR / "lfw-deepfunneled").is_dir():
        pytest.skip(f"LFW not found at {LFW_DIR} (set FACENET_LFW_DIR to its folder)")
    return LFW_DIR


@pytest.fixture(scope="session")
def prefect_harness(tmp_path_factory):
    """One temporary Prefect API for the whole session, results under a temporary folder."""
    os.environ["PREFECT_LOCAL_STORAGE_PATH"] = str(tmp_path_factory.mktemp("prefect-storage"))
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield
