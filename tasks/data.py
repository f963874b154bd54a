"""Tasks that bring data into the workspace: the demo archive, downloads, manifests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from facenet_core.config import DatasetConfig
from facenet_core.data import manifest as manifest_core
from facenet_core.ingest import prepare as prepare_core
from facenet_core.ingest.download import is_transient
from facenet_core.synthetic import demo as synthetic
from facenet_core.workspace import Workspace
from tasks.caching import file_fingerprint, stage_task


def _files(result: dict[str, Any]) -> list[str]:
    return result["files"]


def transient_failure(task: Any, task_run: Any, state: Any) -> bool:
    """Prefect's retry_condition_fn: retry only when a retry can help (timeouts, resets, 5xx, 408/429).

    The download itself does not retry inside the task (retries=0), so this is the one layer.
    """
    error = state.data if isinstance(state.data, BaseException) else state.result(raise_on_failure=False)
    return isinstance(error, BaseException) and is_transient(error)


@stage_task(
    stage="demo-archive",
    version=synthetic.STAGE_VERSION,
    key_parts=lambda p: {"params": p["params"]},
    outputs=_files,
)
def generate_demo_archive(workspace: str, params: dict[str, Any]) -> dict[str, Any]:
    """Render the synthetic demo identities and pack them as a checksummed archive."""
    out_dir = Workspace(Path(workspace)).root / "demo-source"
    made = synthetic.make_demo_dataset(out_dir, **params)
    return {"archive": str(made["archive"]), "sha256": made["sha256"], "files": [str(made["archive"])]}


@stage_task(
    stage="download",
    version=prepare_core.STAGE_VERSION,
    key_parts=lambda p: {"dataset": p["dataset"]},
    outputs=_files,
    task_run_name="download-{dataset[name]}",
    retries=3,
    retry_condition_fn=transient_failure,
)
def download_dataset(workspace: str, dataset: dict[str, Any]) -> dict[str, Any]:
    """Fetch, verify and extract a dataset; returns the folder of identity folders."""
    root = prepare_core.prepare_raw(DatasetConfig.model_validate(dataset), Workspace(Path(workspace)), retries=0)
    marker = prepare_core.completion_marker(DatasetConfig.model_validate(dataset), Workspace(Path(workspace)))
    return {"root": str(root), "files": [str(marker)] if marker else []}


@stage_task(
    stage="manifest",
    version=manifest_core.STAGE_VERSION,
    key_parts=lambda p: {
        "data": p["data_fingerprint"],
        "identities": file_fingerprint(p["identities_file"]),
        "validate": p["validate"],
        "dedupe": p["dedupe"],
    },
    outputs=_files,
)
def build_manifest(
    workspace: str,
    root: str,
    out_path: str,
    data_fingerprint: str,
    identities_file: str | None = None,
    validate: bool = True,
    dedupe: bool = False,
) -> dict[str, Any]:
    """Scan a cropped dataset into the Parquet manifest (DESIGN.md contract)."""
    summary = manifest_core.build_manifest(
        root, out_path, identities_file=identities_file, validate=validate, dedupe=dedupe
    )
    return {
        "manifest": out_path,
        "fingerprint": manifest_core.manifest_fingerprint(out_path),
        "summary": summary,
        "files": [out_path],
    }
