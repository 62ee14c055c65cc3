"""The `model` node of the MoA family and the per-stage geometry it implies, checked before any tensor exists.

The schema is a plain dataclass (registered as a Hydra structured config). `stage_geometry` derives what
every stage looks like at a given input size (map size, clipped window, whether it carries an MOA module,
the MOA query grid and key stride) and is the single place where a configuration is rejected, so that a
bad sweep row fails at start-up with a message that names the key and the fix.

Numbers follow the authors' code (shared/reference/moa_spec.md §2): stage i has width `embed_dim * 2**i`
on a map of `(image / patch_size) / 2**i`; a window at least as large as the map is clipped to the map;
a stage that is not the last gets an MOA module when its map holds at least one (unclipped) window.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import List, Optional

from mtv.errors import ConfigError
from mtv.models.registry import ModelInputs

AUTHORS_KEY_STRIDE = 14  # hard-coded in the authors' MOA key Unfold (moa_spec.md §5.1)


@dataclass
class MoAInitConfig:
    """Weights to start from: an authors' or this project's MoA state dict (image or video, same layout)."""

    checkpoint: Optional[str] = None


@dataclass
class MoAConfig:
    """The whole `model` node for `model=moa` (defaults: the authors' MOA_tiny_patch4_window14_224)."""

    name: str = "moa"
    patch_size: int = 4
    embed_dim: int = 96
    depths: List[int] = field(default_factory=lambda: [2, 2, 8])
    num_heads: List[int] = field(default_factory=lambda: [3, 6, 12])
    window_size: int = 14
    mlp_ratio: float = 4.0
    qkv_bias: bool = True
    qk_scale: Optional[float] = None  # None: head_dim ** -0.5
    patch_norm: bool = True
    dropout: float = 0.0
    attention_dropout: float = 0.0
    stochastic_depth: float = 0.2  # local blocks: linspace(0, this, sum(depths))
    moa_stochastic_depth: float = 0.2  # MOA tails: linspace(0, this, stages - 1); the authors hard-code 0.2
    moa_reduction: int = 32  # MOA works on dim // moa_reduction channels; the authors hard-code 32
    moa_key_stride: Optional[int] = None  # None: the authors' 14 where it gives one key per query, else the window
    init: MoAInitConfig = field(default_factory=MoAInitConfig)


@dataclass(frozen=True)
class StageGeometry:
    """One stage at one input size; `moa_grid` and `moa_key_stride` are only meaningful when `moa`."""

    index: int
    dim: int
    num_heads: int
    depth: int
    resolution: tuple[int, int]
    window: int  # the local window after clipping to the map
    moa: bool
    merge: bool  # patch merging after the stage (every stage but the last)
    moa_grid: tuple[int, int] = (0, 0)  # query patches (rows, columns) of size window x window
    moa_key_stride: int = 0


def _key_patches(size: int, window: int, stride: int) -> int:
    """Key patches along one axis: Unfold with kernel window + 2, padding 1."""
    return (size - window) // stride + 1


def _key_stride(cfg: MoAConfig, stage: int, resolution: tuple[int, int], window: int) -> int:
    """The key stride of an MOA stage; it must give exactly one key patch per query patch."""
    grid = tuple(r // window for r in resolution)
    fits = lambda s: all(_key_patches(r, window, s) == n for r, n in zip(resolution, grid))  # noqa: E731
    if cfg.moa_key_stride is None:
        return AUTHORS_KEY_STRIDE if fits(AUTHORS_KEY_STRIDE) else window
    if cfg.moa_key_stride < 1 or not fits(cfg.moa_key_stride):
        raise ConfigError(
            f"model.moa_key_stride={cfg.moa_key_stride}: stage {stage} has a {grid[0]}x{grid[1]} grid of query "
            f"windows on its {resolution[0]}x{resolution[1]} map, and this stride does not give one key patch per "
            f"query; use null (the window size, {window}, where the authors' 14 does not fit)"
        )
    return cfg.moa_key_stride


def _check_lists(cfg: MoAConfig) -> None:
    if not cfg.depths or any(d < 1 for d in cfg.depths):
        raise ConfigError(f"model.depths={list(cfg.depths)}: give one positive block count per stage, e.g. [2, 2, 6]")
    if len(cfg.num_heads) != len(cfg.depths):
        raise ConfigError(
            f"model.num_heads={list(cfg.num_heads)} has {len(cfg.num_heads)} entries but model.depths="
            f"{list(cfg.depths)} has {len(cfg.depths)} stages; give one head count per stage"
        )
    for key in ("patch_size", "embed_dim", "window_size", "moa_reduction"):
        if getattr(cfg, key) < 1:
            raise ConfigError(f"model.{key}={getattr(cfg, key)} must be a positive integer")
    if cfg.mlp_ratio <= 0:
        raise ConfigError(f"model.mlp_ratio={cfg.mlp_ratio} must be positive (MLP width = stage width x this)")
    if any(h < 1 for h in cfg.num_heads):
        raise ConfigError(f"model.num_heads={list(cfg.num_heads)}: every head count must be positive")
    for key in ("dropout", "attention_dropout", "stochastic_depth", "moa_stochastic_depth"):
        if not 0.0 <= getattr(cfg, key) < 1.0:
            raise ConfigError(f"model.{key}={getattr(cfg, key)} must be a rate in [0, 1)")


def stage_geometry(cfg: MoAConfig, image_size: tuple[int, int]) -> list[StageGeometry]:
    """Every stage of `cfg` on `image_size` (height, width) images, or a ConfigError naming the key to change."""
    _check_lists(cfg)
    height, width = (int(s) for s in image_size)
    if height % cfg.patch_size or width % cfg.patch_size:
        raise ConfigError(
            f"data.crop_size={height}x{width} is not a multiple of model.patch_size={cfg.patch_size}; "
            "the patch embedding needs whole patches"
        )
    resolution = (height // cfg.patch_size, width // cfg.patch_size)
    stages = []
    last = len(cfg.depths) - 1
    for i, (depth, heads) in enumerate(zip(cfg.depths, cfg.num_heads)):
        dim = cfg.embed_dim * 2**i
        if dim % heads:
            raise ConfigError(
                f"model.num_heads[{i}]={heads} does not divide stage {i}'s width {dim} (model.embed_dim="
                f"{cfg.embed_dim} x 2**{i}); choose a divisor of {dim}, e.g. {dim // 32 or 1}"
            )
        window = min(resolution) if min(resolution) <= cfg.window_size else cfg.window_size
        if resolution[0] % window or resolution[1] % window:
            raise ConfigError(
                f"model.window_size={cfg.window_size}: stage {i}'s {resolution[0]}x{resolution[1]} token map "
                f"(data.crop_size {height}x{width} / model.patch_size {cfg.patch_size} / 2**{i}) is not tiled by "
                f"{window}x{window} windows; choose a window that divides every stage's map"
            )
        merge = i < last
        moa = merge and min(resolution) >= cfg.window_size
        grid, stride = (0, 0), 0
        if moa:
            if dim < cfg.moa_reduction:
                raise ConfigError(
                    f"model.embed_dim={cfg.embed_dim}: stage {i} has an MOA module but only {dim} channels, fewer "
                    f"than model.moa_reduction={cfg.moa_reduction}, so its 1/{cfg.moa_reduction} reduction keeps "
                    f"no channel; use model.embed_dim >= {cfg.moa_reduction}"
                )
            grid = (resolution[0] // window, resolution[1] // window)
            stride = _key_stride(cfg, i, resolution, window)
        if merge and (resolution[0] % 2 or resolution[1] % 2):
            raise ConfigError(
                f"stage {i}'s {resolution[0]}x{resolution[1]} token map is odd, and patch merging halves it; "
                f"use a data.crop_size whose patch grid (/ model.patch_size={cfg.patch_size}) halves "
                f"{last} times evenly"
            )
        stages.append(StageGeometry(i, dim, heads, depth, resolution, window, moa, merge, grid, stride))
        if merge:
            resolution = (resolution[0] // 2, resolution[1] // 2)
    return stages


def validate(cfg: MoAConfig, inputs: ModelInputs) -> None:
    """Every cross-field rule of `cfg` for these inputs (raises ConfigError naming the key and the fix)."""
    if not isinstance(cfg, MoAConfig):
        raise ConfigError(f"model: expected the moa schema (MoAConfig), got {type(cfg).__name__}")
    if inputs.num_classes < 0:
        raise ConfigError(f"dataset.num_classes={inputs.num_classes} must be >= 0 (0: features, no head)")
    if inputs.num_frames < 1:
        raise ConfigError(f"data.num_frames={inputs.num_frames} must be >= 1")
    if cfg.qk_scale is not None and cfg.qk_scale <= 0:
        raise ConfigError(f"model.qk_scale={cfg.qk_scale} must be positive (or null for head_dim ** -0.5)")
    stage_geometry(cfg, inputs.image_size)
