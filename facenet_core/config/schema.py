"""The typed configuration: the seed's option names and defaults plus the pipeline's own fields."""

from __future__ import annotations

import operator
import re
from collections.abc import Mapping
from types import UnionType
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from facenet_core.safepath import safe_name

ARCHITECTURES = ("resnet18", "resnet34", "resnet50", "resnet101", "resnet152", "inceptionresnetv2", "mobilenetv2")
OPTIMIZERS = ("sgd", "adagrad", "rmsprop", "adam")
# Smallest input each architecture accepts (timm's inception_resnet_v2 collapses below 75 px).
MIN_IMAGE_SIZE = {"inceptionresnetv2": 75}
MIN_IMAGE_SIZE_DEFAULT = 32
# Realistic ranges (checked before any work starts): wide enough for any real run, narrow enough
# that a typo fails at once instead of after minutes of work with a MemoryError.
MAX_IMAGE_SIZE = 1024
MAX_EPOCHS = 100_000
MAX_WORKERS = 1024
MAX_LEARNING_RATE = 10.0
MAX_SEED = 2**32 - 1
MAX_TRIPLETS_PER_EPOCH = 100_000_000  # 1.2 GB of int32 triplets per epoch file
BOUND_KEYS = ("gt", "ge", "lt", "le")
DEVICE_PATTERN = r"auto|cpu|cuda(:[0-9]{1,3})?"
# make_demo_dataset parameters (dataset.synthetic, `facenet synthetic`): name -> (minimum, maximum).
SYNTHETIC_RANGES = {
    "num_train_identities": (1, 100_000),
    "num_eval_identities": (2, 100_000),  # different pairs need two people
    "images_per_identity": (1, 1000),
    "seed": (0, MAX_SEED),
    "num_folds": (1, 100),
    "pairs_per_fold": (1, 100_000),
    "image_size": (64, MAX_IMAGE_SIZE),
}


# The seed's option names whose fields the pipeline names for what they hold; the seed's spelling
# stays accepted wherever a field name is (presets, flags, flow parameters).
SEED_ALIASES = {
    "dataroot": "cropped_root",
    "training_dataset_csv_path": "manifest_path",
    "lfw_batch_size": "eval_batch_size",
}

Protocol = Literal["kfold10", "train_test"]
DistanceMetric = Literal["euclidean", "cosine"]


def canonical_fields(values: Mapping[str, Any]) -> dict[str, Any]:
    """`values` with the seed's option names (SEED_ALIASES) replaced by the field names."""
    renamed = dict(values)
    for seed_name, field_name in SEED_ALIASES.items():
        if seed_name not in renamed:
            continue
        if field_name in renamed:
            raise ValueError(f"{seed_name} and {field_name} name the same field: give only {field_name}")
        renamed[field_name] = renamed.pop(seed_name)
    return renamed


def check_device(value: str) -> str:
    """`value` if it names a device the pipeline runs on, else a ValueError listing them."""
    if not re.fullmatch(DEVICE_PATTERN, value):
        raise ValueError(f"device {value!r} is not one of auto, cpu, cuda or cuda:N (N: the GPU number)")
    return value


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class LRSchedule(_Strict):
    """Learning-rate schedule over epochs (the seed had none)."""

    type: Literal["constant", "step", "cosine"] = "constant"
    milestones: list[Annotated[int, Field(ge=1, le=MAX_EPOCHS)]] = Field(
        default_factory=list, description="epochs where step multiplies by gamma"
    )
    gamma: float = Field(0.1, gt=0, le=10)
    warmup_epochs: int = Field(0, ge=0, le=MAX_EPOCHS, description="linear warm-up from 0 over this many epochs")
    min_lr: float = Field(0.0, ge=0, le=MAX_LEARNING_RATE, description="floor of the cosine schedule")


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

    @model_validator(mode="after")
    def _plain_url_name(self) -> DownloadFile:
        """Without `filename`, the URL's last segment (percent-decoded) must be one plain name."""
        from facenet_core.ingest.download import default_filename  # the data layer imports this module

        if self.filename is None:
            default_filename(self.url)
        return self


class DatasetConfig(_Strict):
    """Where a dataset comes from and where its identity folders end up under raw/<name>."""

    name: str = Field("demo", pattern=r"^[A-Za-z0-9_.-]+$")
    catalogue: str | None = Field(None, description="entry of deployments/datasets.yaml that fills unset fields")
    path: str | None = Field(None, description="local folder of identity folders: used as is, nothing downloaded")
    files: list[DownloadFile] = Field(default_factory=list, description="archives or files to fetch")
    concatenate_parts: bool = Field(False, description="files are parts of one archive (glint360k_00..06)")
    images_subdir: str | None = Field(None, description="identity folders' location inside the extracted tree")
    max_extract_ratio: float | None = Field(
        None,
        gt=0,
        le=100_000,
        description="largest extracted/archive size ratio accepted (default 100; more for trusted archives)",
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

    @field_validator("synthetic")
    @classmethod
    def _synthetic_in_range(cls, values: dict[str, int]) -> dict[str, int]:
        for key, value in values.items():
            if key not in SYNTHETIC_RANGES:
                raise ValueError(f"unknown parameter {key!r}; known: {', '.join(SYNTHETIC_RANGES)}")
            low, high = SYNTHETIC_RANGES[key]
            if not low <= value <= high:
                raise ValueError(f"{key}={value} is out of range: allowed {low}..{high}")
        return values


class EvalSet(_Strict):
    """An evaluation set: images, pairs file and protocol (docs/ARCHITECTURE.md, "Stage contracts")."""

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
    """Every setting of the pipeline. Field names are the command-line flags; the seed's spelling of
    a renamed option (SEED_ALIASES) is accepted too."""

    # --- the seed's options, same defaults ------------------------------------------------
    cropped_root: str | None = Field(
        None, description="already cropped identity folders to train on: no download, no crop (seed: dataroot)"
    )
    lfw: str | None = Field(None, description="LFW folder; adds an eval set 'lfw' when eval_sets is empty")
    lfw_pairs: str | None = Field(None, description="pairs file for --lfw (default: pairs.txt beside the folder)")
    lfw_cropped: bool = Field(False, description="--lfw holds face crops already: evaluated as they are, not cropped")
    manifest_path: str | None = Field(
        None, description="an existing manifest (.parquet) to train on (seed: training_dataset_csv_path)"
    )
    epochs: int = Field(150, ge=1, le=MAX_EPOCHS)
    iterations_per_epoch: int = Field(5000, ge=1, le=1_000_000)
    model_architecture: Literal[ARCHITECTURES] = "resnet34"  # type: ignore[valid-type]
    pretrained: bool = False
    embedding_dimension: int = Field(512, ge=1, le=4096)
    num_human_identities_per_batch: int = Field(32, ge=2, le=100_000)
    batch_size: int = Field(544, ge=1, le=100_000, description="triplets per step (3x images)")
    eval_batch_size: int = Field(
        200, ge=1, le=65_536, description="images per forward pass of every evaluation set (seed: lfw_batch_size)"
    )
    resume_path: str | None = None
    num_workers: int = Field(4, ge=0, le=MAX_WORKERS)
    optimizer: Literal[OPTIMIZERS] = "adagrad"  # type: ignore[valid-type]
    learning_rate: float = Field(0.075, gt=0, le=MAX_LEARNING_RATE)
    margin: float = Field(0.2, ge=0, le=2, description="triplet margin (distances of unit embeddings lie in 0..2)")
    image_size: int = Field(140, ge=MIN_IMAGE_SIZE_DEFAULT, le=MAX_IMAGE_SIZE)
    use_semihard_negatives: bool = False
    training_triplets_path: str | None = None

    # --- how a step's batch is drawn and mined (the seed: triplets + seed) -----------------
    sampling: Literal["triplets", "pk"] = Field(
        "triplets",
        description="triplets: the seed's offline triplets (batch_size per step from num_human_identities_per_batch "
        "identities); pk: batches of pk_identities x pk_images images",
    )
    mining: Literal["seed", "batch_hard", "batch_semihard", "batch_all"] = Field(
        "seed",
        description="seed: keep the hard (or with use_semihard_negatives semi-hard) triplets of each batch as the "
        "seed; batch_hard / batch_semihard / batch_all: mine over every pair of the batch's labelled images",
    )
    triplet_distance: Literal["euclidean", "squared_euclidean"] = Field(
        "euclidean", description="distance of the triplet loss and its mining (the seed: euclidean)"
    )
    pk_identities: int = Field(32, ge=2, le=100_000, description="P: identities per batch with sampling: pk")
    pk_images: int = Field(4, ge=2, le=1_000, description="K: images per identity with sampling: pk")

    # --- the pipeline's own fields ------------------------------------------------------
    workspace: str = "./workspace"
    run_name: str | None = Field(None, pattern=r"^[A-Za-z0-9_.-]+$")
    seed: int = Field(0, ge=0, le=MAX_SEED)
    dataset: DatasetConfig = Field(default_factory=DatasetConfig)
    identities_file: str | None = Field(None, description="train only on the people listed (one per line)")
    crop: Literal["mtcnn", "aligned", "none"] = Field(
        "mtcnn",
        description="training images: MTCNN-cropped at crop_image_size/crop_margin as the seed (mtcnn), "
        "MTCNN's 5 landmarks warped onto the ArcFace template scaled to crop_image_size (aligned), "
        "or used as they are, e.g. insightface's pre-aligned 112x112 faces (none)",
    )
    crop_image_size: int = Field(224, ge=16, le=MAX_IMAGE_SIZE)
    crop_margin: int = Field(0, ge=0, le=MAX_IMAGE_SIZE, description="pixels added around the face box")
    crop_batch_size: int = Field(16, ge=1, le=4096)
    crop_workers: int = Field(0, ge=0, le=MAX_WORKERS, description="crop worker processes (0: one per CPU core)")
    crop_shard_size: int = Field(256, ge=1, le=1_000_000, description="identity folders per crop shard")
    crop_png_compress_level: int = Field(1, ge=0, le=9, description="zlib level of the crop PNGs (6: smaller, slower)")
    crop_batch_megapixels: float = Field(
        32.0, ge=1, le=1000, description="megapixels detected together (a larger photo alone): bounds MTCNN's memory"
    )
    exif_transpose: bool = False
    manifest_validate: bool = Field(True, description="decode every image while scanning (off: trust extensions)")
    manifest_dedupe: bool = Field(False, description="drop byte-identical duplicates (reads every byte)")
    lr_schedule: LRSchedule = Field(default_factory=LRSchedule)
    grad_clip_norm: float | None = Field(None, gt=0, le=1e6)
    device: str = Field("auto", description="auto, cpu, cuda or cuda:N")
    amp: Literal["auto", "off", "bf16", "fp16"] = "auto"
    channels_last: bool = True
    compile: bool = False
    num_processes: int = Field(1, ge=1, le=1024, description="DDP processes; >1 launches torchrun")
    nnodes: int = Field(1, ge=1, le=4096)
    rdzv_endpoint: str | None = Field(None, description="torchrun rendezvous host:port for multi-node")
    dask_address: str | None = Field(None, description="Dask scheduler for the crop shards (default: threads)")
    normalize_mean: list[Annotated[float, Field(ge=0, le=1)]] = Field(
        default_factory=lambda: [0.6071, 0.4609, 0.3944], min_length=3, max_length=3
    )
    normalize_std: list[Annotated[float, Field(gt=0, le=1)]] = Field(
        default_factory=lambda: [0.2457, 0.2175, 0.2129], min_length=3, max_length=3
    )
    eval_sets: list[EvalSet] = Field(default_factory=list)
    distance_metric: DistanceMetric = "euclidean"
    flip_tta: bool = False
    selection_metric: Literal["accuracy", "roc_auc", "tar_at_far"] = "accuracy"
    selection_eval_set: str | None = Field(None, description="eval set that picks the best epoch (default: first)")
    log_every_n_steps: int = Field(50, ge=1, le=1_000_000)
    log_system_metrics: bool = Field(
        True, description="log CPU, memory and GPU use to MLflow while training (system/* metrics)"
    )
    checkpoint_retention: int | None = Field(
        None, ge=0, le=MAX_EPOCHS, description="keep weights of the last N epochs (default: all)"
    )
    mlflow_tracking_uri: str | None = None
    mlflow_experiment: str | None = None
    registered_model_name: str = "facenet"

    @model_validator(mode="before")
    @classmethod
    def _seed_names(cls, data: Any) -> Any:
        return canonical_fields(data) if isinstance(data, Mapping) else data

    @field_validator("device")
    @classmethod
    def _known_device(cls, value: str) -> str:
        return check_device(value)

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
        self._check_sampling()
        if self.crop == "aligned" and self.crop_margin:
            raise ValueError(
                f"crop_margin={self.crop_margin} does not apply to crop: aligned (the ArcFace template frames the "
                "face): set crop_margin to 0"
            )
        if any(s <= 0 for s in self.normalize_std):
            raise ValueError(f"normalize_std must be positive, got {self.normalize_std}")
        names = [s.name for s in self.eval_sets]
        if len(set(names)) != len(names):
            raise ValueError(f"eval_sets names must be unique, got {names}")
        if self.selection_eval_set is not None and self.selection_eval_set not in names:
            raise ValueError(f"selection_eval_set={self.selection_eval_set!r} is not one of eval_sets {names}")
        return self

    def _check_sampling(self) -> None:
        """The batch's shape fits the mining, the epoch file and the processes."""
        if self.sampling == "pk":
            if self.mining == "seed":
                raise ValueError(
                    "mining: seed selects among offline triplets and needs sampling: triplets; with sampling: pk "
                    "choose batch_hard, batch_semihard or batch_all"
                )
            if self.training_triplets_path:
                raise ValueError(
                    "training_triplets_path gives the first epoch's triplets and needs sampling: triplets; "
                    "with sampling: pk every epoch's batches are drawn (drop training_triplets_path)"
                )
            rows, what = self.iterations_per_epoch * self.pk_identities * self.pk_images, "pk_identities x pk_images"
            if self.pk_identities % self.num_processes:
                raise ValueError(
                    f"pk_identities={self.pk_identities} must be divisible by num_processes={self.num_processes}"
                )
        else:
            rows, what = self.iterations_per_epoch * self.batch_size, "batch_size"
            if self.batch_size % self.num_processes:
                raise ValueError(
                    f"batch_size={self.batch_size} must be divisible by num_processes={self.num_processes}"
                )
        if rows > MAX_TRIPLETS_PER_EPOCH:
            raise ValueError(
                f"iterations_per_epoch x {what} = {rows:,} rows per epoch is more than "
                f"{MAX_TRIPLETS_PER_EPOCH:,}: lower iterations_per_epoch or {what}"
            )

    @property
    def images_per_step(self) -> int:
        """Images in one global batch: 3 per triplet, or P x K."""
        return self.pk_identities * self.pk_images if self.sampling == "pk" else 3 * self.batch_size

    def resolved_eval_sets(self) -> list[EvalSet]:
        """eval_sets, or one kfold10 set built from the seed's --lfw option."""
        if self.eval_sets or not self.lfw:
            return list(self.eval_sets)
        from pathlib import Path

        pairs = self.lfw_pairs or str(Path(self.lfw).parent / "pairs.txt")
        return [EvalSet(name="lfw", root=self.lfw, pairs=pairs, aligned=self.lfw_cropped)]


def field_bounds(loc: tuple, model: type[BaseModel] = Config) -> dict[str, float]:
    """The ge/gt/le/lt constraints of the field at `loc` (names, and list positions), {} if none."""
    metadata: list = []
    annotation: object = model
    for part in loc:
        if isinstance(part, str) and isinstance(annotation, type) and issubclass(annotation, BaseModel):
            if part not in annotation.model_fields:
                return {}
            info = annotation.model_fields[part]
            annotation, metadata = info.annotation, list(info.metadata)
        elif isinstance(part, int):
            items = [arg for arg in get_args(annotation) if arg is not type(None)]
            if not items:
                return {}
            annotation, metadata = _unwrap(items[0])
        else:
            return {}
        if get_origin(annotation) in (Union, UnionType):  # X | None
            annotation = next(arg for arg in get_args(annotation) if arg is not type(None))
        if get_origin(annotation) is Annotated:
            annotation, extra = _unwrap(annotation)
            metadata += extra
    return {key: getattr(item, key) for item in metadata for key in BOUND_KEYS if getattr(item, key, None) is not None}


def _unwrap(annotation: object) -> tuple[object, list]:
    """(inner type, constraints) of Annotated[T, Field(...)]; (annotation, []) otherwise."""
    if get_origin(annotation) is not Annotated:
        return annotation, []
    inner, *extras = get_args(annotation)
    metadata = []
    for extra in extras:
        metadata += list(getattr(extra, "metadata", [extra]))
    return inner, metadata


def bounds_text(bounds: dict[str, float]) -> str:
    """'32..1024', or '> 0 and <= 10' when an end is open."""
    if "ge" in bounds and "le" in bounds:
        return f"{bounds['ge']}..{bounds['le']}"
    symbols = {"gt": ">", "ge": ">=", "lt": "<", "le": "<="}
    return " and ".join(f"{symbols[key]} {bounds[key]}" for key in BOUND_KEYS if key in bounds)


def within(value: float, bounds: dict[str, float]) -> bool:
    """Whether `value` satisfies every constraint in `bounds`."""
    tests = {"gt": operator.gt, "ge": operator.ge, "lt": operator.lt, "le": operator.le}
    return all(tests[key](value, limit) for key, limit in bounds.items())
