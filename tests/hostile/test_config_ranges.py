"""Every numeric setting has a realistic range, checked before any work: config fields (a new field
without bounds fails here), dataset.synthetic parameters and the command options that mean them."""

from __future__ import annotations

import inspect
import time
from pathlib import Path
from typing import Annotated, get_args, get_origin

import pytest
import yaml
from pydantic import BaseModel
from support.tree_state import tree_state

from facenet_core.config import Config, load_config
from facenet_core.config.loading import ConfigError
from facenet_core.config.schema import SYNTHETIC_RANGES, bounds_text, field_bounds
from facenet_core.synthetic.demo import make_demo_dataset
from flows.cli import main

NUMBERS = (int, float)


def numeric_fields(model: type[BaseModel] = Config, prefix: tuple = ()) -> list[tuple]:
    """Locations of every int/float setting: fields, fields of nested models, items of numeric lists."""
    found = []
    for name, info in model.model_fields.items():
        annotation = info.annotation
        options = [arg for arg in get_args(annotation) if arg is not type(None)] if get_origin(annotation) else []
        plain = options[0] if len(options) == 1 and get_origin(annotation) is not list else annotation
        if isinstance(plain, type) and issubclass(plain, BaseModel):
            found += numeric_fields(plain, (*prefix, name))
        elif plain in NUMBERS:
            found.append((*prefix, name))
        elif get_origin(plain) is list:
            item = get_args(plain)[0]
            item = get_args(item)[0] if get_origin(item) is Annotated else item
            if item in NUMBERS:
                found.append((*prefix, name, 0))
    return found


FIELDS = numeric_fields()


def test_the_walk_finds_the_numeric_fields() -> None:
    assert {("image_size",), ("learning_rate",), ("lr_schedule", "gamma"), ("normalize_std", 0)} <= set(FIELDS)
    assert ("lr_schedule", "milestones", 0) in FIELDS and ("workspace",) not in FIELDS and len(FIELDS) >= 30


@pytest.mark.parametrize("loc", FIELDS, ids=[".".join(map(str, loc)) for loc in FIELDS])
def test_every_numeric_field_has_a_lower_and_an_upper_bound(loc: tuple) -> None:
    bounds = field_bounds(loc)
    assert {"ge", "gt"} & set(bounds) and {"le", "lt"} & set(bounds), f"{loc} has no full range: {bounds}"


def _override(loc: tuple, value) -> dict:
    """The nested override that sets the setting at `loc` to `value` (list items: every item)."""
    *path, last = loc
    if isinstance(last, int):
        *path, name = path
        value = [value] * (3 if name.startswith("normalize") else 1)
        last = name
    override: dict = {last: value}
    for part in reversed(path):
        override = {part: override}
    return override


@pytest.mark.parametrize("loc", FIELDS, ids=[".".join(map(str, loc)) for loc in FIELDS])
def test_a_value_past_the_maximum_names_the_field_and_its_range(loc: tuple) -> None:
    bounds = field_bounds(loc)
    top = bounds.get("le", bounds.get("lt"))
    too_big = top * 10 + 1 if isinstance(top, float) else top + 1
    with pytest.raises(ConfigError) as caught:
        load_config(None, _override(loc, too_big))
    message = str(caught.value)
    assert "\n" not in message
    assert f"{'.'.join(map(str, loc))}: " in message and f"allowed range {bounds_text(bounds)}" in message


def test_the_bounds_admit_the_shipped_presets_and_the_seed_recipe() -> None:
    presets = sorted(Path(__file__).resolve().parents[2].joinpath("deployments").glob("*.yaml"))
    for preset in presets:
        if preset.name != "datasets.yaml":
            load_config(preset)
    Config(epochs=150, iterations_per_epoch=5000, batch_size=544, image_size=140, learning_rate=0.075)


def test_triplets_per_epoch_are_bounded_across_two_fields() -> None:
    with pytest.raises(ConfigError, match="iterations_per_epoch x batch_size = 10,000,000,000 rows per epoch"):
        load_config(None, {"iterations_per_epoch": 1_000_000, "batch_size": 10_000})


def test_synthetic_parameters_have_ranges_the_cli_reuses(capsys) -> None:
    parameters = set(inspect.signature(make_demo_dataset).parameters) - {"out_dir"}
    assert parameters == set(SYNTHETIC_RANGES)
    with pytest.raises(ConfigError, match=r"dataset.synthetic: image_size=99999 is out of range: allowed 64..1024"):
        load_config(None, {"dataset": {"synthetic": {"image_size": 99999}}})
    with pytest.raises(ConfigError, match="unknown parameter 'faces'"):
        load_config(None, {"dataset": {"synthetic": {"faces": 3}}})
    low, high = SYNTHETIC_RANGES["images_per_identity"]
    with pytest.raises(SystemExit):
        main(["synthetic", "out", "--images_per_identity", str(high + 1)])
    assert f"allowed {low}..{high}" in capsys.readouterr().err


COMMAND_OPTIONS = [
    (["crop", "in", "out", "--image_size"], "crop_image_size"),
    (["crop", "in", "out", "--margin"], "crop_margin"),
    (["crop", "in", "out", "--crop_batch_size"], "crop_batch_size"),
    (["crop", "in", "out", "--workers"], "crop_workers"),
    (["crop", "in", "out", "--shard_size"], "crop_shard_size"),
    (["evaluate", "--checkpoint", "c.pt", "--lfw", ".", "--image_size"], "image_size"),
    (["evaluate", "--checkpoint", "c.pt", "--lfw", ".", "--eval_batch_size"], "eval_batch_size"),
    (["evaluate", "--checkpoint", "c.pt", "--lfw", ".", "--num_workers"], "num_workers"),
    (["manifest", "root", "--out", "m.parquet", "--workers"], "num_workers"),
    (["stats", "m.parquet", "--seed"], "seed"),
    (["stats", "m.parquet", "--workers"], "num_workers"),
]


@pytest.mark.parametrize("argv, field", COMMAND_OPTIONS, ids=[f"{a[0]}{a[-1]}" for a, _ in COMMAND_OPTIONS])
def test_command_options_use_the_config_range(argv: list[str], field: str, capsys, monkeypatch) -> None:
    bounds = field_bounds((field,))
    ran = []
    monkeypatch.setattr("flows.cli.Parser.parse_args", _parse_only(ran))
    main([*argv, str(bounds["le"])])
    assert ran == [bounds["le"]]  # the largest allowed value passes
    for bad in (bounds["le"] + 1, bounds["ge"] - 1):
        with pytest.raises(SystemExit) as stop:
            main([*argv, str(bad)])
        err = capsys.readouterr().err
        assert stop.value.code == 2 and len(err.strip().splitlines()) == 1
        assert argv[-1] in err and f"{bad} is out of range (allowed {bounds_text(bounds)})" in err


def _parse_only(ran: list):
    """parse_args that records the option's parsed value and runs nothing."""
    import argparse

    real = argparse.ArgumentParser.parse_args

    def parse(self, argv=None, namespace=None):
        args = real(self, argv, namespace)
        ran.append(getattr(args, argv[-2].lstrip("-")))
        args.func = lambda _: 0
        return args

    return parse


def test_image_size_typo_fails_at_once_and_touches_nothing(tmp_path: Path, capsys) -> None:
    workspace, sibling = tmp_path / "ws", tmp_path / "sibling"
    sibling.mkdir()
    (sibling / "keep.txt").write_text("keep")
    preset = tmp_path / "preset.yaml"
    preset.write_text(yaml.safe_dump({"workspace": str(workspace), "dataset": {"generate": "synthetic"}}))
    before = tree_state(tmp_path)
    started = time.perf_counter()
    code = main(["run", "--preset", str(preset), "--image_size", "99999999"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and time.perf_counter() - started < 5
    assert err == (
        f"facenet run: error: invalid configuration (preset {preset} + overrides): image_size: Input should be "
        "less than or equal to 1024 (allowed range 32..1024), got 99999999"
    )
    assert tree_state(tmp_path) == before and not workspace.exists()
