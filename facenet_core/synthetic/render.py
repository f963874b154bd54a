"""Random faces and pictures: the per-identity and per-picture draws behind the synthetic dataset.

Each identity draws its face (geometry, skin, hair, eyes, glasses, beard) from a random stream
seeded by (seed, identity index); each picture draws pose, scale, head turn, expression,
lighting, background, noise, blur and JPEG quality from a stream seeded by (seed, identity,
picture). The same arguments therefore give the same bytes, and any picture can be rebuilt on
its own.
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image, ImageFilter

from facenet_core.synthetic.draw import RGB, FacePose, FaceShape, paint_face

SKIN_DARK, SKIN_LIGHT = (0.38, 0.25, 0.18), (0.96, 0.80, 0.70)
HAIR_PALETTE = (
    (0.06, 0.05, 0.05),
    (0.20, 0.13, 0.09),
    (0.38, 0.24, 0.14),
    (0.55, 0.27, 0.14),
    (0.78, 0.64, 0.40),
    (0.62, 0.60, 0.58),
)
MIN_HAIR_CONTRAST = 0.15
DARK_SKIN_LUMA = 0.45
IRIS_PALETTE = ((0.30, 0.18, 0.10), (0.20, 0.35, 0.55), (0.28, 0.40, 0.25), (0.45, 0.33, 0.18))


def _jitter(rng: np.random.Generator, rgb: RGB, amount: float) -> RGB:
    return tuple(float(np.clip(c + rng.normal(0.0, amount), 0.0, 1.0)) for c in rgb)


def _mix(a: RGB, b: RGB, t: float) -> RGB:
    return tuple(float(x + (y - x) * t) for x, y in zip(a, b, strict=True))


def _luma(rgb: RGB) -> float:
    return 0.299 * rgb[0] + 0.587 * rgb[1] + 0.114 * rgb[2]


def _hair_colour(rng: np.random.Generator, skin: RGB) -> RGB:
    """A palette hair colour that stands out from the skin (the head outline must stay visible);
    on dark skin only darker hair (light hair around a dark face is what MTCNN misses)."""
    tone = _luma(skin)
    contrasting = [
        c
        for c in HAIR_PALETTE
        if abs(_luma(c) - tone) >= MIN_HAIR_CONTRAST and (tone >= DARK_SKIN_LUMA or _luma(c) < tone)
    ]
    return _jitter(rng, contrasting[rng.integers(len(contrasting))], 0.03)


def identity_shape(seed: int, index: int) -> FaceShape:
    """The face of identity `index`: fixed for a seed, different from one identity to the next.

    Hair always contrasts with the skin and beards are darker than it: outlines and a mouth
    lost in a similar colour are what MTCNN misses most.
    """
    rng = np.random.default_rng([seed, 0, index])
    skin = _jitter(rng, _mix(SKIN_DARK, SKIN_LIGHT, rng.uniform(0.0, 1.0)), 0.025)
    hair = _hair_colour(rng, skin)
    lips = tuple(c * f for c, f in zip(skin, (0.85, 0.55, 0.55), strict=True))
    return FaceShape(
        face_aspect=rng.uniform(0.70, 0.86),
        jaw_narrowing=rng.uniform(0.05, 0.35),
        eye_y=rng.uniform(-0.16, -0.04),
        eye_spacing=rng.uniform(0.27, 0.38),
        eye_width=rng.uniform(0.11, 0.16),
        eye_height=rng.uniform(0.05, 0.075),
        iris_rgb=_jitter(rng, IRIS_PALETTE[rng.integers(len(IRIS_PALETTE))], 0.03),
        brow_gap=rng.uniform(0.05, 0.12),
        brow_thickness=rng.uniform(0.03, 0.065),
        brow_tilt=rng.uniform(-0.2, 0.25),
        brow_arch=rng.uniform(0.0, 0.06),
        nose_length=rng.uniform(0.28, 0.42),
        nose_width=rng.uniform(0.08, 0.14),
        mouth_y=rng.uniform(0.42, 0.58),
        mouth_width=rng.uniform(0.18, 0.30),
        lip_thickness=rng.uniform(0.035, 0.065),
        lip_rgb=_jitter(rng, lips, 0.02),
        skin_rgb=skin,
        hair_rgb=hair,
        hair_style=int(rng.choice(3, p=[0.55, 0.3, 0.15])),
        hairline=rng.uniform(0.55, 0.8),
        ear_size=rng.uniform(0.8, 1.2),
        glasses=bool(rng.uniform() < 0.2),
        beard=bool(rng.uniform() < 0.15) and _luma(hair) < _luma(skin) - MIN_HAIR_CONTRAST,
    )


def _background(rng: np.random.Generator, size: int) -> np.ndarray:
    """Solid, gradient or low-frequency noise texture, float32 HxWx3."""
    kind = rng.integers(3)
    first = rng.uniform(0.05, 0.95, 3).astype(np.float32)
    if kind == 0:
        return np.broadcast_to(first, (size, size, 3)).copy()
    if kind == 1:
        second = rng.uniform(0.05, 0.95, 3).astype(np.float32)
        angle = rng.uniform(0.0, 2 * np.pi)
        ys, xs = np.mgrid[0:size, 0:size].astype(np.float32) / size - 0.5
        t = np.clip(xs * np.cos(angle) + ys * np.sin(angle) + 0.5, 0.0, 1.0)[..., None]
        return first * (1 - t) + second * t
    cells = rng.uniform(0.05, 0.95, (int(rng.integers(3, 9)),) * 2 + (3,))
    small = Image.fromarray((cells * 255).astype(np.uint8))
    return np.asarray(small.resize((size, size), Image.BICUBIC), dtype=np.float32) / 255.0


def _pose(rng: np.random.Generator, size: int) -> FacePose:
    return FacePose(
        center_x=size * (0.5 + rng.uniform(-0.06, 0.06)),
        center_y=size * (0.5 + rng.uniform(-0.05, 0.05)),
        half_height_px=size * rng.uniform(0.19, 0.26),
        angle=float(np.clip(rng.normal(0.0, 0.1), -0.25, 0.25)),
        yaw=float(np.clip(rng.normal(0.0, 0.15), -0.35, 0.35)),
        mouth_open=rng.uniform(0.0, 1.0) ** 3,
        gaze_x=rng.uniform(-1.0, 1.0),
        brow_raise=rng.uniform(-0.01, 0.03),
        light_side=rng.uniform(-1.0, 1.0),
        shirt_rgb=tuple(float(c) for c in rng.uniform(0.05, 0.9, 3)),
        wears_glasses=bool(rng.uniform() < 0.8),
    )


def _photograph(rng: np.random.Generator, canvas: np.ndarray) -> Image.Image:
    """Camera effects on a painted scene: exposure, contrast, colour cast, light falloff, noise, blur."""
    size = canvas.shape[0]
    contrast = rng.uniform(0.7, 1.2)
    brightness = rng.uniform(-0.12, 0.12)
    cast = rng.uniform(0.86, 1.14, 3).astype(np.float32)
    angle, strength = rng.uniform(0.0, 2 * np.pi), rng.uniform(0.0, 0.45)
    ramp = (np.arange(size, dtype=np.float32) / size - 0.5) * strength
    falloff = 1.0 + ramp[:, None] * np.sin(angle) + ramp[None, :] * np.cos(angle)
    image = canvas * np.float32(contrast)
    image += np.float32(0.5 * (1.0 - contrast) + brightness)
    image *= falloff[..., None] * (255 * cast)
    image += np.float32(255 * rng.uniform(0.0, 0.03)) * rng.standard_normal((size, size, 1), dtype=np.float32)
    image += 0.5
    np.maximum(image, 0.0, out=image)
    np.minimum(image, 255.0, out=image)
    pil = Image.fromarray(image.astype(np.uint8))
    return pil.filter(ImageFilter.GaussianBlur(rng.uniform(0.0, 1.0)))


def render_image(seed: int, index: int, number: int, image_size: int = 250, shape: FaceShape | None = None) -> bytes:
    """JPEG bytes of picture `number` (1-based) of identity `index`."""
    shape = shape or identity_shape(seed, index)
    rng = np.random.default_rng([seed, 1, index, number])
    canvas = _background(rng, image_size)
    paint_face(canvas, shape, _pose(rng, image_size))
    buffer = io.BytesIO()
    _photograph(rng, canvas).save(buffer, format="JPEG", quality=int(rng.integers(78, 96)))
    return buffer.getvalue()
