"""Photo inputs (`list_photos`) and `facenet embed`: one row per face with the identity folder's name,
rows with a status for photos without a face or unreadable, a fixed-size float32 embedding column
equal to the embedder's output, the model's identity, and a table written atomically."""

from __future__ import annotations

import json
import os
import shutil

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image
from support.cli import assert_one_line_error, invoke

from facenet_core.errors import UserError
from facenet_core.fileio import sha256_file
from facenet_core.inference.faces import detect_faces
from facenet_core.inference.photos import PhotoInput, list_photos
from facenet_core.inference.runtime import open_model


def _touch_images(folder, names):
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        (folder / name).write_bytes(b"")


def test_folders_of_identity_folders_flat_folders_and_files(tmp_path):
    tree = tmp_path / "people"
    _touch_images(tree / "bob", ["b.JPG", "a.png", "notes.txt", ".hidden.jpg"])
    _touch_images(tree / "alice", ["x.webp"])
    _touch_images(tree / ".shards", ["s.jpg"])
    flat = tmp_path / "flat"
    _touch_images(flat, ["2.jpg", "1.jpeg"])
    _touch_images(flat / "sub", ["ignored.jpg"])
    single = tmp_path / "one.bin"
    single.write_bytes(b"")
    found = list_photos([tree, flat, single, tree / "bob" / "a.png"])
    assert found == [
        PhotoInput(tree / "alice" / "x.webp", "alice"),
        PhotoInput(tree / "bob" / "a.png", "bob"),
        PhotoInput(tree / "bob" / "b.JPG", "bob"),
        PhotoInput(flat / "1.jpeg", None),
        PhotoInput(flat / "2.jpg", None),
        PhotoInput(single, None),
    ]


def test_a_missing_input_or_a_folder_without_photos_is_an_error_naming_it(tmp_path):
    with pytest.raises(UserError, match="photo .*missing.jpg does not exist"):
        list_photos([tmp_path / "missing.jpg"])
    _touch_images(tmp_path / "empty" / "someone", ["notes.txt"])
    with pytest.raises(UserError, match="folder .*empty holds no photo"):
        list_photos([tmp_path / "empty"])


@pytest.fixture(scope="module")
def gallery_tree(photo_tree, tmp_path_factory):
    """The LFW photos, a plain grey image and a file that is not an image, in identity folders."""
    root = tmp_path_factory.mktemp("gallery") / "people"
    shutil.copytree(photo_tree, root)
    Image.new("RGB", (160, 160), (128, 128, 128)).save(root / "Abdullah_Gul" / "grey.png")
    (root / "Aaron_Peirsol" / "broken.jpg").write_text("not a photo")
    return root


@pytest.mark.lfw
def test_embed_writes_one_row_per_photo_with_identity_status_and_embedding(
    gallery_tree, photo_paths, project_checkpoint, tmp_path, capsys
):
    out = tmp_path / "tables" / "gallery.parquet"
    argv = ["embed", str(gallery_tree), "--checkpoint", str(project_checkpoint), "--device", "cpu", "--out", str(out)]
    code, stdout, _ = invoke([*argv, "--batch_size", "2"], capsys)
    assert code == 0
    summary = json.loads(stdout)
    assert {k: summary[k] for k in ("photos", "ok", "no_face", "unreadable", "rows")} == {
        "photos": 6,
        "ok": 4,
        "no_face": 1,
        "unreadable": 1,
        "rows": 6,
    }
    assert sorted(p.name for p in out.parent.iterdir()) == ["gallery.parquet"]  # no temporary left
    table = pq.read_table(out)
    assert table.schema.field("embedding").type == pa.list_(pa.float32(), 16)
    rows = {row["source"].rsplit("/", 1)[1]: row for row in table.to_pylist()}
    model = f"sha256:{sha256_file(project_checkpoint)}"
    assert {row["model"] for row in rows.values()} == {model}
    assert rows["grey.png"]["identity"] == "Abdullah_Gul" and rows["grey.png"]["status"] == "no_face"
    assert rows["grey.png"]["face_index"] is None and not any(rows["grey.png"]["embedding"])
    assert rows["broken.jpg"]["status"].startswith("unreadable: UnidentifiedImageError")
    opened = open_model(project_checkpoint, device="cpu")
    options = opened.embedder.contract.crop_options(device="cpu")
    faces = [photo.faces[0] for photo in detect_faces(photo_paths, options)]
    expected = opened.embedder.embed(np.stack([face.crop for face in faces]))
    for path, face, vector in zip(photo_paths, faces, expected, strict=True):
        row = rows[path.name]
        assert (row["identity"], row["status"], row["face_index"]) == (path.parent.name, "ok", 0)
        assert tuple(row["box"]) == face.box and row["score"] == pytest.approx(face.score)
        np.testing.assert_allclose(row["embedding"], vector, atol=1e-6)


def test_embed_of_a_missing_input_is_one_line_and_writes_nothing(project_checkpoint, tmp_path, capsys):
    out = tmp_path / "gallery.parquet"
    argv = ["embed", str(tmp_path / "nowhere"), "--checkpoint", str(project_checkpoint), "--out", str(out)]
    code, _, err = invoke(argv, capsys)
    assert code == 2 and "nowhere does not exist" in assert_one_line_error(err)
    assert not out.exists()


def test_a_photo_whose_name_is_not_utf8_is_an_unreadable_row(project_checkpoint, tmp_path, capsys):
    folder = tmp_path / "flat"
    folder.mkdir()
    grey = Image.new("RGB", (120, 120), (128, 128, 128))
    grey.save(folder / "grey.png")
    grey.save(os.fsdecode(os.fsencode(folder) + b"/\xff.png"))
    out = tmp_path / "faces.parquet"
    argv = ["embed", str(folder), "--checkpoint", str(project_checkpoint), "--device", "cpu", "--out", str(out)]
    assert invoke([*argv, "--faces", "all"], capsys)[0] == 0
    rows = pq.read_table(out, columns=["source", "identity", "status"]).to_pylist()
    assert rows == [
        {"source": str(folder / "grey.png"), "identity": None, "status": "no_face"},
        {
            "source": str(folder / "\ufffd.png"),
            "identity": None,
            "status": "unreadable: its name is not valid UTF-8: rename it",
        },
    ]
