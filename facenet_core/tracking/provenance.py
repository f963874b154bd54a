"""Where a run's code and environment came from: git commit, installed packages, fingerprints."""

from __future__ import annotations

import functools
import hashlib
import subprocess
from importlib import metadata
from pathlib import Path

PACKAGE_ROOT = Path(__file__).resolve().parents[2]

TAG_RUN_KEY = "facenet.run_key"
TAG_MANIFEST = "facenet.manifest_fingerprint"
TAG_FLOW_RUN = "prefect.flow_run_id"
TAG_PACKAGES = "facenet.packages_sha256"
TAG_GIT_COMMIT = "mlflow.source.git.commit"
TAG_GIT_DIRTY = "facenet.git_dirty"


def eval_set_tag(name: str) -> str:
    """Tag holding the fingerprint of evaluation set `name`."""
    return f"facenet.eval_set.{name}.fingerprint"


def provenance_tags(
    *,
    manifest_fingerprint: str | None = None,
    eval_fingerprints: dict[str, str] | None = None,
    flow_run_id: str | None = None,
) -> dict[str, str]:
    """Tags naming the training data, the evaluation sets and the orchestrating flow run."""
    tags: dict[str, str] = {}
    if manifest_fingerprint:
        tags[TAG_MANIFEST] = manifest_fingerprint
    for name, fingerprint in (eval_fingerprints or {}).items():
        tags[eval_set_tag(name)] = fingerprint
    if flow_run_id:
        tags[TAG_FLOW_RUN] = str(flow_run_id)
    return tags


def git_state(root: Path = PACKAGE_ROOT) -> dict[str, str]:
    """Commit and dirty flag of the checkout holding the code, or {} outside a git repository."""
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, check=True, timeout=30
        ).stdout.strip()
        status = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=root,
            capture_output=True,
            text=True,
            check=True,
            timeout=30,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return {}
    return {TAG_GIT_COMMIT: commit, TAG_GIT_DIRTY: str(bool(status.strip())).lower()}


@functools.cache
def package_list() -> str:
    """The installed distributions as `name==version` lines, sorted: `pip freeze` without pip."""
    lines = {f"{dist.metadata['Name']}=={dist.version}" for dist in metadata.distributions() if dist.metadata["Name"]}
    return "\n".join(sorted(lines, key=str.lower)) + "\n"


def text_sha256(text: str) -> str:
    """Hex sha256 of a text's UTF-8 bytes."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()
