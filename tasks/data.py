"""Tasks that bring data into the workspace: the demo archive, downloads, training manifests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from facenet_core.config import DatasetConfig
from facenet_core.data import manifest as manifest_core
from facenet_core.ingest import prepare as ingest_core
from facenet_core.ingest.download import is_transient
from facenet_core.synthetic import demo as synthetic
from facenet_core.workspace import Workspace
from tasks.caching import file_fingerprint, stage_task
from tasks.results import DemoArchive, ManifestFile, RawData


def transient_failure(task: Any, task_run: Any, state: Any) -> bool:
    """Prefect's retry_condition_fn: retry only when a retry can help (timeouts, resets, 5xx, 408/429).

    The download itself does not retry inside the task (retries=0), so this is the one layer.
    """
    error = state.data if isinstance(state.data, BaseException) else state.result(raise_on_failure=False)
    return isinstance(error, BaseException) and is_transient(error)


def demo_archive_key(params: dict[str, Any]) -> dict[str, Any]:
    """The archive's bytes depend only on the generator's parameters."""
    return {"params": params}


@stage_task(
    stage="demo-archive",
    version=synthetic.STAGE_VERSION,
    key=demo_archive_key,
    outputs=lambda archive: [archive.path],
)
def generate_demo_archive(workspace: Workspace, params: dict[str, Any]) -> DemoArchive:
    """Render the synthetic demo identities and pack them as a checksummed archive."""
    made = synthetic.make_demo_dataset(workspace.root / "demo-source", **params)
    return DemoArchive(Path(made["archive"]), made["sha256"])


def download_key(dataset: DatasetConfig) -> dict[str, Any]:
    """A dataset's files, checksums and layout define what is extracted."""
    return {"dataset": dataset.model_dump(mode="json")}


@stage_task(
    stage="download",
    version=ingest_core.STAGE_VERSION,
    key=download_key,
    outputs=lambda raw: [raw.marker] if raw.marker else [],
    task_run_name="download-{dataset.name}",
    retries=3,
    retry_condition_fn=transient_failure,
)
def download_dataset(workspace: Workspace, dataset: DatasetConfig) -> RawData:
    """Fetch, verify and extract a dataset; returns the folder of identity folders."""
    root = ingest_core.prepare_raw(dataset, workspace, retries=0)
    return RawData(Path(root), ingest_core.completion_marker(dataset, workspace))


def manifest_key(data_fingerprint: str, identities_file: Path | None, validate: bool, dedupe: bool) -> dict[str, Any]:
    """A manifest depends on the images' content, the identities kept and the scan's checks."""
    return {
        "data": data_fingerprint,
        "identities": file_fingerprint(identities_file),
        "validate": validate,
        "dedupe": dedupe,
    }


@stage_task(
    stage="manifest",
    version=manifest_core.STAGE_VERSION,
    key=manifest_key,
    outputs=lambda manifest: [manifest.path],
)
def build_manifest_task(
    workspace: Workspace,
    root: Path,
    out_path: Path,
    data_fingerprint: str,
    identities_file: Path | None = None,
    validate: bool = True,
    dedupe: bool = False,
) -> ManifestFile:
    """Scan a cropped dataset into the Parquet manifest (docs/ARCHITECTURE.md contract)."""
    summary = manifest_core.build_manifest(
        root, out_path, identities_file=identities_file, validate=validate, dedupe=dedupe
    )
    return ManifestFile(out_path, manifest_core.manifest_fingerprint(out_path), summary)
