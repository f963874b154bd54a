"""Which config fields key which stage: the one table the run key and every cache key read.

A stage's cached result is reused only while the fields listed for it are unchanged. A field that
keys no stage says why in NOT_KEYED (it changes speed, logging or where a result goes, not the
result), or in BY_CONTENT (it names an input whose bytes, not its path, key the stage). A new
Config field must be added here; tests/config/test_stages.py fails until it is.
"""

from __future__ import annotations

from typing import Any

from facenet_core.config.schema import Config

# Fields whose change makes a different model: they name the run (runs/<architecture>-<hash>).
# Learning rate and schedule are left out on purpose: changing them on resume continues the same
# run (logged as metrics).
RUN_FIELDS = (
    "model_architecture",
    "pretrained",
    "embedding_dimension",
    "num_human_identities_per_batch",
    "batch_size",
    "iterations_per_epoch",
    "optimizer",
    "margin",
    "image_size",
    "use_semihard_negatives",
    "training_triplets_path",
    "sampling",
    "mining",
    "triplet_distance",
    "pk_identities",
    "pk_images",
    "seed",
    "normalize_mean",
    "normalize_std",
    "grad_clip_norm",
)

STAGE_FIELDS: dict[str, tuple[str, ...]] = {
    "run": RUN_FIELDS,
    "download": ("dataset",),
    "crop": ("crop_image_size", "crop_margin", "exif_transpose"),
    "manifest": ("manifest_validate", "manifest_dedupe"),
    "triplets": ("seed", "iterations_per_epoch", "batch_size", "num_human_identities_per_batch"),
    "pk-batches": ("seed", "iterations_per_epoch", "pk_identities", "pk_images"),
    # `epochs` keys an epoch only under a cosine schedule (its shape depends on the run's length).
    "train-epoch": (*RUN_FIELDS, "learning_rate", "lr_schedule", "epochs"),
    "evaluate": ("distance_metric", "flip_tta", "image_size", "normalize_mean", "normalize_std"),
}

# Inputs keyed by their content (a fingerprint of the file or tree), never by their path.
BY_CONTENT = {
    "cropped_root": "tree fingerprint keys the manifest",
    "manifest_path": "manifest fingerprint keys the run and the triplets",
    "identities_file": "file fingerprint keys the manifest",
    "resume_path": "checkpoint sha256 keys the first epoch",
    "lfw": "the eval set's fingerprint (images, pairs, protocol) keys its evaluations",
    "lfw_pairs": "part of the eval set's fingerprint",
    "lfw_cropped": "decides whether the eval set is cropped: part of its fingerprint",
    "eval_sets": "each set's fingerprint keys its evaluations",
    "crop": "mtcnn, aligned or none decides which tree the manifest scans (its fingerprint)",
}

# Fields that change speed, placement, logging or naming, never a cached result.
NOT_KEYED = {
    "workspace": "where results go",
    "run_name": "names the run folder instead of the hash",
    "eval_batch_size": "speed",
    "num_workers": "speed",
    "crop_batch_size": "speed",
    "crop_workers": "speed",
    "crop_shard_size": "how crops are grouped into tasks",
    "crop_png_compress_level": "file size of lossless PNGs, same pixels",
    "crop_batch_megapixels": "memory bound of detection, same boxes",
    "device": "placement",
    "amp": "speed (numerics within rounding)",
    "channels_last": "speed",
    "compile": "speed",
    "num_processes": "how one step's batch is spread over processes",
    "nnodes": "placement",
    "rdzv_endpoint": "placement",
    "dask_address": "placement",
    "selection_metric": "read when choosing the best epoch, after evaluation",
    "selection_eval_set": "read when choosing the best epoch, after evaluation",
    "log_every_n_steps": "logging",
    "log_system_metrics": "logging",
    "checkpoint_retention": "which finished files are kept",
    "mlflow_tracking_uri": "tracking",
    "mlflow_experiment": "tracking",
    "registered_model_name": "tracking",
}


def stage_values(config: Config, stage: str) -> dict[str, Any]:
    """The config values that key `stage`, JSON-ready (the input of its cache key)."""
    values = config.model_dump(mode="json", include=set(STAGE_FIELDS[stage]))
    if stage == "train-epoch" and config.lr_schedule.type != "cosine":
        del values["epochs"]
    return {name: values[name] for name in STAGE_FIELDS[stage] if name in values}
