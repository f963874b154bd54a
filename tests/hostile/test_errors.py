"""The one error boundary: every user error is one line on stderr naming the file or parameter,
exit code 2, no traceback; `--debug` or FACENET_DEBUG=1 shows the traceback; a bug keeps it.

Each case is built at test time and leaves the folders around it (its own area and a sibling) as
they were.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from support.cli import invoke
from support.tree_state import tree_state

from facenet_core.models import create_model
from flows.cli import build_parser, main

pytestmark = pytest.mark.timeout(120)
REPO = Path(__file__).resolve().parents[2]
COMMANDS = sorted(build_parser()._subparsers._group_actions[0].choices)


@pytest.fixture
def area(tmp_path: Path, sibling: Path) -> dict[str, Path]:
    """A folder for the case's inputs and a sibling folder a user keeps beside it."""
    root = tmp_path / "area"
    root.mkdir()
    return {"root": root, "sibling": sibling}


def snapshot(area: dict[str, Path]) -> dict[str, dict[str, str]]:
    return {name: tree_state(path) for name, path in area.items()}


def run_cli(argv: list[str], capsys: pytest.CaptureFixture) -> tuple[int, str]:
    """`facenet ARGV` in-process: (exit code, stderr)."""
    code, _, err = invoke(argv, capsys)
    return code, err


def assert_one_line(code: int, err: str, *named: str) -> str:
    """Exit code 2 and exactly one line on stderr, without a traceback, naming each of `named`."""
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and "Traceback" not in err, err
    for name in named:
        assert name in lines[0], (name, lines[0])
    return lines[0]


def save_checkpoint(path: Path, embedding_dimension: int = 8, weights_dimension: int = 8) -> Path:
    """A checkpoint of ours for a tiny resnet18; its keys may claim another size than its weights."""
    model = create_model("resnet18", weights_dimension)
    state = {
        "epoch": 0,
        "embedding_dimension": embedding_dimension,
        "batch_size_training": 6,
        "model_state_dict": model.state_dict(),
        "model_architecture": "resnet18",
        "optimizer_model_state_dict": None,
        "best_distance_threshold": 1.0,
    }
    torch.save(state, path)
    return path


class RunsCode:
    """Unpickling this calls os.system: what a malicious checkpoint does."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_malformed_yaml_preset(area, capsys) -> None:
    preset = area["root"] / "broken.yaml"
    preset.write_text("epochs: 3\nlr_schedule: {type: step, milestones: [85\n")
    before = snapshot(area)
    line = assert_one_line(*run_cli(["train", "--preset", str(preset)], capsys), str(preset), "not valid YAML")
    assert "line 3" in line
    assert snapshot(area) == before


def test_yaml_python_tag_is_refused_without_running_it(area, capsys) -> None:
    marker = area["sibling"] / "ran"
    preset = area["root"] / "tag.yaml"
    preset.write_text(f'epochs: !!python/object/apply:os.system ["touch {marker}"]\n')
    before = snapshot(area)
    line = assert_one_line(*run_cli(["run", "--preset", str(preset)], capsys), str(preset), "python/object")
    assert "only plain YAML" in line
    assert not marker.exists() and snapshot(area) == before


def test_yaml_error_in_a_flag_value_names_the_flag(capsys) -> None:
    assert_one_line(*run_cli(["train", "--lr_schedule", "{type: step"], capsys), "--lr_schedule", "not valid YAML")


def test_checkpoint_that_is_not_one(area, capsys) -> None:
    fake = area["root"] / "model.pt"
    fake.write_bytes(b"these bytes are no checkpoint\x00\x01\x02")
    argv = ["evaluate", "--checkpoint", str(fake), "--lfw", str(area["root"]), "--device", "cpu"]
    line = assert_one_line(*run_cli(argv, capsys), str(fake), "not a PyTorch checkpoint")
    assert "facenet-flow or by the seed" in line


def test_malicious_checkpoint_is_refused_without_advice_to_trust_it(area, capsys) -> None:
    marker = area["sibling"] / "pwned"
    evil = area["root"] / "evil.pt"
    torch.save({"model_state_dict": {}, "epoch": RunsCode(marker)}, evil)
    before = snapshot(area)
    argv = ["evaluate", "--checkpoint", str(evil), "--lfw", str(area["root"]), "--device", "cpu"]
    line = assert_one_line(*run_cli(argv, capsys), str(evil), "refused", "system")
    assert "weights_only" not in line
    assert not marker.exists() and snapshot(area) == before


def test_wrong_embedding_size(area, capsys) -> None:
    path = save_checkpoint(area["root"] / "mixed.pt", embedding_dimension=16, weights_dimension=8)
    argv = ["evaluate", "--checkpoint", str(path), "--lfw", str(area["root"]), "--device", "cpu"]
    line = assert_one_line(*run_cli(argv, capsys), str(path), "embedding_dimension=16", "size mismatch")
    assert "torch.Size([8, 512])" in line


def test_wrong_embedding_size_when_training_resumes(area) -> None:
    from facenet_core.config import Config
    from facenet_core.errors import UserError
    from facenet_core.train.state import build_state

    path = save_checkpoint(area["root"] / "mixed.pt", embedding_dimension=16, weights_dimension=8)
    config = Config(model_architecture="resnet18", embedding_dimension=16, image_size=32, device="cpu")
    with pytest.raises(UserError, match=rf"checkpoint {path}: its weights do not fit a resnet18 .*size mismatch"):
        build_state(config, 1, torch.device("cpu"), path)


@pytest.mark.parametrize(
    "argv",
    [
        ["train", "--device", "banana"],
        ["evaluate", "--checkpoint", "x.pt", "--lfw", ".", "--device", "banana"],
        ["crop", "in", "out", "--device", "banana"],
    ],
    ids=["config", "evaluate", "crop"],
)
def test_device_banana(argv: list[str], capsys) -> None:
    line = assert_one_line(*run_cli(argv, capsys), "banana", "auto, cpu, cuda or cuda:N")
    assert "device" in line


def test_output_path_that_is_a_file(area, capsys) -> None:
    occupied = area["root"] / "occupied"
    occupied.write_text("a file the user made")
    people = area["root"] / "people" / "ann"
    people.mkdir(parents=True)
    from PIL import Image

    Image.new("RGB", (8, 8), "red").save(people / "ann_0001.jpg")
    before = snapshot(area)
    argv = ["manifest", str(people.parent), "--out", str(occupied / "m.parquet"), "--no_progress", "--workers", "1"]
    assert_one_line(*run_cli(argv, capsys), str(occupied), "not a folder")
    assert_one_line(*run_cli(["synthetic", str(occupied / "demo")], capsys), str(occupied / "demo"), "a file")
    argv = ["manifest", str(people.parent), "--out", str(area["root"]), "--no_progress", "--workers", "1"]
    assert_one_line(*run_cli(argv, capsys), str(area["root"]), "is a folder where a file is needed")
    assert snapshot(area) == before and occupied.read_text() == "a file the user made"


@pytest.mark.parametrize("command", ["stats", "triplets"])
def test_manifest_that_is_not_parquet(command: str, area, capsys) -> None:
    fake = area["root"] / "m.parquet"
    fake.write_text("path,identity\n")
    argv = ["stats", str(fake)] if command == "stats" else ["triplets", "--manifest", str(fake), "--epoch", "0"]
    argv += [] if command == "stats" else ["--out", str(area["root"] / "t.npy")]
    before = snapshot(area)
    assert_one_line(*run_cli(argv, capsys), f"manifest {fake} is not a Parquet file", "facenet manifest")
    assert snapshot(area) == before


def test_non_utf8_pairs_file_names_the_file_and_line(area, capsys) -> None:
    from facenet_core.evaluate.pairs import read_pairs

    pairs = area["root"] / "pairs.txt"
    pairs.write_bytes(b"1\nAnn\t1\t2\n\xff\xfeBob\t1\t2\n")
    with pytest.raises(ValueError, match=rf"pairs file {pairs}: line 3 \(byte 10\) is not UTF-8"):
        read_pairs(pairs)
    checkpoint = save_checkpoint(area["root"] / "ok.pt")
    (area["root"] / "Ann").mkdir()
    argv = ["evaluate", "--checkpoint", str(checkpoint), "--lfw", str(area["root"]), "--pairs", str(pairs)]
    if "--cropped" in subcommand_help("evaluate"):
        argv.append("--cropped")  # the folder holds crops already: no detector run before the pairs are read
    assert_one_line(*run_cli([*argv, "--device", "cpu"], capsys), str(pairs), "line 3", "UTF-8")


def subcommand_help(command: str) -> str:
    return build_parser()._subparsers._group_actions[0].choices[command].format_help()


@pytest.mark.parametrize(
    "argv, named",
    [
        (["train", "--image_size", "99999999"], ["image_size", "allowed range 32..1024"]),
        (["train", "--learning_rate", "0"], ["learning_rate", "> 0"]),
        (["crop", "in", "out", "--image_size", "99999999"], ["--image_size", "allowed 16..1024"]),
        (["evaluate", "--checkpoint", "c.pt", "--lfw", ".", "--lfw_batch_size", "0"], ["--lfw_batch_size", "1..65536"]),
        (["synthetic", "out", "--num_train_identities", "0"], ["--num_train_identities", "allowed 1..100000"]),
    ],
    ids=["config", "config-float", "crop", "evaluate", "synthetic"],
)
def test_out_of_range_numbers(argv: list[str], named: list[str], capsys) -> None:
    assert_one_line(*run_cli(argv, capsys), *named)


def test_debug_flag_and_environment_show_the_traceback(capsys, monkeypatch) -> None:
    for argv in (["--debug", "train", "--device", "banana"], ["train", "--device", "banana", "--debug"]):
        code, err = run_cli(argv, capsys)
        assert code == 2 and "Traceback" in err and "ConfigError" in err
        assert err.strip().splitlines()[-1].startswith("facenet train: error: invalid configuration")
    monkeypatch.setenv("FACENET_DEBUG", "1")
    code, err = run_cli(["train", "--device", "banana"], capsys)
    assert code == 2 and "Traceback" in err


def test_a_bug_keeps_its_traceback(monkeypatch) -> None:
    import flows.cli.stats as stats

    def broken(args):
        raise RuntimeError("a bug, not a user error")

    monkeypatch.setattr(stats, "run", broken)
    with pytest.raises(RuntimeError, match="a bug"):
        main(["stats", "m.parquet"])


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_answers_a_mistake_in_one_line_and_takes_debug(command: str, capsys) -> None:
    line = assert_one_line(*run_cli([command, "--no-such-option"], capsys), "error: ")
    assert line.startswith("facenet")
    with pytest.raises(SystemExit) as stop:
        main([command, "--debug", "--help"])
    assert stop.value.code == 0 and "--debug" in capsys.readouterr().out


def test_as_a_subprocess_one_line_or_the_traceback_on_request(area) -> None:
    preset = area["root"] / "broken.yaml"
    preset.write_text("epochs: [1\n")
    before = snapshot(area)
    env = {**os.environ, "DO_NOT_TRACK": "true", "FACENET_DEBUG": "0"}
    command = [sys.executable, "-m", "flows.cli", "train", "--preset", str(preset)]
    done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and done.stderr.count("\n") == 1 and "Traceback" not in done.stderr
    assert str(preset) in done.stderr
    done = subprocess.run(command, cwd=REPO, env={**env, "FACENET_DEBUG": "1"}, capture_output=True, text=True)
    assert done.returncode == 2 and "Traceback" in done.stderr and "ConfigError" in done.stderr
    assert snapshot(area) == before
