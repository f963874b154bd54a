"""The registered model as a service and outside this checkout: `mlflow models serve` answers JSON
photos with the embeddings of the Python API, and a Python without facenet-flow, refusing pickles,
loads the model with the code and pinned requirements it carries and embeds a photo."""

from __future__ import annotations

import base64
import io
import json
import os
import subprocess
import sys
import sysconfig
import urllib.error
import urllib.request
from importlib import metadata
from pathlib import Path

import mlflow
import numpy as np
import pytest
import torch
from PIL import Image
from support.processes import BIN, free_port, service_env, start, stop, wait_for_http

from facenet_core.config.schema import Config, EvalSet
from facenet_core.inference.embedder import TorchEmbedder
from facenet_core.inference.faces import detect_faces
from facenet_core.inference.model import load_model
from facenet_core.models import create_model
from facenet_core.synthetic.render import render_image
from facenet_core.tracking.pyfunc import WEIGHTS_FILE
from facenet_core.tracking.registry import register_best
from facenet_core.tracking.runs import open_run
from facenet_core.train.checkpoints import load_checkpoint, save_checkpoint

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
CHAMPION = "models:/facenet@champion"
# Two photos of one person, one of another.
LFW_PHOTOS = (
    "Aaron_Peirsol/Aaron_Peirsol_0001.jpg",
    "Aaron_Peirsol/Aaron_Peirsol_0002.jpg",
    "Abdullah_Gul/Abdullah_Gul_0001.jpg",
)
# Run by `python -I -S`: no site-packages .pth file (the editable install's finder), no cwd, no PYTHONPATH.
OUTSIDE = """
import ast, base64, importlib.util, json, sys
site, repo, photo = sys.argv[1:4]
sys.path.append(site)
assert not [p for p in sys.path if p == repo or p.startswith(repo + "/") and p != site], sys.path  # .venv aside
assert importlib.util.find_spec("facenet_core") is None, "facenet_core importable before loading"
import mlflow.pyfunc, pandas as pd
model = mlflow.pyfunc.load_model("models:/facenet@champion")
out = model.predict(pd.DataFrame({"image": [photo]}))
imported = set()
for name, module in list(sys.modules.items()):
    if name.startswith("facenet_core") and getattr(module, "__file__", None):
        for node in ast.walk(ast.parse(open(module.__file__).read())):
            if isinstance(node, ast.Import):
                imported.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                imported.add(node.module.split(".")[0])
json.dump({"embedding": out.embedding[0], "box": out.box[0], "code": sys.modules["facenet_core"].__file__,
           "imported": sorted(imported - set(sys.stdlib_module_names))}, sys.stdout)
"""


def b64_file(path: Path) -> str:
    return base64.b64encode(path.read_bytes()).decode("ascii")


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory):
    """A mobilenetv2 (random weights) registered as facenet@champion by `register_best` in a fresh
    workspace; yields its tracking URI, MLflow pointed at it for the module's tests only."""
    import mlflow.tracking._model_registry.utils as registry_utils
    import mlflow.tracking._tracking_service.utils as tracking_utils
    import mlflow.tracking.fluent as fluent

    tmp = tmp_path_factory.mktemp("registry")
    config = Config(
        workspace=str(tmp / "workspace"),
        model_architecture="mobilenetv2",
        embedding_dimension=16,
        image_size=32,
        eval_sets=[EvalSet(name="lfw", root=str(tmp / "lfw"), pairs=str(tmp / "pairs.txt"))],
    )
    torch.manual_seed(3)
    state = {
        "epoch": 1,
        "embedding_dimension": 16,
        "model_state_dict": create_model("mobilenetv2", 16).state_dict(),
        "model_architecture": "mobilenetv2",
        "best_distance_threshold": 1.1,
        "image_size": 32,
        "normalize_mean": config.normalize_mean,
        "normalize_std": config.normalize_std,
    }
    checkpoint = save_checkpoint(tmp / "best.pt", state)
    with pytest.MonkeyPatch.context() as patch:
        patch.delenv("MLFLOW_TRACKING_URI", raising=False)
        patch.setattr(tracking_utils, "_tracking_uri", tracking_utils._tracking_uri)
        patch.setattr(registry_utils, "_registry_uri", registry_utils._registry_uri)
        patch.setattr(fluent, "_active_experiment_id", fluent._active_experiment_id)
        metrics = {"accuracy": 0.8, "roc_auc": 0.85, "best_distance_threshold": 1.1}
        registered = register_best(config, open_run(config, "served"), checkpoint, metrics, "c" * 64)
        assert registered["alias"] == "champion"
        yield mlflow.get_tracking_uri()


def python_api(paths: list[Path], tracking_uri: str) -> tuple[np.ndarray, list]:
    """What `facenet verify` computes: the champion with its contract, detect_faces, TorchEmbedder."""
    loaded = load_model(CHAMPION, tracking_uri=tracking_uri)
    faces = [photo.faces[0] for photo in detect_faces(paths, loaded.contract.crop_options())]
    return TorchEmbedder(loaded.model, loaded.contract).embed(np.stack([face.crop for face in faces])), faces


def distances(embeddings: np.ndarray) -> np.ndarray:
    return np.linalg.norm(embeddings[:, None, :] - embeddings[None, :, :], axis=-1)


def invoke(port: int, images: list[str], **params) -> dict:
    body = {"dataframe_split": {"columns": ["image"], "data": [[image] for image in images]}}
    if params:
        body["params"] = params
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/invocations",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=120) as response:
        return json.loads(response.read())


def test_served_model_embeds_json_photos_as_the_python_api_does(registry, lfw_dir, tmp_path):
    paths = [lfw_dir / "lfw-deepfunneled" / name for name in LFW_PHOTOS]
    expected, faces = python_api(paths, registry)
    port = free_port()
    args = [str(BIN / "mlflow"), "models", "serve", "-m", CHAMPION, "--env-manager", "local"]  # runs uvicorn: PATH
    server = start(
        [*args, "-h", "127.0.0.1", "-p", str(port)],
        service_env(MLFLOW_TRACKING_URI=registry, PATH=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"),
        tmp_path / "serve.log",
        cwd=tmp_path,
    )
    try:
        wait_for_http(f"http://127.0.0.1:{port}/ping", timeout=600, process=server)
        rows = invoke(port, [b64_file(path) for path in paths])["predictions"]
        assert [row["face_found"] for row in rows] == [True] * 3
        assert [row["box"] for row in rows] == [list(face.box) for face in faces]
        served = np.array([row["embedding"] for row in rows])
        np.testing.assert_allclose(distances(served), distances(expected), atol=1e-5)
        assert distances(served)[0, 1] > 0 and distances(served)[0, 2] > 0  # three different faces

        crops = []
        for face in faces:
            buffer = io.BytesIO()
            Image.fromarray(face.crop).save(buffer, format="PNG")
            crops.append(base64.b64encode(buffer.getvalue()).decode("ascii"))
        given = invoke(port, crops, detect=False)["predictions"]
        assert [(row["face_found"], row["box"], row["score"]) for row in given] == [(True, None, None)] * 3
        np.testing.assert_allclose(np.array([row["embedding"] for row in given]), served, atol=1e-5)

        with pytest.raises(urllib.error.HTTPError) as refused:
            invoke(port, ["not base64!"])
        assert refused.value.code == 400 and "image 0: not valid base64" in refused.value.read().decode()
    finally:
        stop(server)


def test_model_loads_and_embeds_where_facenet_flow_is_not_installed(registry, tmp_path):
    photo = base64.b64encode(render_image(5, 2, 1)).decode("ascii")
    site = sysconfig.get_paths()["purelib"]
    env = service_env(MLFLOW_TRACKING_URI=registry, MLFLOW_ALLOW_PICKLE_DESERIALIZATION="false")
    env.pop("PYTHONPATH", None)
    result = subprocess.run(
        [sys.executable, "-I", "-S", "-c", OUTSIDE, site, str(REPO), photo],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    outside = json.loads(result.stdout)
    model_dir = Path(mlflow.artifacts.download_artifacts(CHAMPION, tracking_uri=registry))
    assert "/code/facenet_core/" in outside["code"] and not outside["code"].startswith(str(REPO))

    photo_path = tmp_path / "face.jpg"
    photo_path.write_bytes(base64.b64decode(photo))
    expected, faces = python_api([photo_path], registry)
    assert outside["box"] == list(faces[0].box)
    np.testing.assert_allclose(outside["embedding"], expected[0], atol=1e-5)

    # What the carried code imports is pinned, at the versions of this environment.
    pins = dict(line.split("==") for line in (model_dir / "requirements.txt").read_text().split())
    assert all(metadata.version(name) == version for name, version in pins.items())
    distributions = metadata.packages_distributions()
    needed = {dist.lower().replace("_", "-") for top in outside["imported"] for dist in distributions.get(top, [top])}
    needed -= {"facenet-flow", "mlflow-skinny", "mlflow-tracing"}  # the carried code; parts of mlflow
    assert needed <= {name.lower().replace("_", "-") for name in pins}, needed
    assert {"torch", "torchvision", "timm", "numpy", "pillow", "mlflow", "pandas"} <= set(pins)

    # The pyfunc's weights: plain tensors a weights-only load reads, the architecture named beside them.
    weights = load_checkpoint(model_dir / WEIGHTS_FILE)
    assert (weights["model_architecture"], weights["embedding_dimension"]) == ("mobilenetv2", 16)
    assert sorted(p.name for p in (model_dir / "code").iterdir()) == ["deployments", "facenet_core"]
