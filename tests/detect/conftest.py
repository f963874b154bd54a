"""Small inputs for the detect tests: four 96x96 synthetic faces (fixtures/face_<k>.png, rendered once by
facenet_core.synthetic.demo and frozen here) placed in identity folders."""

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

FIXTURES = Path(__file__).parent / "fixtures"

torch.set_num_threads(1)


@pytest.fixture(scope="session")
def faces() -> list[np.ndarray]:
    """Four RGB uint8 pictures in which the detector finds exactly one face each."""
    return [np.asarray(Image.open(FIXTURES / f"face_{k}.png").convert("RGB")) for k in range(4)]


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
