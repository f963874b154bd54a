"""`facenet export` and `--runtime onnx`: the exported file carries the source model's identity, so
ONNX Runtime gives the distance PyTorch gives and searches galleries the checkpoint embedded."""

from __future__ import annotations

import json

import onnx
import pytest
from support.cli import assert_one_line_error, invoke

from facenet_core.fileio import sha256_file
from facenet_core.inference.onnx import CONTRACT_KEY
from facenet_core.inference.runtime import SOURCE_MODEL_KEY


@pytest.mark.slow
@pytest.mark.lfw
def test_exported_model_verifies_as_the_checkpoint_does(photo_paths, project_checkpoint, tmp_path, capsys):
    out = tmp_path / "facenet.onnx"
    code, stdout, _ = invoke(["export", "--checkpoint", str(project_checkpoint), "--out", str(out)], capsys)
    identity = f"sha256:{sha256_file(project_checkpoint)}"
    assert code == 0 and stdout == f"wrote {out} (model {identity})\n"
    metadata = {prop.key: prop.value for prop in onnx.load(out).metadata_props}
    assert json.loads(metadata[CONTRACT_KEY])[SOURCE_MODEL_KEY] == identity
    pair = [str(photo_paths[0]), str(photo_paths[1]), "--device", "cpu"]
    torch_line = invoke(["verify", *pair, "--checkpoint", str(project_checkpoint)], capsys)[1].splitlines()[0]
    code, onnx_out, _ = invoke(["verify", *pair, "--model", str(out), "--runtime", "onnx"], capsys)
    assert code == 0
    assert float(onnx_out.split()[1]) == pytest.approx(float(torch_line.split()[1]), abs=1e-4)


def test_runtime_mismatches_get_one_line(project_checkpoint, tmp_path, capsys):
    onnx_file = tmp_path / "model.onnx"
    onnx_file.write_bytes(b"not onnx")
    photo = str(tmp_path / "a.jpg")
    cases = [
        (["export", "--model", str(onnx_file), "--out", str(tmp_path / "x.onnx")], "already an ONNX file"),
        (["verify", photo, photo, "--model", str(onnx_file), "--runtime", "torch"], "add --runtime onnx"),
        (["verify", photo, photo, "--model", str(onnx_file)], "is not a readable ONNX model"),
        (["verify", photo, photo, "--checkpoint", str(tmp_path / "none.pt")], "--checkpoint"),
    ]
    for argv, message in cases:
        code, _, err = invoke(argv, capsys)
        assert code == 2 and message in assert_one_line_error(err)
    assert not (tmp_path / "x.onnx").exists()


@pytest.mark.slow
@pytest.mark.lfw
def test_evaluate_on_onnx_gives_the_checkpoints_metrics(crop_stage, project_checkpoint, tmp_path, capsys):
    """`facenet evaluate --runtime onnx` (a checkpoint exported on the fly, or the .onnx file itself)
    gives the metrics the PyTorch model gives on the same crops."""
    _, crops = crop_stage
    people = sorted(folder.name for folder in crops.iterdir() if folder.is_dir() and folder.name[0] != ".")
    counts = {person: len(list((crops / person).glob("*.png"))) for person in people}
    same = [f"{person}\t1\t2" for person in people if counts[person] >= 2]
    different = [f"{people[0]}\t1\t{people[1]}\t1", f"{people[0]}\t2\t{people[1]}\t2"]
    pairs = tmp_path / "pairs.txt"
    pairs.write_text(f"1\t{len(same)}\n" + "\n".join(same + different[: len(same)]) + "\n")
    common = ["--lfw", str(crops), "--cropped", "--pairs", str(pairs), "--device", "cpu", "--json"]
    exported = tmp_path / "model.onnx"
    assert invoke(["export", "--checkpoint", str(project_checkpoint), "--out", str(exported)], capsys)[0] == 0
    runs = {
        "torch": ["evaluate", "--checkpoint", str(project_checkpoint), *common],
        "exported on the fly": ["evaluate", "--checkpoint", str(project_checkpoint), "--runtime", "onnx", *common],
        "onnx file": ["evaluate", "--checkpoint", str(exported), *common],
    }
    metrics = {}
    for name, argv in runs.items():
        code, stdout, _ = invoke(argv, capsys)
        assert code == 0, name
        metrics[name] = json.loads(stdout)
    assert metrics["torch"]["num_pairs"] == len(same) * 2
    for name in ("exported on the fly", "onnx file"):
        assert metrics[name]["accuracy"] == metrics["torch"]["accuracy"]
        assert metrics[name]["best_distance_threshold"] == pytest.approx(
            metrics["torch"]["best_distance_threshold"], abs=1e-4
        )
