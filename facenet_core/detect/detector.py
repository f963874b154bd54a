"""Batched MTCNN face detection with the reference pipeline's numerics.

Every stage runs over a whole batch of images: pyramid levels of the same index share one P-Net
pass (zero-padded to a common size, masked so padding never changes a valid cell), and the R-Net
and O-Net candidates of all images go through their network together. Box arithmetic, NMS and
resampling run in numpy/OpenCV on the CPU exactly as the reference does; the networks run on
`device`.

Memory is bounded by pixels, whatever the sizes: `detect` splits its images into batches of at
most `max_pixels` pixels (a larger image alone), a pyramid level larger than a P-Net call's pixels
is run as tiles whose outputs, stitched, are the whole level's, candidate crops are cut one
network call at a time (large candidate boxes band by band, see resize.py) and NMS compares a
bounded number of boxes at once. Tiles and bands give the bits of the whole level and the whole crop.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from facenet_core.detect import boxes as bx
from facenet_core.detect.nets import ONet, PNet, RNet
from facenet_core.detect.nms import nms
from facenet_core.detect.resize import crop_resized, level_size, pyramid_scales, resample
from facenet_core.devices import ieee_float32

NORM_MEAN = 127.5
NORM_SCALE = 0.0078125


@dataclass(frozen=True)
class Chunking:
    """Work per network call: padded pixels per P-Net batch, crops per R-Net and O-Net batch."""

    pnet_pixels: int
    rnet_crops: int
    onet_crops: int


# On CPU, small enough that a layer's activations stay in cache and under the heap's mmap
# threshold (batched P-Net on 1280x720 pictures: 194 -> 108 ms per image), large enough to
# amortise per-call costs (per crop, R-Net is flat from 64 crops, O-Net from 16). GPUs want
# large batches.
CPU_CHUNKING = Chunking(pnet_pixels=250_000, rnet_crops=256, onet_crops=32)
GPU_CHUNKING = Chunking(pnet_pixels=8_000_000, rnet_crops=4096, onet_crops=4096)

# Pixels of the images of one detection pass (and the most a P-Net call takes): 32 MP holds 500
# LFW pictures or 35 at 1280x720, a 48 MP photo is detected alone.
DEFAULT_MAX_PIXELS = 32_000_000
MIN_MAX_PIXELS = 1_000_000
MAX_MAX_PIXELS = 1_000_000_000


@dataclass(frozen=True)
class Faces:
    """Faces found in one image: boxes (N, 5: x1, y1, x2, y2, score), points (N, 10: x1..x5, y1..y5)."""

    boxes: np.ndarray
    points: np.ndarray


def _empty() -> Faces:
    return Faces(np.empty((0, 5)), np.empty((0, 10)))


def _normalise(batch: np.ndarray) -> torch.Tensor:
    """Float64 (N, H, W, 3) pixels -> float32 NCHW network input, rounded as the reference feeds it."""
    scaled = np.subtract(batch, NORM_MEAN)
    scaled *= NORM_SCALE
    return torch.from_numpy(scaled.astype(np.float32)).permute(0, 3, 1, 2)


def _chunks_by_pixels(members: list, budget: int) -> list[list]:
    """Split (size, index) pairs, sorted by size, so no P-Net batch exceeds `budget` padded pixels.

    A batch is padded to its tallest height and its widest width, which may come from different images.
    """
    chunks: list[list] = [[]]
    height = width = 0
    for member in members:
        (h, w), _ = member
        padded = (len(chunks[-1]) + 1) * max(height, h) * max(width, w)
        if chunks[-1] and padded > budget:
            chunks.append([])
            height = width = 0
        chunks[-1].append(member)
        height, width = max(height, h), max(width, w)
    return chunks


def _pnet_out_size(size: int) -> int:
    return -(-(size - 2) // 2) - 4


def fits_batch(count: int, pixels: int, more: int, max_images: int, max_pixels: int) -> bool:
    """Whether an image of `more` pixels joins a batch of `count` images and `pixels` pixels.

    A batch holds at most `max_images` images and `max_pixels` pixels; an image larger than that
    budget makes a batch of its own.
    """
    return count == 0 or (count < max_images and pixels + more <= max_pixels)


def plan_batches(pixels: Sequence[int], max_images: int, max_pixels: int) -> list[range]:
    """Consecutive detection batches (index ranges) for images of these pixel counts, by `fits_batch`."""
    batches: list[range] = []
    start = total = 0
    for index, more in enumerate(pixels):
        if not fits_batch(index - start, total, more, max_images, max_pixels):
            batches.append(range(start, index))
            start, total = index, 0
        total += more
    if len(pixels):
        batches.append(range(start, len(pixels)))
    return batches


def _parts(total: int, most: int) -> list[tuple[int, int]]:
    """[0, total) cut into the fewest consecutive parts of at most `most`, their lengths within 1 of each other."""
    count = -(-total // most)
    return [(total * k // count, total * (k + 1) // count) for k in range(count)]


def pnet_tiles(height: int, width: int, budget: int) -> list[tuple[int, int, int, int]]:
    """P-Net output windows (row0, row1, col0, col1) that cover a level of this size, each read from
    at most `budget` input pixels: rows 2*row0 .. 2*row1 + 10 and columns alike, clipped to the level.

    P-Net sees 12 x 12 pixels per output cell at a stride of 2, so a window starting on an even
    pixel gives the cells the whole level gives there. Windows are as large as the budget allows
    (a narrow level in windows spanning its short side) and of nearly equal sizes: PyTorch picks
    its CPU convolution code by tensor size, and windows this large take the whole level's.
    One window when the level fits.
    """
    out_h, out_w = _pnet_out_size(height), _pnet_out_size(width)
    if height * width <= budget:
        return [(0, out_h, 0, out_w)]
    side = max((math.isqrt(budget) - 10) // 2, 1)
    if out_h <= side:
        rows, cols = out_h, max((budget // height - 10) // 2, 1)
    elif out_w <= side:
        rows, cols = max((budget // width - 10) // 2, 1), out_w
    else:
        rows = cols = side
    return [(r0, r1, c0, c1) for r0, r1 in _parts(out_h, rows) for c0, c1 in _parts(out_w, cols)]


def _crop_chunks(images: list[np.ndarray], candidates: list[np.ndarray], size: int, chunk: int) -> Iterator[np.ndarray]:
    """Float64 (n, size, size, 3) crops of every image's candidates in order, at most `chunk` at a time."""
    owners = [i for i, boxes in enumerate(candidates) for _ in range(boxes.shape[0])]
    boxes = np.vstack([c[:, :4] for c in candidates]).astype(np.int32)
    for start in range(0, len(owners), chunk):
        stop = min(start + chunk, len(owners))
        crops = np.empty((stop - start, size, size, 3), dtype=np.float64)
        for k in range(start, stop):
            crop_resized(images[owners[k]], boxes[k], size, crops[k - start])
        yield crops


class MTCNN:
    """The three MTCNN networks plus the reference detection pipeline, for batches of RGB uint8 images.

    `max_pixels` bounds the pixels of the images detected together and of each P-Net call.
    """

    def __init__(
        self,
        device: str | torch.device = "cpu",
        min_face_size: float = 20,
        thresholds: tuple[float, float, float] = (0.6, 0.7, 0.7),
        factor: float = 0.709,
        max_pixels: int = DEFAULT_MAX_PIXELS,
    ) -> None:
        if not MIN_MAX_PIXELS <= max_pixels <= MAX_MAX_PIXELS:
            raise ValueError(f"MTCNN max_pixels must be in {MIN_MAX_PIXELS}..{MAX_MAX_PIXELS}, got {max_pixels}")
        self.device = torch.device(device)
        self.chunking = CPU_CHUNKING if self.device.type == "cpu" else GPU_CHUNKING
        self.min_face_size = min_face_size
        self.thresholds = thresholds
        self.factor = factor
        self.max_pixels = max_pixels
        self.pnet, self.rnet, self.onet = (net().to(self.device).eval() for net in (PNet, RNet, ONet))

    @torch.inference_mode()
    def detect(self, images: list[np.ndarray]) -> list[Faces]:
        """Faces of each (H, W, 3) uint8 RGB image, in the reference's order and values."""
        found: list[Faces] = []
        pixels = [img.shape[0] * img.shape[1] for img in images]
        with ieee_float32(self.device):
            for batch in plan_batches(pixels, len(images), self.max_pixels):
                group = [images[i] for i in batch]
                found += self._stage_three(group, self._stage_two(group, self._stage_one(group)))
        return found

    def _stage_one(self, images: list[np.ndarray]) -> list[np.ndarray]:
        scales = [pyramid_scales(*img.shape[:2], self.min_face_size, self.factor) for img in images]
        found: list[list[np.ndarray]] = [[] for _ in images]
        budget = min(self.chunking.pnet_pixels, self.max_pixels)
        for level in range(max((len(s) for s in scales), default=0)):
            members = sorted(
                (level_size(*images[i].shape[:2], s[level]), i) for i, s in enumerate(scales) if len(s) > level
            )
            whole = [(size, i) for size, i in members if size[0] * size[1] <= budget]
            for size, i in members:
                if size[0] * size[1] > budget:
                    self._pnet_tiled(images[i], size, scales[i][level], budget, found[i])
            for chunk in _chunks_by_pixels(whole, budget) if whole else []:
                self._pnet_level(images, [i for _, i in chunk], [size for size, _ in chunk], scales, level, found)
        out = []
        for cells in found:
            if not cells:
                out.append(np.empty((0, 5)))
                continue
            cells = np.vstack(cells)
            cells = cells[nms(cells, 0.7, "union")]
            out.append(bx.truncate(bx.square(bx.regress_proposals(cells))))
        return out

    def _pnet_input(self, pixels: np.ndarray) -> torch.Tensor:
        """uint8 (N, H, W, 3) -> normalised float32 NCHW on the device.

        NCHW-contiguous: faster than the channels-last view for P-Net's few channels. Exact in
        float32: (integer - 127.5) and the power-of-two scale lose no bits.
        """
        x = torch.from_numpy(pixels).to(self.device).permute(0, 3, 1, 2)
        return x.to(torch.float32, memory_format=torch.contiguous_format).sub_(NORM_MEAN).mul_(NORM_SCALE)

    def _add_proposals(self, prob: np.ndarray, reg: np.ndarray, scale: float, found: list[np.ndarray]) -> None:
        cells = bx.proposals(prob, reg, scale, self.thresholds[0])
        keep = nms(cells, 0.5, "union")
        if keep.size:
            found.append(cells[keep])

    def _pnet_level(
        self,
        images: list[np.ndarray],
        members: list[int],
        sizes: list[tuple[int, int]],
        scales: list[list[float]],
        level: int,
        found: list[list[np.ndarray]],
    ) -> None:
        height, width = max(h for h, _ in sizes), max(w for _, w in sizes)
        batch = np.zeros((len(members), height, width, 3), dtype=np.uint8)
        for row, (i, (h, w)) in enumerate(zip(members, sizes, strict=True)):
            batch[row, :h, :w] = resample(images[i], h, w)
        ragged = any(s != (height, width) for s in sizes)
        valid = torch.tensor(sizes, device=self.device) if ragged else None
        reg, prob = (t.cpu().numpy() for t in self.pnet(self._pnet_input(batch), valid))
        for row, (i, (h, w)) in enumerate(zip(members, sizes, strict=True)):
            oh, ow = _pnet_out_size(h), _pnet_out_size(w)
            self._add_proposals(prob[row, 1, :oh, :ow], reg[row, :, :oh, :ow], scales[i][level], found[i])

    def _pnet_tiled(
        self, image: np.ndarray, size: tuple[int, int], scale: float, budget: int, found: list[np.ndarray]
    ) -> None:
        """One pyramid level too large for a P-Net call, in windows of at most `budget` pixels whose
        raw outputs, side by side, make the whole level's (then scored as the whole level is)."""
        height, width = size
        level = resample(image, height, width)
        logits = torch.empty((1, 6, _pnet_out_size(height), _pnet_out_size(width)), device=self.device)
        for r0, r1, c0, c1 in pnet_tiles(height, width, budget):
            tile = np.ascontiguousarray(level[None, 2 * r0 : 2 * r1 + 10, 2 * c0 : 2 * c1 + 10])
            logits[:, :, r0:r1, c0:c1] = self.pnet.logits(self._pnet_input(tile))
        del level
        reg, prob = (t.cpu().numpy() for t in self.pnet.scores(logits))
        self._add_proposals(prob[0, 1], reg[0], scale, found)

    def _run(
        self, net: torch.nn.Module, images: list[np.ndarray], candidates: list[np.ndarray], size: int, chunk: int
    ) -> list[np.ndarray]:
        """`net`'s outputs for the candidates' crops, concatenated over images; `chunk` crops per call."""
        outputs = []
        for crops in _crop_chunks(images, candidates, size, chunk):
            outputs.append([t.float().cpu().numpy() for t in net(_normalise(crops).to(self.device))])
        return [np.concatenate(parts) for parts in zip(*outputs, strict=True)]

    def _stage_two(self, images: list[np.ndarray], candidates: list[np.ndarray]) -> list[np.ndarray]:
        bounds = np.cumsum([0] + [c.shape[0] for c in candidates])
        if bounds[-1] == 0:
            return candidates
        reg, prob = self._run(self.rnet, images, candidates, 24, self.chunking.rnet_crops)
        out = []
        for k, boxes in enumerate(candidates):
            score, offsets = prob[bounds[k] : bounds[k + 1], 1], reg[bounds[k] : bounds[k + 1]]
            passed = score > self.thresholds[1]
            kept = np.hstack([boxes[passed, 0:4], score[passed, None]])
            offsets = offsets[passed]
            if kept.shape[0]:
                pick = nms(kept, 0.7, "union")
                kept = bx.square(bx.regress(kept[pick], offsets[pick]))
            out.append(kept)
        return out

    def _stage_three(self, images: list[np.ndarray], candidates: list[np.ndarray]) -> list[Faces]:
        candidates = [np.fix(c) for c in candidates]
        bounds = np.cumsum([0] + [c.shape[0] for c in candidates])
        if bounds[-1] == 0:
            return [_empty() for _ in images]
        reg, marks, prob = self._run(self.onet, images, candidates, 48, self.chunking.onet_crops)
        out = []
        for k, boxes in enumerate(candidates):
            sl = slice(bounds[k], bounds[k + 1])
            score = prob[sl, 1]
            passed = score > self.thresholds[2]
            kept = np.hstack([boxes[passed, 0:4], score[passed, None]])
            if not kept.shape[0]:
                out.append(_empty())
                continue
            points = bx.landmarks(kept, marks[sl][passed])
            kept = bx.regress(kept, reg[sl][passed])
            pick = nms(kept, 0.7, "min")
            out.append(Faces(kept[pick], points[pick]))
        return out


@functools.lru_cache(maxsize=4)
def shared_detector(
    device: str, min_face_size: int, thresholds: tuple[float, ...], factor: float, max_pixels: int
) -> MTCNN:
    """One detector per setting in this process (its networks built once), shared by every caller:
    `detect` keeps no state between calls."""
    return MTCNN(device, min_face_size, thresholds, factor, max_pixels)
