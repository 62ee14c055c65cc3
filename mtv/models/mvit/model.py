"""MViT v1 / v2 for video (Fan et al. 2021; Li et al. 2022): a channel-resolution pyramid of pooling attention.

Parameter names follow PySlowFast's MViT, so its checkpoints load as they are; torchvision's names are
mapped in `mtv.models.mvit.checkpoint`. Tokens are in (t, h, w) row-major order with an optional CLS token
in front; pooling always leaves the CLS token out. Attention runs through
`scaled_dot_product_attention` with v2's relative position bias as an additive mask.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

from mtv.models.layers import drop_path
from mtv.models.mvit.config import BlockGeometry, MViTConfig, has_pool, skip_kernel
from mtv.models.mvit.relpos import rel_pos_bias

Grid = tuple[int, int, int]


def pool_tokens(x: Tensor, pool: nn.Module, grid: Grid, has_cls: bool) -> tuple[Tensor, Grid]:
    """Apply a 3-D pooler to the grid tokens of x (B, heads, N, C); the CLS token passes through untouched."""
    cls, x = (x[:, :, :1], x[:, :, 1:]) if has_cls else (None, x)
    b, n, _, c = x.shape
    x = pool(x.reshape(b * n, *grid, c).permute(0, 4, 1, 2, 3))
    new_grid = tuple(x.shape[2:])
    x = x.reshape(b, n, c, -1).transpose(2, 3)
    return (torch.cat((cls, x), dim=2) if cls is not None else x), new_grid  # type: ignore[return-value]


class Mlp(nn.Module):
    """Linear -> exact GELU -> dropout -> Linear -> dropout; v1's width change happens in fc2."""

    def __init__(self, dim: int, hidden: int, dim_out: int, dropout: float) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim_out)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: Tensor) -> Tensor:
        return self.dropout(self.fc2(self.dropout(F.gelu(self.fc1(x)))))


class PoolingAttention(nn.Module):
    """Multi-head attention whose q, k and v are each pooled by a depthwise Conv3d, then LayerNorm(head_dim)."""

    def __init__(self, cfg: MViTConfig, index: int, geo: BlockGeometry) -> None:
        super().__init__()
        block = cfg.blocks[index]
        self.heads, self.has_cls = geo.heads, cfg.cls_token
        self.residual_pool, self.residual_pool_cls = cfg.residual_pool, cfg.residual_pool_cls
        self.scale = geo.head_dim ** -0.5
        self.qkv = nn.Linear(geo.dim_in, 3 * geo.attn_dim, bias=cfg.qkv_bias)
        self.proj = nn.Linear(geo.attn_dim, geo.attn_dim)
        self.proj_drop = nn.Dropout(cfg.block_dropout)
        for part, kernel, stride in (("q", block.kernel_q, block.stride_q), ("k", block.kernel_kv, block.stride_kv),
                                     ("v", block.kernel_kv, block.stride_kv)):
            pool = norm = None
            if has_pool(kernel, stride):
                pool = nn.Conv3d(geo.head_dim, geo.head_dim, kernel, stride=stride,
                                 padding=[k // 2 for k in kernel], groups=geo.head_dim, bias=False)
                norm = nn.LayerNorm(geo.head_dim, eps=cfg.norm_eps)
            setattr(self, f"pool_{part}", pool)
            setattr(self, f"norm_{part}", norm)
        self.rel_pos_h = self.rel_pos_w = self.rel_pos_t = None
        if geo.rel_pos_rows is not None:
            rows_h, rows_w, rows_t = geo.rel_pos_rows
            if cfg.rel_pos_spatial:
                self.rel_pos_h = nn.Parameter(torch.zeros(rows_h, geo.head_dim))
                self.rel_pos_w = nn.Parameter(torch.zeros(rows_w, geo.head_dim))
            if cfg.rel_pos_temporal:
                self.rel_pos_t = nn.Parameter(torch.zeros(rows_t, geo.head_dim))

    def _pool(self, x: Tensor, part: str, grid: Grid) -> tuple[Tensor, Grid]:
        pool = getattr(self, f"pool_{part}")
        if pool is None:
            return x, grid
        x, grid = pool_tokens(x, pool, grid, self.has_cls)
        return getattr(self, f"norm_{part}")(x), grid

    def forward(self, x: Tensor, grid: Grid) -> tuple[Tensor, Grid]:
        b, n, _ = x.shape
        q, k, v = self.qkv(x).reshape(b, n, 3, self.heads, -1).permute(2, 0, 3, 1, 4)
        q, grid_q = self._pool(q, "q", grid)
        k, grid_k = self._pool(k, "k", grid)
        v, _ = self._pool(v, "v", grid)
        mask = None
        if self.rel_pos_h is not None or self.rel_pos_t is not None:
            skip = int(self.has_cls)
            mask = rel_pos_bias(q[:, :, skip:], grid_q, grid_k, self.rel_pos_h, self.rel_pos_w, self.rel_pos_t)
            mask = F.pad(mask, (skip, 0, skip, 0))
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=self.scale)
        if self.residual_pool:
            if self.has_cls and not self.residual_pool_cls:
                out = torch.cat((out[:, :, :1], out[:, :, 1:] + q[:, :, 1:]), dim=2)
            else:
                out = out + q
        out = out.transpose(1, 2).reshape(b, out.shape[2], -1)
        return self.proj_drop(self.proj(out)), grid_q


class MultiscaleBlock(nn.Module):
    """Pre-norm pooling-attention block; the residual path is max-pooled where q is, and projected where the
    width changes (in attention for v2, `dim_mul_in_att`; in the MLP for v1)."""

    def __init__(self, cfg: MViTConfig, index: int, geo: BlockGeometry, drop_rate: float) -> None:
        super().__init__()
        stride_q = cfg.blocks[index].stride_q
        self.has_cls, self.dim_mul_in_att, self.drop_rate = cfg.cls_token, cfg.dim_mul_in_att, drop_rate
        self.norm1 = nn.LayerNorm(geo.dim_in, eps=cfg.norm_eps)
        self.attn = PoolingAttention(cfg, index, geo)
        self.norm2 = nn.LayerNorm(geo.attn_dim, eps=cfg.norm_eps)
        self.mlp = Mlp(geo.attn_dim, int(geo.attn_dim * cfg.mlp_ratio), geo.dim_out, cfg.block_dropout)
        self.proj = nn.Linear(geo.dim_in, geo.dim_out) if geo.dim_in != geo.dim_out else None
        self.pool_skip = None
        if math.prod(stride_q) > 1:
            kernel = skip_kernel(stride_q)
            self.pool_skip = nn.MaxPool3d(kernel, stride_q, [k // 2 for k in kernel])

    def forward(self, x: Tensor, grid: Grid) -> tuple[Tensor, Grid]:
        x_norm = self.norm1(x)
        x_attn, grid_q = self.attn(x_norm, grid)
        if self.dim_mul_in_att and self.proj is not None:
            x = self.proj(x_norm)
        if self.pool_skip is not None:
            x = pool_tokens(x.unsqueeze(1), self.pool_skip, grid, self.has_cls)[0].squeeze(1)
        x = x + drop_path(x_attn, self.drop_rate, self.training)
        x_norm = self.norm2(x)
        x_mlp = self.mlp(x_norm)
        if not self.dim_mul_in_att and self.proj is not None:
            x = self.proj(x_norm)
        return x + drop_path(x_mlp, self.drop_rate, self.training), grid_q


class PatchEmbed(nn.Module):
    """Conv3d cube embedding: (B, 3, T, H, W) -> tokens (B, t*h*w, C) and their grid."""

    def __init__(self, cfg: MViTConfig, dim: int) -> None:
        super().__init__()
        self.proj = nn.Conv3d(3, dim, cfg.patch_kernel, stride=cfg.patch_stride, padding=cfg.patch_padding)

    def forward(self, video: Tensor) -> tuple[Tensor, Grid]:
        x = self.proj(video)
        return x.flatten(2).transpose(1, 2), tuple(x.shape[2:])  # type: ignore[return-value]


class Head(nn.Module):
    """Dropout then the classifier (pre-softmax logits; PySlowFast's eval-time softmax is left out)."""

    def __init__(self, dim: int, num_classes: int, dropout: float) -> None:
        super().__init__()
        self.dropout = nn.Dropout(dropout)
        self.projection = nn.Linear(dim, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        return self.projection(self.dropout(x))


class MViT(nn.Module):
    """Video MViT: patch embedding, CLS and absolute position embedding, multiscale blocks, norm, head."""

    def __init__(self, cfg: MViTConfig, geometry: list[BlockGeometry], num_classes: int) -> None:
        super().__init__()
        self.config = cfg
        dim = geometry[0].dim_in
        self.grid = geometry[0].grid_in
        self.patch_embed = PatchEmbed(cfg, dim)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim)) if cfg.cls_token else None
        t, h, w = self.grid
        self.pos_embed = self.pos_embed_spatial = self.pos_embed_temporal = self.pos_embed_class = None
        if cfg.pos_embed == "separable":
            self.pos_embed_spatial = nn.Parameter(torch.zeros(1, h * w, dim))
            self.pos_embed_temporal = nn.Parameter(torch.zeros(1, t, dim))
            if cfg.cls_token:
                self.pos_embed_class = nn.Parameter(torch.zeros(1, 1, dim))
        elif cfg.pos_embed == "joint":
            self.pos_embed = nn.Parameter(torch.zeros(1, t * h * w + int(cfg.cls_token), dim))
        depth = len(geometry)
        rates = [cfg.stochastic_depth * i / max(depth - 1, 1) for i in range(depth)]
        self.blocks = nn.ModuleList(MultiscaleBlock(cfg, i, geo, rates[i]) for i, geo in enumerate(geometry))
        self.norm = nn.LayerNorm(geometry[-1].dim_out, eps=cfg.norm_eps)
        self.head = Head(geometry[-1].dim_out, num_classes, cfg.dropout)
        self.num_layers_for_lr_decay = depth + 2
        self.grad_checkpointing = False  # train.activation_checkpointing: recompute blocks in backward
        self.reset_parameters()

    @torch.no_grad()
    def reset_parameters(self) -> None:
        """PySlowFast's init: truncated N(0, 0.02) for linear and conv kernels, embeddings and relative
        tables; linear biases 0.02, LayerNorm weight 1 and bias 0.02."""
        for module in self.modules():
            if isinstance(module, (nn.Linear, nn.Conv3d)):
                nn.init.trunc_normal_(module.weight, std=0.02)
                if module.bias is not None:
                    nn.init.constant_(module.bias, 0.02 if isinstance(module, nn.Linear) else 0.0)
            elif isinstance(module, nn.LayerNorm):
                nn.init.ones_(module.weight)
                nn.init.constant_(module.bias, 0.02)
        for name, param in self.named_parameters():
            if "pos_embed" in name or "cls_token" in name or "rel_pos" in name:
                nn.init.trunc_normal_(param, std=0.02)

    def _abs_pos(self, grid: Grid) -> Tensor | None:
        """The absolute position embedding for `grid` (trilinearly resized if it is not the built grid)."""
        if self.pos_embed_spatial is not None:
            t, h, w = self.grid
            pos = self.pos_embed_spatial.repeat(1, t, 1) + torch.repeat_interleave(self.pos_embed_temporal, h * w, 1)
            cls = self.pos_embed_class
        elif self.pos_embed is not None:
            skip = int(self.cls_token is not None)
            cls, pos = (self.pos_embed[:, :skip], self.pos_embed[:, skip:]) if skip else (None, self.pos_embed)
        else:
            return None
        if grid != self.grid:
            pos = F.interpolate(pos.reshape(1, *self.grid, -1).permute(0, 4, 1, 2, 3), size=grid, mode="trilinear")
            pos = pos.flatten(2).transpose(1, 2)
        return torch.cat((cls, pos), dim=1) if cls is not None else pos

    def forward_features(self, video: Tensor) -> Tensor:
        """Pooled features (B, C) before the head: CLS token after the final norm, else the token mean."""
        x, grid = self.patch_embed(video)
        if self.cls_token is not None:
            x = torch.cat((self.cls_token.expand(x.shape[0], -1, -1), x), dim=1)
        pos = self._abs_pos(grid)
        if pos is not None:
            x = x + pos
        for block in self.blocks:
            if self.grad_checkpointing and self.training:
                x, grid = checkpoint(block, x, grid, use_reentrant=False)
            else:
                x, grid = block(x, grid)
        x = self.norm(x)
        return x[:, 0] if self.cls_token is not None else x.mean(1)

    def forward(self, video: Tensor) -> Tensor:
        return self.head(self.forward_features(video))

    def no_weight_decay(self) -> set[str]:
        """Norms, biases, CLS token and absolute position embeddings (relative tables decay, as in
        PySlowFast's MViTv2 recipe)."""
        return {name for name, p in self.named_parameters()
                if p.ndim <= 1 or "pos_embed" in name or name == "cls_token"}

    def layer_id(self, name: str) -> int:
        """0 for the embeddings, i + 1 for block i, the last id for the final norm and head."""
        parts = name.split(".")
        if parts[0] == "blocks":
            return int(parts[1]) + 1
        if parts[0] in ("norm", "head"):
            return self.num_layers_for_lr_decay - 1
        return 0
