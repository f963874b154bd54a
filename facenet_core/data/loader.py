"""Triplet dataset and its DataLoader: three transformed images and their labels per row.

The dataset keeps only numpy arrays (paths as one bytes buffer plus offsets, labels, triplets),
so forked workers share them instead of copying a Python object per row on access. Random
augmentations of row i are drawn from a torch RNG seeded with (seed key, i), so they do not depend
on which worker loads the row, on the number of workers, or on what else used torch's RNG.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from facenet_core.data.manifest import Manifest
from facenet_core.data.transforms import train_transform
from facenet_core.images import open_rgb


class TripletDataset(Dataset):
    """Row i of `triplets` -> (anchor, positive, negative, labels int64 (3,)).

    With `seed_key`, row i's transforms draw from torch's RNG seeded with (*seed_key, i), restored
    afterwards; without it they draw from the RNG as it stands.
    """

    def __init__(
        self, manifest: Manifest, triplets: np.ndarray, transform: Callable, seed_key: Sequence[int] | None = None
    ) -> None:
        triplets = np.ascontiguousarray(triplets, dtype=np.int32)
        if triplets.ndim != 2 or triplets.shape[1] != 3:
            raise ValueError(f"triplets must have shape (T, 3), got {triplets.shape}")
        if triplets.size and (triplets.min() < 0 or triplets.max() >= manifest.num_images):
            raise ValueError(
                f"triplets index rows outside the manifest's {manifest.num_images} images; "
                "they were drawn from another manifest"
            )
        self.root = str(manifest.root)
        self.path_data = manifest.path_data
        self.path_offsets = manifest.path_offsets
        self.labels = manifest.labels
        self.triplets = triplets
        self.transform = transform
        self.seed_key = None if seed_key is None else [int(k) for k in seed_key]

    def __len__(self) -> int:
        return len(self.triplets)

    def _image(self, row: int) -> torch.Tensor:
        start, end = self.path_offsets[row], self.path_offsets[row + 1]
        relative = self.path_data[start:end].tobytes().decode("utf-8")
        return self.transform(open_rgb(f"{self.root}/{relative}"))

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        rows = self.triplets[index]
        labels = torch.from_numpy(self.labels[rows].astype(np.int64))
        if self.seed_key is None:
            return self._image(rows[0]), self._image(rows[1]), self._image(rows[2]), labels
        seed = np.random.SeedSequence([*self.seed_key, int(index)]).generate_state(1, dtype=np.uint64)[0]
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(seed))
            return self._image(rows[0]), self._image(rows[1]), self._image(rows[2]), labels


def rank_slice(triplets: np.ndarray, batch_size: int, rank: int, world_size: int) -> np.ndarray:
    """Rows [r*B/W, (r+1)*B/W) of every block of B triplets: rank r's share of each global batch."""
    if world_size < 1 or not 0 <= rank < world_size:
        raise ValueError(f"rank={rank} must lie in [0, world_size={world_size})")
    if batch_size % world_size:
        raise ValueError(f"batch_size={batch_size} must be divisible by world_size={world_size}")
    if len(triplets) % batch_size:
        raise ValueError(f"{len(triplets)} triplets are not whole blocks of batch_size={batch_size}")
    share = batch_size // world_size
    blocks = triplets.reshape(-1, batch_size, 3)
    return np.ascontiguousarray(blocks[:, rank * share : (rank + 1) * share]).reshape(-1, 3)


def make_triplet_loader(
    manifest: Manifest,
    triplets: np.ndarray,
    *,
    image_size: int,
    mean: Sequence[float],
    std: Sequence[float],
    batch_size: int,
    num_workers: int,
    seed: int,
    epoch: int,
    rank: int = 0,
    world_size: int = 1,
    pin_memory: bool | None = None,
) -> DataLoader:
    """Batches (anchors, positives, negatives, labels) of batch_size // world_size triplets, in order.

    Augmentations are seeded per row from (seed, epoch, rank, row), so rerunning an epoch sees the
    same images whatever the number of workers.
    """
    share = rank_slice(triplets, batch_size, rank, world_size)
    dataset = TripletDataset(manifest, share, train_transform(image_size, mean, std), seed_key=(seed, epoch, rank))
    cuda = torch.cuda.is_available()
    # The loader draws its workers' base seed from this generator instead of the caller's RNG.
    generator = torch.Generator()
    generator.manual_seed(int(np.random.SeedSequence([int(seed), int(epoch), int(rank)]).generate_state(1)[0]))
    return DataLoader(
        dataset,
        batch_size=batch_size // world_size,
        shuffle=False,
        drop_last=False,
        num_workers=num_workers,
        pin_memory=cuda if pin_memory is None else pin_memory,
        persistent_workers=num_workers > 0,
        generator=generator,
    )
