"""Config fields as argparse flags: seed spelling (--image_size) plus hyphenated aliases."""

from __future__ import annotations

import argparse
from collections.abc import Callable, Iterable
from typing import Any

from facenet_core.config.loading import parse_yaml
from facenet_core.config.schema import SEED_ALIASES, Config, bounds_text, check_device, field_bounds, within

SCALAR_TYPES = (str, int, float, bool)


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Defaults shown for every flag; descriptions and examples kept as written."""


def add_flag(parser: argparse.ArgumentParser | argparse._ArgumentGroup, name: str, **kwargs: Any) -> None:
    """Add `--name`, its hyphenated alias (`--image-size` for `--image_size`) and, for a renamed config
    field, the seed's spelling (`--lfw_batch_size` for `--eval_batch_size`)."""
    names = [name] + [seed_name for seed_name, field_name in SEED_ALIASES.items() if field_name == name]
    options = []
    for each in names:
        options += [f"--{each}"] + ([f"--{each.replace('_', '-')}"] if "_" in each else [])
    parser.add_argument(*options, **kwargs)


def parse_bool(text: str) -> bool:
    """argparse type for an explicit boolean value (the seed's type=bool took "false" as true)."""
    lowered = str(text).strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


def ranged(bounds: dict[str, float], kind: type = int) -> Callable[[str], Any]:
    """argparse type: a number of `kind` inside `bounds` (ge/gt/le/lt), else a message with the range."""

    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            kind_name = "an integer" if kind is int else "a number"
            raise argparse.ArgumentTypeError(f"expected {kind_name}, got {text!r}") from None
        if not within(value, bounds):
            raise argparse.ArgumentTypeError(f"{value} is out of range (allowed {bounds_text(bounds)})")
        return value

    return parse


def device_option(text: str) -> str:
    """argparse type for --device: auto, cpu, cuda or cuda:N."""
    try:
        return check_device(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def config_range(field_name: str, kind: type = int) -> Callable[[str], Any]:
    """argparse type for a command option that means the config field `field_name`: the same range."""
    bounds = field_bounds((field_name,))
    if not bounds:
        raise KeyError(f"config field {field_name!r} has no range")
    return ranged(bounds, kind)


def _field_is_plain_str(annotation: Any) -> bool:
    return annotation is str or annotation == (str | None)


def add_config_arguments(
    parser: argparse.ArgumentParser, fields: Iterable[str] | None = None, renames: dict[str, str] | None = None
) -> None:
    """Add one flag per config field (all by default); `renames` maps a flag name to a field."""
    renames = renames or {}
    flag_to_field = {name: name for name in (fields or Config.model_fields)}
    flag_to_field.update(renames)
    group = parser.add_argument_group("configuration (override the preset; YAML values for lists/mappings)")
    for flag, field_name in flag_to_field.items():
        info = Config.model_fields[field_name]
        default = info.get_default(call_default_factory=True)
        if hasattr(default, "model_dump"):
            default = default.model_dump(mode="json")
        doc = info.description or ""
        extra: dict[str, Any] = {"metavar": "VALUE"}
        if info.annotation is bool:
            extra = {"nargs": "?", "const": "true", "metavar": "BOOL"}
        add_flag(
            group,
            flag,
            dest=f"cfg__{field_name}",
            default=argparse.SUPPRESS,  # absent unless given; the help shows the config default instead
            help=f"{doc} (default: {default})".strip(),
            **extra,
        )


def _parse_value(field_name: str, raw: str) -> Any:
    annotation = Config.model_fields[field_name].annotation
    if _field_is_plain_str(annotation):
        return raw
    source = f"--{field_name}"
    value = parse_yaml(raw, source)
    if isinstance(value, str) and "," in value:
        value = [parse_yaml(part, source) for part in value.split(",")]
    return value


def overrides_from_args(args: argparse.Namespace) -> dict[str, Any]:
    """Config overrides from the flags the user actually gave."""
    overrides = {}
    for key, raw in vars(args).items():
        if key.startswith("cfg__") and raw is not None:
            field_name = key.removeprefix("cfg__")
            overrides[field_name] = _parse_value(field_name, raw)
    return overrides
