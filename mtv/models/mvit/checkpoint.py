"""MViT weights from torchvision and PySlowFast: both key layouts, strict loading and fine-tuning.

Our parameter names are PySlowFast's (`mvit_spec.md` §3), so a PySlowFast `model_state` loads as it is and a
torchvision state dict goes through `TORCHVISION_KEYS`, whose only reshapes are the CLS token and the
separable position embeddings ([C] / [N, C] there, [1, 1, C] / [1, N, C] here).

Fine-tuning (`fit_state_dict`) keeps the new head when the class count differs and resizes what follows
the input as PySlowFast's MViT fine-tuning does: relative-position tables linearly along their length,
the temporal position embedding linearly along time, the spatial one bicubically over its (square) grid.
Any other missing, unexpected or misshapen key is an error naming the first one and the shape it needs.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mtv.checkpoints import read_model_weights
from mtv.errors import ConfigError
from mtv.models.mvit.relpos import table_at

# (torchvision pattern, our name): applied in order, first match wins
TORCHVISION_KEYS: tuple[tuple[str, str], ...] = (
    (r"^conv_proj\.", "patch_embed.proj."),
    (r"^pos_encoding\.class_token$", "cls_token"),
    (r"^pos_encoding\.spatial_pos$", "pos_embed_spatial"),
    (r"^pos_encoding\.temporal_pos$", "pos_embed_temporal"),
    (r"^pos_encoding\.class_pos$", "pos_embed_class"),
    (r"^(blocks\.\d+\.attn)\.project\.0\.", r"\1.proj."),
    (r"^(blocks\.\d+\.attn)\.pool_([qkv])\.pool\.", r"\1.pool_\2."),
    (r"^(blocks\.\d+\.attn)\.pool_([qkv])\.norm_act\.0\.", r"\1.norm_\2."),
    (r"^(blocks\.\d+\.mlp)\.0\.", r"\1.fc1."),
    (r"^(blocks\.\d+\.mlp)\.3\.", r"\1.fc2."),
    (r"^(blocks\.\d+)\.project\.", r"\1.proj."),
    (r"^head\.1\.", "head.projection."),
)
_RESHAPED = ("cls_token", "pos_embed_spatial", "pos_embed_temporal", "pos_embed_class")


def layout(state: Mapping[str, Tensor]) -> str:
    """'torchvision' or 'pyslowfast', told by the patch-embedding key."""
    if "conv_proj.weight" in state:
        return "torchvision"
    if "patch_embed.proj.weight" in state:
        return "pyslowfast"
    first = next(iter(state), "<empty>")
    raise ConfigError(f"not an MViT state dict: neither conv_proj.weight (torchvision) nor patch_embed.proj.weight "
                      f"(PySlowFast) is present (first key: {first})")


def from_torchvision(state: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """A torchvision MViT state dict in our (PySlowFast) names and shapes."""
    out = {}
    for key, value in state.items():
        name = key
        for pattern, repl in TORCHVISION_KEYS:
            name, hits = re.subn(pattern, repl, key)
            if hits:
                break
        if name in _RESHAPED:
            value = value.reshape(1, -1, value.shape[-1])
        out[name] = value
    return out


def native(state: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """Our names for a state dict in either layout."""
    return from_torchvision(state) if layout(state) == "torchvision" else dict(state)


def read_checkpoint(path: str | Path) -> dict[str, Tensor]:
    """Tensors of a torchvision state-dict file or a PySlowFast `.pyth` (its `model_state`), as data only."""
    return read_model_weights(path, "model.init.checkpoint")


def check_fits(model: nn.Module, state: Mapping[str, Tensor], source: str) -> None:
    """ConfigError naming the first key of `state` (our names) that is missing, unexpected or misshapen."""
    expected = model.state_dict()
    for key, value in expected.items():
        if key not in state:
            raise ConfigError(f"{source} does not fit the model: {key} is missing (expected shape "
                              f"{list(value.shape)})")
        if state[key].shape != value.shape:
            raise ConfigError(f"{source} does not fit the model: {key} has shape {list(state[key].shape)}, expected "
                              f"{list(value.shape)}")
    extra = next((key for key in state if key not in expected), None)
    if extra is not None:
        raise ConfigError(f"{source} does not fit the model: {extra} (shape {list(state[extra].shape)}) has no place "
                          "in it; check the architecture (v1/v2, CLS, position embedding) against the checkpoint's")


def load_strict(model: nn.Module, state: Mapping[str, Tensor], source: str) -> None:
    """Load a state dict in either layout that must fit exactly (evaluation, interop)."""
    state = native(state)
    check_fits(model, state, source)
    model.load_state_dict(state, strict=True)


def _resize_linear(x: Tensor, size: int) -> Tensor:
    """(1, L, C) -> (1, size, C) along L."""
    return F.interpolate(x.transpose(1, 2), size=size, mode="linear").transpose(1, 2)


def _resize_spatial(x: Tensor, shape: torch.Size, grid: tuple[int, int], key: str, source: str) -> Tensor:
    """(1, side*side, C) -> (1, h*w, C) bicubically (PySlowFast's MViT fine-tuning); the source grid must be square."""
    side = math.isqrt(x.shape[1])
    if side * side != x.shape[1]:
        raise ConfigError(f"{source}: {key} has {x.shape[1]} positions, not a square grid; cannot resize it to {grid}")
    image = x.reshape(1, side, side, -1).permute(0, 3, 1, 2)
    return F.interpolate(image, size=grid, mode="bicubic").permute(0, 2, 3, 1).reshape(shape)


def fit_state_dict(model: nn.Module, state: Mapping[str, Tensor], source: str) -> dict[str, Tensor]:
    """`state` (either layout) made to fit `model` for fine-tuning: new head if the classes differ, input-
    dependent tensors resized; everything else must match."""
    state = native(state)
    expected = model.state_dict()
    grid = getattr(model, "grid", None)
    fitted = {}
    for key, value in state.items():
        target = expected.get(key)
        if key.startswith("head.projection.") and target is not None and value.shape != target.shape:
            fitted[key] = target  # another class count: keep the new, randomly initialised head
        elif target is None or value.shape == target.shape or value.shape[-1] != target.shape[-1]:
            fitted[key] = value  # fits, or cannot be resized: check_fits tells which
        elif re.fullmatch(r"blocks\.\d+\.attn\.rel_pos_[hwt]", key):
            fitted[key] = table_at(value, target.shape[0])
        elif key == "pos_embed_temporal":
            fitted[key] = _resize_linear(value, target.shape[1])
        elif key == "pos_embed_spatial" and grid is not None:
            fitted[key] = _resize_spatial(value, target.shape, tuple(grid[1:]), key, source)
        else:
            fitted[key] = value
    check_fits(model, fitted, source)
    return fitted


def init_from_checkpoint(model: nn.Module, path: str | Path) -> None:
    """`model.init.checkpoint`: load a torchvision or PySlowFast MViT checkpoint, fitted to this model."""
    source = f"model.init.checkpoint={str(path)!r}"
    model.load_state_dict(fit_state_dict(model, read_checkpoint(path), source), strict=True)
