"""The typed config: seed defaults, validation messages, presets, CLI flags, round trip."""

import argparse

import pytest

from facenet_core.config import Config, load_config, save_config
from facenet_core.config.loading import ConfigError
from facenet_core.errors import UserError
from facenet_core.workspace import Workspace, run_key
from flows.cli.args import add_config_arguments, overrides_from_args


def test_seed_defaults():
    cfg = Config()
    assert (cfg.epochs, cfg.iterations_per_epoch, cfg.batch_size) == (150, 5000, 544)
    assert (cfg.model_architecture, cfg.embedding_dimension, cfg.image_size) == ("resnet34", 512, 140)
    assert (cfg.optimizer, cfg.learning_rate, cfg.margin) == ("adagrad", 0.075, 0.2)
    assert (cfg.num_human_identities_per_batch, cfg.eval_batch_size, cfg.num_workers) == (32, 200, 4)
    assert cfg.use_semihard_negatives is False and cfg.pretrained is False
    assert cfg.normalize_mean == [0.6071, 0.4609, 0.3944]
    assert cfg.normalize_std == [0.2457, 0.2175, 0.2129]


def test_invalid_values_name_the_field():
    with pytest.raises(ConfigError, match=r"optimizer: .*'sgd', 'adagrad', 'rmsprop' or 'adam'"):
        load_config(None, {"optimizer": "lbfgs"})
    with pytest.raises(ConfigError, match="image_size=60 is too small .* at least 75"):
        load_config(None, {"model_architecture": "inceptionresnetv2", "image_size": 60})
    with pytest.raises(ConfigError, match="unknown_field"):
        load_config(None, {"unknown_field": 1})
    with pytest.raises(ConfigError, match="train_pairs"):
        load_config(None, {"eval_sets": [{"name": "v1", "root": "r", "pairs": "p", "protocol": "train_test"}]})


def _parse(argv):
    parser = argparse.ArgumentParser()
    add_config_arguments(parser)
    return overrides_from_args(parser.parse_args(argv))


def test_cli_flags_seed_spelling_aliases_and_booleans():
    overrides = _parse(
        ["--image_size", "112", "--batch-size", "30", "--pretrained", "false", "--use_semihard_negatives"]
    )
    assert overrides == {"image_size": 112, "batch_size": 30, "pretrained": False, "use_semihard_negatives": True}
    cfg = load_config(None, overrides)
    assert cfg.pretrained is False and cfg.use_semihard_negatives is True


def test_cli_lists_and_mappings():
    overrides = _parse(["--normalize_mean", "0.5,0.5,0.5", "--lr_schedule", "{type: step, milestones: [85]}"])
    cfg = load_config(None, overrides)
    assert cfg.normalize_mean == [0.5, 0.5, 0.5]
    assert cfg.lr_schedule.type == "step" and cfg.lr_schedule.milestones == [85]


def test_preset_merge_and_round_trip(tmp_path):
    preset = tmp_path / "p.yaml"
    preset.write_text("epochs: 3\nlr_schedule: {type: step, milestones: [2], gamma: 0.5}\n")
    cfg = load_config(preset, {"lr_schedule": {"milestones": [1]}})
    assert cfg.epochs == 3 and cfg.lr_schedule.milestones == [1] and cfg.lr_schedule.gamma == 0.5
    saved = save_config(cfg, tmp_path / "run" / "config.yaml")
    assert load_config(saved) == cfg


def test_missing_preset_is_named(tmp_path):
    with pytest.raises(UserError, match=r"nope.yaml not found: .* packaged preset name \(demo, "):
        load_config(tmp_path / "nope.yaml")


def test_run_key_ignores_learning_rate_but_not_margin():
    base = Config()
    assert run_key(base, "fp") == run_key(base.model_copy(update={"learning_rate": 0.01}), "fp")
    assert run_key(base, "fp") != run_key(base.model_copy(update={"margin": 0.3}), "fp")
    assert run_key(base, "fp") != run_key(base, "other-manifest")
    assert run_key(base.model_copy(update={"run_name": "mine"}), "fp") == "mine"


def test_workspace_layout(tmp_path):
    ws = Workspace(tmp_path).ensure()
    for name in ("downloads", "raw", "cropped", "manifests", "runs", "prefect-results"):
        assert (tmp_path / name).is_dir()
    assert ws.mlflow_db == tmp_path / "mlflow.db"


def test_validation_errors_are_one_line_with_the_allowed_range():
    with pytest.raises(ConfigError) as caught:
        load_config(None, {"image_size": 99999999, "lr_schedule": {"gamma": 0}, "normalize_std": [0.2, 0.2, 2]})
    message = str(caught.value)
    assert "\n" not in message and message.startswith("invalid configuration (overrides): ")
    assert "image_size: Input should be less than or equal to 1024 (allowed range 32..1024), got 99999999" in message
    assert "lr_schedule.gamma: Input should be greater than 0 (allowed range > 0 and <= 10), got 0" in message
    assert "normalize_std.2: Input should be less than or equal to 1 (allowed range > 0 and <= 1), got 2" in message


def test_device_names_are_checked_when_the_config_loads():
    assert load_config(None, {"device": "cuda:1"}).device == "cuda:1"
    with pytest.raises(ConfigError, match="device 'banana' is not one of auto, cpu, cuda or cuda:N"):
        load_config(None, {"device": "banana"})


def test_preset_yaml_errors_name_the_file_and_the_place(tmp_path):
    broken = tmp_path / "broken.yaml"
    broken.write_text("epochs: 3\nmargin: [0.2\n")
    with pytest.raises(ConfigError, match=rf"preset {broken} is not valid YAML \(line 3, column 1\)"):
        load_config(broken)
    tagged = tmp_path / "tagged.yaml"
    tagged.write_text("epochs: !!python/object/apply:os.getpid []\n")
    with pytest.raises(ConfigError, match=r"line 1, column 9\): could not determine a constructor .*only plain YAML"):
        load_config(tagged)
    latin = tmp_path / "latin.yaml"
    latin.write_bytes(b"run_name: caf\xe9\n")
    with pytest.raises(ConfigError, match=rf"preset {latin}: byte 13 is not UTF-8"):
        load_config(latin)
    assert issubclass(ConfigError, UserError)


def test_the_seeds_names_of_renamed_fields_keep_working(tmp_path):
    """dataroot, training_dataset_csv_path and lfw_batch_size: in presets, flags and flow parameters."""
    from flows.overrides import ConfigOverrides, overrides_dict

    preset = tmp_path / "seed.yaml"
    preset.write_text("dataroot: /crops\ntraining_dataset_csv_path: m.parquet\nlfw_batch_size: 64\n")
    from_preset = load_config(preset)
    assert (from_preset.cropped_root, from_preset.manifest_path, from_preset.eval_batch_size) == (
        "/crops",
        "m.parquet",
        64,
    )
    flags = _parse(["--dataroot", "/c", "--training_dataset_csv_path", "x.parquet", "--lfw-batch-size", "8"])
    assert flags == {"cropped_root": "/c", "manifest_path": "x.parquet", "eval_batch_size": 8}
    parameters = overrides_dict(ConfigOverrides(lfw_batch_size=16))
    assert load_config(preset, parameters).eval_batch_size == 16  # a flow parameter beats the preset
    assert load_config(preset, {"eval_batch_size": 32}).eval_batch_size == 32
    assert Config(dataroot="/d").cropped_root == "/d"
    assert "lfw_batch_size" not in Config().model_dump()
    with pytest.raises(ConfigError, match="lfw_batch_size and eval_batch_size name the same field"):
        load_config(None, {"lfw_batch_size": 1, "eval_batch_size": 2})


def test_sampling_and_mining_combinations():
    seed = Config()
    assert (seed.sampling, seed.mining, seed.triplet_distance) == ("triplets", "seed", "euclidean")
    assert seed.images_per_step == 3 * seed.batch_size
    pk = Config(sampling="pk", mining="batch_hard", pk_identities=45, pk_images=4)
    assert pk.images_per_step == 180
    # Batch mining also runs over the labelled images of offline triplets.
    assert Config(mining="batch_all").sampling == "triplets"
    with pytest.raises(ValueError, match="mining: seed .* needs sampling: triplets"):
        Config(sampling="pk")
    with pytest.raises(ValueError, match="pk_identities=45 must be divisible by num_processes=2"):
        Config(sampling="pk", mining="batch_hard", pk_identities=45, num_processes=2)
    with pytest.raises(ValueError, match="pk_identities x pk_images"):
        Config(sampling="pk", mining="batch_all", iterations_per_epoch=1_000_000, pk_identities=1000, pk_images=1000)


def test_run_key_follows_the_mining():
    seed, mined = Config(), Config(sampling="pk", mining="batch_hard")
    assert run_key(seed, "m") != run_key(mined, "m")
    assert run_key(mined, "m") != run_key(mined.model_copy(update={"pk_images": 8}), "m")


def test_aligned_crops_take_no_margin():
    assert Config(crop="aligned").crop_margin == 0
    with pytest.raises(ValueError, match="crop_margin=16 does not apply to crop: aligned"):
        Config(crop="aligned", crop_margin=16)
