"""Clip augmentation in torch (no torchvision), vectorised over frames: every frame of a clip gets the
same geometry and colour change.

Input: uint8 (T, H, W, 3) from a reader. Output: float (3, T, h, w), normalised by `data.normalize`
(datamodules/normalize.py; scenic's [-1, 1] by default).
Training follows scenic/DMVR: short side -> `short_side`, scale jitter (independent factors for
height and width), random crop, flip, then RandAugment or colour augmentation, random erasing.
Speed (augmentation must not be the bottleneck, see docs/benchmarks.md):
  * resize + jitter + crop are one uint8 resize of the source box that becomes the crop, so the
    cost follows the output size, not the source resolution;
  * the float conversion writes the model's (3, T, H, W) layout directly, and the four colour
    changes plus normalisation are one 3x3 matrix product over the pixels.
"""
from __future__ import annotations

import math
import random

import torch
import torch.nn.functional as F

from mtv.errors import ConfigError

from .config import ColorAugConfig
from .normalize import Normalization
from .randaugment import RandAugment


def _crop_resize(frames: torch.Tensor, box: tuple[float, float, float, float], size: int,
                 flip: bool) -> torch.Tensor:
    """uint8 (T, H, W, 3) -> uint8 (T, 3, size, size), channels-last in memory: the source box
    (y0, x0, y1, x1; pixels, rounded to whole pixels) resized bilinearly (no antialiasing, as TF's
    resize in scenic), optionally mirrored. Resizing uint8 channels-last uses torch's vectorised kernel."""
    _, h, w, _ = frames.shape
    y0, x0 = min(max(round(box[0]), 0), h - 1), min(max(round(box[1]), 0), w - 1)
    y1, x1 = max(min(round(box[2]), h), y0 + 1), max(min(round(box[3]), w), x0 + 1)
    region = frames[:, y0:y1, x0:x1]
    # (T, h, w, 3) contiguous is (T, 3, h, w) channels-last; flipping makes that copy anyway
    region = region.flip(2) if flip else region.contiguous()
    region = region.permute(0, 3, 1, 2)
    if region.shape[-2:] != (size, size):
        region = F.interpolate(region, size=(size, size), mode="bilinear", align_corners=False, antialias=False)
    return region


def to_float_planes(x: torch.Tensor, out: torch.Tensor | None = None) -> torch.Tensor:
    """uint8 (T, 3, H, W) -> float (3, T, H, W) in [0, 255], the model's layout, in one copy
    (into `out` when given and of the right shape)."""
    planes = x.permute(1, 0, 2, 3)
    if out is not None and out.shape == planes.shape:
        return out.copy_(planes)
    return planes.to(torch.float32, memory_format=torch.contiguous_format)


GRAY = torch.tensor([0.299, 0.587, 0.114])
_RGB_TO_YIQ = torch.tensor([[0.299, 0.587, 0.114], [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]])
_YIQ_TO_RGB = torch.linalg.inv(_RGB_TO_YIQ)


def _hue_matrix(delta: float) -> torch.Tensor:
    """Hue rotation by `delta` turns as a rotation of the chroma (I, Q) plane in YIQ space."""
    cos, sin = math.cos(2 * math.pi * delta), math.sin(2 * math.pi * delta)
    rotation = torch.tensor([[1.0, 0.0, 0.0], [0.0, cos, -sin], [0.0, sin, cos]])
    return _YIQ_TO_RGB @ rotation @ _RGB_TO_YIQ


# the largest range of each colour change that keeps its factors >= 0 (hue: half a turn either way)
COLOR_RANGE_LIMITS = {"brightness": 1.0, "contrast": 1.0, "saturation": 1.0, "hue": 0.5}


def check_color_ranges(color_cfg) -> None:
    """`data.color_aug.<change>` must lie in [0, its limit]; checked at start-up, before any data is read."""
    for key, limit in COLOR_RANGE_LIMITS.items():
        value = float(getattr(color_cfg, key))
        if not 0 <= value <= limit:
            raise ConfigError(f"data.color_aug.{key}={value} must be in [0, {limit}] (0 turns that change off)")


def color_affine(channel_means: torch.Tensor, prob: float, brightness: float = ColorAugConfig.brightness,
                 contrast: float = ColorAugConfig.contrast, saturation: float = ColorAugConfig.saturation,
                 hue: float = ColorAugConfig.hue) -> tuple[torch.Tensor, torch.Tensor]:
    """scenic's colour augmentation as one affine map y = A x + d on pixels x in [0, 1].

    With prob `prob`: brightness +-`brightness`, saturation x[1 -+ `saturation`], contrast
    x[1 -+ `contrast`] (around the clip's mean gray, from `channel_means`), hue +-`hue` turns, in this
    order and shared by all frames (the defaults are scenic's, from ColorAugConfig).
    All four are affine in RGB (hue as a YIQ rotation rather than TF's HSV shift), so the clip is
    touched once, not four times. Identity when not applied.
    """
    if random.random() >= prob:
        return torch.eye(3), torch.zeros(3)
    delta = random.uniform(-brightness, brightness)
    s, c = random.uniform(1 - saturation, 1 + saturation), random.uniform(1 - contrast, 1 + contrast)
    saturate = s * torch.eye(3) + (1 - s) * GRAY.expand(3, 3)
    rotate = _hue_matrix(random.uniform(-hue, hue))
    mean_gray = GRAY @ (saturate @ (channel_means + delta))
    matrix = c * rotate @ saturate
    offset = rotate @ (c * saturate @ torch.full((3,), delta) + (1 - c) * mean_gray)
    return matrix, offset


def apply_affine(x: torch.Tensor, matrix: torch.Tensor, offset: torch.Tensor,
                 out: torch.Tensor | None = None) -> torch.Tensor:
    """y = matrix @ pixel + offset for every pixel of a (3, ...) tensor: one matrix product."""
    if out is None:
        return torch.addmm(offset[:, None], matrix, x.reshape(3, -1)).view(x.shape)
    torch.addmm(offset[:, None], matrix, x.reshape(3, -1), out=out.view(3, -1))
    return out


def to_gray(x: torch.Tensor, norm: Normalization | None = None) -> torch.Tensor:
    """Colour drop, in place: every channel set to the luma of the pixels. `norm`: how `x` is normalised
    (None: the same scale for every channel, e.g. [-1, 1], with which the luma commutes)."""
    flat = x.view(3, -1)
    if norm is None:
        return flat.copy_((GRAY @ flat).expand(3, -1)).view(x.shape)
    luma = GRAY @ norm.to_pixels(flat)
    return flat.copy_(norm.scale[:, None] * luma + norm.offset[:, None]).view(x.shape)


def random_erase_(x: torch.Tensor, prob: float, area: tuple[float, float], aspect: tuple[float, float]) -> torch.Tensor:
    """Random erasing in place (Zhong et al., DeiT/VideoMAE 'pixel' mode): one box, the same in every
    frame, filled with N(0, 1) noise. x: (3, T, H, W), normalised."""
    if random.random() >= prob:
        return x
    _, _, h, w = x.shape
    for _ in range(10):
        target = random.uniform(*area) * h * w
        ratio = math.exp(random.uniform(math.log(aspect[0]), math.log(aspect[1])))
        eh, ew = int(round(math.sqrt(target * ratio))), int(round(math.sqrt(target / ratio)))
        if 0 < eh < h and 0 < ew < w:
            top, left = random.randint(0, h - eh), random.randint(0, w - ew)
            x[:, :, top:top + eh, left:left + ew] = torch.randn(x.shape[0], 1, eh, ew)
            return x
    return x


class TrainTransform:
    """uint8 (T, H, W, 3) -> float (3, T, crop, crop), normalised by `norm`, with the training augmentation."""

    def __init__(self, data_cfg, norm: Normalization | None = None) -> None:
        self.norm = norm or Normalization()
        self.crop = int(data_cfg.crop_size)
        self.short_side = int(data_cfg.short_side)
        self.jitter = tuple(data_cfg.scale_jitter) if data_cfg.scale_jitter else None
        self.jitter_prob = float(data_cfg.scale_jitter_prob)
        rrc = data_cfg.random_resized_crop
        self.rrc = (tuple(rrc.scale), tuple(rrc.ratio)) if rrc.enabled else None
        self.flip = bool(data_cfg.flip)
        ra = data_cfg.randaugment
        self.randaugment = RandAugment(int(ra.num_layers), float(ra.magnitude), float(ra.get("magnitude_std", 0.0)),
                                       bool(ra.get("increasing", False))) if ra.enabled else None
        ca = data_cfg.color_aug
        self.color = (float(ca.prob), float(ca.drop_prob)) if ca.enabled else None
        self.color_ranges = {k: float(getattr(ca, k)) for k in COLOR_RANGE_LIMITS} if ca.enabled else {}
        er = data_cfg.random_erasing
        self.erase = (float(er.prob), tuple(er.area), tuple(er.aspect)) if er.prob > 0 else None
        # Reused float copy of the crop for the colour path (its output is a new tensor anyway):
        # a fresh ~20 MB buffer per clip costs page faults comparable to the matrix product itself.
        self._scratch: torch.Tensor | None = None

    def _box(self, h: int, w: int) -> tuple[float, float, float, float]:
        """Crop box in source pixels, equivalent to resize -> jitter -> crop (or RandomResizedCrop)."""
        if self.rrc is not None:
            return _random_resized_box(h, w, *self.rrc)
        scale = self.short_side / min(h, w)
        fy = fx = 1.0
        if self.jitter is not None and random.random() < self.jitter_prob:
            fy, fx = random.uniform(*self.jitter), random.uniform(*self.jitter)
        # Never smaller than the crop: resized sizes below `crop` are scaled up to it.
        sy = max(scale * fy, self.crop / h)
        sx = max(scale * fx, self.crop / w)
        top = random.uniform(0, h * sy - self.crop)
        left = random.uniform(0, w * sx - self.crop)
        return top / sy, left / sx, (top + self.crop) / sy, (left + self.crop) / sx

    def __call__(self, frames: torch.Tensor, out: torch.Tensor | None = None) -> torch.Tensor:
        """`out`: where to write the result (e.g. the clip's slot in a batch), else a new tensor."""
        _, h, w, _ = frames.shape
        clip = _crop_resize(frames, self._box(h, w), self.crop, self.flip and random.random() < 0.5)
        if self.randaugment is not None:  # RandAugment and colour augmentation are exclusive (scenic)
            x = self.norm.apply_(self.randaugment(to_float_planes(clip)))
            x = out.copy_(x) if out is not None else x
        elif self.color is not None:
            planes = self._scratch = to_float_planes(clip, out=self._scratch)
            # colour changes on [0, 1], then clip and normalise: folded into one affine map
            means = planes.view(3, -1)[:, ::16].mean(dim=1) / 255  # subsampled: the contrast pivot only
            matrix, offset = color_affine(means, self.color[0], **self.color_ranges)
            scale, shift = self.norm.scale, self.norm.offset
            x = apply_affine(planes, scale[:, None] * matrix, 255 * scale * offset + shift, out=out)
            x.clamp_(*self.norm.bounds())  # the [0, 1] clip, in normalised units
            if random.random() < self.color[1]:  # colour drop
                to_gray(x, self.norm)
        else:
            x = self.norm.apply_(to_float_planes(clip, out=out))
        if self.erase is not None:
            random_erase_(x, *self.erase)
        return x


def _random_resized_box(h: int, w: int, scale: tuple[float, float], ratio: tuple[float, float]):
    """Inception-style RandomResizedCrop box (area fraction `scale`, aspect `ratio`), centre crop fallback."""
    area = h * w
    for _ in range(10):
        target = random.uniform(*scale) * area
        aspect = math.exp(random.uniform(math.log(ratio[0]), math.log(ratio[1])))
        cw, ch = math.sqrt(target * aspect), math.sqrt(target / aspect)
        if 0 < cw <= w and 0 < ch <= h:
            top, left = random.uniform(0, h - ch), random.uniform(0, w - cw)
            return top, left, top + ch, left + cw
    side = min(h, w)
    return (h - side) / 2, (w - side) / 2, (h + side) / 2, (w + side) / 2


def eval_crop_boxes(h: int, w: int, short_side: int, crop: int, num_crops: int) -> list[tuple[float, ...]]:
    """Source-pixel boxes of the crops of the frame resized to short side `short_side`: 1 centre
    crop, or 3 along the long side (left/centre/right, or top/middle/bottom for portrait videos)."""
    if num_crops not in (1, 3):
        raise ValueError(f"data.test_crops / data.val_crops must be 1 or 3, got {num_crops}")
    scale = max(short_side, crop) / min(h, w)
    rh, rw = h * scale, w * scale
    cy, cx = (rh - crop) / 2, (rw - crop) / 2
    if num_crops == 1:
        offsets = [(cy, cx)]
    elif rw >= rh:
        offsets = [(cy, 0.0), (cy, cx), (cy, rw - crop)]
    else:
        offsets = [(0.0, cx), (cy, cx), (rh - crop, cx)]
    return [(y / scale, x / scale, (y + crop) / scale, (x + crop) / scale) for y, x in offsets]


class EvalTransform:
    """uint8 (T, H, W, 3) -> float (num_crops, 3, T, crop, crop), normalised by `norm`: short-side resize
    + crops, each crop resampled straight from the source like the training crops."""

    def __init__(self, data_cfg, num_crops: int, norm: Normalization | None = None) -> None:
        self.norm = norm or Normalization()
        self.crop = int(data_cfg.crop_size)
        self.short_side = int(data_cfg.short_side)
        self.num_crops = num_crops

    def __call__(self, frames: torch.Tensor) -> torch.Tensor:
        _, h, w, _ = frames.shape
        boxes = eval_crop_boxes(h, w, self.short_side, self.crop, self.num_crops)
        out = torch.empty(len(boxes), 3, frames.shape[0], self.crop, self.crop)
        for view, box in zip(out, boxes):
            to_float_planes(_crop_resize(frames, box, self.crop, flip=False), out=view)
        return self.norm.apply_(out)
