"""The seed's image transforms (train: resize, flip, small rotation; eval: resize only)."""

from __future__ import annotations

from collections.abc import Sequence

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
