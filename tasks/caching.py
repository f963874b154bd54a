"""Content-addressed caching for stage tasks (docs/ARCHITECTURE.md "Caching").

A stage's cache key hashes the stage name, its STAGE_VERSION, the content fingerprints of its
inputs and its parameters: never the flow-run id, so finished stages come back Cached across runs.
Each finished stage also records the files it produced with their sha256. A cache hit only counts
while those files still exist and match; otherwise the stale Prefect record is dropped and the
stage runs again. Results are persisted in the workspace's prefect-results/ (Workspace.prefect_results).
"""

from __future__ import annotations

import functools
import inspect
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from prefect import task
from prefect.tasks import exponential_backoff

from facenet_core.fileio import atomic_write_json, sha256_file, sha256_json
from facenet_core.workspace import Workspace

RECORDS_DIR = "outputs"
# Part of every key: results persisted in another form (format 1: plain dicts) are never loaded as
# the typed records of tasks/results.py.
RESULT_FORMAT = 2


def workspace_of(value: Workspace | str) -> Workspace:
    """A task's `workspace` parameter as a Workspace (a task may take its path)."""
    return value if isinstance(value, Workspace) else Workspace.at(value)


def output_record_path(workspace: Workspace, cache_key: str) -> Path:
    return workspace.prefect_results / RECORDS_DIR / f"{cache_key}.json"


def record_outputs(workspace: Workspace, cache_key: str, files: list[Path]) -> dict[str, str]:
    """Remember the sha256 of every file a finished stage produced."""
    digests = {str(Path(f).resolve()): sha256_file(f) for f in files}
    atomic_write_json(output_record_path(workspace, cache_key), {"files": digests})
    return digests


def outputs_still_valid(
    workspace: Workspace,
    cache_key: str,
    allow_missing: Callable[[Path], bool] | None = None,
    still_valid: Callable[[list[Path]], bool] | None = None,
) -> bool:
    """True when every recorded output exists and still has its recorded sha256 (and `still_valid`
    of the recorded files holds, for what their hashes cannot vouch for)."""
    record = output_record_path(workspace, cache_key)
    if not record.is_file():
        return False
    files = json.loads(record.read_text())["files"]
    for name, digest in files.items():
        path = Path(name)
        if not path.is_file():
            if allow_missing is not None and allow_missing(path):
                continue
            return False
        if sha256_file(path) != digest:
            return False
    return still_valid is None or still_valid([Path(name) for name in files])


def stage_key(stage: str, version: int, parts: dict[str, Any]) -> str:
    """Deterministic cache key of one stage invocation."""
    return f"{stage}-v{version}-{sha256_json({'result_format': RESULT_FORMAT, **parts})[:32]}"


def _key_reader(key: Callable[..., dict[str, Any]], fn: Callable) -> Callable[[dict[str, Any]], dict[str, Any]]:
    """parameters -> key(**the parameters it names); a name the task lacks fails here, at import."""
    task_parameters = inspect.signature(fn).parameters
    if "workspace" not in task_parameters:
        raise TypeError(f"stage task {fn.__name__} needs a `workspace` parameter (where its results are kept)")
    names = list(inspect.signature(key).parameters)
    unknown = [name for name in names if name not in task_parameters]
    if unknown:
        raise TypeError(f"cache key {key.__name__} of {fn.__name__} reads {unknown}, which the task does not take")
    defaults = {name: task_parameters[name].default for name in names}

    def read(parameters: dict[str, Any]) -> dict[str, Any]:
        return key(**{name: parameters.get(name, defaults[name]) for name in names})

    return read


def stage_task(
    *,
    stage: str,
    version: int,
    key: Callable[..., dict[str, Any]],
    outputs: Callable[[Any], list[Path]],
    retries: int = 0,
    allow_missing: Callable[[Path], bool] | None = None,
    still_valid: Callable[[list[Path]], bool] | None = None,
    **task_options: Any,
) -> Callable:
    """Make a Prefect task whose cache follows the contract above.

    Args:
        stage: task name and key prefix.
        version: the stage's STAGE_VERSION from facenet_core (bump when outputs would change).
        key: a function of some of the task's parameters, taken by name (checked when the task is
            made) -> the values that define the result (fingerprints, not paths).
        outputs: the task's result -> the files whose sha256 validates a later cache hit.
        retries: retries with exponential backoff (I/O stages).
        allow_missing: files that may legitimately vanish (checkpoints pruned by retention).
        still_valid: the recorded output files -> whether a cache hit still holds, for files the
            outputs stand for but do not hash (the crops listed in a shard's table).
        task_options: further prefect.task options; `task_run_name` (a template such as
            "train-epoch-{epoch}", or a function of `parameters`) names each run in the run graph,
            the stage name when not given.

    The task takes a `workspace` (a Workspace or its path): its output records live there, and the
    caller gives the task `result_storage=workspace.prefect_results`.
    """
    task_options.setdefault("task_run_name", stage)

    def decorate(fn: Callable) -> Callable:
        key_parts = _key_reader(key, fn)

        def key_of(parameters: dict[str, Any]) -> str:
            return stage_key(stage, version, key_parts(parameters))

        def cache_key_fn(context: Any, parameters: dict[str, Any]) -> str:
            cache_key = key_of(parameters)
            workspace = workspace_of(parameters["workspace"])
            if not outputs_still_valid(workspace, cache_key, allow_missing, still_valid):
                (workspace.prefect_results / cache_key).unlink(missing_ok=True)
            return cache_key

        @functools.wraps(fn)
        def body(*args: Any, **kwargs: Any) -> Any:
            bound = inspect.signature(fn).bind(*args, **kwargs)
            bound.apply_defaults()
            result = fn(*args, **kwargs)
            record_outputs(workspace_of(bound.arguments["workspace"]), key_of(dict(bound.arguments)), outputs(result))
            return result

        return task(
            body,
            name=stage,
            cache_key_fn=cache_key_fn,
            persist_result=True,
            retries=retries,
            retry_delay_seconds=exponential_backoff(backoff_factor=2) if retries else 0,
            **task_options,
        )

    return decorate


def tree_fingerprint(root: str | Path) -> str:
    """Cheap content fingerprint of a folder: relative paths, sizes and mtimes of its files."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"folder {root} does not exist")
    entries = []
    for path in sorted(root.rglob("*")):
        if path.is_file() and not path.name.startswith("."):
            stat = path.stat()
            entries.append((path.relative_to(root).as_posix(), stat.st_size, stat.st_mtime_ns))
    return sha256_json(entries)


def file_fingerprint(path: str | Path | None) -> str | None:
    """sha256 of a file, None for no file."""
    return sha256_file(path) if path else None
