"""Typed overrides for flow parameters: every Config field (and the seed's spelling of a renamed one),
all optional, so the UI shows a schema."""

from __future__ import annotations

from typing import Any, Optional

from pydantic import BaseModel, ConfigDict, create_model

from facenet_core.config import Config
from facenet_core.config.schema import SEED_ALIASES


def _optional_fields() -> dict[str, Any]:
    fields = {}
    for name, info in Config.model_fields.items():
        fields[name] = (Optional[info.annotation], None)  # noqa: UP045 - create_model needs a type object
    for seed_name, field_name in SEED_ALIASES.items():
        fields[seed_name] = fields[field_name]
    return fields


ConfigOverrides = create_model(
    "ConfigOverrides",
    __config__=ConfigDict(extra="forbid"),
    __doc__="Config fields to change on top of the preset (unset fields keep the preset's value).",
    **_optional_fields(),
)


def overrides_dict(overrides: BaseModel | dict[str, Any] | None) -> dict[str, Any]:
    """The fields a user actually set, as plain values."""
    if overrides is None:
        return {}
    if isinstance(overrides, dict):
        return {k: v for k, v in overrides.items() if v is not None}
    return overrides.model_dump(mode="json", exclude_unset=True, exclude_none=True)
