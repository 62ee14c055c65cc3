"""Input normalisation as a recipe choice (`data.normalize`), applied per channel to pixels in [0, 255].

* `scenic`: x / 127.5 - 1, i.e. [-1, 1], what ViT-initialised (and converted scenic) models expect; the
  paper recipes (`scale=paper`) use it.
* `imagenet`: (x / 255 - mean) / std with ImageNet's mean and std.
* `dataset`: the training set's own per-channel mean and std, measured at start-up on a fixed,
  evenly spaced subsample of training videos (so a rerun or an eval measures the same numbers). A small
  model trained from scratch on dark, low-contrast video (surveillance, medical, a user's folder) starts
  with nearly identical tokens under [-1, 1] and never leaves the label prior; standardised inputs learn.
  The CPU scale (`scale=small`) uses it.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch

from mtv.errors import ConfigError

from .formats import VideoRecord
from .readers import DecodeError, read_frames

log = logging.getLogger(__name__)

MODES = ("scenic", "imagenet", "dataset")
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
FRAMES_PER_VIDEO = 8  # evenly spaced frames per sampled video for `dataset` statistics


@dataclass(frozen=True)
class Normalization:
    """y = (x - mean) / std per channel, x in [0, 255]; `mean` and `std` in pixel units."""

    mean: tuple[float, float, float] = (127.5, 127.5, 127.5)
    std: tuple[float, float, float] = (127.5, 127.5, 127.5)

    @property
    def scale(self) -> torch.Tensor:
        """(3,) multiplier: y = scale * x + offset."""
        return 1 / torch.tensor(self.std, dtype=torch.float32)

    @property
    def offset(self) -> torch.Tensor:
        return -torch.tensor(self.mean, dtype=torch.float32) / torch.tensor(self.std, dtype=torch.float32)

    def bounds(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(3, 1, 1, 1) images of 0 and 255: where clipping in pixel space lands after normalisation."""
        shape = (3, 1, 1, 1)
        return self.offset.view(shape), (255 * self.scale + self.offset).view(shape)

    def apply_(self, x: torch.Tensor) -> torch.Tensor:
        """In place on a (..., 3, T, H, W) tensor of pixels."""
        shape = (3, 1, 1, 1)
        return x.mul_(self.scale.view(shape)).add_(self.offset.view(shape))

    def to_pixels(self, x: torch.Tensor) -> torch.Tensor:
        """The inverse map, (3, ...) normalised -> pixels in [0, 255] (a new tensor)."""
        shape = (3,) + (1,) * (x.dim() - 1)
        return (x - self.offset.view(shape)) / self.scale.view(shape)


def check_mode(data_cfg) -> str:
    """`data.normalize` before anything is read: one of MODES."""
    mode = str(data_cfg.get("normalize", "scenic"))
    if mode not in MODES:
        raise ConfigError(f"data.normalize={mode!r} is not one of {list(MODES)}: scenic ([-1, 1], for "
                          f"ViT-initialised models), imagenet, or dataset (the training set's mean/std)")
    if mode == "dataset" and int(data_cfg.get("normalize_videos", 64)) < 1:
        raise ConfigError(f"data.normalize_videos={data_cfg.normalize_videos} must be >= 1 "
                          f"(training videos sampled for the mean/std of data.normalize=dataset)")
    return mode


def channel_stats(records: Sequence[VideoRecord], num_videos: int, backend: str = "decord",
                  fallback: str | None = "pyav") -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and std (pixel units) over FRAMES_PER_VIDEO evenly spaced frames of up to
    `num_videos` evenly spaced records; undecodable videos are skipped (they are reported elsewhere)."""
    if not records:
        raise ConfigError("data.normalize=dataset needs training videos, but the training split is empty")
    picks = np.unique(np.linspace(0, len(records) - 1, min(num_videos, len(records))).round().astype(int))
    total, total_sq, count = np.zeros(3), np.zeros(3), 0
    for i in picks:
        record = records[i]

        def frames_of(length: int, r: VideoRecord = record) -> np.ndarray:
            first = min(r.start_frame, length - 1)
            last = length - 1 if r.end_frame is None else min(r.end_frame, length - 1)
            return np.unique(np.linspace(first, last, FRAMES_PER_VIDEO).round().astype(int))

        try:
            pixels = read_frames(record.path, frames_of, backend, 1, fallback).reshape(-1, 3).double()
        except DecodeError:
            continue
        total += pixels.sum(0).numpy()
        total_sq += (pixels * pixels).sum(0).numpy()
        count += len(pixels)
    if count == 0:
        raise ConfigError(f"data.normalize=dataset: none of the {len(picks)} sampled training videos could be "
                          f"decoded; set data.normalize=scenic or check the videos (bad_videos.txt)")
    mean = total / count
    std = np.sqrt(np.maximum(total_sq / count - mean ** 2, 0.0))
    std = np.maximum(std, 1.0)  # a flat channel would divide by ~0
    return tuple(float(v) for v in mean), tuple(float(v) for v in std)


def build_normalization(data_cfg, train_records: Sequence[VideoRecord] | None = None) -> Normalization:
    """The Normalization of `data.normalize`; `dataset` measures `train_records`."""
    mode = check_mode(data_cfg)
    if mode == "scenic":
        return Normalization()
    if mode == "imagenet":
        return Normalization(tuple(255 * m for m in IMAGENET_MEAN), tuple(255 * s for s in IMAGENET_STD))
    mean, std = channel_stats(train_records or [], int(data_cfg.get("normalize_videos", 64)),
                              str(data_cfg.backend), data_cfg.get("fallback_backend"))
    log.info("data.normalize=dataset: mean %s, std %s (pixels, from the training set)",
             [round(m, 2) for m in mean], [round(s, 2) for s in std])
    return Normalization(mean, std)
