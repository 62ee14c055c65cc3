"""`data.normalize`: scenic [-1, 1], ImageNet, or the training set's statistics measured on real videos;
the colour path and colour drop stay exact under per-channel normalisation; recipe defaults."""
from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest
import torch
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from datamodules.config import DataConfig

from datamodules import VideoDataModule
from datamodules.formats import VideoRecord
from datamodules.normalize import Normalization, build_normalization, channel_stats
from datamodules.transforms import EvalTransform, TrainTransform
from mtv.errors import ConfigError
from videos import write_video

REPO = Path(__file__).resolve().parents[2]
DATA = OmegaConf.structured(DataConfig)  # the data recipe's defaults


def _two_colour_video(path: Path, left=(200, 40, 90), right=(20, 120, 10)) -> Path:
    frames = np.empty((8, 32, 32, 3), dtype=np.uint8)
    frames[:, :, :16], frames[:, :, 16:] = left, right
    return write_video(path, frames=frames, codec="libx264rgb", pix_fmt="rgb24")  # lossless


def test_dataset_statistics_of_real_videos(tmp_path):
    records = [VideoRecord(str(_two_colour_video(tmp_path / f"{i}.mp4")), 0) for i in range(3)]
    mean, std = channel_stats(records, num_videos=2)
    np.testing.assert_allclose(mean, [110, 80, 50], atol=1.5)  # half the pixels each colour
    np.testing.assert_allclose(std, [90, 40, 40], atol=1.5)


def test_modes_and_bad_value_is_a_config_error_before_reading(tmp_path):
    scenic = build_normalization(DATA)
    assert torch.allclose(scenic.apply_(torch.tensor([0.0, 127.5, 255.0]).view(3, 1, 1, 1)).flatten(),
                          torch.tensor([-1.0, 0.0, 1.0]))
    imagenet = build_normalization(OmegaConf.merge(DATA, {"normalize": "imagenet"}))
    assert imagenet.mean[0] == pytest.approx(0.485 * 255) and imagenet.std[2] == pytest.approx(0.225 * 255)
    bad = OmegaConf.merge(DATA, {"normalize": "zscore"})
    dataset = OmegaConf.create({"name": "video_folder", "format": "video_folder", "root": str(tmp_path / "none"),
                                "num_classes": 2})
    with pytest.raises(ConfigError, match="data.normalize='zscore'"):
        VideoDataModule(dataset, bad)


def _clip(seed: int = 0) -> torch.Tensor:
    """uint8 (T, H, W, 3), dark and low contrast like the videos of issue 14."""
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(4, 36, 36, 3, generator=g) * torch.tensor([30.0, 60.0, 90.0]) + 5).to(torch.uint8)


def test_standardised_clip_and_colour_path_agree():
    clip = _clip()
    pixels = clip.double().reshape(-1, 3)
    norm = Normalization(tuple(pixels.mean(0).tolist()), tuple(pixels.std(0).tolist()))
    plain = _cfg(color_aug={"enabled": False})
    x = TrainTransform(plain, norm)(clip)
    assert torch.allclose(x.mean(dim=(1, 2, 3)), torch.zeros(3), atol=1e-3)
    assert torch.allclose(x.std(dim=(1, 2, 3)), torch.ones(3), atol=1e-2)
    assert torch.allclose(EvalTransform(plain, 1, norm)(clip)[0], x, atol=1e-5)
    # colour augmentation that never fires goes through the folded affine map and the clip bounds
    random.seed(0)
    unchanged = TrainTransform(_cfg(color_aug={"enabled": True, "prob": 0.0, "drop_prob": 0.0}), norm)(clip)
    assert torch.allclose(unchanged, x, atol=1e-4)
    # colour drop: every channel holds the luma of the pixels, normalised per channel
    gray = TrainTransform(_cfg(color_aug={"enabled": True, "prob": 0.0, "drop_prob": 1.0}), norm)(clip)
    luma = torch.tensordot(torch.tensor([0.299, 0.587, 0.114]), clip.permute(3, 0, 1, 2).float(), dims=1)
    expected = norm.apply_(luma.expand(3, -1, -1, -1).clone())
    assert torch.allclose(gray, expected, atol=1e-3)


def _cfg(**changes):
    base = OmegaConf.merge(DATA, {"crop_size": 36, "short_side": 36, "scale_jitter": None, "flip": False})
    return OmegaConf.merge(base, changes)


def _compose(*overrides: str):
    with initialize_config_dir(str(REPO / "conf"), version_base="1.3"):
        return compose("config", overrides=list(overrides))


def test_recipes_cpu_scale_standardises_and_crops_most_of_the_frame_paper_keeps_scenic():
    small = _compose("dataset=video_folder")
    assert small.data.normalize == "dataset"
    assert small.data.crop_size <= small.data.short_side <= 1.25 * small.data.crop_size
    for experiment in ("k400_mtv_b", "ssv2_mtv_b", "epic_mtv_b"):
        paper = _compose(f"experiment={experiment}")
        assert paper.data.normalize == "scenic" and paper.data.short_side == 256 and paper.data.crop_size == 224
