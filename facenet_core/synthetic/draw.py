"""Paint a simple photographic-looking face with numpy: soft shapes in face coordinates.

Every shape is defined in a face frame where the face ellipse has half-height 1 and is centred at
the origin (v grows towards the chin). The pixel grid is mapped into that frame once per image,
so rotation, scale and shift of the whole head cost nothing per shape, and shape edges are
anti-aliased by the size of one pixel in face units.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

RGB = tuple[float, float, float]


@dataclass(frozen=True)
class FaceShape:
    """What makes one person's face: geometry and colours (face units, RGB in 0..1)."""

    face_aspect: float
    jaw_narrowing: float
    eye_y: float
    eye_spacing: float
    eye_width: float
    eye_height: float
    iris_rgb: RGB
    brow_gap: float
    brow_thickness: float
    brow_tilt: float
    brow_arch: float
    nose_length: float
    nose_width: float
    mouth_y: float
    mouth_width: float
    lip_thickness: float
    lip_rgb: RGB
    skin_rgb: RGB
    hair_rgb: RGB
    hair_style: int
    hairline: float
    ear_size: float
    glasses: bool
    beard: bool


@dataclass(frozen=True)
class FacePose:
    """Where and how the face appears in one picture (pixels, radians), its expression and outfit."""

    center_x: float
    center_y: float
    half_height_px: float
    angle: float
    yaw: float
    mouth_open: float
    gaze_x: float
    brow_raise: float
    light_side: float
    shirt_rgb: RGB
    wears_glasses: bool


class _Frame:
    """A window of the canvas with its pixels' face coordinates; shapes are evaluated only there."""

    def __init__(
        self, u: np.ndarray, v: np.ndarray, canvas: np.ndarray, pose: FacePose, origin: tuple[int, int] = (0, 0)
    ) -> None:
        self.u, self.v, self.canvas, self.pose, self.origin = u, v, canvas, pose, origin
        self.aa = 1.0 / pose.half_height_px

    @classmethod
    def whole(cls, canvas: np.ndarray, pose: FacePose) -> _Frame:
        """The full canvas mapped into the face frame of `pose`."""
        height, width = canvas.shape[:2]
        ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
        dx, dy = xs - pose.center_x, ys - pose.center_y
        cos, sin = np.cos(pose.angle), np.sin(pose.angle)
        u = (cos * dx + sin * dy) / pose.half_height_px
        v = (-sin * dx + cos * dy) / pose.half_height_px
        return cls(u, v, canvas, pose)

    def window(self, cu: float, cv: float, radius: float) -> _Frame:
        """The part of this frame within `radius` face units of (cu, cv), as views (paint writes through)."""
        pose = self.pose
        cos, sin = np.cos(pose.angle), np.sin(pose.angle)
        x = pose.center_x + pose.half_height_px * (cos * cu - sin * cv)
        y = pose.center_y + pose.half_height_px * (sin * cu + cos * cv)
        reach = radius * pose.half_height_px + 2
        y, x = y - self.origin[0], x - self.origin[1]
        height, width = self.canvas.shape[:2]
        rows = slice(int(np.clip(y - reach, 0, height)), int(np.clip(y + reach + 1, 0, height)))
        cols = slice(int(np.clip(x - reach, 0, width)), int(np.clip(x + reach + 1, 0, width)))
        origin = (self.origin[0] + rows.start, self.origin[1] + cols.start)
        return _Frame(self.u[rows, cols], self.v[rows, cols], self.canvas[rows, cols], pose, origin)

    def ellipse(self, cx: float, cy: float, rx: float, ry: float, angle: float = 0.0) -> np.ndarray:
        """Anti-aliased coverage (0..1) of a filled, optionally tilted ellipse."""
        du, dv = self.u - cx, self.v - cy
        if angle:
            cos, sin = np.cos(angle), np.sin(angle)
            du, dv = cos * du + sin * dv, -sin * du + cos * dv
        radius = np.sqrt((du / rx) ** 2 + (dv / ry) ** 2)
        return np.clip((1.0 - radius) * min(rx, ry) / self.aa + 0.5, 0.0, 1.0)

    def blob(self, cx: float, cy: float, rx: float, ry: float) -> np.ndarray:
        """A Gaussian bump (soft shading), 1 at the centre."""
        return np.exp(-0.5 * (((self.u - cx) / rx) ** 2 + ((self.v - cy) / ry) ** 2))

    def arc(self, cx: float, cy: float, half_width: float, arch: float, thickness: float, tilt: float) -> np.ndarray:
        """A thick curved stroke (eyebrow, eyelid) tapering towards its ends."""
        du, dv = self.u - cx, self.v - cy
        cos, sin = np.cos(tilt), np.sin(tilt)
        du, dv = cos * du + sin * dv, -sin * du + cos * dv
        t = np.clip(du / half_width, -1.5, 1.5)
        centre_line = -arch * (1.0 - t**2)
        half_thick = 0.5 * thickness * (1.0 - 0.5 * t**2)
        across = np.clip((half_thick - np.abs(dv - centre_line)) / self.aa + 0.5, 0.0, 1.0)
        along = np.clip((half_width - np.abs(du)) / self.aa + 0.5, 0.0, 1.0)
        return across * along

    def paint(self, mask: np.ndarray, rgb: RGB | np.ndarray, alpha: float = 1.0) -> None:
        """Blend colour `rgb` (a triple or an image of this window) over the canvas where `mask` covers it."""
        rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
        if not rows.size:
            return
        box = (slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1))
        colour = np.asarray(rgb, dtype=np.float32)
        colour = colour[box] if colour.ndim == 3 else colour
        target = self.canvas[box]
        target += (mask[box] * alpha)[..., None] * (colour - target)

    def shade(self, mask: np.ndarray, factor: float) -> None:
        """Multiply the canvas by (1 - factor * mask): shadows where factor > 0."""
        self.canvas *= (1.0 - factor * mask)[..., None]


def _scaled(rgb: RGB, factor: float) -> tuple[float, ...]:
    return tuple(min(1.0, c * factor) for c in rgb)


def _face_radius(frame: _Frame, shape: FaceShape) -> np.ndarray:
    """Normalised distance from the face centre: 1 on the head outline, whose lower half narrows."""
    lower = np.clip(frame.v, 0.0, None)
    half_width = shape.face_aspect * (1.0 - shape.jaw_narrowing * lower**2)
    return np.sqrt((frame.u / half_width) ** 2 + frame.v**2)


def _paint_body_and_back_hair(frame: _Frame, shape: FaceShape, pose: FacePose) -> None:
    aspect = shape.face_aspect
    body = frame.window(0.0, 2.35, 2.1)
    body.paint(body.ellipse(0.0, 2.35, 2.1, 1.0), pose.shirt_rgb)
    if shape.hair_style == 1:
        back = frame.window(0.0, 0.2, 1.3)
        back.paint(back.ellipse(0.0, 0.2, aspect * 1.25, 1.15), shape.hair_rgb)
    neck = frame.window(0.0, 1.05, 0.6)
    neck_mask = neck.ellipse(0.0, 1.05, 0.52 * aspect, 0.6)
    neck.paint(neck_mask, _scaled(shape.skin_rgb, 0.8))
    neck.shade(neck_mask * neck.blob(0.0, 1.0, 0.5 * aspect, 0.12), 0.35)
    head = frame.window(0.0, -0.1, 1.1)
    if shape.hair_style != 2:
        head.paint(head.ellipse(0.0, -0.12, aspect * 1.12, 1.04), shape.hair_rgb)
    for side in (-1.0, 1.0):
        ear = head.ellipse(side * (aspect + 0.02), 0.0, 0.1 * shape.ear_size, 0.19 * shape.ear_size)
        head.paint(ear, _scaled(shape.skin_rgb, 0.88))


def _paint_face(frame: _Frame, shape: FaceShape, pose: FacePose) -> None:
    aspect = shape.face_aspect
    frame = frame.window(0.0, 0.0, 1.05)
    radius = _face_radius(frame, shape)
    face = np.clip((1.0 - radius) * aspect / frame.aa + 0.5, 0.0, 1.0)
    rim = np.clip(radius, 0.0, 1.0) ** 4
    side_light = 1.0 + 0.12 * pose.light_side * np.clip(frame.u / aspect, -1.0, 1.0)
    tone = (1.0 - 0.28 * rim) * side_light
    frame.paint(face, tone[..., None] * np.asarray(shape.skin_rgb, dtype=np.float32))
    if shape.beard:
        tip = shape.eye_y + shape.nose_length
        chin = np.clip((frame.v - shape.mouth_y - 0.02) / 0.04, 0.0, 1.0)
        jaw = np.clip((radius - 0.86) / 0.05, 0.0, 1.0) * np.clip((frame.v - tip) / 0.06, 0.0, 1.0)
        frame.paint(face * np.maximum(chin, jaw), shape.hair_rgb, alpha=0.6)
    if shape.hair_style != 2:
        hairline = -shape.hairline + 0.35 * frame.u**2
        cap = np.clip((hairline - frame.v) / (3 * frame.aa), 0.0, 1.0)
        frame.paint(cap * frame.ellipse(0.0, -0.12, aspect * 1.12, 1.04), shape.hair_rgb)


def _turned(x: float, yaw: float, radius: float, depth: float = 0.0) -> tuple[float, float]:
    """Where a feature at horizontal position `x` lands when the head turns by `yaw`, and its
    horizontal foreshortening: the face is treated as a vertical cylinder of `radius`, and
    `depth` lifts a feature off it (the nose tip)."""
    phi = float(np.arcsin(np.clip(x / radius, -0.95, 0.95)))
    return (radius + depth) * float(np.sin(phi + yaw)), float(np.cos(phi + yaw) / np.cos(phi))


def _paint_eye(frame: _Frame, shape: FaceShape, pose: FacePose, side: float) -> None:
    cx, squeeze = _turned(side * shape.eye_spacing, pose.yaw, shape.face_aspect)
    cy, rx, ry = shape.eye_y, shape.eye_width * squeeze, shape.eye_height
    frame = frame.window(cx, cy - 0.08, 0.42)
    frame.shade(frame.blob(cx, cy - 0.02, rx * 1.1, ry * 1.9), 0.22)
    sclera = frame.ellipse(cx, cy, rx, ry)
    frame.paint(sclera, (0.93, 0.91, 0.88))
    iris_r = ry * 0.95
    iris_x = cx + pose.gaze_x * rx * 0.35
    frame.paint(sclera * frame.ellipse(iris_x, cy, iris_r * squeeze, iris_r), shape.iris_rgb)
    frame.paint(sclera * frame.ellipse(iris_x, cy, iris_r * 0.45 * squeeze, iris_r * 0.45), (0.05, 0.04, 0.04))
    frame.paint(frame.ellipse(iris_x + iris_r * 0.3, cy - iris_r * 0.3, iris_r * 0.15, iris_r * 0.15), (1, 1, 1), 0.8)
    lid = frame.arc(cx, cy - ry * 0.55, rx * 1.02, ry * 0.45, ry * 0.35, 0.0)
    frame.paint(lid, (0.12, 0.08, 0.07))
    brow_y = cy - ry - shape.brow_gap - pose.brow_raise
    brow_x = cx + side * 0.02 * squeeze
    brow = frame.arc(brow_x, brow_y, rx * 1.25, shape.brow_arch, shape.brow_thickness, side * shape.brow_tilt)
    frame.paint(brow, _scaled(shape.hair_rgb, 0.8), alpha=0.95)


def _paint_nose_and_mouth(frame: _Frame, shape: FaceShape, pose: FacePose) -> None:
    aspect, yaw = shape.face_aspect, pose.yaw
    top, tip = shape.eye_y + 0.05, shape.eye_y + shape.nose_length
    tip_x, turn = _turned(0.0, yaw, aspect, depth=0.12)
    frame = frame.window(tip_x, 0.5 * (top + shape.mouth_y + 0.15), 0.5 * (shape.mouth_y + 0.15 - top) + 0.3)
    nose_w = shape.nose_width * turn
    ridge_x = 0.5 * (tip_x + _turned(0.0, yaw, aspect, depth=0.04)[0]) - 0.5 * nose_w * np.sign(pose.light_side)
    frame.shade(frame.blob(ridge_x, 0.5 * (top + tip), 0.03, 0.35 * (tip - top)), 0.16)
    frame.shade(frame.blob(tip_x, tip + 0.03, nose_w * 1.1, 0.05), 0.22)
    for side in (-1.0, 1.0):
        nostril = frame.ellipse(tip_x + side * nose_w * 0.45, tip + 0.02, 0.035 * turn, 0.02, side * 0.3)
        frame.paint(nostril, (0.18, 0.1, 0.09), 0.85)
    mx, _ = _turned(0.0, yaw, aspect, depth=0.03)
    my, mw, lip = shape.mouth_y, shape.mouth_width * turn, shape.lip_thickness
    opening = pose.mouth_open * lip
    if shape.beard:
        moustache = frame.arc(mx, my - lip - 0.035, mw * 1.05, 0.03, 0.05, 0.0)
        frame.paint(moustache, shape.hair_rgb, alpha=0.6)
    frame.shade(frame.blob(mx, my + lip + 0.08, mw * 0.6, 0.05), 0.12)
    frame.paint(frame.ellipse(mx, my - opening / 2 - lip * 0.45, mw, lip * 0.55), shape.lip_rgb)
    frame.paint(frame.ellipse(mx, my + opening / 2 + lip * 0.5, mw * 0.85, lip * 0.65), _scaled(shape.lip_rgb, 1.08))
    frame.paint(frame.ellipse(mx, my, mw * 0.92, max(opening / 2, 0.008)), (0.15, 0.05, 0.05))


def _paint_glasses(frame: _Frame, shape: FaceShape, pose: FacePose) -> None:
    rim, cy = 0.022, shape.eye_y
    centre, _ = _turned(0.0, pose.yaw, shape.face_aspect, depth=0.05)
    frame = frame.window(centre, cy, shape.eye_spacing + shape.eye_width * 1.5 + 0.1)
    inner = []
    for side in (-1.0, 1.0):
        cx, squeeze = _turned(side * shape.eye_spacing, pose.yaw, shape.face_aspect, depth=0.05)
        rx, ry = shape.eye_width * 1.45 * squeeze, shape.eye_height * 2.1
        lens = frame.ellipse(cx, cy, rx, ry)
        frame.paint(lens, (0.6, 0.7, 0.75), alpha=0.12)
        ring = np.clip(lens - frame.ellipse(cx, cy, rx - rim, ry - rim), 0.0, 1.0)
        frame.paint(ring, (0.08, 0.07, 0.07))
        inner.append(cx - side * rx)
    bridge = frame.arc(0.5 * (inner[0] + inner[1]), cy - 0.03, 0.5 * (inner[1] - inner[0]), 0.03, rim, 0.0)
    frame.paint(bridge, (0.08, 0.07, 0.07))


def paint_face(canvas: np.ndarray, shape: FaceShape, pose: FacePose) -> None:
    """Paint a head, shoulders and face onto `canvas` (float32 HxWx3 in 0..1), in place."""
    frame = _Frame.whole(canvas, pose)
    _paint_body_and_back_hair(frame, shape, pose)
    _paint_face(frame, shape, pose)
    for side in (-1.0, 1.0):
        _paint_eye(frame, shape, pose, side)
    _paint_nose_and_mouth(frame, shape, pose)
    if shape.glasses and pose.wears_glasses:
        _paint_glasses(frame, shape, pose)
