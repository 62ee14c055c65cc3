"""RandAugment op by op against the reference formulas, written here in numpy from their sources:
TF-models `official/legacy/image_classification/augment.py` (the ops scenic calls; `level_to_arg`,
`blend`, `sharpness`, `posterize`, ...), scenic `dataset_lib/video_ops.py` (`distort_image_with_randaugment`:
12 branches = 11 ops + identity; video `cutout` fills 0) and timm `data/auto_augment.py` (`mstd`, the
`*Increasing` ops) and `data/mixup.py` (`rand_bbox`)."""
from __future__ import annotations

import random

import numpy as np
import pytest
import torch

from datamodules import MixupCutmix
from datamodules import randaugment as ra

M_VALUES = (5, 9, 15)


def _clip(seed: int = 0, t: int = 2, h: int = 12, w: int = 10) -> torch.Tensor:
    """float (3, T, H, W) of whole numbers in [10, 240] (no op is a no-op on it)."""
    g = torch.Generator().manual_seed(seed)
    return torch.randint(10, 241, (3, t, h, w), generator=g).float()


def _np(x: torch.Tensor) -> np.ndarray:
    return x.numpy()  # float32, as TF computes


def _tf_cast_uint8(x: np.ndarray) -> np.ndarray:
    """tf.cast(tf.clip_by_value(x, 0, 255), tf.uint8): clip then truncate."""
    return np.trunc(np.clip(x, 0, 255))


def _tf_blend(a: np.ndarray, b: np.ndarray, factor: float) -> np.ndarray:
    """augment.blend: a + factor (b - a); no clip inside (0, 1), else clipped; cast to uint8."""
    temp = a + factor * (b - a)
    return np.trunc(temp) if 0 < factor < 1 else _tf_cast_uint8(temp)


def _tf_gray(x: np.ndarray) -> np.ndarray:
    """tf.image.rgb_to_grayscale on uint8: weights (0.2989, 0.587, 0.114) on x / 255, back via * 255.5."""
    g = (0.2989 * x[0] + 0.5870 * x[1] + 0.1140 * x[2]) / 255
    return np.trunc(np.clip(g * 255.5, 0, 255))[None]


@pytest.mark.parametrize("m", M_VALUES)
def test_level_to_arg_is_tf_models(m):
    # augment.level_to_arg with _MAX_LEVEL = 10 and scenic's cutout_const = 40
    args = {name: fn(m) for name, fn in ra.LEVEL_TO_ARG.items()}
    for name in ("Color", "Contrast", "Brightness", "Sharpness"):
        assert args[name] == pytest.approx(((m / 10) * 1.8 + 0.1,))  # _enhance_level_to_arg: no random sign
    assert args["Posterize"] == (int((m / 10) * 4),)
    assert args["Solarize"] == (int((m / 10) * 256),)
    assert args["SolarizeAdd"] == (int((m / 10) * 110),)
    assert args["Cutout"] == (int((m / 10) * 40),)


@pytest.mark.parametrize("m", M_VALUES)
def test_enhance_ops_match_tf_blend(m):
    x = _clip(m)
    factor = (m / 10) * 1.8 + 0.1
    a = _np(x)
    gray = _tf_gray(a)
    np.testing.assert_array_equal(_np(ra.color(x, factor)), _tf_blend(np.broadcast_to(gray, a.shape), a, factor))
    np.testing.assert_array_equal(_np(ra.brightness(x, factor)), _tf_blend(np.zeros_like(a), a, factor))
    # Contrast: PIL's pivot, the rounded mean gray (TF's is pixel count / 256: docs/data.md)
    pivot = np.full_like(a, np.round(gray.mean()))
    np.testing.assert_array_equal(_np(ra.contrast(x, factor)), _tf_blend(pivot, a, factor))


@pytest.mark.parametrize("m", M_VALUES)
def test_sharpness_matches_tf_and_keeps_the_border(m):
    x = _clip(m)
    factor = (m / 10) * 1.8 + 0.1
    a = _np(x)
    kernel = np.array([[1, 1, 1], [1, 5, 1], [1, 1, 1]], dtype=np.float32) / 13
    h, w = a.shape[-2:]
    degenerate = a.copy()  # augment.sharpness: border pixels come from the original image
    inner = sum(kernel[dy, dx] * a[:, :, dy:h - 2 + dy, dx:w - 2 + dx] for dy in range(3) for dx in range(3))
    degenerate[:, :, 1:-1, 1:-1] = _tf_cast_uint8(inner)
    out = _np(ra.sharpness(x, factor))
    np.testing.assert_allclose(out, _tf_blend(degenerate, a, factor), atol=1)  # float32 vs float64 truncation
    for index in (np.s_[:, :, 0], np.s_[:, :, -1], np.s_[:, :, :, 0], np.s_[:, :, :, -1]):
        np.testing.assert_array_equal(out[index], a[index])


@pytest.mark.parametrize("m", M_VALUES)
def test_posterize_solarize_solarize_add(m):
    x = _clip(m)
    a = _np(x).astype(np.uint8)
    bits = int((m / 10) * 4)
    shift = 8 - bits
    np.testing.assert_array_equal(ra.posterize(x, bits).numpy(), (a >> shift) << shift)
    threshold = int((m / 10) * 256)
    np.testing.assert_array_equal(ra.solarize(x, threshold).numpy(), np.where(a < threshold, a, 255 - a))
    addition = int((m / 10) * 110)
    added = np.clip(a.astype(np.int64) + addition, 0, 255)
    np.testing.assert_array_equal(ra.solarize_add(x, addition).numpy(), np.where(a < 128, added, a))


def test_autocontrast_equalize_invert():
    x = _clip(1, h=64, w=64)
    a = _np(x)
    lo, hi = a.min(axis=(1, 2, 3), keepdims=True), a.max(axis=(1, 2, 3), keepdims=True)
    scale = 255 / (hi - lo)
    np.testing.assert_allclose(_np(ra.auto_contrast(x)), _tf_cast_uint8(a * scale - lo * scale), atol=1)
    np.testing.assert_array_equal(_np(ra.invert(x)), 255 - a)
    expected = np.empty_like(a)
    for c in range(3):  # augment.equalize: lut = (cumsum + step // 2) // step shifted by one, lut[0] = 0
        hist = np.bincount(a[c].astype(np.int64).ravel(), minlength=256)
        step = (hist.sum() - hist[hist > 0][-1]) // 255
        lut = np.concatenate([[0], (np.cumsum(hist) + step // 2) // step])[:-1].clip(0, 255)
        expected[c] = lut[a[c].astype(np.int64)]
    np.testing.assert_array_equal(_np(ra.equalize(x)), expected)


def test_cutout_fills_zero_with_tf_box(monkeypatch):
    x = torch.full((3, 2, 224, 224), 100.0)
    draws = iter([50, 200])  # centre (y, x)
    monkeypatch.setattr(ra.random, "randrange", lambda n: next(draws))
    out = ra.cutout(x, 40)
    # video_ops.cutout: rows [max(0, cy - pad), min(h, cy + pad)), columns likewise, filled with 0
    box = torch.zeros(224, 224, dtype=torch.bool)
    box[10:90, 160:224] = True
    assert torch.equal(out[:, :, box], torch.zeros_like(out[:, :, box]))
    assert torch.equal(out[:, :, ~box], x[:, :, ~box])


def test_one_of_eleven_ops_or_identity_per_layer(monkeypatch):
    calls = []
    for name, op in ra.OPS.items():
        monkeypatch.setitem(ra.OPS, name, lambda x, *args, _n=name: calls.append(_n) or x)
    random.seed(0)
    augment = ra.RandAugment(1, 9)
    draws = 2400
    for _ in range(draws):
        augment(torch.zeros(3, 1, 4, 4))
    assert abs(len(calls) / draws - 11 / 12) < 0.025  # scenic: switch_case over 11 ops, default identity
    assert set(calls) == set(ra.OPS)


def test_m15_never_black():
    """The SSv2 recipe, RandAugment(1, 15), on a flat grey clip (the old enhance factor 1 - 0.09 M < 0
    made 30 of 1,200 black); 2 layers on a textured clip. (Brightness then Invert does blacken a flat
    clip at N = 2, in scenic too: docs/data.md.)"""
    random.seed(0)
    for layers, clip in ((1, torch.full((3, 4, 32, 32), 128.0)), (2, _clip(3, t=4, h=32, w=32))):
        augment = ra.RandAugment(layers, 15)
        for _ in range(1200):
            assert augment(clip).amax() > 0


def test_timm_options(monkeypatch):
    # auto_augment._enhance_increasing_level_to_arg: max(0.1, 1 +/- 0.09 M); posterize 4 - int(0.4 M);
    # solarize 256 - int(25.6 M)
    inc = ra.INCREASING_LEVEL_TO_ARG
    monkeypatch.setattr(ra.random, "random", lambda: 0.9)  # negative sign
    assert inc["Color"](5) == pytest.approx((1 - 0.45,))
    assert inc["Brightness"](15) == pytest.approx((0.1,))
    assert inc["Posterize"](5) == (2,) and inc["Solarize"](5) == (128,)
    monkeypatch.undo()
    random.seed(0)
    drawn = [ra.RandAugment(1, 9, magnitude_std=2.0)._draw_magnitude() for _ in range(2000)]
    assert 0 <= min(drawn) and max(drawn) <= 10 and abs(np.mean(drawn) - 8.6) < 0.15  # E[min(N(9, 2), 10)] = 8.60
    uniform = [ra.RandAugment(1, 9, magnitude_std=float("inf"))._draw_magnitude() for _ in range(2000)]
    assert abs(np.mean(uniform) - 4.5) < 0.3
    assert ra.RandAugment(1, 15)._draw_magnitude() == 15  # no timm clipping without mstd (TF)


def test_cutmix_box_is_timms_rand_bbox(monkeypatch):
    """timm rand_bbox: [cy - cut // 2, cy + (cut + 1) // 2), so an odd cut keeps its full size."""
    video = torch.zeros(2, 1, 1, 16, 16)
    video[1] = 1
    lam = 1 - (7.5 / 16) ** 2  # cut = int(16 * sqrt(1 - lam)) = 7
    monkeypatch.setattr(random, "betavariate", lambda a, b: lam)
    monkeypatch.setattr(random, "randrange", lambda n: 8)
    mixed, soft = MixupCutmix(cutmix_alpha=1.0, num_classes=2)(video, torch.tensor([0, 1]))
    pasted = mixed[0, 0, 0] == 1
    rows, cols = pasted.any(1).nonzero().flatten(), pasted.any(0).nonzero().flatten()
    assert (int(rows[0]), int(rows[-1]) + 1) == (8 - 7 // 2, 8 + (7 + 1) // 2)
    assert (int(cols[0]), int(cols[-1]) + 1) == (5, 12)
    assert soft[0, 1] == pytest.approx(49 / 256)
