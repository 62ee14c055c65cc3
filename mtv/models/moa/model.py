"""MoA-Transformer (Patel et al. 2022) as the authors' code computes it, on images and frame by frame on videos.

patch embedding (conv + LN) -> stages of local window blocks, each stage but the last followed by an MOA
tail (when its map holds a window) and patch merging -> LN -> mean over tokens -> linear head.
Videos (B, 3, T, H, W) run their frames through the backbone and average the pooled features over time
before the head (ViViT's "average the frame-level representations" baseline); images are (B, 3, H, W).

Module and parameter names are the authors' (moa_spec.md §2.6), so their state dicts load unchanged.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

from mtv.models.layers import Mlp, drop_path
from mtv.models.moa.attention import GlobalAttention, RelativeBias, WindowAttention
from mtv.models.moa.config import MoAConfig, StageGeometry, stage_geometry

LN_EPS = 1e-5  # the authors use nn.LayerNorm's default


def _norm(dim: int) -> nn.LayerNorm:
    return nn.LayerNorm(dim, eps=LN_EPS)


class PatchEmbed(nn.Module):
    """Non-overlapping patch x patch conv to `dim` channels, then LayerNorm (or none): (B, 3, H, W) -> (B, L, C)."""

    def __init__(self, patch: int, dim: int, norm: bool) -> None:
        super().__init__()
        self.proj = nn.Conv2d(3, dim, kernel_size=patch, stride=patch)
        self.norm = _norm(dim) if norm else nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        return self.norm(self.proj(x).flatten(2).transpose(1, 2))


class PatchMerging(nn.Module):
    """Swin's 2x2 merge: concatenate each 2x2 neighbourhood (4C), LayerNorm, project to 2C without bias."""

    def __init__(self, resolution: tuple[int, int], dim: int) -> None:
        super().__init__()
        self.resolution = resolution
        self.norm = _norm(4 * dim)
        self.reduction = nn.Linear(4 * dim, 2 * dim, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        b, _, c = x.shape
        x = x.reshape(b, *self.resolution, c)
        x = torch.cat([x[:, 0::2, 0::2], x[:, 1::2, 0::2], x[:, 0::2, 1::2], x[:, 1::2, 1::2]], dim=-1)
        return self.reduction(self.norm(x.reshape(b, -1, 4 * c)))


class LocalBlock(nn.Module):
    """Pre-LN block: x + SD(window attention(LN(x))), then x + SD(MLP(LN(x))); windows do not shift."""

    def __init__(self, cfg: MoAConfig, stage: StageGeometry, drop_path_rate: float) -> None:
        super().__init__()
        self.resolution = stage.resolution
        self.window = stage.window
        self.norm1 = _norm(stage.dim)
        self.attn = WindowAttention(stage.dim, stage.window, stage.num_heads, cfg.qkv_bias, cfg.qk_scale,
                                    cfg.attention_dropout, cfg.dropout)
        self.norm2 = _norm(stage.dim)
        self.mlp = Mlp(stage.dim, int(stage.dim * cfg.mlp_ratio), cfg.dropout, approximate="none")
        self.drop_path = drop_path_rate
        self.grad_checkpointing = False

    def _window_attention(self, x: Tensor) -> Tensor:
        b, _, c = x.shape
        (h, w), p = self.resolution, self.window
        windows = x.reshape(b, h // p, p, w // p, p, c).transpose(2, 3).reshape(-1, p * p, c)
        out = self.attn(windows).reshape(b, h // p, w // p, p, p, c)
        return out.transpose(2, 3).reshape(b, h * w, c)

    def _forward(self, x: Tensor) -> Tensor:
        x = x + drop_path(self._window_attention(self.norm1(x)), self.drop_path, self.training)
        return x + drop_path(self.mlp(self.norm2(x)), self.drop_path, self.training)

    def forward(self, x: Tensor) -> Tensor:
        if self.grad_checkpointing and self.training and torch.is_grad_enabled():
            return checkpoint(self._forward, x, use_reentrant=False)
        return self._forward(x)


class Stage(nn.Module):
    """Local blocks, then (all but the last stage) the MOA tail if the map holds a window, then merging.

    The MOA tail, as the authors compute it (moa_spec.md §2.3, kept for their weights):
    y = LN1(x); x = x + SD(y + G broadcast over groups of window^2 consecutive raster tokens);
    x = LN2(x); x = x + SD(3x3 conv of x's memory read as (C, H, W), read back as (L, C)).
    """

    def __init__(self, cfg: MoAConfig, stage: StageGeometry, block_rates: list[float], moa_rate: float) -> None:
        super().__init__()
        self.resolution = stage.resolution
        self.blocks = nn.ModuleList(LocalBlock(cfg, stage, rate) for rate in block_rates)
        self.glb_attn: GlobalAttention | None = None
        if stage.moa:
            self.glb_attn = GlobalAttention(stage.dim, stage.resolution, stage.window, stage.num_heads,
                                            cfg.moa_reduction, stage.moa_key_stride, cfg.qkv_bias, cfg.qk_scale,
                                            cfg.attention_dropout, cfg.dropout)
            self.post_conv = nn.Conv2d(stage.dim, stage.dim, 3, padding=1)
            self.norm1 = _norm(stage.dim)
            self.norm2 = _norm(stage.dim)
        self.moa_drop_path = moa_rate
        self.downsample = PatchMerging(stage.resolution, stage.dim) if stage.merge else None

    def _moa_tail(self, x: Tensor) -> Tensor:
        b, length, c = x.shape
        y = self.norm1(x)
        g = self.glb_attn(y)  # (B, query patches, C)
        groups = g.shape[1]
        # reinterpretation: group k is raster tokens [k L/n, (k+1) L/n), not the spatial window k
        y = (y.reshape(b, groups, length // groups, c) + g.unsqueeze(2)).reshape(b, length, c)
        x = self.norm2(x + drop_path(y, self.moa_drop_path, self.training))
        conv = self.post_conv(x.reshape(b, c, *self.resolution)).reshape(b, length, c)  # reinterpretation both ways
        return x + drop_path(conv, self.moa_drop_path, self.training)

    def forward(self, x: Tensor) -> Tensor:
        for block in self.blocks:
            x = block(x)
        if self.glb_attn is not None:
            x = self._moa_tail(x)
        return x if self.downsample is None else self.downsample(x)


class MoATransformer(nn.Module):
    """MoA-Transformer for `num_classes` (0: pooled features) at a fixed `image_size` (height, width)."""

    def __init__(self, cfg: MoAConfig, num_classes: int, image_size: tuple[int, int]) -> None:
        super().__init__()
        self.config = cfg
        self.image_size = (int(image_size[0]), int(image_size[1]))
        self.geometry = stage_geometry(cfg, self.image_size)
        self.patch_embed = PatchEmbed(cfg.patch_size, cfg.embed_dim, cfg.patch_norm)
        self.dropout = cfg.dropout
        rates = torch.linspace(0, cfg.stochastic_depth, sum(cfg.depths), device="cpu").tolist()
        moa_rates = torch.linspace(0, cfg.moa_stochastic_depth, len(self.geometry) - 1, device="cpu").tolist() + [0.0]
        starts = [sum(cfg.depths[:i]) for i in range(len(cfg.depths))]
        self.layers = nn.ModuleList(
            Stage(cfg, s, rates[start:start + s.depth], moa_rates[s.index]) for s, start in zip(self.geometry, starts)
        )
        self.num_features = self.geometry[-1].dim
        self.norm = _norm(self.num_features)
        self.head = nn.Linear(self.num_features, num_classes) if num_classes > 0 else nn.Identity()
        self.reset_parameters()

    @torch.no_grad()
    def reset_parameters(self) -> None:
        """The authors' init: Linear weights trunc-normal(0.02) in [-2, 2] with zero bias, LayerNorms 1 / 0,
        local bias tables trunc-normal(0.02), MOA tables zero, convolutions PyTorch's default."""
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.trunc_normal_(module.weight, std=0.02, a=-2.0, b=2.0)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
            elif isinstance(module, nn.LayerNorm):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)
            elif isinstance(module, WindowAttention):
                nn.init.trunc_normal_(module.relative_position_bias_table, std=0.02, a=-2.0, b=2.0)
            elif isinstance(module, GlobalAttention):
                nn.init.zeros_(module.relative_position_bias_table)

    def forward_features(self, images: Tensor) -> Tensor:
        """(N, 3, H, W) -> pooled features (N, num_features)."""
        if tuple(images.shape[-2:]) != self.image_size:
            raise ValueError(f"MoA was built for {self.image_size[0]}x{self.image_size[1]} inputs, "
                             f"got {images.shape[-2]}x{images.shape[-1]}")
        x = F.dropout(self.patch_embed(images), self.dropout, self.training)
        for stage in self.layers:
            x = stage(x)
        return self.norm(x).mean(dim=1)

    def forward(self, x: Tensor) -> Tensor:
        """Images (B, 3, H, W) or videos (B, 3, T, H, W) -> logits (B, num_classes)."""
        if x.ndim == 4:
            return self.head(self.forward_features(x))
        if x.ndim != 5:
            raise ValueError(f"MoA takes (B, 3, H, W) images or (B, 3, T, H, W) videos, got shape {tuple(x.shape)}")
        b, c, t, h, w = x.shape
        frames = x.transpose(1, 2).reshape(b * t, c, h, w)
        return self.head(self.forward_features(frames).reshape(b, t, -1).mean(dim=1))

    # ---- what training needs ------------------------------------------------------------------
    @property
    def grad_checkpointing(self) -> bool:
        return any(block.grad_checkpointing for block in self.modules() if isinstance(block, LocalBlock))

    @grad_checkpointing.setter
    def grad_checkpointing(self, enabled: bool) -> None:
        """Recompute local blocks' activations in backward (T frames per clip multiply their memory)."""
        for block in self.modules():
            if isinstance(block, LocalBlock):
                block.grad_checkpointing = enabled

    def no_weight_decay(self) -> set[str]:
        """The relative position bias tables (the authors' `no_weight_decay_keywords`, MOA tables included)."""
        return {name for name, _ in self.named_parameters() if name.endswith("relative_position_bias_table")}

    @property
    def num_layers_for_lr_decay(self) -> int:
        """Layer ids run 0 (patch embedding) .. sum(depths) + 1 (final norm and head)."""
        return sum(self.config.depths) + 2

    def layer_id(self, name: str) -> int:
        """Depth of a parameter for layer-wise lr decay: patch embedding 0, local block k (counted over all
        stages) k + 1, a stage's MOA tail and merging the id of its last block, norm and head the top."""
        parts = name.split(".")
        if parts[0] == "patch_embed":
            return 0
        if parts[0] == "layers":
            stage = int(parts[1])
            start = sum(self.config.depths[:stage])
            if parts[2] == "blocks":
                return start + int(parts[3]) + 1
            return start + self.config.depths[stage]
        return self.num_layers_for_lr_decay - 1

    def relative_tables(self) -> dict[str, tuple[int, int]]:
        """Name of every relative position bias table -> the grid it indexes (for resizing checkpoints)."""
        return {f"{name}.relative_position_bias_table": module.grid
                for name, module in self.named_modules() if isinstance(module, RelativeBias)}
