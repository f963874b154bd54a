"""The seed's image transforms (train: resize, flip, small rotation; eval: resize only).

The eval transform also comes in two halves for batched embedding: `eval_pixels` (RGB and resize,
PIL only, so it runs in any thread) and `normalize_pixels` (ToTensor and Normalize on a whole
uint8 batch at once); together they give `eval_transform`'s tensors bit for bit.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from PIL import Image
from torchvision import transforms as T

from facenet_core.images import to_rgb


def _size(image_size: int) -> tuple[int, int]:
    """Square output: crops are square, so this equals the seed's Resize(int) and always collates."""
    if image_size < 1:
        raise ValueError(f"image_size must be a positive number of pixels, got {image_size}")
    return (image_size, image_size)


def train_transform(image_size: int, mean: Sequence[float], std: Sequence[float]) -> T.Compose:
    """Resize, RandomHorizontalFlip, RandomRotation(5), ToTensor, Normalize (the seed's order)."""
    return T.Compose(
        [
            T.Lambda(to_rgb),
            T.Resize(_size(image_size)),
            T.RandomHorizontalFlip(),
            T.RandomRotation(degrees=5),
            T.ToTensor(),
            T.Normalize(mean=list(mean), std=list(std)),
        ]
    )


def eval_transform(image_size: int, mean: Sequence[float], std: Sequence[float]) -> T.Compose:
    """Resize, ToTensor, Normalize: the training pipeline without its random parts."""
    return T.Compose(
        [
            T.Lambda(to_rgb),
            T.Resize(_size(image_size)),
            T.ToTensor(),
            T.Normalize(mean=list(mean), std=list(std)),
        ]
    )


def eval_pixels(image: Image.Image, image_size: int) -> np.ndarray:
    """`eval_transform`'s image steps, RGB and Resize (bilinear, PIL's antialiasing), as (S, S, 3) uint8."""
    size = _size(image_size)
    image = to_rgb(image)
    if image.size != size[::-1]:
        image = image.resize(size[::-1], Image.Resampling.BILINEAR)
    return np.asarray(image, dtype=np.uint8)


def normalize_pixels(pixels: torch.Tensor, mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    """A uint8 (N, S, S, 3) batch of `eval_pixels` as float32 (N, 3, S, S): ToTensor and Normalize,
    the same float32 operations in the same order, so each image equals its `eval_transform` tensor.

    The result is in channels_last memory (the layout the pixels came in), on their device.
    """
    images = pixels.permute(0, 3, 1, 2).to(torch.float32).div(255)
    mean_t = torch.as_tensor(list(mean), dtype=torch.float32, device=images.device).view(1, -1, 1, 1)
    std_t = torch.as_tensor(list(std), dtype=torch.float32, device=images.device).view(1, -1, 1, 1)
    return images.sub_(mean_t).div_(std_t)
