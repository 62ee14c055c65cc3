"""The LightningDataModule: annotations -> checked records -> datasets -> DataLoaders."""
from __future__ import annotations

import logging
from pathlib import Path

import lightning as L
import numpy as np
import torch
from omegaconf import DictConfig
from torch.utils.data import DataLoader

from mtv.errors import ConfigError

from .annotation_checks import check_annotations
from .bad_inputs import BadVideoLog, check_missing
from .dataset import EvalVideoDataset, TrainVideoDataset, collate_clips
from .formats import PARSERS, Annotations, VideoRecord, read_video_list
from .mixup import MixupCutmix
from .normalize import Normalization, build_normalization, check_mode
from .synthetic import PARAMETER_KEYS, class_names, ensure_synthetic
from .transforms import check_color_ranges

log = logging.getLogger(__name__)

DEFAULT_CACHE_DIR = "~/.cache/mtv"


def _worker_init(_: int) -> None:
    """One intra-op thread per worker: parallelism comes from workers, not from oversubscribed threads."""
    torch.set_num_threads(1)


class VideoDataModule(L.LightningDataModule):
    """Train: random clips with augmentation. Val: `data.val_clips` x `data.val_crops` views (scenic:
    1 central clip). Test: `data.test_clips` x `data.test_crops` views per video (default 4 x 3).

    `batch_size` counts clips per step (with `repeat_aug=k`, batch_size / k videos are decoded);
    `eval_batch_size` counts videos, each contributing all its views.
    """

    def __init__(self, dataset_cfg: DictConfig, data_cfg: DictConfig, output_dir: str | None = None,
                 cache_dir: str | None = None) -> None:
        super().__init__()
        self.dataset_cfg, self.data_cfg = dataset_cfg, data_cfg
        self.output_dir, self.cache_dir = output_dir, cache_dir or DEFAULT_CACHE_DIR
        self.bad_log = BadVideoLog(output_dir)
        self.annotations: Annotations | None = None
        self.datasets: dict[str, torch.utils.data.Dataset] = {}
        self.normalization: Normalization | None = None  # set in setup (data.normalize)
        check_mode(data_cfg)
        check_color_ranges(data_cfg.color_aug)
        if int(data_cfg.batch_size) % int(data_cfg.repeat_aug):
            raise ConfigError(f"data.batch_size={data_cfg.batch_size} must be a multiple of "
                             f"data.repeat_aug={data_cfg.repeat_aug}")

    # --- what the model side reads -------------------------------------------------------------------

    @property
    def num_classes(self) -> int:
        return int(self.dataset_cfg.num_classes)

    @property
    def heads(self) -> dict[str, int] | None:
        heads = self.dataset_cfg.get("heads")
        return {k: int(v) for k, v in heads.items()} if heads else None

    @property
    def class_names(self) -> list[str] | dict[str, list[str]] | None:
        """Index -> name from the annotations (per head for multi-head datasets; None before `setup`),
        stored in checkpoints and results.json so predictions can be named."""
        if self.annotations is None:
            return None
        return dict(self.annotations.head_classes) if self.annotations.heads else self.annotations.classes

    @property
    def train_size(self) -> int:
        return len(self.datasets["train"])

    @property
    def val_size(self) -> int:
        return len(self.datasets["val"])

    @property
    def test_size(self) -> int:
        return len(self.datasets["test"])

    @property
    def mixup(self) -> MixupCutmix | None:
        """Batch mixup/cutmix/label smoothing for training_step, or None when all are off."""
        m = self.data_cfg.mixup
        if max(m.mixup_alpha, m.cutmix_alpha, m.label_smoothing) <= 0:
            return None
        sizes = list(self.heads.values()) if self.heads else self.num_classes
        return MixupCutmix(m.mixup_alpha, m.cutmix_alpha, m.prob, m.label_smoothing, sizes, m.switch_prob)

    def unreadable_videos(self, split: str = "test") -> list[str]:
        """Paths that could not be decoded in `split` so far, from bad_videos.txt (all workers and ranks)."""
        return self.bad_log.read(split)

    # --- Lightning hooks ------------------------------------------------------------------------------

    def prepare_data(self) -> None:
        if self.dataset_cfg.format == "synthetic":
            self._synthetic_dir()

    def setup(self, stage: str | None = None) -> None:
        if self.annotations is not None:
            return
        self.annotations = self.load_annotations()
        data = self.data_cfg
        records = {s: check_missing(r, s, str(data.missing), self.output_dir, keep_missing=s != "train")
                   for s, r in self.annotations.splits.items()}
        if data.get("overfit_videos"):
            records = overfit_splits(records["train"], int(data.overfit_videos))
        norm = self.normalization = build_normalization(data, records["train"])
        self.datasets = {
            "train": TrainVideoDataset(records["train"], data, self.bad_log, norm=norm),
            "val": EvalVideoDataset(records["val"], data, self.bad_log, "val", int(data.val_clips),
                                    int(data.val_crops), norm=norm),
            "test": EvalVideoDataset(records["test"], data, self.bad_log, "test", int(data.test_clips),
                                     int(data.test_crops), norm=norm),
        }
        log.info("videos: %d train, %d val, %d test", self.train_size, self.val_size, self.test_size)

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", int(self.data_cfg.batch_size) // int(self.data_cfg.repeat_aug), shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", int(self.data_cfg.eval_batch_size), shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", int(self.data_cfg.eval_batch_size), shuffle=False)

    # --- internals -------------------------------------------------------------------------------------

    def _loader(self, split: str, batch_size: int, shuffle: bool) -> DataLoader:
        workers = int(self.data_cfg.num_workers)
        drop_last = split == "train" and len(self.datasets[split]) > batch_size
        return DataLoader(self.datasets[split], batch_size=batch_size, shuffle=shuffle, num_workers=workers,
                          collate_fn=collate_clips, drop_last=drop_last,
                          worker_init_fn=_worker_init, persistent_workers=workers > 0 and split == "train",
                          pin_memory=bool(self.data_cfg.pin_memory))

    def load_annotations(self) -> Annotations:
        """Every split's records, checked (labels, duplicates, class count) against the config."""
        annotations = check_annotations(self._parse(), self.dataset_cfg, self.data_cfg)
        if self.dataset_cfg.num_classes is None:  # video_folder: the class folders define it
            self.dataset_cfg.num_classes = len(annotations.classes)
        return annotations

    def _parse(self) -> Annotations:
        fmt = str(self.dataset_cfg.format)
        if fmt == "synthetic":
            folder = self._synthetic_dir()
            splits = {s: read_video_list(folder / f"{s}.txt", str(folder)) for s in ("train", "val", "test")}
            return Annotations(splits, classes=class_names(self.num_classes))
        if fmt not in PARSERS:
            raise ConfigError(f"dataset.format={fmt!r} is not one of {sorted(PARSERS) + ['synthetic']}")
        return PARSERS[fmt](self.dataset_cfg)

    def _synthetic_dir(self) -> Path:
        ds = self.dataset_cfg
        params = {k: ds[k] for k in PARAMETER_KEYS}
        return ensure_synthetic(params, ds.get("cache_dir") or Path(self.cache_dir, "synthetic"))


def overfit_splits(train: list[VideoRecord], num_videos: int) -> dict[str, list[VideoRecord]]:
    """`debug=overfit`: the same `num_videos` training videos (evenly spaced over the list, so sorted
    class folders all take part) for train, val and test."""
    picks = np.unique(np.linspace(0, len(train) - 1, min(num_videos, len(train))).round().astype(int))
    subset = [train[i] for i in picks]
    log.info("data.overfit_videos=%d: train, val and test are the same %d training videos", num_videos, len(subset))
    return {"train": subset, "val": subset, "test": subset}


def build_datamodule(cfg: DictConfig) -> VideoDataModule:
    """`cfg`: the whole composed config; uses cfg.dataset, cfg.data, cfg.paths.output_dir / cache_dir."""
    paths = cfg.get("paths") or {}
    recipe = cfg.dataset.get("data_recipe")
    if recipe and cfg.data.get("recipe") != recipe:
        raise ConfigError(f"dataset {cfg.dataset.name} sets data defaults (recipe {recipe!r}) but cfg.data.recipe="
                         f"{cfg.data.get('recipe')!r}: in conf/config.yaml list `data: default` before "
                         f"`dataset: ...` in the defaults so the dataset's data values win")
    return VideoDataModule(cfg.dataset, cfg.data, output_dir=paths.get("output_dir"),
                           cache_dir=paths.get("cache_dir"))


def check_data(cfg: DictConfig) -> None:
    """Start-up data checks, before any logger or model exists: parse and check every annotation file
    (raising `mtv.ConfigError` naming file:line), and fill a null `dataset.num_classes` from the
    annotations (the class folders of `video_folder`)."""
    build_datamodule(cfg).load_annotations()
