"""Initialise an MTV from another MTV's weights for fine-tuning (scenic's `init_from mtv`).

The source may have been trained at another frame count, resolution or class count (e.g. Kinetics-400
MTV-B at 32 frames -> SSv2 at 48 or EPIC at 64). Tensors whose size follows the input are resized the way
scenic does (linear interpolation with aligned corners, i.e. `scipy.ndimage.zoom(order=1)`):
per-slot CLS tokens along time, tubelet kernels over (t, h, w), view position embeddings over the spatial
grid and the global position embedding along time (CLS slots kept), bottleneck tokens along the chunk axis.
The head is kept from the new model unless `restore_head` is set. Any other mismatch is an error.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor

from mtv.checkpoints import read_model_weights
from mtv.errors import ConfigError
from mtv.models.mtv.model import MTV
from mtv.models.resize import resize_grid


def _linear_1d(x: Tensor, size: int) -> Tensor:
    """Resize (C, L) -> (C, size) linearly with aligned corners."""
    if x.shape[-1] == size:
        return x
    return F.interpolate(x.unsqueeze(0), size=size, mode="linear", align_corners=True).squeeze(0)


def _resize_cls_tokens(src: Tensor, shape: torch.Size) -> Tensor:
    """(1, t, 1, d) along t."""
    return _linear_1d(src[0, :, 0].T, shape[1]).T.reshape(shape)


def _resize_tokenizer(src: Tensor, shape: torch.Size) -> Tensor:
    """Conv3d kernel (d, 3, t, h, w) over (t, h, w)."""
    return F.interpolate(src, size=tuple(shape[2:]), mode="trilinear", align_corners=True)


def _resize_bottleneck(src: Tensor, shape: torch.Size) -> Tensor:
    """(1, T_min, n, C) along the chunk axis."""
    flat = src[0].permute(1, 2, 0).reshape(-1, src.shape[1])
    return _linear_1d(flat, shape[1]).reshape(shape[2], shape[3], shape[1]).permute(2, 0, 1).unsqueeze(0)


def _split_cls(src: Tensor, target_len: int, grid_len: int) -> tuple[Tensor | None, Tensor]:
    extra = target_len - grid_len
    return (src[:, :extra], src[:, extra:]) if extra else (None, src)


def _resize_view_pos_embed(src: Tensor, shape: torch.Size, grid: tuple[int, int], has_cls: bool) -> Tensor:
    """(1, [1+]N, d): bilinear over the spatial grid, CLS slot kept."""
    cls, patches = (src[:, :1], src[:, 1:]) if has_cls else (None, src)
    side = int(round(patches.shape[1] ** 0.5))
    if side * side != patches.shape[1]:
        raise ConfigError(f"position embedding with {patches.shape[1]} positions is not a square grid to resize")
    resized = resize_grid(patches, side, grid)
    return resized if cls is None else torch.cat([cls, resized], dim=1)


def _resize_global_pos_embed(src: Tensor, shape: torch.Size, has_cls: bool) -> Tensor:
    """(1, [1+]T, C) along time, CLS slot kept."""
    cls, tokens = (src[:, :1], src[:, 1:]) if has_cls else (None, src)
    resized = _linear_1d(tokens[0].T, shape[1] - int(has_cls)).T.unsqueeze(0)
    return resized if cls is None else torch.cat([cls, resized], dim=1)


Resizer = tuple[Callable[[Tensor, torch.Size], Tensor], tuple[int, ...]]  # (function, axes that must match)


def _resizers(model: MTV) -> dict[str, Resizer]:
    config = model.config
    has_cls = config.classifier == "token"
    resizers: dict[str, Resizer] = {
        "global_encoder.pos_embed": (lambda s, shape: _resize_global_pos_embed(s, shape, has_cls), (0, 2)),
        "fusion.tokens": (_resize_bottleneck, (0, 2, 3)),
    }
    for i in range(len(config.views)):
        grid = config.spatial_grid(i)
        resizers[f"views.{i}.cls_token"] = (_resize_cls_tokens, (0, 2, 3))
        resizers[f"views.{i}.tokenizer.weight"] = (_resize_tokenizer, (0, 1))
        resizers[f"views.{i}.pos_embed"] = (lambda s, shape, g=grid: _resize_view_pos_embed(s, shape, g, has_cls),
                                            (0, 2))
    return resizers


def init_from_checkpoint(model: MTV, source: str | Path | Mapping[str, Tensor], restore_head: bool = False) -> None:
    """Load another MTV's weights into `model`, resizing input-dependent tensors; validates everything first."""
    state = read_model_weights(source, "model.init.checkpoint") if isinstance(source, (str, Path)) else dict(source)
    label = f"model.init.checkpoint={str(source)!r}" if isinstance(source, (str, Path)) else "checkpoint"
    target = model.state_dict()
    resizers = _resizers(model)
    keep = {"head.weight", "head.bias"} if not restore_head else set()
    missing = [key for key in target if key not in state and key not in keep]
    unexpected = [key for key in state if key not in target]
    if missing or unexpected:
        shown = [f"missing {k}" for k in missing[:5]] + [f"unexpected {k}" for k in unexpected[:5]]
        raise ConfigError(
            f"{label} is not an MTV of the same architecture (views, fusion, global encoder): {'; '.join(shown)}"
        )
    loaded: dict[str, Tensor] = {}
    for key, value in target.items():
        if key in keep:
            continue
        src = state[key].to(value.dtype)
        if src.shape != value.shape:
            resize, fixed = resizers.get(key, (None, ()))
            if resize is None or src.ndim != value.ndim or any(src.shape[a] != value.shape[a] for a in fixed):
                raise ConfigError(
                    f"{label}: {key} has shape {tuple(src.shape)}, the model needs {tuple(value.shape)} "
                    "and it cannot be resized (only CLS tokens, tubelet kernels, position embeddings and "
                    "bottleneck tokens follow the input size; for another class count leave restore_head off)"
                )
            src = resize(src, value.shape)
        loaded[key] = src
    model.load_state_dict(loaded, strict=False)
