"""Odd image modes decode to RGB uint8 as documented."""

import numpy as np
import pytest
from PIL import Image

from facenet_core.detect.images import load_rgb, to_rgb_array


def test_grayscale_is_replicated():
    gray = np.arange(12, dtype=np.uint8).reshape(3, 4)
    out = to_rgb_array(Image.fromarray(gray, "L"))
    assert out.shape == (3, 4, 3) and (out == gray[:, :, None]).all()


def test_rgba_drops_alpha_without_compositing():
    rgba = np.zeros((2, 2, 4), np.uint8)
    rgba[..., :3] = [10, 20, 30]
    out = to_rgb_array(Image.fromarray(rgba, "RGBA"))
    assert (out == [10, 20, 30]).all()


def test_two_channel_keeps_gray():
    la = Image.merge("LA", [Image.new("L", (3, 2), 77), Image.new("L", (3, 2), 0)])
    assert (to_rgb_array(la) == 77).all()


def test_palette_and_cmyk_are_converted():
    palette = Image.new("P", (2, 2), 1)
    palette.putpalette([0, 0, 0, 200, 100, 50] + [0] * 762)
    assert (to_rgb_array(palette) == [200, 100, 50]).all()
    cmyk = Image.new("CMYK", (2, 2), (0, 255, 255, 0))
    assert (to_rgb_array(cmyk) == [255, 0, 0]).all()


def test_sixteen_bit_is_scaled_to_eight(tmp_path):
    values = np.array([[0, 257 * 100, 65535]], dtype=np.uint16)
    path = tmp_path / "deep.png"
    Image.fromarray(values).save(path)
    assert load_rgb(path)[0, :, 0].tolist() == [0, 100, 255]
    as_int32 = Image.fromarray(values.astype(np.int32), "I")
    assert to_rgb_array(as_int32)[0, :, 1].tolist() == [0, 100, 255]


def test_exif_orientation_ignored_unless_asked(tmp_path):
    pixels = np.zeros((2, 4, 3), np.uint8)
    pixels[0, 0] = 255
    exif = Image.Exif()
    exif[0x0112] = 6
    path = tmp_path / "rotated.jpg"
    Image.fromarray(pixels).save(path, exif=exif.tobytes(), quality=100)
    assert load_rgb(path).shape == (2, 4, 3)
    assert load_rgb(path, exif_transpose=True).shape == (4, 2, 3)


def test_garbage_raises(tmp_path):
    path = tmp_path / "x.jpg"
    path.write_bytes(b"\xff\xd8garbage")
    with pytest.raises(OSError):
        load_rgb(path)


def test_float_images_in_unit_range_are_scaled_to_eight_bits():
    unit = np.array([[0.0, 0.5], [1.0, 0.25]], dtype=np.float32)
    out = to_rgb_array(Image.fromarray(unit, "F"))
    assert out[:, :, 0].tolist() == [[0, 128], [255, 64]]
    wide = np.array([[0.0, 300.0], [12.4, 255.0]], dtype=np.float32)
    assert to_rgb_array(Image.fromarray(wide, "F"))[:, :, 0].tolist() == [[0, 255], [12, 255]]
