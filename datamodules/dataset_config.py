"""The `dataset` node (conf/dataset/<name>.yaml): one schema per annotation format.

Each dataset YAML starts from its format's dataclass (`dataset/<format>_schema` in Hydra's ConfigStore), so
a key the format does not read is refused and values are type-checked when the config is composed. Paths
may be relative to `dataset.root` where the format says so (docs/data.md).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

from omegaconf import MISSING


@dataclass
class SplitPaths:
    """One path per split; a null test split is the val split (most test sets have no labels)."""

    train: str = MISSING
    val: str = MISSING
    test: Optional[str] = None


@dataclass
class DatasetConfig:
    """Keys every format has."""

    name: str = MISSING  # the dataset's name (conf/dataset/<name>.yaml), recorded with runs and checkpoints
    format: str = MISSING  # the annotation parser (datamodules.formats.PARSERS, or synthetic)
    root: Optional[str] = MISSING  # the downloaded dataset's folder
    num_classes: Optional[int] = MISSING
    heads: Optional[dict[str, int]] = None  # multi-head datasets: {head: classes}
    data_recipe: Optional[str] = None  # the `data:` block this file sets (checked against data.recipe); null: none


@dataclass
class AnnotatedDatasetConfig(DatasetConfig):
    """Formats whose annotation files name the videos."""

    allow_outside_root: bool = False  # true: annotation paths may leave their folder (absolute or ../ paths)


@dataclass
class KineticsConfig(AnnotatedDatasetConfig):
    annotations: SplitPaths = field(default_factory=SplitPaths)  # CSV per split
    class_subfolders: bool = False  # true: clips in <split>/<label>/<clip>.mp4 instead of <split>/<clip>.mp4
    videos: SplitPaths = field(default_factory=SplitPaths)  # clip folder per split


@dataclass
class SSv2Config(AnnotatedDatasetConfig):
    labels_json: str = MISSING  # class name -> index
    annotations: SplitPaths = field(default_factory=SplitPaths)  # JSON per split
    video_dir: str = MISSING
    extension: str = "webm"


@dataclass
class EpicKitchensConfig(AnnotatedDatasetConfig):
    annotations: SplitPaths = field(default_factory=SplitPaths)  # CSV per split
    class_files: dict[str, str] = field(default_factory=dict)  # {head: classes CSV}, for the class names
    video_pattern: str = MISSING  # a video's path under root, from the CSV's columns


@dataclass
class MitConfig(AnnotatedDatasetConfig):
    categories: Optional[str] = None  # `name,index` lines; absent file: sorted names of the train split
    annotations: SplitPaths = field(default_factory=SplitPaths)  # CSV per split
    videos: SplitPaths = field(default_factory=SplitPaths)


@dataclass
class VideoListConfig(AnnotatedDatasetConfig):
    """`<path> <label>` per line; list paths relative to root."""

    train_list: str = MISSING
    val_list: str = MISSING
    test_list: Optional[str] = None  # null: val_list


@dataclass
class VideoFolderConfig(DatasetConfig):
    """<root>/<split dir>/<class name>/<video>; num_classes null: the number of class folders."""

    train_dir: str = "train"
    val_dir: str = "val"
    test_dir: Optional[str] = None  # null: val_dir
    num_classes: Optional[int] = None


@dataclass
class SyntheticConfig(DatasetConfig):
    """Generated videos (datamodules/synthetic.py), cached by their parameters."""

    root: Optional[str] = None
    num_classes: Optional[int] = 4
    num_train: int = 1536
    num_val: int = 96
    num_test: int = 96
    num_frames: int = 24
    height: int = 40
    width: int = 40
    fps: int = 10
    crf: int = 12
    seed: int = 0
    cache_dir: Optional[str] = None  # null: ${paths.cache_dir}/synthetic


# dataset.format -> its schema (stored as dataset/<format>_schema)
DATASET_SCHEMAS: dict[str, type[DatasetConfig]] = {
    "kinetics": KineticsConfig,
    "ssv2": SSv2Config,
    "epic_kitchens": EpicKitchensConfig,
    "mit": MitConfig,
    "video_list": VideoListConfig,
    "video_folder": VideoFolderConfig,
    "synthetic": SyntheticConfig,
}
