"""Embeddings of evaluation images (each image once, batched) and pair distances.

Images are decoded and resized to uint8 pixels by a pool of threads (PIL releases the GIL while it
decodes and resizes), then normalised a whole batch at a time: no per-image torch operation runs
beside the model. On CPU, decoding a batch and embedding it take turns, each with every core: the
batch, in channels_last memory (oneDNN's fast layout), is cut into one part per torch thread and
each part runs on one core in a thread of its own, so the cores never wait for each other inside a
layer as torch's own threads do (which costs most on busy cores). On an accelerator the next batch
is decoded while the current one runs. The model runs as `inference_model` makes it: an eval-mode
copy with its batch norms folded into the convolutions (the model given is left as it was).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from functools import partial
from typing import NamedTuple, get_args

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from facenet_core.config.schema import DistanceMetric
from facenet_core.data.transforms import eval_pixels, normalize_pixels
from facenet_core.devices import resolve_device
from facenet_core.images import open_rgb
from facenet_core.models.inference import inference_model
from facenet_core.torch_settings import ONE_TORCH_THREAD

log = logging.getLogger(__name__)

DISTANCE_METRICS = get_args(DistanceMetric)
MAX_DECODE_THREADS = 8


class Embeddings(NamedTuple):
    """One row per image (float32); `readable` is False for files that could not be decoded."""

    vectors: np.ndarray
    readable: np.ndarray


def decode_threads() -> int:
    """The default number of decoding threads: one per core this process may run on, at most 8."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return max(1, min(MAX_DECODE_THREADS, cores))


def _pixels(path: str | os.PathLike, image_size: int) -> np.ndarray | None:
    """The eval transform's uint8 pixels of one file; None (logged) when it cannot be decoded."""
    try:
        return eval_pixels(open_rgb(path), image_size)
    except (OSError, ValueError) as error:
        log.warning("cannot read %s (%s): its pairs are left out", path, error)
        return None


def pixel_batches(
    paths: Sequence[str | os.PathLike], image_size: int, batch_size: int, threads: int, ahead: bool
) -> Iterator[list[np.ndarray | None]]:
    """The files' pixels, `batch_size` at a time, decoded by `threads` threads (0: the calling thread).

    With `ahead`, the next batch is decoded while the caller works on the current one; without it,
    a batch is decoded only when asked for, so decoding never competes with the caller for cores.
    """
    chunks = [paths[start : start + batch_size] for start in range(0, len(paths), batch_size)]
    if threads == 0:
        for chunk in chunks:
            yield [_pixels(path, image_size) for path in chunk]
        return
    with ThreadPoolExecutor(threads, thread_name_prefix="decode") as pool:

        def submit(chunk: Sequence[str | os.PathLike]) -> list[Future]:
            return [pool.submit(_pixels, path, image_size) for path in chunk]

        pending = submit(chunks[0]) if chunks else []
        for index in range(len(chunks)):
            decoded = [future.result() for future in pending]
            more = index + 1 < len(chunks)
            if ahead and more:
                pending = submit(chunks[index + 1])
            yield decoded
            if not ahead and more:
                pending = submit(chunks[index + 1])


def _embed(model: nn.Module, images: torch.Tensor, flip_tta: bool) -> torch.Tensor:
    embeddings = model(images)
    if flip_tta:
        embeddings = F.normalize(embeddings + model(torch.flip(images, dims=[3])), dim=1)
    return embeddings


def _embed_on_one_core(model: nn.Module, flip_tta: bool, images: torch.Tensor) -> torch.Tensor:
    """`_embed` with one torch thread, in the calling thread (inference mode is per thread)."""
    with ONE_TORCH_THREAD, torch.inference_mode():
        return _embed(model, images, flip_tta)


class _CpuCores:
    """One thread per torch thread, each embedding its part of a batch on one core."""

    def __init__(self, count: int) -> None:
        self.count = count
        self.pool = ThreadPoolExecutor(count, thread_name_prefix="embed") if count > 1 else None

    def embed(self, model: nn.Module, images: torch.Tensor, flip_tta: bool) -> torch.Tensor:
        if self.pool is None:
            return _embed(model, images, flip_tta)
        parts = images.chunk(min(self.count, len(images)))
        return torch.cat(list(self.pool.map(partial(_embed_on_one_core, model, flip_tta), parts)))

    def close(self) -> None:
        if self.pool is not None:
            self.pool.shutdown()


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
    num_workers: int | None = None,
    progress: bool | None = None,
) -> Embeddings:
    """Embed each image once, `batch_size` images at a time, with the eval transform.

    With `flip_tta` the embedding is the L2-normalised sum of the image's and its mirror's
    embeddings. Unreadable files are logged and marked in `readable` (their rows are zeros).
    `num_workers`: decoding threads (0: decode in this thread; None: `decode_threads()`). On CPU a
    batch is embedded in `torch.get_num_threads()` parts at once, one core each. The forward passes
    run `inference_model(model)` (batch norms folded; the same embeddings within 1e-5).
    `progress`: a tqdm bar over the images on stderr (images/s, ETA); None: only when stderr is a terminal.
    """
    device = resolve_device(device)
    on_cpu = device.type == "cpu"
    threads = decode_threads() if num_workers is None else num_workers
    was_training = model.training
    net = inference_model(model.eval().to(device))
    out: np.ndarray | None = None
    readable = np.zeros(len(paths), dtype=bool)
    bar = tqdm(total=len(paths), desc="embed", unit="img", disable=None if progress is None else not progress)
    batches = pixel_batches(list(paths), image_size, batch_size, threads, ahead=not on_cpu)
    cores = _CpuCores(torch.get_num_threads() if on_cpu else 1)
    try:
        for start, pixels in zip(range(0, len(paths), batch_size), batches, strict=True):
            bar.update(len(pixels))
            indices = np.array([start + i for i, image in enumerate(pixels) if image is not None], dtype=np.int64)
            if not len(indices):
                continue
            batch = torch.from_numpy(np.stack([image for image in pixels if image is not None]))
            images = normalize_pixels(batch.to(device, non_blocking=True), mean, std)
            if not on_cpu:
                images = images.contiguous()  # channels_last is measured faster on CPU only
            embeddings = cores.embed(net, images, flip_tta)
            if out is None:
                out = np.zeros((len(paths), embeddings.shape[1]), dtype=np.float32)
            out[indices] = embeddings.float().cpu().numpy()
            readable[indices] = True
    finally:
        batches.close()
        cores.close()
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
