"""Batched MTCNN face detection with the reference pipeline's numerics.

Every stage runs over a whole batch of images: pyramid levels of the same index share one P-Net
pass (zero-padded to a common size, masked so padding never changes a valid cell), and the R-Net
and O-Net candidates of all images go through their network together. Box arithmetic, NMS and
resampling run in numpy/OpenCV on the CPU exactly as the reference does; the networks run on
`device`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from facenet_core.detect import boxes as bx
from facenet_core.detect.nets import ONet, PNet, RNet
from facenet_core.detect.nms import nms
from facenet_core.detect.resize import candidate_crops, level_size, pyramid_scales, resample
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


class MTCNN:
    """The three MTCNN networks plus the reference detection pipeline, for batches of RGB uint8 images."""

    def __init__(
        self,
        device: str | torch.device = "cpu",
        min_face_size: float = 20,
        thresholds: tuple[float, float, float] = (0.6, 0.7, 0.7),
        factor: float = 0.709,
    ) -> None:
        self.device = torch.device(device)
        self.chunking = CPU_CHUNKING if self.device.type == "cpu" else GPU_CHUNKING
        self.min_face_size = min_face_size
        self.thresholds = thresholds
        self.factor = factor
        self.pnet, self.rnet, self.onet = (net().to(self.device).eval() for net in (PNet, RNet, ONet))

    @torch.inference_mode()
    def detect(self, images: list[np.ndarray]) -> list[Faces]:
        """Faces of each (H, W, 3) uint8 RGB image, in the reference's order and values."""
        with ieee_float32(self.device):
            proposals = self._stage_one(images)
            refined = self._stage_two(images, proposals)
            return self._stage_three(images, refined)

    def _stage_one(self, images: list[np.ndarray]) -> list[np.ndarray]:
        scales = [pyramid_scales(*img.shape[:2], self.min_face_size, self.factor) for img in images]
        found: list[list[np.ndarray]] = [[] for _ in images]
        for level in range(max((len(s) for s in scales), default=0)):
            members = sorted(
                (level_size(*images[i].shape[:2], s[level]), i) for i, s in enumerate(scales) if len(s) > level
            )
            for chunk in _chunks_by_pixels(members, self.chunking.pnet_pixels):
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
        # NCHW-contiguous: faster than the channels-last view for P-Net's few channels. Exact in
        # float32: (integer - 127.5) and the power-of-two scale lose no bits.
        x = torch.from_numpy(batch).to(self.device).permute(0, 3, 1, 2)
        x = x.to(torch.float32, memory_format=torch.contiguous_format).sub_(NORM_MEAN).mul_(NORM_SCALE)
        ragged = any(s != (height, width) for s in sizes)
        valid = torch.tensor(sizes, device=self.device) if ragged else None
        reg, prob = (t.cpu().numpy() for t in self.pnet(x, valid))
        for row, (i, (h, w)) in enumerate(zip(members, sizes, strict=True)):
            oh, ow = _pnet_out_size(h), _pnet_out_size(w)
            scale = scales[i][level]
            cells = bx.proposals(prob[row, 1, :oh, :ow], reg[row, :, :oh, :ow], scale, self.thresholds[0])
            keep = nms(cells, 0.5, "union")
            if keep.size:
                found[i].append(cells[keep])

    def _run(self, net: torch.nn.Module, crops: np.ndarray, chunk: int) -> list[np.ndarray]:
        outputs = []
        for start in range(0, crops.shape[0], chunk):
            x = _normalise(crops[start : start + chunk]).to(self.device)
            outputs.append([t.float().cpu().numpy() for t in net(x)])
        return [np.concatenate(parts) for parts in zip(*outputs, strict=True)]

    def _crops(self, images: list[np.ndarray], candidates: list[np.ndarray], size: int) -> tuple[np.ndarray, list]:
        crops = [candidate_crops(img, c, size) for img, c in zip(images, candidates, strict=True) if c.shape[0]]
        bounds = np.cumsum([0] + [c.shape[0] for c in candidates])
        return (np.concatenate(crops) if crops else np.empty((0, size, size, 3))), bounds

    def _stage_two(self, images: list[np.ndarray], candidates: list[np.ndarray]) -> list[np.ndarray]:
        crops, bounds = self._crops(images, candidates, 24)
        if crops.shape[0] == 0:
            return candidates
        reg, prob = self._run(self.rnet, crops, self.chunking.rnet_crops)
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
        crops, bounds = self._crops(images, candidates, 48)
        if crops.shape[0] == 0:
            return [_empty() for _ in images]
        reg, marks, prob = self._run(self.onet, crops, self.chunking.onet_crops)
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
