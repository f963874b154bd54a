"""Tiny face-like trees and a tiny colour network for the evaluation tests."""

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

PEOPLE = ["Ann", "Bob", "Cid", "Dan", "Eve", "Fay"]
COLOURS = {
    "Ann": (220, 30, 30),
    "Bob": (30, 200, 40),
    "Cid": (40, 40, 210),
    "Dan": (200, 200, 30),
    "Eve": (30, 190, 190),
    "Fay": (190, 40, 190),
}
IMAGES_PER_PERSON = 3


class ColourNet(nn.Module):
    """Embedding = L2-normalised mean colour of the left and right image halves (not flip-invariant).

    Records how many images it saw per forward pass.
    """

    def __init__(self):
        super().__init__()
        self.scale = nn.Parameter(torch.ones(1))
        self.batches: list[int] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.batches.append(x.shape[0])
        halves = F.adaptive_avg_pool2d(x, (1, 2)).flatten(1) * self.scale
        return F.normalize(halves, dim=1)


@pytest.fixture
def colour_net() -> ColourNet:
    return ColourNet()


def face_image(person: str, number: int, size: int = 16) -> Image.Image:
    """A flat colour per person, slightly varied per image, the right half a little darker."""
    rng = np.random.default_rng(number + 10 * PEOPLE.index(person))
    colour = np.array(COLOURS[person], dtype=np.float64) + rng.integers(-6, 7, 3)
    pixels = np.tile(colour, (size, size, 1))
    pixels[:, size // 2 :] *= 0.8
    return Image.fromarray(pixels.clip(0, 255).astype(np.uint8))


@pytest.fixture
def face_tree(tmp_path) -> Path:
    """<root>/<person>/<person>_000n.<jpg|png>, three images per person."""
    root = tmp_path / "faces"
    for person in PEOPLE:
        (root / person).mkdir(parents=True)
        for number in range(1, IMAGES_PER_PERSON + 1):
            ext = "png" if number % 2 else "jpg"
            face_image(person, number).save(root / person / f"{person}_{number:04d}.{ext}")
    return root


@pytest.fixture
def view2_file(tmp_path) -> Path:
    """A View 2 style pairs.txt over the tree's people: ten folds of one same then one different pair."""
    path = tmp_path / "pairs.txt"
    lines = ["10\t1"]
    for k in range(10):
        a, b = PEOPLE[k % len(PEOPLE)], PEOPLE[(k + 1) % len(PEOPLE)]
        lines.append(f"{a}\t{1 + k % 2}\t{2 + k % 2}")
        lines.append(f"{a}\t{1 + k % 3}\t{b}\t{1 + (k + 1) % 3}")
    path.write_text("\n".join(lines) + "\n")
    return path
