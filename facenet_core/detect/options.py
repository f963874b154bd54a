"""Settings of the crop stage."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal, get_args

from facenet_core.config.schema import Config
from facenet_core.detect.detector import DEFAULT_MAX_PIXELS, MAX_MAX_PIXELS, MIN_MAX_PIXELS
from facenet_core.devices import resolve_device
from facenet_core.errors import UserError
from facenet_core.workers import cpu_cores

# 2: a `reason` column, rows for symlink loops and names that are not UTF-8 (PNGs unchanged: the
# rows of version 1 tables are taken over, except those that lack their reason).
# Aligned crops (method "aligned") came without a version bump: "mtcnn" crops, their tables and
# their cache keys are unchanged (`output_options` names the method only when it is not "mtcnn").
STAGE_VERSION = 2
OUTPUT_FIELDS = ("image_size", "margin", "min_face_size", "thresholds", "factor", "exif_transpose", "method")
CropMethod = Literal["mtcnn", "aligned"]
CROP_METHODS: tuple[str, ...] = get_args(CropMethod)


@dataclass(frozen=True)
class CropOptions:
    """How to detect and crop: the reference's defaults (224 px, margin 0, MTCNN 20 / 0.6,0.7,0.7 / 0.709).

    `method`: "mtcnn" resizes the face box grown by `margin` (the reference's crop); "aligned" warps
    the face so its 5 landmarks land on the ArcFace template scaled to `image_size`
    (`facenet_core.detect.align`). The template frames the face itself, so a margin does not apply
    to aligned crops: a non-zero one is refused.

    `device` ("auto", "cpu", "cuda", "cuda:N"), `batch_size` (images per detector call), `workers`
    (processes; 0 = one per CPU core) and `png_compress_level` (zlib level of new PNGs: 1 encodes a
    224-px crop ~5x faster than the reference's 6 for files ~17% larger) change speed or file size
    only, never the pixels. `batch_megapixels` caps the pixels of the images detected together (and of
    each P-Net call), so the detector's memory stays bounded whatever the photo sizes.
    """

    image_size: int = 224
    margin: int = 0
    min_face_size: int = 20
    thresholds: tuple[float, float, float] = (0.6, 0.7, 0.7)
    factor: float = 0.709
    device: str = "cpu"
    batch_size: int = 16
    workers: int = 0
    exif_transpose: bool = False
    png_compress_level: int = 1
    batch_megapixels: float = DEFAULT_MAX_PIXELS / 1e6
    method: CropMethod = "mtcnn"

    def __post_init__(self) -> None:
        if self.method not in CROP_METHODS:
            raise UserError(f"crop method must be one of {', '.join(CROP_METHODS)}, got {self.method!r}")
        if self.method == "aligned" and self.margin:
            raise UserError(
                f"crop margin {self.margin}: aligned crops are framed by the ArcFace template, a margin does not "
                "apply to them; set the margin (crop_margin) to 0"
            )
        positive = {"image_size": self.image_size, "min_face_size": self.min_face_size, "batch_size": self.batch_size}
        for name, value in positive.items():
            if value < 1:
                raise ValueError(f"crop option {name} must be >= 1, got {value}")
        if self.margin < 0 or self.workers < 0:
            raise ValueError(f"crop options margin and workers must be >= 0, got {self.margin}, {self.workers}")
        if not 0 <= self.png_compress_level <= 9:
            raise ValueError(f"crop option png_compress_level must be in 0..9, got {self.png_compress_level}")
        if not 0 < self.factor < 1:
            raise ValueError(f"crop option factor must be in (0, 1), got {self.factor}")
        if len(self.thresholds) != 3:
            raise ValueError(f"crop option thresholds needs 3 values (P-, R-, O-Net), got {self.thresholds}")
        object.__setattr__(self, "thresholds", tuple(float(t) for t in self.thresholds))
        if not MIN_MAX_PIXELS / 1e6 <= self.batch_megapixels <= MAX_MAX_PIXELS / 1e6:
            raise UserError(
                f"crop option batch_megapixels must be in {MIN_MAX_PIXELS / 1e6:g}..{MAX_MAX_PIXELS / 1e6:g} "
                f"(megapixels detected together), got {self.batch_megapixels}"
            )

    @classmethod
    def from_config(cls, config: Config) -> CropOptions:
        """The crop stage's options of a config (its crop_* fields, exif_transpose and device)."""
        return cls(
            image_size=config.crop_image_size,
            margin=config.crop_margin,
            exif_transpose=config.exif_transpose,
            batch_size=config.crop_batch_size,
            png_compress_level=config.crop_png_compress_level,
            batch_megapixels=config.crop_batch_megapixels,
            workers=config.crop_workers,
            device=config.device,
            method="aligned" if config.crop == "aligned" else "mtcnn",
        )

    @property
    def batch_pixels(self) -> int:
        """`batch_megapixels` in pixels."""
        return round(self.batch_megapixels * 1e6)

    def output_options(self) -> dict[str, Any]:
        """The options that decide the output files, plus the stage version: the cache-relevant part.
        The method is named only when it is not "mtcnn", so mtcnn crops keep their recorded options."""
        values = asdict(self)
        values["thresholds"] = list(self.thresholds)
        names = [name for name in OUTPUT_FIELDS if name != "method" or self.method != "mtcnn"]
        return {"stage_version": STAGE_VERSION} | {name: values[name] for name in names}

    def folder_name(self, base: str) -> str:
        """`base` for the reference's output options; otherwise `base` tagged with the ones that differ.

        Crops made with other output options land beside the default ones instead of replacing
        them: `lfw` (224 px, margin 0), `lfw-image_size160-margin32`, `lfw-exif_transpose`, and
        aligned crops in `lfw-aligned`, `lfw-aligned-image_size112`.
        """
        defaults = CropOptions().output_options()
        tags = [self.method] if self.method != "mtcnn" else []
        for name, value in self.output_options().items():
            if name in ("stage_version", "method") or value == defaults[name]:
                continue
            if isinstance(value, bool):
                tags.append(name)
            elif isinstance(value, list):
                tags.append(name + ",".join(f"{v:g}" for v in value))
            else:
                tags.append(f"{name}{value:g}" if isinstance(value, float) else f"{name}{value}")
        return "-".join([base, *tags])

    def resolved_device(self) -> str:
        """`device` with "auto" replaced by cuda when available, else cpu."""
        return str(resolve_device(self.device))

    def resolved_workers(self) -> int:
        """Worker processes to start: `workers`, or one per CPU core when 0."""
        return self.workers or cpu_cores()

    def worker_processes(self, shards: int) -> int:
        """Worker processes for a crop of `shards` shards: resolved_workers(), but no more than shards
        (a single shard crops in its caller's thread, with no process to start)."""
        return min(self.resolved_workers(), shards)
