"""The pipeline's one typed configuration, its presets and its command-line flags."""

from facenet_core.config.loading import load_config, save_config
from facenet_core.config.schema import Config, DatasetConfig, DownloadFile, EvalSet, LRSchedule

__all__ = [
    "Config",
    "DatasetConfig",
    "DownloadFile",
    "EvalSet",
    "LRSchedule",
    "load_config",
    "save_config",
]
