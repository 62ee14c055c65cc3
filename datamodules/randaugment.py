"""Video RandAugment as scenic uses it: the clip is treated as one tall image, so every frame gets the
same ops; only photometric ops plus cutout (geometric ops would fight the crop pipeline).

Ops (magnitude M in [0, 30] scales each op's range, as in scenic/TF RandAugment, max level 10 at M=10):
AutoContrast, Equalize, Invert, Posterize, Solarize, Color, Contrast, Brightness, Sharpness, Cutout,
SolarizeAdd. Input/output: float (3, T, H, W) in [0, 255].
"""
from __future__ import annotations

import random

import torch
import torch.nn.functional as F


def _blend(a: torch.Tensor, b: torch.Tensor, factor: float) -> torch.Tensor:
    """PIL-style blend: factor 0 -> a, 1 -> b, extrapolation allowed, clipped."""
    return (a + factor * (b - a)).clamp(0, 255)


def _gray(x: torch.Tensor) -> torch.Tensor:
    return (0.299 * x[0:1] + 0.587 * x[1:2] + 0.114 * x[2:3]).expand_as(x)


def auto_contrast(x: torch.Tensor, _: float) -> torch.Tensor:
    lo = x.amin(dim=(1, 2, 3), keepdim=True)
    hi = x.amax(dim=(1, 2, 3), keepdim=True)
    scale = torch.where(hi > lo, 255 / (hi - lo).clamp(min=1e-6), torch.ones_like(hi))
    return torch.where(hi > lo, (x - lo) * scale, x).clamp(0, 255)


def equalize(x: torch.Tensor, _: float) -> torch.Tensor:
    """Histogram equalisation per channel over the whole clip (PIL's algorithm)."""
    out = torch.empty_like(x)
    for c in range(3):
        values = x[c].round().clamp(0, 255).long()
        hist = torch.bincount(values.flatten(), minlength=256)
        nonzero = hist[hist > 0]
        step = (hist.sum() - nonzero[-1]) // 255 if len(nonzero) else torch.tensor(0)
        if step == 0:
            out[c] = x[c]
            continue
        lut = ((torch.cumsum(hist, 0) - hist + step // 2) // step).clamp(0, 255).float()
        out[c] = lut[values]
    return out


def invert(x: torch.Tensor, _: float) -> torch.Tensor:
    return 255 - x


def posterize(x: torch.Tensor, level: float) -> torch.Tensor:
    bits = max(1, 8 - int(level * 4 / 10))
    shift = 8 - bits
    return ((x.round().clamp(0, 255).to(torch.uint8) >> shift) << shift).float()


def solarize(x: torch.Tensor, level: float) -> torch.Tensor:
    threshold = level * 256 / 10  # TF RandAugment: higher magnitude inverts fewer pixels
    return torch.where(x < threshold, x, 255 - x)


def solarize_add(x: torch.Tensor, level: float) -> torch.Tensor:
    added = (x + level * 110 / 10).clamp(0, 255)
    return torch.where(x < 128, added, x)


def _signed(level: float, span: float) -> float:
    return (level / 10 * span) * random.choice((-1, 1))


def color(x: torch.Tensor, level: float) -> torch.Tensor:
    return _blend(_gray(x), x, 1 + _signed(level, 0.9))


def contrast(x: torch.Tensor, level: float) -> torch.Tensor:
    mean = _gray(x).mean()
    return _blend(torch.full_like(x, float(mean)), x, 1 + _signed(level, 0.9))


def brightness(x: torch.Tensor, level: float) -> torch.Tensor:
    return _blend(torch.zeros_like(x), x, 1 + _signed(level, 0.9))


def sharpness(x: torch.Tensor, level: float) -> torch.Tensor:
    kernel = torch.tensor([[1.0, 1, 1], [1, 5, 1], [1, 1, 1]]) / 13
    frames = x.transpose(0, 1)  # (T, 3, H, W) for conv2d
    blurred = F.conv2d(F.pad(frames, (1, 1, 1, 1), mode="replicate"), kernel.expand(3, 1, 3, 3).contiguous(), groups=3)
    return _blend(blurred.transpose(0, 1), x, 1 + _signed(level, 0.9))


def cutout(x: torch.Tensor, level: float) -> torch.Tensor:
    """A grey square of half-size level/10 * 40 px (scaled to the frame), at the same place in every frame."""
    _, _, h, w = x.shape
    half = max(1, int(level / 10 * 40 * min(h, w) / 224))
    cy, cx = random.randrange(h), random.randrange(w)
    x = x.clone()
    x[:, :, max(cy - half, 0):cy + half, max(cx - half, 0):cx + half] = 128
    return x


OPS = [auto_contrast, equalize, invert, posterize, solarize, color, contrast, brightness, sharpness, cutout,
       solarize_add]


class RandAugment:
    """Apply `num_layers` ops drawn uniformly (each with prob 0.5, as TF RandAugment) at magnitude M."""

    def __init__(self, num_layers: int, magnitude: float) -> None:
        self.num_layers = num_layers
        self.level = float(magnitude)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        for _ in range(self.num_layers):
            if random.random() < 0.5:
                x = random.choice(OPS)(x, self.level)
        return x
