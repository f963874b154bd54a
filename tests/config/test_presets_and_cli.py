"""Every preset validates and is found by its short name; every `facenet` subcommand documents its flags."""

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

import deployments
from facenet_core.config import load_config
from facenet_core.config.presets import is_short_name, preset_names, preset_path
from facenet_core.errors import UserError
from facenet_core.ingest import catalogue
from facenet_core.safepath import UnsafeNameError
from flows.cli import build_parser, main
from flows.train import DEFAULT_PRESET

REPO = Path(__file__).resolve().parents[2]
PRESETS = sorted(p for p in deployments.DIR.glob("*.yaml") if p != deployments.CATALOGUE)
COMMANDS = sorted(build_parser()._subparsers._group_actions[0].choices)


def test_expected_presets_exist():
    assert {p.stem for p in PRESETS} >= {"demo", "glint360k_resnet34", "lfw_view1", "lfw_view1_gpu"}


@pytest.mark.parametrize(
    ("mined", "seed", "crop"),
    [
        ("lfw_view1_mined", "lfw_view1", "aligned"),  # the CPU ablation's winner also aligns the faces
        ("lfw_view1_gpu_mined", "lfw_view1_gpu", "mtcnn"),
        ("glint360k_resnet34_mined", "glint360k_resnet34", "mtcnn"),
    ],
)
def test_mined_presets_change_only_how_a_step_is_drawn_and_mined(mined, seed, crop):
    mined_cfg, seed_cfg = load_config(mined), load_config(seed)
    assert (seed_cfg.sampling, seed_cfg.mining) == ("triplets", "seed")
    assert (mined_cfg.sampling, mined_cfg.mining, mined_cfg.crop) == ("pk", "batch_all", crop)
    assert mined_cfg.images_per_step == seed_cfg.images_per_step
    changed = {"sampling", "mining", "pk_identities", "pk_images", "crop"}
    assert mined_cfg.model_dump(exclude=changed) == seed_cfg.model_dump(exclude=changed)


@pytest.mark.parametrize("preset", PRESETS, ids=lambda p: p.stem)
def test_preset_validates(preset):
    cfg = load_config(preset)
    assert cfg.resolved_eval_sets(), f"{preset.name} has no evaluation set"


def test_seed_recipe_preset_matches_the_seed():
    cfg = load_config("glint360k_resnet34")
    assert (cfg.model_architecture, cfg.image_size, cfg.embedding_dimension) == ("resnet34", 140, 512)
    assert (cfg.batch_size, cfg.num_human_identities_per_batch, cfg.margin) == (544, 32, 0.2)
    assert (cfg.optimizer, cfg.learning_rate) == ("adagrad", 0.075)
    assert round(cfg.learning_rate * cfg.lr_schedule.gamma, 4) == 0.01 and cfg.lr_schedule.milestones == [85]


def test_presets_and_catalogue_live_in_the_deployments_package():
    assert deployments.DIR == REPO / "deployments"  # the editable install maps the package to the folder
    assert preset_names() == [p.stem for p in PRESETS] and "datasets" not in preset_names()
    assert catalogue.BUILTIN == deployments.CATALOGUE and catalogue.BUILTIN.is_file()
    assert "lfw" in catalogue.load_catalogue()


def test_short_name_finds_the_packaged_preset_from_any_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "lfw_view1").write_text("epochs: 1\n")  # a file named like the preset does not shadow it
    assert preset_path("lfw_view1") == deployments.DIR / "lfw_view1.yaml"
    assert load_config("lfw_view1") == load_config(deployments.DIR / "lfw_view1.yaml")


@pytest.mark.parametrize("preset", ["mine.yaml", "mine.yml", "sub/mine", "./mine.YAML"])
def test_a_path_is_read_as_given(preset, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "sub").mkdir()
    (tmp_path / preset).write_text("epochs: 3\n")
    assert not is_short_name(preset)
    assert preset_path(preset) == Path(preset) and load_config(preset).epochs == 3


def test_a_path_named_like_a_packaged_preset_is_the_local_file(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "demo.yaml").write_text("epochs: 7\n")
    assert load_config("demo.yaml").epochs == 7
    assert load_config("demo").epochs == load_config(deployments.DIR / "demo.yaml").epochs != 7


@pytest.mark.parametrize(
    ("preset", "error", "message"),
    [
        ("no-such-preset", UserError, r"preset 'no-such-preset' is not a packaged preset \(demo, .*lfw_view1"),
        ("datasets", UserError, r"preset 'datasets' is not a packaged preset"),
        ("..", UnsafeNameError, r"preset name '\.\.' is not a safe file name"),
        ("x" * 300, UnsafeNameError, r"longer than 255 bytes"),
        ("deployments/nothing.yaml", UserError, r"preset deployments/nothing.yaml not found: .*\(demo, "),
    ],
)
def test_unknown_presets_name_the_packaged_ones(preset, error, message, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(error, match=message):
        load_config(preset)


def test_commands_flows_and_deployments_default_to_short_names():
    parser = build_parser()
    for command in ("demo", "run"):
        assert parser.parse_args([command]).preset == "demo"
    assert DEFAULT_PRESET == "demo"
    deployments_yaml = yaml.safe_load((REPO / "prefect.yaml").read_text())["deployments"]
    presets = [d["parameters"]["preset"] for d in deployments_yaml if "preset" in d.get("parameters", {})]
    assert presets and all(is_short_name(p) and p in preset_names() for p in presets)


@pytest.mark.parametrize("command", COMMANDS)
def test_every_subcommand_has_help_with_defaults(command, capsys):
    with pytest.raises(SystemExit) as exit_info:
        build_parser().parse_args([command, "--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    assert f"facenet {command}" in text
    if "--" in text.split("options:")[-1].replace("--help", ""):
        assert "(default:" in text


def test_core_subcommands_are_registered():
    assert set(COMMANDS) >= {"crop", "train", "evaluate", "download", "manifest", "triplets", "stats", "demo", "run"}


def test_readme_commands_are_the_make_targets():
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    quick_start = readme.split("```bash", 1)[1].split("```", 1)[0]
    assert [line.split()[:2] for line in quick_start.strip().splitlines()] == [["make", "demo"], ["make", "test"]]


def test_building_the_cli_loads_no_heavy_library():
    heavy = {"torch", "cv2", "pandas", "pyarrow", "mlflow", "prefect", "numpy"}
    probe = f"import sys; from flows.cli import build_parser; build_parser(); print(sorted(set(sys.modules) & {heavy}))"
    repo = Path(__file__).resolve().parents[2]
    done = subprocess.run([sys.executable, "-c", probe], cwd=repo, capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"  # `facenet --help` and argument errors answer at once


def test_running_a_command_imports_only_its_module():
    probe = (
        "import sys; from flows.cli import build_parser; "
        "args = build_parser(['--debug', 'triplets', '--help-not-parsed']); "
        "print(sorted(m for m in sys.modules if m.startswith('flows.cli.')))"
    )
    repo = Path(__file__).resolve().parents[2]
    done = subprocess.run([sys.executable, "-c", probe], cwd=repo, capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "['flows.cli.args', 'flows.cli.triplets']"


def test_a_mistyped_command_lists_every_command(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["tripplets"])
    assert exit_info.value.code == 2
    error = capsys.readouterr().err
    assert "invalid choice: 'tripplets'" in error
    assert all(command in error for command in COMMANDS)


def test_a_preset_extends_another_field_by_field(tmp_path):
    base = tmp_path / "base.yaml"
    base.write_text("model_architecture: resnet18\nimage_size: 64\nlr_schedule: {type: step, milestones: [3]}\n")
    (tmp_path / "child").mkdir()
    child = tmp_path / "child" / "mined.yaml"
    child.write_text("extends: ../base.yaml\nsampling: pk\nmining: batch_hard\nlr_schedule: {gamma: 0.5}\n")
    cfg = load_config(child)
    assert (cfg.model_architecture, cfg.image_size, cfg.sampling, cfg.mining) == ("resnet18", 64, "pk", "batch_hard")
    assert (cfg.lr_schedule.type, cfg.lr_schedule.milestones, cfg.lr_schedule.gamma) == ("step", [3], 0.5)
    packaged = tmp_path / "demo_pk.yaml"
    packaged.write_text("extends: demo\nepochs: 2\n")
    assert load_config(packaged).model_dump(exclude={"epochs"}) == load_config("demo").model_dump(exclude={"epochs"})


def test_an_extends_cycle_or_a_missing_parent_is_one_line(tmp_path):
    (tmp_path / "a.yaml").write_text("extends: b.yaml\n")
    (tmp_path / "b.yaml").write_text("extends: a.yaml\nepochs: 2\n")
    with pytest.raises(UserError, match=r"extends makes a cycle .*a\.yaml -> .*b\.yaml -> .*a\.yaml\); break it"):
        load_config(tmp_path / "a.yaml")
    (tmp_path / "c.yaml").write_text("extends: nowhere.yaml\n")
    with pytest.raises(UserError, match="nowhere.yaml not found"):
        load_config(tmp_path / "c.yaml")
    (tmp_path / "d.yaml").write_text("extends: [demo]\n")
    with pytest.raises(UserError, match="extends must name a preset"):
        load_config(tmp_path / "d.yaml")
