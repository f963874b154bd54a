"""The served model's predict: base64 photos -> detect, crop and embed as the Python API does;
`detect=false` takes crops; bad input is a 400-class MlflowException naming the row."""

from __future__ import annotations

import base64
import io

import numpy as np
import pytest
import torch
from mlflow.exceptions import MlflowException
from PIL import Image

from facenet_core.detect.select import resized_crop
from facenet_core.inference.embedder import TorchEmbedder
from facenet_core.inference.faces import detect_faces
from facenet_core.inference.model import ModelContract
from facenet_core.models import create_model
from facenet_core.synthetic.render import render_image
from facenet_core.tracking.modelcard import usage
from facenet_core.tracking.pyfunc import OUTPUT_COLUMNS, PhotoEmbedder

CROP_SIZE = 96


@pytest.fixture(scope="module")
def embedder() -> TorchEmbedder:
    torch.manual_seed(0)
    contract = ModelContract(
        crop_method="mtcnn-sandberg",
        crop_image_size=CROP_SIZE,
        crop_margin=16,
        input_size=32,
        mean=(0.5, 0.45, 0.4),
        std=(0.25, 0.22, 0.21),
        embedding_dimension=16,
        distance_metric="euclidean",
        threshold_best_accuracy=1.0,
    )
    return TorchEmbedder(create_model("mobilenetv2", 16), contract)


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def png(pixels: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def frame(*images: str):
    import pandas as pd

    return pd.DataFrame({"image": list(images)})


def test_photos_are_detected_cropped_and_embedded_as_the_python_api_does(embedder):
    faces = [render_image(0, 0, 1), render_image(0, 1, 2)]
    blank = png(np.full((120, 100, 3), 128, dtype=np.uint8))
    out = PhotoEmbedder(embedder).predict(frame(b64(faces[0]), b64(blank), b64(faces[1])))

    assert list(out.columns) == list(OUTPUT_COLUMNS) and len(out) == 3
    photos = [np.asarray(Image.open(io.BytesIO(data)).convert("RGB")) for data in faces]
    found = [photo.faces[0] for photo in detect_faces(photos, embedder.contract.crop_options())]
    expected = embedder.embed(np.stack([face.crop for face in found]))
    for row, face, embedding in zip((0, 2), found, expected, strict=True):
        assert out.face_found[row] and out.box[row] == list(face.box) and out.score[row] == pytest.approx(face.score)
        np.testing.assert_allclose(out.embedding[row], embedding, atol=1e-6)
        assert isinstance(out.embedding[row][0], float) and all(isinstance(v, int) for v in out.box[row])
    assert (out.face_found[1], out.embedding[1], out.box[1], out.score[1]) == (False, None, None, None)


def test_detect_false_takes_crops_and_resizes_them_to_the_contract_crop_size(embedder):
    rng = np.random.default_rng(0)
    exact = rng.integers(0, 256, (CROP_SIZE, CROP_SIZE, 3), dtype=np.uint8)
    larger = rng.integers(0, 256, (130, 110, 3), dtype=np.uint8)
    out = PhotoEmbedder(embedder).predict(frame(b64(png(exact)), b64(png(larger))), params={"detect": False})

    resized = np.asarray(resized_crop(larger, (0, 0, 110, 130), CROP_SIZE))
    expected = embedder.embed(np.stack([exact, resized]))
    np.testing.assert_allclose(np.array(out.embedding.tolist()), expected, atol=1e-6)
    assert out.face_found.tolist() == [True, True] and out.box.tolist() == [None, None]
    assert out.score.tolist() == [None, None]


def test_a_model_trained_without_a_crop_embeds_given_crops_at_their_size_and_refuses_photos(embedder):
    contract = embedder.contract.model_copy(
        update={"crop_method": "none", "crop_image_size": None, "crop_margin": None}
    )
    uncropped = TorchEmbedder(embedder.model, contract)
    rng = np.random.default_rng(1)
    images = [rng.integers(0, 256, shape, dtype=np.uint8) for shape in ((40, 40, 3), (50, 40, 3), (40, 40, 3))]
    out = PhotoEmbedder(uncropped).predict(frame(*(b64(png(i)) for i in images)), params={"detect": False})
    expected = [uncropped.embed(image[None])[0] for image in images]
    np.testing.assert_allclose(np.array(out.embedding.tolist()), np.stack(expected), atol=1e-6)

    with pytest.raises(MlflowException, match="cropped outside the pipeline") as refused:
        PhotoEmbedder(uncropped).predict(frame(b64(png(images[0]))))
    assert refused.value.error_code == "INVALID_PARAMETER_VALUE"


@pytest.mark.parametrize(
    ("model_input", "message"),
    [
        (frame("not base64!"), "image 0: not valid base64"),
        (frame(b64(render_image(0, 0, 1)), b64(b"plain text")), "image 1: not an image file"),
        ({"picture": ["x"]}, "column 'image'"),
        (np.zeros((1, 3, 32, 32), np.float32), "column 'image'"),
    ],
)
def test_bad_input_is_a_client_error_naming_the_row(embedder, model_input, message):
    with pytest.raises(MlflowException, match=message) as refused:
        PhotoEmbedder(embedder).predict(model_input)
    assert refused.value.error_code == "INVALID_PARAMETER_VALUE"


def test_no_rows_gives_an_empty_frame(embedder):
    out = PhotoEmbedder(embedder).predict(frame())
    assert list(out.columns) == list(OUTPUT_COLUMNS) and len(out) == 0


def test_model_card_says_how_to_call_the_model():
    contract = {"crop_method": "mtcnn-sandberg", "crop_image_size": 224, "crop_margin": 0, "input_size": 140}
    contract |= {"embedding_dimension": 512, "distance_metric": "euclidean"}
    text = usage("faces", contract)
    assert "mlflow models serve -m models:/faces@champion --env-manager local" in text
    assert '{"dataframe_split": {"columns": ["image"]' in text and '"params": {"detect": true}' in text
    assert "(224 px, margin 0; the largest, most central face of a photo)" in text
    assert "list of 512 floats" in text and "N x 3 x 140 x 140" in text
    uncropped = usage("faces", {**contract, "crop_method": "none", "crop_image_size": None, "crop_margin": None})
    assert "send faces prepared as its\n  training images were, with `detect=false`" in uncropped


def test_the_raw_model_is_the_served_object_with_its_embedder():
    class Fixed:
        contract = "the contract"

    served = PhotoEmbedder(Fixed())
    assert served.get_raw_model() is served and served.get_raw_model().embedder.contract == "the contract"
