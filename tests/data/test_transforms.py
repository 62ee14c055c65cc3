"""Augmentation on real uint8 clips: shapes, ranges, geometry (crop/flip/three crops), colour,
RandAugment in the pipeline (ops: test_randaugment.py), random erasing, mixup / cutmix / label smoothing."""
from __future__ import annotations

import random

import pytest
import torch
from omegaconf import OmegaConf

from datamodules import MixupCutmix, VideoDataModule
from datamodules.config import DataConfig
from datamodules.randaugment import RandAugment
from datamodules.transforms import EvalTransform, TrainTransform, apply_affine, color_affine, random_erase_, to_gray
from mtv.errors import ConfigError

REPO_DATA = OmegaConf.structured(DataConfig)  # the data recipe's defaults (conf/data/default.yaml adds none)


def _cfg(**changes):
    cfg = OmegaConf.merge(REPO_DATA, {"crop_size": 32, "short_side": 40})
    return OmegaConf.merge(cfg, changes)


def _clip(t=4, h=60, w=80) -> torch.Tensor:
    """uint8 (T, H, W, 3) where red = 3x and green = 3y (linear, so bilinear resampling keeps it exact)."""
    yy, xx = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    frame = torch.stack([xx * 3, yy * 3, torch.full_like(xx, 128)], dim=-1)
    return frame.to(torch.uint8).expand(t, h, w, 3).contiguous()


def test_default_train_transform_shape_and_range():
    random.seed(0)
    out = TrainTransform(_cfg())(_clip())
    assert out.shape == (3, 4, 32, 32) and out.dtype == torch.float32
    assert out.min() >= -1 and out.max() <= 1


def test_crop_is_a_window_of_the_resized_frame_and_flip_mirrors_it():
    cfg = _cfg(scale_jitter=None, color_aug={"enabled": False}, flip=False, short_side=60, crop_size=60)
    transform = TrainTransform(cfg)
    random.seed(1)
    out = transform(_clip())  # 60x80 source, short side already 60: a pure 60x60 window
    red = (out[0, 0] + 1) * 127.5
    assert torch.allclose(red[:, 1:] - red[:, :-1], torch.full((60, 59), 3.0), atol=1e-3)  # no scaling
    transform.flip = True
    flips = set()
    for seed in range(8):
        random.seed(seed)
        red = (transform(_clip())[0, 0] + 1) * 127.5
        flips.add(bool(red[0, 0] > red[0, -1]))
    assert flips == {True, False}  # both orientations occur


def test_scale_jitter_changes_the_field_of_view():
    cfg = _cfg(color_aug={"enabled": False}, flip=False, scale_jitter=[0.9, 1.33])
    widths = set()
    for seed in range(20):
        random.seed(seed)
        red = (TrainTransform(cfg)(_clip())[0, 0] + 1) * 127.5
        widths.add(round(float(red[0, -1] - red[0, 0])))
    assert len(widths) > 3


def test_random_resized_crop_option():
    cfg = _cfg(random_resized_crop={"enabled": True})
    random.seed(0)
    assert TrainTransform(cfg)(_clip()).shape == (3, 4, 32, 32)


def test_colour_augment_is_shared_by_frames_and_drop_gives_gray():
    x = torch.rand(3, 1, 8, 8).expand(3, 4, 8, 8)  # (3, T, H, W), identical frames
    means = x.mean(dim=(1, 2, 3))
    random.seed(3)
    out = apply_affine(x, *color_affine(means, prob=1.0)).clamp(0, 1)
    assert torch.allclose(out[:, 0], out[:, 3]) and not torch.allclose(out, x)
    assert torch.allclose(apply_affine(x, *color_affine(means, prob=0.0)), x)  # skipped: identity
    gray = to_gray(x.clone())
    assert torch.allclose(gray[0], gray[1]) and torch.allclose(gray[1], gray[2])


def _force_draws(monkeypatch, values: list[float]) -> None:
    """Make the next random.random / random.uniform calls return `values` in order."""
    draws = iter(values)
    monkeypatch.setattr(random, "random", lambda: next(draws))
    monkeypatch.setattr(random, "uniform", lambda a, b: next(draws))


def test_colour_augment_components_match_their_definitions(monkeypatch):
    x = torch.rand(3, 2, 4, 4)
    mean_gray = float((0.299 * x[0] + 0.587 * x[1] + 0.114 * x[2]).mean())
    means = x.mean(dim=(1, 2, 3))
    # draws: apply?, brightness, saturation, contrast, hue
    _force_draws(monkeypatch, [0.0, 0.1, 1.0, 1.0, 0.0])
    assert torch.allclose(apply_affine(x, *color_affine(means, 1.0)), x + 0.1, atol=1e-5)
    _force_draws(monkeypatch, [0.0, 0.0, 0.0, 1.0, 0.0])  # saturation 0: gray
    assert torch.allclose(apply_affine(x, *color_affine(means, 1.0)), to_gray(x.clone()), atol=1e-5)
    _force_draws(monkeypatch, [0.0, 0.0, 1.0, 0.0, 0.0])  # contrast 0: flat mean gray
    assert torch.allclose(apply_affine(x, *color_affine(means, 1.0)), torch.full_like(x, mean_gray), atol=1e-5)
    _force_draws(monkeypatch, [0.0, 0.0, 1.0, 1.0, 0.5])  # half-turn hue: gray kept, chroma negated
    rotated = apply_affine(x, *color_affine(means, 1.0))
    gray = to_gray(x.clone())
    assert torch.allclose(to_gray(rotated.clone()), gray, atol=1e-4)
    assert torch.allclose(rotated - gray, -(x - gray), atol=1e-4)


def test_colour_augment_ranges_narrow_each_change():
    """Brightness and contrast only (hue and saturation 0): the chroma of every pixel, its difference
    from its own gray, is only scaled, never rotated or mixed, so a red object stays red."""
    x = torch.rand(3, 2, 4, 4)
    means = x.mean(dim=(1, 2, 3))
    chroma = x - to_gray(x.clone())
    random.seed(0)
    for _ in range(20):
        y = apply_affine(x, *color_affine(means, 1.0, brightness=0.1, contrast=0.3, saturation=0.0, hue=0.0))
        ratio = (y - to_gray(y.clone())) / chroma
        assert torch.allclose(ratio, ratio.flatten()[0].expand_as(ratio), atol=1e-3)
        assert 0.7 - 1e-4 <= ratio.flatten()[0] <= 1.3 + 1e-4
    random.seed(0)
    shifts = {round(float((apply_affine(x, *color_affine(means, 1.0, 0.1, 0.0, 0.0, 0.0)) - x).mean()), 6)
              for _ in range(20)}
    assert len(shifts) > 10 and max(map(abs, shifts)) <= 0.1


def test_colour_augment_ranges_come_from_the_config():
    clip = _clip()
    random.seed(0)
    off = TrainTransform(_cfg(color_aug={"enabled": False}, flip=False, scale_jitter=None))(clip)
    random.seed(0)
    no_change = {"prob": 1.0, "drop_prob": 0.0, "brightness": 0.0, "contrast": 0.0, "saturation": 0.0, "hue": 0.0}
    same = TrainTransform(_cfg(color_aug=no_change, flip=False, scale_jitter=None))(clip)
    assert torch.allclose(off, same, atol=1e-5)
    random.seed(0)
    shifted = TrainTransform(_cfg(color_aug={**no_change, "brightness": 0.2}, flip=False, scale_jitter=None))(clip)
    assert not torch.allclose(off, shifted, atol=1e-3)


def test_randaugment_in_the_pipeline():
    cfg = _cfg(randaugment={"enabled": True, "num_layers": 2, "magnitude": 15})
    random.seed(0)
    out = TrainTransform(cfg)(_clip())
    assert out.shape == (3, 4, 32, 32) and out.min() >= -1 and out.max() <= 1
    assert RandAugment(2, 9).num_layers == 2


def test_random_erasing_erases_one_tube():
    random.seed(0)
    x = torch.zeros(3, 4, 32, 32)
    out = random_erase_(x.clone(), prob=1.0, area=(0.1, 0.2), aspect=(0.5, 2.0))
    erased = out.abs().sum(dim=(0, 1)) > 0
    assert 0.05 * 1024 < erased.sum() < 0.25 * 1024
    assert torch.equal(out[:, 0] != 0, out[:, 3] != 0)  # same box in every frame


def test_eval_three_crops_left_centre_right():
    cfg = _cfg(short_side=60, crop_size=60)
    crops = EvalTransform(cfg, num_crops=3)(_clip())
    assert crops.shape == (3, 3, 4, 60, 60)
    left_edge = [(c[0, 0, 0, 0] + 1) * 127.5 for c in crops]
    assert [round(float(v)) for v in left_edge] == [0, 30, 60]
    portrait = EvalTransform(cfg, num_crops=3)(_clip(h=80, w=60))
    top_edge = [(c[1, 0, 0, 0] + 1) * 127.5 for c in portrait]  # green encodes y
    assert [round(float(v)) for v in top_edge] == [0, 30, 60]


def test_label_smoothing_and_mixup_targets():
    video = torch.randn(4, 3, 2, 8, 8)
    labels = torch.tensor([0, 1, 2, 3])
    _, targets = MixupCutmix(label_smoothing=0.2, num_classes=4)(video, labels)
    assert torch.allclose(targets.sum(1), torch.ones(4))
    assert targets[0, 0] == pytest.approx(0.85) and targets[0, 1] == pytest.approx(0.05)
    random.seed(0)
    mixed, soft = MixupCutmix(mixup_alpha=0.4, num_classes=4)(video, labels)
    lam = float(soft[0, 0])
    assert 0 < lam < 1 and soft[0, 3] == pytest.approx(1 - lam)
    assert torch.allclose(mixed[0], lam * video[0] + (1 - lam) * video[3], atol=1e-6)


def test_cutmix_target_matches_the_pasted_area_and_heads_are_concatenated():
    video = torch.zeros(2, 3, 2, 16, 16)
    video[1] = 1
    random.seed(4)
    mixed, soft = MixupCutmix(cutmix_alpha=1.0, num_classes=[3, 2])(video, torch.tensor([[0, 1], [2, 0]]))
    pasted = float(mixed[0, 0, 0].mean())
    assert soft.shape == (2, 5)
    assert soft[0, 2] == pytest.approx(pasted) and soft[0, 0] == pytest.approx(1 - pasted)
    assert torch.allclose(soft[:, :3].sum(1), torch.ones(2)) and torch.allclose(soft[:, 3:].sum(1), torch.ones(2))


@pytest.mark.parametrize(("key", "value"), [("hue", 0.7), ("contrast", -0.1), ("brightness", 1.5)])
def test_colour_range_out_of_bounds_is_a_config_error_naming_the_key(tmp_path, key, value):
    dataset = OmegaConf.create({"name": "video_folder", "format": "video_folder", "root": str(tmp_path / "none"),
                                "num_classes": 2})
    with pytest.raises(ConfigError, match=rf"data.color_aug.{key}={value} must be in \[0, "):
        VideoDataModule(dataset, _cfg(color_aug={key: value}))
