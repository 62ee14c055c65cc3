"""Resizing learned tensors to a new input size, as scenic does it: linear interpolation with aligned
corners, which is what `scipy.ndimage.zoom(order=1)` computes. Shared by ViT and MTV initialisation."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor


def resize_bilinear(x: Tensor, size: tuple[int, int]) -> Tensor:
    """Bilinear resize of the last two axes of (N, C, H, W)."""
    return F.interpolate(x, size=size, mode="bilinear", align_corners=True)


def resize_grid(tokens: Tensor, side: int, size: tuple[int, int]) -> Tensor:
    """Position embeddings of a side x side patch grid (1, side * side, d) -> (1, gh * gw, d)."""
    image = tokens.reshape(1, side, side, -1).permute(0, 3, 1, 2)
    return resize_bilinear(image, size).permute(0, 2, 3, 1).reshape(1, size[0] * size[1], -1)
