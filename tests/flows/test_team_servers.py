"""A team's setup for real: a Prefect server and worker, an `mlflow server` over HTTP proxying the
artifacts (`--serve-artifacts`), both on PostgreSQL (SQLite where PostgreSQL is not installed); the
facenet-train deployment registers the model and `models:/facenet@champion` loads back through the server."""

import base64
import contextlib
import io
import json
import re
import sqlite3
import subprocess
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from mlflow import MlflowClient
from PIL import Image
from support.processes import BIN, prefect_server, start, stop
from support.servers import mlflow_server, postgres_cluster, postgres_unavailable, wait_for_mlflow
from support.tiny import TINY

from facenet_core.fileio import sha256_file
from facenet_core.tracking.pyfunc import prepare_faces
from facenet_core.tracking.registry import TAG_CHECKPOINT, TAG_REGISTERED
from facenet_core.train.checkpoints import load_model_from_checkpoint

REPO = Path(__file__).resolve().parents[2]
# PostgreSQL when its server programs are installed (.ci/run installs them), else SQLite for both.
BACKEND = "sqlite" if postgres_unavailable() else "postgresql"
pytestmark = pytest.mark.slow


def prefect(args: list[str], env: dict, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(BIN / "prefect"), *args], env=env, cwd=REPO, capture_output=True, text=True, timeout=timeout
    )


def png_bytes(pixels: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def query(connect, sql: str, *params) -> list[tuple]:
    """Rows of one query through a DB-API connection factory (the servers' own databases)."""
    connection = connect()
    try:
        cursor = connection.cursor()
        cursor.execute(sql, params)
        return cursor.fetchall()
    finally:
        connection.close()


@contextlib.contextmanager
def backing_stores(backend: str, tmp_path: Path):
    """Prefect's database URL (None: its default SQLite), MLflow's backend store URI, a connection
    factory per database, and the DB-API parameter mark."""
    if backend == "postgresql":
        import psycopg2

        with postgres_cluster() as cluster:
            for database in ("prefect", "mlflow"):
                cluster.create_database(database)
            yield (
                cluster.url("prefect", "asyncpg"),
                cluster.url("mlflow", "psycopg2"),
                lambda db: lambda: psycopg2.connect(cluster.url(db)),
                "%s",
            )
    else:
        files = {"prefect": tmp_path / "prefect-home" / "prefect.db", "mlflow": tmp_path / "mlflow.db"}
        yield None, f"sqlite:///{files['mlflow']}", lambda db: lambda: sqlite3.connect(files[db]), "?"


@pytest.mark.parametrize("backend", [BACKEND])
def test_deployment_through_team_servers_registers_and_serves_champion(tmp_path, monkeypatch, backend):
    artifacts = tmp_path / "mlflow-artifacts-store"
    workspace = tmp_path / "ws"
    mlflow_process = prefect_process = worker = None
    with backing_stores(backend, tmp_path) as (prefect_db, mlflow_store, connect, mark):
        try:
            mlflow_process, tracking_uri = mlflow_server(tmp_path, mlflow_store, artifacts)
            prefect_process, env = prefect_server(tmp_path, database_url=prefect_db)
            wait_for_mlflow(mlflow_process, tracking_uri)
            # Flow runs clone this checkout at its commit (whatever its `origin` is, if any).
            env = {**env, "FACENET_GIT_REPOSITORY": REPO.as_uri()}
            assert prefect(["work-pool", "create", "facenet", "--type", "process"], env).returncode == 0
            deployed = prefect(["--no-prompt", "deploy", "--name", "facenet-train"], env)
            assert deployed.returncode == 0, deployed.stdout + deployed.stderr
            # What a team's worker needs: the Prefect API and the MLflow server, nothing else.
            worker_env = {**env, "MLFLOW_TRACKING_URI": tracking_uri}
            worker = start(
                [str(BIN / "prefect"), "worker", "start", "--pool", "facenet"], worker_env, tmp_path / "w.log"
            )

            preset = tmp_path / "tiny.yaml"
            preset.write_text(yaml.safe_dump({**TINY, "workspace": str(workspace)}))
            run = prefect(
                ["deployment", "run", "facenet-train/facenet-train", "--params", json.dumps({"preset": str(preset)})]
                + ["--watch", "--watch-timeout", "900"],
                env,
                timeout=960,
            )
            submitted = re.search(r"UUID: ([0-9a-f-]{36})", run.stdout)
            assert submitted, run.stdout + run.stderr
            flow_run_id = submitted.group(1)
            # The servers keep their state in their own databases.
            flow_runs = query(connect("prefect"), f"SELECT state_type FROM flow_run WHERE id = {mark}", flow_run_id)
            assert flow_runs == [("COMPLETED",)], run.stdout + (tmp_path / "w.log").read_text()
            assert query(connect("mlflow"), "SELECT name FROM registered_models") == [("facenet",)]

            client = MlflowClient(tracking_uri, registry_uri=tracking_uri)  # not an earlier test's registry
            champion = client.get_model_version_by_alias("facenet", "champion")
            tracking_run = client.get_run(champion.run_id)
            assert tracking_run.data.tags[TAG_REGISTERED] == f"facenet/{champion.version}"
            assert tracking_run.info.artifact_uri.startswith("mlflow-artifacts:/")

            # models:/facenet@champion through the server, from this process, as a team member would.
            monkeypatch.setenv("MLFLOW_TRACKING_URI", tracking_uri)
            mlflow.set_tracking_uri(tracking_uri)
            mlflow.set_registry_uri(tracking_uri)
            try:
                embedder = mlflow.pyfunc.load_model("models:/facenet@champion")
                module = mlflow.pytorch.load_model("models:/facenet@champion", map_location="cpu")
            finally:
                mlflow.set_tracking_uri(None)
                mlflow.set_registry_uri(None)
        finally:
            for process in (worker, prefect_process, mlflow_process):
                if process is not None:
                    stop(process)

    contract = embedder.get_raw_model().embedder.contract  # the pyfunc takes base64 photos, or crops
    size = contract.crop_image_size
    crops = np.random.default_rng(0).integers(0, 256, (3, size, size, 3), dtype=np.uint8)
    images = pd.DataFrame({"image": [base64.b64encode(png_bytes(crop)).decode() for crop in crops]})
    embeddings = np.array(embedder.predict(images, params={"detect": False}).embedding.tolist())
    batch = prepare_faces(list(crops), contract.model_dump())
    assert embeddings.shape == (3, TINY["embedding_dimension"])
    np.testing.assert_allclose(np.linalg.norm(embeddings, axis=1), 1.0, rtol=1e-4)
    with torch.inference_mode():
        np.testing.assert_allclose(module.eval()(torch.from_numpy(batch)).numpy(), embeddings, atol=1e-5)
    # The registered model computes what the checkpoint the flow tagged on its version computes.
    checkpoints = [
        p for p in workspace.glob("runs/*/checkpoints/*.pt") if sha256_file(p) == champion.tags[TAG_CHECKPOINT]
    ]
    assert checkpoints
    reference, _ = load_model_from_checkpoint(checkpoints[0], device="cpu")
    with torch.inference_mode():
        np.testing.assert_allclose(reference(torch.from_numpy(batch)).numpy(), embeddings, atol=1e-5)

    # Artifacts live behind the server (proxied), not in the workspace.
    logged = [p.parent for p in artifacts.rglob("MLmodel")]
    assert len(logged) == 1 and (logged[0] / "MODEL_CARD.md").is_file()
    assert not (workspace / "mlflow.db").exists() and not (workspace / "mlflow-artifacts").exists()
    assert not list(workspace.rglob("MLmodel"))
