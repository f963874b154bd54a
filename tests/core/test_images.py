"""The image vocabulary: which names are images (the same for the manifest scan, the crop stage and
LFW pair resolution) and how every mode decodes to RGB uint8 (the same for the crop stage and the loaders)."""

import io
import warnings

import numpy as np
import pytest
from PIL import Image

from facenet_core.data.scan import scan_identity
from facenet_core.detect.shards import plan
from facenet_core.evaluate.pairs import read_pairs, resolve_pairs
from facenet_core.images import IMAGE_EXTENSIONS, is_image_name, load_rgb, open_rgb, to_rgb, to_rgb_array

# Every extension one of the three earlier definitions accepted that stays (.jfif came from the crop
# stage, .pnm from the manifest; LFW pairs took all of PIL's, of which .jpe and JPEG 2000 stay).
ACCEPTED_BEFORE = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm", ".pbm"}
ACCEPTED_BEFORE |= {".jfif", ".pnm", ".jpe", ".jp2", ".j2k"}
# Extensions PIL registers that hold no face photographs (icons, documents, layers, video, stubs).
REFUSED = {".ico", ".pdf", ".eps", ".psd", ".mpg", ".fits", ".h5", ".tga", ".xbm", ".dds", ".txt", ".json", ""}


def test_extensions_are_the_decodable_photo_formats_in_lower_case():
    assert IMAGE_EXTENSIONS == ACCEPTED_BEFORE
    Image.init()
    decodable = {ext for ext, fmt in Image.registered_extensions().items() if fmt in Image.OPEN}
    assert IMAGE_EXTENSIONS <= decodable
    assert all(ext == ext.lower() and ext.startswith(".") for ext in IMAGE_EXTENSIONS)
    assert is_image_name("Face.JPG") and is_image_name("dir/a.b.JfIf") and is_image_name("x.Pnm")
    assert not any(is_image_name(f"face{ext}") for ext in REFUSED)
    assert not is_image_name(".jpg") and not is_image_name("jpg")  # a hidden name without a suffix


def _png() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), (10, 20, 30)).save(buffer, format="PNG")
    return buffer.getvalue()


def test_scan_crop_listing_and_pairs_accept_the_same_names(tmp_path):
    names = [f"Ann_{k:04d}{ext}" for k, ext in enumerate(sorted(IMAGE_EXTENSIONS | REFUSED), start=1)]
    names += [f"Ann_{k:04d}.JPG" for k in range(len(names) + 1, len(names) + 2)]
    root = tmp_path / "lfw"
    (root / "Ann").mkdir(parents=True)
    for name in names:
        (root / "Ann" / name).write_bytes(_png())  # decodable whatever the name says
    expected = sorted(name for name in names if is_image_name(name))
    assert len(expected) == len(IMAGE_EXTENSIONS) + 1

    scanned = scan_identity(str(root), "Ann", validate=True, dedupe=False)
    assert sorted(path.split("/")[1] for path in scanned.paths) == expected and not scanned.rejects
    assert scanned.ignored == len(REFUSED)
    jobs, rejected = plan(root, ["Ann"])
    assert sorted(source.split("/")[1] for source, _ in jobs) == expected and not rejected
    pairs_file = tmp_path / "pairs.txt"
    numbers = range(1, len(names) + 1)
    same, different = [f"Ann\t{k}\t{k}\n" for k in numbers], [f"Ann\t{k}\tAnn\t{k}\n" for k in numbers]
    pairs_file.write_text(f"1\t{len(names)}\n" + "".join(same + different))
    resolved = resolve_pairs(read_pairs(pairs_file), root)
    assert sorted(path.name for path in resolved.images) == expected
    assert resolved.missing_pairs == 2 * len(REFUSED)


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


def _pixels(image: Image.Image) -> list:
    return to_rgb_array(image).reshape(-1, 3).tolist()


@pytest.mark.parametrize(
    ("image", "expected"),
    [
        (Image.fromarray(np.array([[0, 200]], np.uint8), "L"), [[0, 0, 0], [200, 200, 200]]),
        (Image.fromarray(np.array([[0, 255]], np.uint8)).convert("1"), [[0, 0, 0], [255, 255, 255]]),
        (Image.fromarray(np.array([[[10, 20, 30, 0]]], np.uint8), "RGBA"), [[10, 20, 30]]),
        (Image.merge("LA", [Image.new("L", (1, 1), 77), Image.new("L", (1, 1), 0)]), [[77, 77, 77]]),
        (Image.new("CMYK", (1, 1), (0, 255, 255, 0)), [[255, 0, 0]]),
        (Image.fromarray(np.array([[0, 257, 257 * 100, 65535]], np.uint16)), [[v] * 3 for v in (0, 1, 100, 255)]),
        (Image.fromarray(np.array([[0, 200]], np.uint16)), [[0, 0, 0], [1, 1, 1]]),  # 16-bit, however dark
        (Image.fromarray(np.array([[0, 200]], np.int32), "I"), [[0, 0, 0], [200, 200, 200]]),
        (Image.fromarray(np.array([[-5, 65535, 70000]], np.int32), "I"), [[0, 0, 0], [255] * 3, [255] * 3]),
        (Image.fromarray(np.array([[0.0, 1.0]], np.float32), "F"), [[0, 0, 0], [255, 255, 255]]),
    ],
    ids=["L", "1", "RGBA", "LA", "CMYK", "I;16", "I;16-dark", "I-8bit", "I-wide", "F"],
)
def test_each_mode_decodes_to_these_pixels(image, expected):
    assert _pixels(image) == expected
    rgb = to_rgb(image)
    assert rgb.mode == "RGB" and np.asarray(rgb).reshape(-1, 3).tolist() == expected


def test_palette_with_transparency_expands_its_colours_without_a_warning():
    palette = Image.new("P", (2, 1), 1)
    palette.putpalette([0, 0, 0, 200, 100, 50] + [0] * 762)
    palette.info["transparency"] = 0
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert _pixels(palette) == [[200, 100, 50]] * 2
        assert _pixels(palette.convert("PA")) == [[200, 100, 50]] * 2


def test_a_16_bit_png_reads_the_same_for_the_crop_stage_and_the_loaders(tmp_path):
    path = tmp_path / "deep.png"
    Image.fromarray(np.array([[0, 257 * 100, 65535]], dtype=np.uint16)).save(path)
    assert Image.open(path).mode == "I;16"
    assert load_rgb(path).tolist() == [[[0] * 3, [100] * 3, [255] * 3]]
    assert np.asarray(open_rgb(path)).tolist() == load_rgb(path).tolist()


def test_8_bit_rgb_files_decode_to_their_own_bytes(tmp_path):
    pixels = np.random.default_rng(0).integers(0, 256, (5, 7, 3), dtype=np.uint8)
    path = tmp_path / "plain.png"
    Image.fromarray(pixels).save(path)
    assert (load_rgb(path) == pixels).all() and load_rgb(path).flags.c_contiguous
    with Image.open(path) as image:
        assert (to_rgb_array(image) == pixels).all() and to_rgb(image) is image


def test_open_rgb_leaves_no_file_open(tmp_path):
    path = tmp_path / "frames.gif"
    frames = [Image.new("P", (4, 4), k) for k in range(3)]
    frames[0].save(path, save_all=True, append_images=frames[1:])
    with warnings.catch_warnings():
        warnings.simplefilter("error", ResourceWarning)
        image = open_rgb(path)
    assert image.mode == "RGB" and image.size == (4, 4)
    assert getattr(image, "fp", None) is None


@pytest.mark.lfw
def test_lfw_jpegs_decode_as_the_reference_alignment_read_them(lfw_dir):
    """The crop references were made from PIL's own RGB conversion: on LFW's 8-bit JPEGs the shared
    decoder gives the same bytes, so the crops do not move."""
    root = lfw_dir / "lfw-deepfunneled"
    people = sorted(path for path in root.iterdir() if path.is_dir())[::50]
    paths = [path for person in people for path in sorted(person.glob("*.jpg"))[:2]]
    assert len(paths) > 100
    for path in paths:
        with Image.open(path) as image:
            expected = np.asarray(image.convert("RGB"))
        decoded = load_rgb(path)
        assert decoded.dtype == np.uint8 and (decoded == expected).all(), path
