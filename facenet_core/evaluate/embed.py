"""Embeddings of evaluation images (each image once, batched) and pair distances."""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from typing import NamedTuple, get_args

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from facenet_core.config.schema import DistanceMetric
from facenet_core.data.transforms import eval_transform
from facenet_core.devices import resolve_device
from facenet_core.images import open_rgb

log = logging.getLogger(__name__)

DISTANCE_METRICS = get_args(DistanceMetric)


class Embeddings(NamedTuple):
    """One row per image (float32); `readable` is False for files that could not be decoded."""

    vectors: np.ndarray
    readable: np.ndarray


class _ImageFiles(Dataset):
    """Transformed images by index; an unreadable file yields None instead of failing the batch."""

    def __init__(self, paths: Sequence[str | os.PathLike], transform):
        self.paths = list(paths)
        self.transform = transform

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> tuple[int, torch.Tensor | None]:
        try:
            return index, self.transform(open_rgb(self.paths[index]))
        except (OSError, ValueError) as error:
            log.warning("cannot read %s (%s): its pairs are left out", self.paths[index], error)
            return index, None


def _collate(items: list[tuple[int, torch.Tensor | None]]) -> tuple[torch.Tensor, torch.Tensor | None, int]:
    """Indices and stacked images of the readable items, and how many items the batch held."""
    indices = torch.tensor([index for index, image in items if image is not None], dtype=torch.long)
    images = [image for _, image in items if image is not None]
    return indices, (torch.stack(images) if images else None), len(items)


@torch.inference_mode()
def embed_images(
    model: nn.Module,
    paths: Sequence[str | os.PathLike],
    *,
    image_size: int,
    mean: Sequence[float],
    std: Sequence[float],
    batch_size: int,
    device: str | torch.device = "auto",
    flip_tta: bool = False,
    num_workers: int = 0,
    progress: bool | None = None,
) -> Embeddings:
    """Embed each image once, `batch_size` images per forward pass, with the eval transform.

    With `flip_tta` the embedding is the L2-normalised sum of the image's and its mirror's
    embeddings. Unreadable files are logged and marked in `readable` (their rows are zeros).
    `progress`: a tqdm bar over the images on stderr (images/s, ETA); None: only when stderr is a terminal.
    """
    device = resolve_device(device)
    was_training = model.training
    model.eval().to(device)
    loader = DataLoader(
        _ImageFiles(paths, eval_transform(image_size, mean, std)),
        batch_size=batch_size,
        shuffle=False,
        num_workers=num_workers,
        collate_fn=_collate,
        pin_memory=device.type == "cuda",
    )
    out: np.ndarray | None = None
    readable = np.zeros(len(paths), dtype=bool)
    bar = tqdm(total=len(paths), desc="embed", unit="img", disable=None if progress is None else not progress)
    try:
        for indices, images, count in loader:
            bar.update(count)
            if images is None:
                continue
            images = images.to(device, non_blocking=True)
            embeddings = model(images)
            if flip_tta:
                embeddings = F.normalize(embeddings + model(torch.flip(images, dims=[3])), dim=1)
            if out is None:
                out = np.zeros((len(paths), embeddings.shape[1]), dtype=np.float32)
            out[indices.numpy()] = embeddings.float().cpu().numpy()
            readable[indices.numpy()] = True
    finally:
        bar.close()
        model.train(was_training)
    if out is None:
        raise ValueError(f"none of the {len(paths)} evaluation images could be read")
    return Embeddings(out, readable)


def pair_distances(
    embeddings: np.ndarray, left: np.ndarray, right: np.ndarray, metric: str = "euclidean"
) -> np.ndarray:
    """Distance of each pair (left[i], right[i]) of embedding rows, in float64.

    euclidean: ||a - b|| (not squared, as the seed); cosine: 1 - cos(a, b), in [0, 2].
    """
    a = np.asarray(embeddings[left], dtype=np.float64)
    b = np.asarray(embeddings[right], dtype=np.float64)
    if metric == "euclidean":
        return np.linalg.norm(a - b, axis=1)
    if metric == "cosine":
        norms = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
        return 1.0 - np.sum(a * b, axis=1) / np.maximum(norms, 1e-12)
    raise ValueError(f"distance_metric must be one of {DISTANCE_METRICS}, got {metric!r}")
