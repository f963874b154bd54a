"""Small generated inputs for the detect tests: synthetic faces that MTCNN finds, in identity folders."""

import io

import numpy as np
import pytest
import torch
from PIL import Image

from facenet_core.data.synthetic import render_image

torch.set_num_threads(1)


def face_array(index: int, number: int = 1, size: int = 96) -> np.ndarray:
    """A synthetic face picture (RGB uint8) that the detector finds exactly one face in."""
    return np.asarray(Image.open(io.BytesIO(render_image(0, index, number, image_size=size))).convert("RGB"))


@pytest.fixture(scope="session")
def faces() -> list[np.ndarray]:
    return [face_array(i) for i in range(4)]


@pytest.fixture
def tree(tmp_path, faces):
    """input/<identity>/... with a face per file, a blank image, an unreadable file, a tiny image and a stem clash."""
    root = tmp_path / "input"
    (root / "alice").mkdir(parents=True)
    (root / "bob").mkdir()
    Image.fromarray(faces[0]).save(root / "alice" / "a.jpg", quality=95)
    Image.fromarray(faces[1]).save(root / "alice" / "a.png")
    Image.fromarray(faces[2]).save(root / "bob" / "face.png")
    Image.fromarray(np.full((96, 96, 3), 128, np.uint8)).save(root / "bob" / "blank.png")
    (root / "bob" / "broken.jpg").write_bytes(b"not a jpeg")
    Image.fromarray(faces[3][:15, :15]).save(root / "bob" / "tiny.png")
    (root / "bob" / "notes.txt").write_text("ignored")
    return root
