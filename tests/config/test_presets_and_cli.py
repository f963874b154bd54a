"""Every preset validates; every `facenet` subcommand documents its flags with their defaults."""

import subprocess
import sys
from pathlib import Path

import pytest

from facenet_core.config import load_config
from flows.cli import build_parser
from flows.presets import DEPLOYMENTS_DIR, resolve_preset

PRESETS = sorted(p for p in DEPLOYMENTS_DIR.glob("*.yaml") if p.name != "datasets.yaml")
COMMANDS = sorted(build_parser()._subparsers._group_actions[0].choices)


def test_expected_presets_exist():
    assert {p.stem for p in PRESETS} >= {"demo", "glint360k_resnet34", "lfw_view1", "lfw_view1_gpu"}


@pytest.mark.parametrize("preset", PRESETS, ids=lambda p: p.stem)
def test_preset_validates(preset):
    cfg = load_config(preset)
    assert cfg.resolved_eval_sets(), f"{preset.name} has no evaluation set"


def test_seed_recipe_preset_matches_the_seed():
    cfg = load_config(resolve_preset("glint360k_resnet34"))
    assert (cfg.model_architecture, cfg.image_size, cfg.embedding_dimension) == ("resnet34", 140, 512)
    assert (cfg.batch_size, cfg.num_human_identities_per_batch, cfg.margin) == (544, 32, 0.2)
    assert (cfg.optimizer, cfg.learning_rate) == ("adagrad", 0.075)
    assert round(cfg.learning_rate * cfg.lr_schedule.gamma, 4) == 0.01 and cfg.lr_schedule.milestones == [85]


def test_preset_by_name_and_unknown_preset():
    assert resolve_preset("demo") == DEPLOYMENTS_DIR / "demo.yaml"
    with pytest.raises(FileNotFoundError, match="presets in .*demo"):
        resolve_preset("no-such-preset")


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
