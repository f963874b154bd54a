"""The typed configuration: the seed's option names and defaults plus the pipeline's own fields."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from facenet_core.safepath import safe_name

ARCHITECTURES = ("resnet18", "resnet34", "resnet50", "resnet101", "resnet152", "inceptionresnetv2", "mobilenetv2")
OPTIMIZERS = ("sgd", "adagrad", "rmsprop", "adam")
# Smallest input each architecture accepts (timm's inception_resnet_v2 collapses below 75 px).
MIN_IMAGE_SIZE = {"inceptionresnetv2": 75}
MIN_IMAGE_SIZE_DEFAULT = 32


Protocol = Literal["kfold10", "train_test"]
DistanceMetric = Literal["euclidean", "cosine"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class LRSchedule(_Strict):
    """Learning-rate schedule over epochs (the seed had none)."""

    type: Literal["constant", "step", "cosine"] = "constant"
    milestones: list[int] = Field(default_factory=list, description="epochs where step multiplies by gamma")
    gamma: float = Field(0.1, gt=0)
    warmup_epochs: int = Field(0, ge=0, description="linear warm-up from 0 over this many epochs")
    min_lr: float = Field(0.0, ge=0, description="floor of the cosine schedule")


class DownloadFile(_Strict):
    """One file to fetch: http(s)/file URL or local path, with an optional checksum."""

    url: str
    sha256: str | None = None
    md5: str | None = None
    filename: str | None = Field(None, description="name under downloads/ (default: last URL segment)")

    @field_validator("filename")
    @classmethod
    def _plain_filename(cls, value: str | None) -> str | None:
        return None if value is None else safe_name(value, what="file name")


class DatasetConfig(_Strict):
    """Where a dataset comes from and where its identity folders end up under raw/<name>."""

    name: str = Field("demo", pattern=r"^[A-Za-z0-9_.-]+$")
    catalogue: str | None = Field(None, description="entry of deployments/datasets.yaml that fills unset fields")
    path: str | None = Field(None, description="local folder of identity folders: used as is, nothing downloaded")
    files: list[DownloadFile] = Field(default_factory=list, description="archives or files to fetch")
    concatenate_parts: bool = Field(False, description="files are parts of one archive (glint360k_00..06)")
    images_subdir: str | None = Field(None, description="identity folders' location inside the extracted tree")
    max_extract_ratio: float | None = Field(
        None, gt=0, description="largest extracted/archive size ratio accepted (default 100; more for trusted archives)"
    )
    format: Literal["folders", "recordio"] = "folders"
    aligned: bool = Field(
        False, description="faces come aligned (insightface 112x112); recorded, cropped unless crop: none"
    )
    generate: Literal["synthetic"] | None = Field(None, description="build the demo dataset instead of fetching")
    synthetic: dict[str, int] = Field(default_factory=dict, description="make_demo_dataset parameters (generate)")

    @field_validator("name")
    @classmethod
    def _plain_name(cls, value: str) -> str:
        return safe_name(value, what="dataset name")


class EvalSet(_Strict):
    """An evaluation set: images, pairs file and protocol (DESIGN.md contracts)."""

    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$")
    dataset: str | None = Field(None, description="when set, root and pairs are relative to raw/<dataset>")
    root: str = Field(description="folder of <person>/<person>_<nnnn>.<ext> images, raw or cropped")
    pairs: str = Field(description="pairs.txt (kfold10) or pairsDevTest.txt (train_test)")
    train_pairs: str | None = Field(None, description="pairsDevTrain.txt, for protocol train_test")
    protocol: Protocol = "kfold10"
    people_file: str | None = Field(None, description="keep only pairs whose people are all listed here")
    aligned: bool = Field(False, description="images already aligned (insightface .bin): no cropping")

    @field_validator("name", "dataset")
    @classmethod
    def _plain_names(cls, value: str | None, info) -> str | None:
        what = "eval set name" if info.field_name == "name" else "eval set dataset"
        return None if value is None else safe_name(value, what=what)

    @model_validator(mode="after")
    def _train_pairs_for_train_test(self) -> EvalSet:
        if self.protocol == "train_test" and not self.train_pairs:
            raise ValueError(f"eval set {self.name!r}: protocol train_test needs train_pairs (pairsDevTrain.txt)")
        return self


class Config(_Strict):
    """Every setting of the pipeline. Field names are the command-line flags (seed spelling)."""

    # --- the seed's options, same names and defaults -------------------------------------
    dataroot: str | None = Field(None, description="cropped training root (skips download and crop)")
    lfw: str | None = Field(None, description="LFW folder; adds an eval set 'lfw' when eval_sets is empty")
    lfw_pairs: str | None = Field(None, description="pairs file for --lfw (default: pairs.txt beside the folder)")
    training_dataset_csv_path: str | None = Field(None, description="an existing manifest (.parquet) to train on")
    epochs: int = Field(150, ge=1)
    iterations_per_epoch: int = Field(5000, ge=1)
    model_architecture: Literal[ARCHITECTURES] = "resnet34"  # type: ignore[valid-type]
    pretrained: bool = False
    embedding_dimension: int = Field(512, ge=1)
    num_human_identities_per_batch: int = Field(32, ge=2)
    batch_size: int = Field(544, ge=1, description="triplets per step (3x images)")
    lfw_batch_size: int = Field(200, ge=1)
    resume_path: str | None = None
    num_workers: int = Field(4, ge=0)
    optimizer: Literal[OPTIMIZERS] = "adagrad"  # type: ignore[valid-type]
    learning_rate: float = Field(0.075, gt=0)
    margin: float = Field(0.2, ge=0)
    image_size: int = Field(140, ge=1)
    use_semihard_negatives: bool = False
    training_triplets_path: str | None = None

    # --- the pipeline's own fields ------------------------------------------------------
    workspace: str = "./workspace"
    run_name: str | None = Field(None, pattern=r"^[A-Za-z0-9_.-]+$")
    seed: int = 0
    dataset: DatasetConfig = Field(default_factory=DatasetConfig)
    identities_file: str | None = Field(None, description="train only on the people listed (one per line)")
    crop: Literal["mtcnn", "none"] = Field(
        "mtcnn",
        description="training images: MTCNN-cropped at crop_image_size/crop_margin as the seed (mtcnn), "
        "or used as they are, e.g. insightface's pre-aligned 112x112 faces (none)",
    )
    crop_image_size: int = Field(224, ge=1)
    crop_margin: int = Field(0, ge=0)
    crop_batch_size: int = Field(16, ge=1)
    crop_workers: int = Field(0, ge=0, description="crop worker processes (0: one per CPU core)")
    crop_shard_size: int = Field(256, ge=1, description="identity folders per crop shard")
    crop_png_compress_level: int = Field(1, ge=0, le=9, description="zlib level of the crop PNGs (6: smaller, slower)")
    exif_transpose: bool = False
    manifest_validate: bool = Field(True, description="decode every image while scanning (off: trust extensions)")
    manifest_dedupe: bool = Field(False, description="drop byte-identical duplicates (reads every byte)")
    lr_schedule: LRSchedule = Field(default_factory=LRSchedule)
    grad_clip_norm: float | None = Field(None, gt=0)
    device: str = Field("auto", description="auto, cpu, cuda or cuda:N")
    amp: Literal["auto", "off", "bf16", "fp16"] = "auto"
    channels_last: bool = True
    compile: bool = False
    num_processes: int = Field(1, ge=1, description="DDP processes; >1 launches torchrun")
    nnodes: int = Field(1, ge=1)
    rdzv_endpoint: str | None = Field(None, description="torchrun rendezvous host:port for multi-node")
    dask_address: str | None = Field(None, description="Dask scheduler for the crop shards (default: threads)")
    normalize_mean: list[float] = Field(default_factory=lambda: [0.6071, 0.4609, 0.3944], min_length=3, max_length=3)
    normalize_std: list[float] = Field(default_factory=lambda: [0.2457, 0.2175, 0.2129], min_length=3, max_length=3)
    eval_sets: list[EvalSet] = Field(default_factory=list)
    distance_metric: DistanceMetric = "euclidean"
    flip_tta: bool = False
    selection_metric: Literal["accuracy", "roc_auc", "tar_at_far"] = "accuracy"
    selection_eval_set: str | None = Field(None, description="eval set that picks the best epoch (default: first)")
    log_every_n_steps: int = Field(50, ge=1)
    checkpoint_retention: int | None = Field(None, ge=0, description="keep weights of the last N epochs (default: all)")
    mlflow_tracking_uri: str | None = None
    mlflow_experiment: str | None = None
    registered_model_name: str = "facenet"

    @field_validator("run_name")
    @classmethod
    def _plain_run_name(cls, value: str | None) -> str | None:
        return None if value is None else safe_name(value, what="run_name")

    @model_validator(mode="after")
    def _check_combinations(self) -> Config:
        minimum = MIN_IMAGE_SIZE.get(self.model_architecture, MIN_IMAGE_SIZE_DEFAULT)
        if self.image_size < minimum:
            raise ValueError(
                f"image_size={self.image_size} is too small for model_architecture="
                f"{self.model_architecture!r}: it needs at least {minimum} px"
            )
        if any(s <= 0 for s in self.normalize_std):
            raise ValueError(f"normalize_std must be positive, got {self.normalize_std}")
        if self.batch_size % self.num_processes:
            raise ValueError(f"batch_size={self.batch_size} must be divisible by num_processes={self.num_processes}")
        names = [s.name for s in self.eval_sets]
        if len(set(names)) != len(names):
            raise ValueError(f"eval_sets names must be unique, got {names}")
        if self.selection_eval_set is not None and self.selection_eval_set not in names:
            raise ValueError(f"selection_eval_set={self.selection_eval_set!r} is not one of eval_sets {names}")
        return self

    def resolved_eval_sets(self) -> list[EvalSet]:
        """eval_sets, or one kfold10 set built from the seed's --lfw option."""
        if self.eval_sets or not self.lfw:
            return list(self.eval_sets)
        from pathlib import Path

        pairs = self.lfw_pairs or str(Path(self.lfw).parent / "pairs.txt")
        return [EvalSet(name="lfw", root=self.lfw, pairs=pairs)]
