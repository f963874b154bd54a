"""The training datasets and their DataLoaders, one per sampling (docs/ARCHITECTURE.md):

- triplets: batches (anchors, positives, negatives, labels int64 (B, 3)), B triplets per step;
- pk: batches (images (B, 3, S, S), labels int64 (B,)), one row of the epoch's PK batches per step.

The datasets keep only numpy arrays (paths as one bytes buffer plus offsets, labels, the epoch's
index), so forked workers share them instead of copying a Python object per row on access. Random
augmentations of an item are drawn from a torch RNG seeded with (seed key, position), so they do
not depend on which worker loads it, on the number of workers, or on what else used torch's RNG.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from facenet_core.data.manifest import Manifest
from facenet_core.data.transforms import train_transform
from facenet_core.images import open_rgb


class _ManifestImages(Dataset):
    """Transformed images of manifest rows, each drawn under a torch RNG seeded by its position."""

    def __init__(self, manifest: Manifest, rows: np.ndarray, transform: Callable, seed_key: Sequence[int] | None):
        if rows.size and (rows.min() < 0 or rows.max() >= manifest.num_images):
            raise ValueError(
                f"rows outside the manifest's {manifest.num_images} images; they were drawn from another manifest"
            )
        self.root = str(manifest.root)
        self.path_data = manifest.path_data
        self.path_offsets = manifest.path_offsets
        self.labels = manifest.labels
        self.transform = transform
        self.seed_key = None if seed_key is None else [int(k) for k in seed_key]

    def _image(self, row: int) -> torch.Tensor:
        start, end = self.path_offsets[row], self.path_offsets[row + 1]
        relative = self.path_data[start:end].tobytes().decode("utf-8")
        return self.transform(open_rgb(f"{self.root}/{relative}"))

    def _seeded(self, position: Sequence[int], load: Callable[[], Any]) -> Any:
        """`load()` with torch's RNG seeded from (*seed_key, *position), restored afterwards."""
        if self.seed_key is None:
            return load()
        key = [*self.seed_key, *(int(p) for p in position)]
        seed = np.random.SeedSequence(key).generate_state(1, dtype=np.uint64)[0]
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(seed))
            return load()


class TripletDataset(_ManifestImages):
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
        super().__init__(manifest, triplets, transform, seed_key)
        self.triplets = triplets

    def __len__(self) -> int:
        return len(self.triplets)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        rows = self.triplets[index]
        labels = torch.from_numpy(self.labels[rows].astype(np.int64))
        images = self._seeded([index], lambda: (self._image(rows[0]), self._image(rows[1]), self._image(rows[2])))
        return (*images, labels)


class PKDataset(_ManifestImages):
    """Item i of a rank's (iterations, width) share of the epoch's PK batches -> (image, label int64).

    Item i is image i % width of batch i // width; its transforms draw from torch's RNG seeded with
    (*seed_key, batch, slot), slot its place in the global batch (`first_slot` + i % width), so a
    batch's images are the same whatever the number of processes or workers.
    """

    def __init__(
        self,
        manifest: Manifest,
        batches: np.ndarray,
        transform: Callable,
        seed_key: Sequence[int] | None = None,
        first_slot: int = 0,
    ) -> None:
        batches = np.ascontiguousarray(batches, dtype=np.int32)
        if batches.ndim != 2 or batches.shape[1] == 0:
            raise ValueError(f"PK batches must have shape (iterations, P*K), got {batches.shape}")
        super().__init__(manifest, batches, transform, seed_key)
        self.rows = batches.reshape(-1)
        self.width = batches.shape[1]
        self.first_slot = int(first_slot)

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        row = self.rows[index]
        batch, slot = divmod(int(index), self.width)
        image = self._seeded([batch, self.first_slot + slot], lambda: self._image(row))
        return image, torch.tensor(int(self.labels[row]), dtype=torch.int64)


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


def pk_rank_slice(batches: np.ndarray, pk_images: int, rank: int, world_size: int) -> np.ndarray:
    """Identities [r*P/W, (r+1)*P/W) of every batch of P x K images: rank r's share, whole identities."""
    if world_size < 1 or not 0 <= rank < world_size:
        raise ValueError(f"rank={rank} must lie in [0, world_size={world_size})")
    if batches.ndim != 2 or batches.shape[1] % pk_images:
        raise ValueError(f"PK batches of shape {batches.shape} are not whole identities of pk_images={pk_images}")
    identities = batches.shape[1] // pk_images
    if identities % world_size:
        raise ValueError(f"pk_identities={identities} must be divisible by world_size={world_size}")
    share = identities // world_size
    grouped = batches.reshape(len(batches), identities, pk_images)
    return np.ascontiguousarray(grouped[:, rank * share : (rank + 1) * share]).reshape(len(batches), -1)


def _loader(dataset: Dataset, batch_size: int, num_workers: int, seed_key: Sequence[int], pin_memory: bool | None):
    """Batches of `batch_size` items in order; the workers' base seed drawn from `seed_key`, not the caller's RNG."""
    generator = torch.Generator()
    generator.manual_seed(int(np.random.SeedSequence([int(k) for k in seed_key]).generate_state(1)[0]))
    return DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=False,
        drop_last=False,
        num_workers=num_workers,
        pin_memory=torch.cuda.is_available() if pin_memory is None else pin_memory,
        persistent_workers=num_workers > 0,
        generator=generator,
    )


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
    return _loader(dataset, batch_size // world_size, num_workers, (seed, epoch, rank), pin_memory)


def make_pk_loader(
    manifest: Manifest,
    batches: np.ndarray,
    *,
    pk_images: int,
    image_size: int,
    mean: Sequence[float],
    std: Sequence[float],
    num_workers: int,
    seed: int,
    epoch: int,
    rank: int = 0,
    world_size: int = 1,
    pin_memory: bool | None = None,
) -> DataLoader:
    """Batches (images (B, 3, S, S), labels int64 (B,)), one per row of `batches`, B = P x K / world_size:
    rank r's identities of the row (pk_rank_slice), in order.

    Augmentations are seeded per image from (seed, epoch, batch, slot in the global batch), so rerunning
    an epoch sees the same images whatever the number of workers or processes.
    """
    share = pk_rank_slice(batches, pk_images, rank, world_size)
    width = share.shape[1]
    transform = train_transform(image_size, mean, std)
    dataset = PKDataset(manifest, share, transform, seed_key=(seed, epoch), first_slot=rank * width)
    return _loader(dataset, width, num_workers, (seed, epoch, rank), pin_memory)
