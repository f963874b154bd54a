"""Crop options made once from the config, the worker count decided in one place, and the shard
task's cache key read from the typed options."""

from pathlib import Path

from facenet_core.config import Config
from facenet_core.detect.options import CropOptions
from tasks.crop import merge_key, shard_key


def test_crop_options_from_the_config():
    config = Config(
        crop_image_size=96,
        crop_margin=20,
        exif_transpose=True,
        crop_batch_size=4,
        crop_png_compress_level=6,
        crop_batch_megapixels=8.0,
        crop_workers=3,
        device="cpu",
    )
    options = CropOptions.from_config(config)
    assert options == CropOptions(
        image_size=96,
        margin=20,
        exif_transpose=True,
        batch_size=4,
        png_compress_level=6,
        batch_megapixels=8.0,
        workers=3,
        device="cpu",
    )
    assert options.folder_name("lfw") == "lfw-image_size96-margin20-exif_transpose"
    assert CropOptions.from_config(Config()) == CropOptions(device="auto")  # the reference's crop


def test_worker_processes_never_exceed_the_shards():
    assert CropOptions(workers=3).worker_processes(10) == 3
    assert CropOptions(workers=3).worker_processes(1) == 1
    assert CropOptions(workers=0).worker_processes(10_000) == CropOptions().resolved_workers()


def test_shard_key_reads_only_the_output_options(tmp_path):
    raw = tmp_path / "raw" / "ann"
    raw.mkdir(parents=True)
    (raw / "a.jpg").write_bytes(b"jpeg")
    base = {"input_root": tmp_path / "raw", "output_root": tmp_path / "out", "identities": ["ann"]}
    key = shard_key(**base, options=CropOptions(workers=1, batch_size=2))
    assert key["options"] == CropOptions().output_options() and key["out"] == str(tmp_path / "out")
    assert shard_key(**base, options=CropOptions(workers=4, png_compress_level=9)) == key  # speed, file size
    assert shard_key(**base, options=CropOptions(margin=10)) != key


def test_merge_key_reads_the_shard_tables_content(tmp_path):
    tables = [tmp_path / "b.parquet", tmp_path / "a.parquet"]
    for index, table in enumerate(tables):
        table.write_bytes(bytes([index]))
    key = merge_key(output_root=Path("/out"), shard_tables=tables, rejected=[("x/y.jpg", "unreadable")])
    assert key == merge_key(output_root=Path("/out"), shard_tables=tables[::-1], rejected=[["x/y.jpg", "unreadable"]])
    tables[0].write_bytes(b"changed")
    assert merge_key(output_root=Path("/out"), shard_tables=tables, rejected=[("x/y.jpg", "unreadable")]) != key
