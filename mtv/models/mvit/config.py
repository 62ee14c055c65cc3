"""The `model` node of the MViT family (v1 and v2) and its geometry, checked before any tensor exists.

The architecture is a list of blocks in torchvision's `MSBlockConfig` terms (heads, input/output
channels, q and kv pooling kernels and strides per block), so every block setting can be overridden
(`model.blocks.3.stride_kv=[1,2,2]`) and any torchvision or PySlowFast configuration can be written down.
Switches that are global in both implementations (position embedding, relative bias, residual pooling,
where the width changes) are flat fields. `block_geometry` derives what the input decides: token grids,
head widths and relative-position table lengths, block by block.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import List, Optional

from mtv.errors import ConfigError
from mtv.models.registry import ModelInputs

# The schema spells List / Optional (not list / X | None): OmegaConf 2.3 structured configs read these.
POS_EMBEDS = ("separable", "joint", "none")


@dataclass
class MViTBlock:
    """One multiscale block, as torchvision's MSBlockConfig; empty kernel/stride lists mean no pooling."""

    num_heads: int = 1
    input_channels: int = 96
    output_channels: int = 96
    kernel_q: List[int] = field(default_factory=list)
    kernel_kv: List[int] = field(default_factory=list)
    stride_q: List[int] = field(default_factory=list)
    stride_kv: List[int] = field(default_factory=list)


@dataclass
class MViTInit:
    """Weights to start from: a torchvision state dict or a PySlowFast `.pyth` (fine-tuning or evaluation)."""

    checkpoint: Optional[str] = None


@dataclass
class MViTConfig:
    """Schema of `model` for `model.name=mvit` (see docs/models/mvit.md for each field's origin)."""

    name: str = "mvit"
    display_name: str = "MViT"
    blocks: List[MViTBlock] = field(default_factory=list)
    patch_kernel: List[int] = field(default_factory=lambda: [3, 7, 7])
    patch_stride: List[int] = field(default_factory=lambda: [2, 4, 4])
    patch_padding: List[int] = field(default_factory=lambda: [1, 3, 3])
    cls_token: bool = True  # off: the head averages the normed tokens (PySlowFast CLS_EMBED_ON False)
    pos_embed: str = "separable"  # separable (v1) | joint (one table over all tokens) | none (v2)
    rel_pos_spatial: bool = False  # v2 decomposed relative position bias over h and w
    rel_pos_temporal: bool = False  # ... and over t
    residual_pool: bool = False  # v2: add the pooled q to the attention output
    residual_pool_cls: bool = False  # also to the CLS token (torchvision residual_with_cls_embed)
    dim_mul_in_att: bool = False  # v2: width changes inside attention; v1: in the MLP
    mlp_ratio: float = 4.0
    qkv_bias: bool = True
    norm_eps: float = 1e-6
    dropout: float = 0.5  # before the classifier
    block_dropout: float = 0.0  # after the attention projection and each MLP layer
    stochastic_depth: float = 0.2  # linear from 0 at the first block to this at the last
    init: MViTInit = field(default_factory=MViTInit)


@dataclass(frozen=True)
class BlockGeometry:
    """What one block computes on: widths, token grids (t, h, w; CLS excluded), relative table lengths."""

    dim_in: int
    attn_dim: int
    dim_out: int
    heads: int
    head_dim: int
    grid_in: tuple[int, int, int]
    grid_q: tuple[int, int, int]
    grid_kv: tuple[int, int, int]
    rel_pos_rows: tuple[int, int, int] | None  # (h, w, t) table lengths when relative bias is on


def has_pool(kernel: List[int], stride: List[int]) -> bool:
    """A pooler exists where it changes something (torchvision and PySlowFast agree)."""
    return math.prod(kernel) > 1 or math.prod(stride) > 1


def skip_kernel(stride: List[int]) -> list[int]:
    """Max-pool kernel of the residual path: stride + 1 where the stride is above 1."""
    return [s + 1 if s > 1 else s for s in stride]


def patch_grid(cfg: MViTConfig, inputs: ModelInputs) -> tuple[int, int, int]:
    """Token grid after the patch embedding, checked against the convolution's own output size."""
    sizes = (inputs.num_frames, *inputs.image_size)
    for key in ("patch_kernel", "patch_stride", "patch_padding"):
        value = getattr(cfg, key)
        if len(value) != 3 or any(v < (0 if key == "patch_padding" else 1) for v in value):
            raise ConfigError(f"model.{key}={list(value)}: give three (t, h, w) values, e.g. [3, 7, 7]")
    grid = tuple(n // s for n, s in zip(sizes, cfg.patch_stride))
    conv = tuple((n + 2 * p - k) // s + 1 for n, k, s, p in zip(sizes, cfg.patch_kernel, cfg.patch_stride,
                                                               cfg.patch_padding))
    if grid != conv or min(grid) < 1:
        raise ConfigError(
            f"clip {sizes[0]}x{sizes[1]}x{sizes[2]} (data.num_frames x data.crop_size) gives a patch grid of {conv} "
            f"but model.patch_stride={list(cfg.patch_stride)} needs {grid}: choose frames and crop that are "
            f"multiples of the patch stride"
        )
    return grid  # type: ignore[return-value]


def _pooled(grid: tuple[int, ...], kernel: List[int], stride: List[int]) -> tuple[int, int, int]:
    """Grid after a pooler with padding kernel // 2 (the convolution's output size)."""
    return tuple((n + 2 * (k // 2) - k) // s + 1 for n, k, s in zip(grid, kernel, stride))  # type: ignore


def _check_pool(key: str, grid: tuple[int, int, int], kernel: List[int], stride: List[int]) -> None:
    for name, value in (("kernel", kernel), ("stride", stride)):
        if len(value) not in (0, 3) or any(v < 1 for v in value):
            raise ConfigError(f"{key.format(name)}={list(value)}: give [] (no pooling) or three positive (t, h, w) values")
    if not has_pool(kernel, stride):
        return
    if len(kernel) != 3 or len(stride) != 3:
        raise ConfigError(f"{key.format('kernel')}={list(kernel)}, {key.format('stride')}={list(stride)}: a pooling "
                          "block needs both a kernel and a stride of three values, e.g. [3, 3, 3] and [1, 2, 2]")
    bad = [(n, s) for n, s in zip(grid, stride) if n % s]
    if bad:
        raise ConfigError(
            f"{key.format('stride')}={list(stride)} does not divide this block's token grid {list(grid)} (t, h, w): "
            "change the stride, or data.num_frames / data.crop_size so that the grid is a multiple of it"
        )


def block_geometry(cfg: MViTConfig, inputs: ModelInputs) -> list[BlockGeometry]:
    """Per-block geometry for `inputs`, raising ConfigError for settings that cannot build."""
    grid = patch_grid(cfg, inputs)
    if not cfg.blocks:
        raise ConfigError("model.blocks is empty: choose an architecture, e.g. model=mvit_v1_b or model=mvit_v2_s")
    out: list[BlockGeometry] = []
    dim = cfg.blocks[0].input_channels
    rel_pos = cfg.rel_pos_spatial or cfg.rel_pos_temporal
    for i, block in enumerate(cfg.blocks):
        key = f"model.blocks.{i}"
        if block.input_channels != dim:
            raise ConfigError(f"{key}.input_channels={block.input_channels}: the previous block outputs {dim} "
                              f"channels; set it to {dim}")
        if block.num_heads < 1 or block.output_channels < 1:
            raise ConfigError(f"{key}: num_heads and output_channels must be positive")
        attn_dim = block.output_channels if cfg.dim_mul_in_att else block.input_channels
        if attn_dim % block.num_heads:
            which = "output_channels" if cfg.dim_mul_in_att else "input_channels"
            raise ConfigError(f"{key}.num_heads={block.num_heads} does not divide the attention width {attn_dim} "
                              f"({key}.{which}): choose a width that is a multiple of the heads")
        _check_pool(f"{key}.{{}}_q", grid, block.kernel_q, block.stride_q)
        _check_pool(f"{key}.{{}}_kv", grid, block.kernel_kv, block.stride_kv)
        grid_q = _pooled(grid, block.kernel_q, block.stride_q) if has_pool(block.kernel_q, block.stride_q) else grid
        grid_kv = _pooled(grid, block.kernel_kv, block.stride_kv) if has_pool(block.kernel_kv, block.stride_kv) else grid
        if math.prod(block.stride_q) > 1 and grid_q != _pooled(grid, skip_kernel(block.stride_q), block.stride_q):
            raise ConfigError(f"{key}.kernel_q={list(block.kernel_q)}: the pooled queries ({grid_q}) and the "
                              f"max-pooled residual disagree in size; use an odd kernel")
        head_dim = attn_dim // block.num_heads
        rows = None
        if rel_pos:
            side = max(grid[1:])
            q_side = side // block.stride_q[1] if block.stride_q else side
            kv_side = side // block.stride_kv[1] if block.stride_kv else side
            rows = (2 * max(q_side, kv_side) - 1,) * 2 + (2 * grid[0] - 1,)
        out.append(BlockGeometry(block.input_channels, attn_dim, block.output_channels, block.num_heads, head_dim,
                                 grid, grid_q, grid_kv, rows))
        if block.stride_q:
            grid = tuple(n // s for n, s in zip(grid, block.stride_q))  # type: ignore[assignment]
        dim = block.output_channels
    return out


def validate(cfg: MViTConfig, inputs: ModelInputs) -> None:
    """Every cross-field rule of the MViT schema; raises ConfigError naming the key and the fix."""
    if cfg.pos_embed not in POS_EMBEDS:
        raise ConfigError(f"model.pos_embed={cfg.pos_embed!r}: choose one of {', '.join(POS_EMBEDS)}")
    if inputs.num_classes < 1:
        raise ConfigError(f"dataset.num_classes={inputs.num_classes}: need at least one class")
    for key in ("dropout", "block_dropout", "stochastic_depth"):
        if not 0.0 <= getattr(cfg, key) < 1.0:
            raise ConfigError(f"model.{key}={getattr(cfg, key)}: a rate in [0, 1)")
    if cfg.mlp_ratio <= 0 or cfg.norm_eps <= 0:
        raise ConfigError("model.mlp_ratio and model.norm_eps must be positive")
    if cfg.init.checkpoint and not Path(cfg.init.checkpoint).is_file():
        raise ConfigError(f"model.init.checkpoint={cfg.init.checkpoint!r}: no such file")
    block_geometry(cfg, inputs)
