"""The stage table: every Config field keys a stage or says why not; the keys read it."""

from __future__ import annotations

from facenet_core.config import Config, load_config
from facenet_core.config.stages import BY_CONTENT, NOT_KEYED, STAGE_FIELDS, stage_values
from facenet_core.workspace import run_key


def test_every_config_field_keys_a_stage_or_is_declared_irrelevant():
    keyed = {name for fields in STAGE_FIELDS.values() for name in fields}
    declared = set(BY_CONTENT) | set(NOT_KEYED)
    fields = set(Config.model_fields)
    assert fields - keyed - declared == set(), "add the new field to facenet_core/config/stages.py"
    assert (keyed | declared) - fields == set(), "the table names fields Config does not have"
    assert keyed & set(NOT_KEYED) == set() and set(BY_CONTENT) & set(NOT_KEYED) == set()


def test_run_key_changes_with_a_run_field_only():
    base = load_config("demo")
    assert run_key(base.model_copy(update={"num_workers": 7}), "m") == run_key(base, "m")
    assert run_key(base.model_copy(update={"margin": 0.3}), "m") != run_key(base, "m")
    assert run_key(base, "m") != run_key(base, "other manifest")


def test_epochs_key_an_epoch_only_under_a_cosine_schedule():
    constant = load_config("demo", {"lr_schedule": {"type": "constant"}})
    cosine = load_config("demo", {"lr_schedule": {"type": "cosine"}})
    assert "epochs" not in stage_values(constant, "train-epoch")
    assert stage_values(cosine, "train-epoch")["epochs"] == cosine.epochs
    assert stage_values(cosine, "train-epoch")["lr_schedule"]["type"] == "cosine"


def test_stage_values_are_json_values_of_the_listed_fields():
    config = load_config("demo")
    values = stage_values(config, "evaluate")
    assert list(values) == list(STAGE_FIELDS["evaluate"])
    assert values["normalize_mean"] == list(config.normalize_mean)
