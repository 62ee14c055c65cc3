"""Video RandAugment as scenic's `video_ops.distort_image_with_randaugment`: the clip is treated as one
tall image, so every frame gets the same ops; only photometric ops plus cutout (geometric ops would
fight the crop pipeline).

Each of the N layers picks one of the 11 ops or the identity (12 branches, uniformly) and always applies
it. Ops and magnitude arguments follow TF-models' `augment.py` (level M, `_MAX_LEVEL` 10): enhance
factor `0.1 + 0.18 M` (Color, Contrast, Brightness, Sharpness), Posterize keeps `int(0.4 M)` bits,
Solarize threshold `int(25.6 M)`, SolarizeAdd `int(11 M)`, Cutout half-size `int(4 M)` px filled with 0
(scenic's video cutout). Pixels are whole numbers after every op (TF works on uint8 and truncates).
Deliberate differences (docs/data.md): Contrast pivots on the clip's mean gray (TF's pivot is
pixel count / 256, which for a clip is 255), Sharpness keeps each frame's border (TF blurs across the
frame seams of the tall image), Cutout is scaled by min(H, W) / 224 (identical at 224 crops).

timm's options by name: `magnitude_std` (per-op magnitude ~ N(M, std), uniform in [0, M] for inf,
clipped to [0, 10] as timm) and `increasing` (timm's `*Increasing` ops: enhance `1 +/- 0.09 M`
floored at 0.1, Posterize `4 - int(0.4 M)` bits, Solarize threshold `256 - int(25.6 M)`).
Input/output: float (3, T, H, W) in [0, 255].
"""
from __future__ import annotations

import math
import random
from typing import Callable

import torch
import torch.nn.functional as F

MAX_LEVEL = 10.0
CUTOUT_CONST = 40  # scenic's cutout_const: half-size at M = 10 for 224-px frames
_TF_GRAY = torch.tensor([0.2989, 0.5870, 0.1140])  # tf.image.rgb_to_grayscale weights


def _to_uint8_values(x: torch.Tensor) -> torch.Tensor:
    """What TF's `tf.cast(tf.clip_by_value(x, 0, 255), tf.uint8)` keeps: clip, then truncate."""
    return x.clamp(0, 255).floor()


def _gray(x: torch.Tensor) -> torch.Tensor:
    """tf.image.rgb_to_grayscale on uint8: weighted sum in [0, 1], back to uint8 as x * 255.5 truncated."""
    weighted = torch.tensordot(_TF_GRAY.to(x.dtype), x, dims=([0], [0])) / 255
    return (weighted * 255.5).floor().clamp(0, 255).unsqueeze(0)


def blend(a: torch.Tensor, b: torch.Tensor, factor: float) -> torch.Tensor:
    """TF-models `blend`: factor 0 -> a, 1 -> b, extrapolation clipped to [0, 255], truncated to uint8."""
    if factor == 0.0:
        return a.expand_as(b).clone()
    if factor == 1.0:
        return b
    return _to_uint8_values(a + factor * (b - a))


def auto_contrast(x: torch.Tensor) -> torch.Tensor:
    """Each channel's range over the whole clip stretched to [0, 255]; a flat channel is kept."""
    lo = x.amin(dim=(1, 2, 3), keepdim=True)
    hi = x.amax(dim=(1, 2, 3), keepdim=True)
    scale = 255 / (hi - lo).clamp(min=1)
    return torch.where(hi > lo, _to_uint8_values(x * scale - lo * scale), x)


def equalize(x: torch.Tensor) -> torch.Tensor:
    """Histogram equalisation per channel over the whole clip (TF-models / PIL algorithm)."""
    out = torch.empty_like(x)
    for c in range(3):
        values = x[c].round().clamp(0, 255).long()
        hist = torch.bincount(values.flatten(), minlength=256)
        nonzero = hist[hist > 0]
        step = (hist.sum() - nonzero[-1]) // 255
        if step == 0:
            out[c] = x[c]
            continue
        lut = ((torch.cumsum(hist, 0) - hist + step // 2) // step).clamp(0, 255).float()
        out[c] = lut[values]
    return out


def invert(x: torch.Tensor) -> torch.Tensor:
    return 255 - x


def posterize(x: torch.Tensor, bits: int) -> torch.Tensor:
    """Keep the `bits` most significant bits (clamped to 0..8: TF's shift is undefined outside)."""
    shift = 8 - min(max(int(bits), 0), 8)
    return ((x.clamp(0, 255).to(torch.uint8) >> shift) << shift).float()


def solarize(x: torch.Tensor, threshold: int) -> torch.Tensor:
    return torch.where(x < threshold, x, 255 - x)


def solarize_add(x: torch.Tensor, addition: int, threshold: int = 128) -> torch.Tensor:
    return torch.where(x < threshold, (x + addition).clamp(0, 255), x)


def color(x: torch.Tensor, factor: float) -> torch.Tensor:
    return blend(_gray(x), x, factor)


def contrast(x: torch.Tensor, factor: float) -> torch.Tensor:
    """Blend with the clip's mean gray (PIL's pivot; see the module docstring for TF's)."""
    return blend(torch.full_like(x, float(_gray(x).mean().round())), x, factor)


def brightness(x: torch.Tensor, factor: float) -> torch.Tensor:
    return blend(torch.zeros_like(x), x, factor)


def sharpness(x: torch.Tensor, factor: float) -> torch.Tensor:
    """Blend with the 3x3 smoothed frame ([[1,1,1],[1,5,1],[1,1,1]] / 13, 'valid'); the 1-px border of
    each frame keeps its pixels, as TF-models and PIL do."""
    kernel = (torch.tensor([[1.0, 1, 1], [1, 5, 1], [1, 1, 1]]) / 13).expand(3, 1, 3, 3).contiguous()
    frames = x.transpose(0, 1)  # (T, 3, H, W) for conv2d
    smoothed = x.clone()
    if frames.shape[-1] > 2 and frames.shape[-2] > 2:
        inner = _to_uint8_values(F.conv2d(frames, kernel.to(x.dtype), groups=3)).transpose(0, 1)
        smoothed[:, :, 1:-1, 1:-1] = inner
    return blend(smoothed, x, factor)


def cutout(x: torch.Tensor, half_size: int) -> torch.Tensor:
    """A black square of half-size `half_size` px at 224 px (scaled to the frame), centred uniformly,
    the same in every frame (scenic's video cutout fills 0)."""
    _, _, h, w = x.shape
    half = round(half_size * min(h, w) / 224)
    cy, cx = random.randrange(h), random.randrange(w)
    x = x.clone()
    x[:, :, max(cy - half, 0):min(cy + half, h), max(cx - half, 0):min(cx + half, w)] = 0
    return x


def _random_sign(value: float) -> float:
    return value if random.random() < 0.5 else -value


# magnitude M -> the op's argument(s): TF-models `level_to_arg` (scenic's choice)
def _enhance(m: float) -> tuple:
    return (m / MAX_LEVEL * 1.8 + 0.1,)


def _enhance_increasing(m: float) -> tuple:
    return (max(0.1, 1.0 + _random_sign(m / MAX_LEVEL * 0.9)),)


def _no_arg(_: float) -> tuple:
    return ()


LEVEL_TO_ARG: dict[str, Callable[[float], tuple]] = {
    "AutoContrast": _no_arg,
    "Equalize": _no_arg,
    "Invert": _no_arg,
    "Posterize": lambda m: (int(m / MAX_LEVEL * 4),),
    "Solarize": lambda m: (int(m / MAX_LEVEL * 256),),
    "Color": _enhance,
    "Contrast": _enhance,
    "Brightness": _enhance,
    "Sharpness": _enhance,
    "Cutout": lambda m: (int(m / MAX_LEVEL * CUTOUT_CONST),),
    "SolarizeAdd": lambda m: (int(m / MAX_LEVEL * 110),),
}

# timm's `*Increasing` variants (`rand-...-inc1`): stronger with M for every op
INCREASING_LEVEL_TO_ARG: dict[str, Callable[[float], tuple]] = {
    **LEVEL_TO_ARG,
    "Posterize": lambda m: (4 - int(m / MAX_LEVEL * 4),),
    "Solarize": lambda m: (256 - int(m / MAX_LEVEL * 256),),
    "Color": _enhance_increasing,
    "Contrast": _enhance_increasing,
    "Brightness": _enhance_increasing,
    "Sharpness": _enhance_increasing,
}

# scenic's `available_ops`, in its order
OPS: dict[str, Callable[..., torch.Tensor]] = {
    "AutoContrast": auto_contrast,
    "Equalize": equalize,
    "Invert": invert,
    "Posterize": posterize,
    "Solarize": solarize,
    "Color": color,
    "Contrast": contrast,
    "Brightness": brightness,
    "Sharpness": sharpness,
    "Cutout": cutout,
    "SolarizeAdd": solarize_add,
}


class RandAugment:
    """N layers, each one of the 11 ops or the identity (uniform over 12), at magnitude M (scenic)."""

    def __init__(self, num_layers: int, magnitude: float, magnitude_std: float = 0.0,
                 increasing: bool = False) -> None:
        self.num_layers = int(num_layers)
        self.magnitude = float(magnitude)
        self.magnitude_std = float(magnitude_std)
        self.level_to_arg = INCREASING_LEVEL_TO_ARG if increasing else LEVEL_TO_ARG

    def _draw_magnitude(self) -> float:
        """M, or timm's per-op random magnitude (`mstd`), clipped to timm's [0, 10]."""
        if self.magnitude_std <= 0:
            return self.magnitude
        if math.isinf(self.magnitude_std):
            m = random.uniform(0, self.magnitude)
        else:
            m = random.gauss(self.magnitude, self.magnitude_std)
        return min(max(m, 0.0), MAX_LEVEL)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """float (3, T, H, W) in [0, 255] -> the same, with whole-number pixel values."""
        names = list(OPS)
        x = x.clamp(0, 255).floor()  # scenic casts the clip to uint8 first
        for _ in range(self.num_layers):
            choice = random.randrange(len(names) + 1)
            if choice == len(names):  # the identity branch
                continue
            name = names[choice]
            x = OPS[name](x, *self.level_to_arg[name](self._draw_magnitude()))
        return x
