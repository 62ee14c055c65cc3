"""The `data` node (conf/data/default.yaml, per-dataset `data:` blocks): the data recipe's schema.

Defaults are scenic's Kinetics recipe for MTV (docs/data.md); this dataclass is the only definition of
the keys, their types and defaults.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional


@dataclass
class RandomResizedCropConfig:
    """DeiT/VideoMAE style; replaces short-side resize + jitter when enabled."""

    enabled: bool = False
    scale: tuple[float, float] = (0.08, 1.0)
    ratio: tuple[float, float] = (0.75, 1.3333)


@dataclass
class ColorAugConfig:
    """scenic's colour jitter; ignored when RandAugment is enabled. Each change can be narrowed or turned
    off (0) on its own, e.g. brightness and contrast only when the hue is what a label means."""

    enabled: bool = True
    prob: float = 0.8
    drop_prob: float = 0.1  # grayscale
    brightness: float = 32 / 255  # + U(-b, b), on [0, 1] pixels
    contrast: float = 0.4  # x U(1 - c, 1 + c) around the clip's mean gray
    saturation: float = 0.4  # x U(1 - s, 1 + s)
    hue: float = 0.2  # + U(-h, h) turns


@dataclass
class RandAugmentConfig:
    """scenic's video RandAugment (datamodules/randaugment.py, docs/data.md)."""

    enabled: bool = False
    num_layers: int = 2
    magnitude: int = 9
    magnitude_std: float = 0.0  # timm's mstd: per-op magnitude ~ N(M, std) clipped to [0, 10]; inf: U(0, M)
    increasing: bool = False  # timm's *Increasing ops (inc1)


@dataclass
class RandomErasingConfig:
    prob: float = 0.0
    area: tuple[float, float] = (0.02, 0.3333)
    aspect: tuple[float, float] = (0.3, 3.3)


@dataclass
class MixupConfig:
    """Applied on the batch by the LightningModule (datamodule.mixup)."""

    mixup_alpha: float = 0.0
    cutmix_alpha: float = 0.0
    prob: float = 1.0
    switch_prob: float = 0.5
    label_smoothing: float = 0.0


@dataclass
class DataConfig:
    """Clip sampling, decoding, augmentation, evaluation views, loaders and the bad-input policy."""

    recipe: str = "default"  # which file last set these values; checked against dataset.data_recipe
    # clip sampling
    num_frames: int = 32
    stride: int = 2
    short_video: str = "loop"  # loop | pad: videos shorter than a clip (docs/data.md)
    # decoding
    backend: str = "decord"  # decord | pyav
    fallback_backend: Optional[str] = "pyav"  # retried per sample when the backend fails; null: no fallback
    decode_threads: int = 1  # FFmpeg threads per reader (parallelism comes from num_workers)
    # input normalisation (datamodules/normalize.py): scenic ([-1, 1], ViT-initialised models, the paper
    # recipes) | imagenet (ImageNet mean/std) | dataset (the training set's mean/std, measured at start-up;
    # the CPU scale's default, for small models trained from scratch)
    normalize: str = "scenic"
    normalize_videos: int = 64  # data.normalize=dataset: evenly spaced training videos measured (8 frames each)
    # training augmentation (scenic order: resize, jitter, crop, flip, RandAugment | colour, normalise)
    short_side: int = 256  # scenic min_resize; also the test-time resize
    crop_size: Any = 224  # one integer or [height, width]
    scale_jitter: Optional[tuple[float, float]] = (0.9, 1.33)  # independent height / width factors; null: off
    scale_jitter_prob: float = 1.0
    random_resized_crop: RandomResizedCropConfig = field(default_factory=RandomResizedCropConfig)
    flip: bool = True
    color_aug: ColorAugConfig = field(default_factory=ColorAugConfig)
    randaugment: RandAugmentConfig = field(default_factory=RandAugmentConfig)
    random_erasing: RandomErasingConfig = field(default_factory=RandomErasingConfig)
    mixup: MixupConfig = field(default_factory=MixupConfig)
    repeat_aug: int = 1  # clips per decoded training video (batch_size must be a multiple)
    overfit_videos: Optional[int] = None  # debug=overfit: train, val and test on these many training videos
    # evaluation views
    val_clips: int = 1  # scenic validates on 1 central clip, 1 crop
    val_crops: int = 1
    test_clips: int = 4
    test_crops: int = 3  # 1 (centre) or 3 (along the long side)
    # loaders
    batch_size: int = 8  # training clips per step per device
    eval_batch_size: int = 1  # videos per val/test step per device (x views clips)
    num_workers: int = 4
    pin_memory: bool = False
    # bad input
    missing: str = "error"  # error | skip: annotated files that do not exist (checked at start-up)
    duplicates: str = "error"  # error | keep | drop (keep the first): a video or segment listed twice in a split
    on_decode_error: str = "skip"  # skip | error: files that fail to decode (see bad_videos.txt)
    max_decode_retries: int = 10  # consecutive replacements in training before giving up
