"""Packaging: ranges in pyproject.toml, exact versions in requirements.lock matching this environment, and a
wheel that carries the presets and the catalogue and works from any directory without the source tree."""

from __future__ import annotations

import importlib.metadata
import os
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name

REPO = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
LOCK = REPO / "requirements.lock"
# Not locked: the project itself (installed editable on top of the lock) and the installer.
UNLOCKED = {"facenet-flow", "pip"}
PACKAGES = ("facenet_core", "flows", "tasks", "deployments")


def locked() -> dict[str, tuple[Requirement, list[str]]]:
    """Each requirement of the lock with its hashes (continuation lines joined)."""
    text = LOCK.read_text().replace("\\\n", " ")
    entries = {}
    for line in text.splitlines():
        line = line.split(" #", 1)[0].strip()
        if line and not line.startswith("#"):
            spec, *hashes = line.split(" --hash=")
            requirement = Requirement(spec)
            entries[canonicalize_name(requirement.name)] = (requirement, [h.strip() for h in hashes])
    return entries


def pinned_version(requirement: Requirement) -> str:
    (specifier,) = requirement.specifier
    assert specifier.operator == "==", requirement
    return specifier.version


def declared() -> list[Requirement]:
    return [Requirement(text) for text in PYPROJECT["dependencies"] + PYPROJECT["optional-dependencies"]["dev"]]


def test_python_311_to_313_admitted_and_dependencies_are_ranges() -> None:
    python = SpecifierSet(PYPROJECT["requires-python"])
    assert all(version in python for version in ("3.11.0", "3.12.0", "3.13.0")) and "3.10.12" not in python
    for requirement in declared():
        assert requirement.specifier, requirement
        assert not any(spec.operator in ("==", "===") for spec in requirement.specifier), requirement


def test_lock_pins_every_package_with_hashes_within_the_declared_ranges() -> None:
    entries = locked()
    for requirement, hashes in entries.values():
        pinned_version(requirement)
        assert hashes and all(h.startswith("sha256:") and len(h) == 71 for h in hashes), requirement
    for requirement in declared():
        name = canonicalize_name(requirement.name)
        assert name in entries, f"{name} is declared in pyproject.toml but not locked: run `make lock`"
        version = pinned_version(entries[name][0])
        assert requirement.specifier.contains(version, prereleases=True), f"{name}=={version}: run `make lock`"


def test_lock_covers_every_installed_distribution() -> None:
    entries = locked()
    installed = {canonicalize_name(d.metadata["Name"]): d.version for d in importlib.metadata.distributions()}
    unlocked = installed.keys() - entries.keys() - UNLOCKED
    assert not unlocked, f"installed but not in requirements.lock: {sorted(unlocked)} (declare them, `make lock`)"
    for name, (requirement, _) in entries.items():
        if requirement.marker is None or requirement.marker.evaluate():
            assert installed.get(name) == pinned_version(requirement), f"{name}: `make install` installs the lock"


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The project's wheel, built from a copy of the sources (the build writes build/ and *.egg-info)."""
    root = tmp_path_factory.mktemp("wheel")
    source = root / "source"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(REPO / name, source / name)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for name in PACKAGES:
        shutil.copytree(REPO / name, source / name, ignore=ignore)
    command = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", root / "dist"]
    subprocess.run([*map(str, command), str(source)], check=True, capture_output=True, text=True)
    (built,) = (root / "dist").glob("facenet_flow-*.whl")
    return built


@pytest.mark.slow
def test_wheel_ships_the_presets_and_the_catalogue(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    shipped = {f"deployments/{path.name}" for path in (REPO / "deployments").glob("*.yaml")}
    assert shipped >= {"deployments/datasets.yaml", "deployments/demo.yaml", "deployments/lfw_view1.yaml"}
    assert shipped | {"deployments/__init__.py", "flows/cli/__init__.py", "flows/cli/verify.py"} <= names
    assert {name.split("/")[0] for name in names if not name.startswith("facenet_flow-")} == set(PACKAGES)


@pytest.mark.slow
def test_wheel_install_runs_from_another_directory(wheel: Path, tmp_path: Path) -> None:
    site = tmp_path / "site"
    pip = [sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(site), str(wheel)]
    subprocess.run(pip, check=True, capture_output=True, text=True)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    # The wheel's packages ahead of the editable install; the dependencies come from this environment.
    env = {**os.environ, "PYTHONPATH": str(site)}

    facenet = site / "bin" / "facenet"
    done = subprocess.run([str(facenet), "demo", "--help"], cwd=elsewhere, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "facenet demo" in done.stdout and "(default: demo)" in done.stdout

    probe = (
        "import flows.cli, deployments\n"
        "from facenet_core.config import load_config\n"
        "from facenet_core.config.presets import preset_path\n"
        "from facenet_core.ingest.catalogue import BUILTIN, lookup\n"
        "print(flows.cli.__file__, deployments.__file__, preset_path('lfw_view1'), BUILTIN, sep='\\n')\n"
        "print(load_config('lfw_view1').dataset.name, lookup('lfw').format)\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], cwd=elsewhere, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    *paths, last = done.stdout.strip().splitlines()
    assert [Path(path).name for path in paths] == ["__init__.py", "__init__.py", "lfw_view1.yaml", "datasets.yaml"]
    assert all(Path(path).is_relative_to(site) for path in paths), paths
    assert last == "lfw folders"
