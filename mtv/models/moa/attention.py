"""MoA's two attentions: local window attention and the multi-resolution overlapped attention (MOA).

Both add a Swin-style relative position bias, passed to `scaled_dot_product_attention` as an additive mask.
Parameter names follow the authors' state-dict layout (moa_spec.md §2.6) so their checkpoints load as
they are; the `relative_position_index` buffers are derived, so they are not saved (persistent=False).

The MOA forward reproduces the authors' tensor handling exactly, including the places where their code
reads memory in another shape instead of permuting (marked "reinterpretation", moa_spec.md §2.3): those
are what their weights were trained with.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def relative_position_index(height: int, width: int) -> Tensor:
    """For every pair of positions of a height x width grid, its row in a ((2h-1)(2w-1), heads) bias table."""
    rows, cols = torch.meshgrid(torch.arange(height), torch.arange(width), indexing="ij")
    rows, cols = rows.flatten(), cols.flatten()
    d_row = rows[:, None] - rows[None, :] + height - 1
    d_col = cols[:, None] - cols[None, :] + width - 1
    return d_row * (2 * width - 1) + d_col


class RelativeBias(nn.Module):
    """Owner of `relative_position_bias_table` (as the authors name it) and its index over a grid."""

    def __init__(self, grid: tuple[int, int], num_heads: int) -> None:
        super().__init__()
        self.grid = grid
        self.num_heads = num_heads
        self.relative_position_bias_table = nn.Parameter(
            torch.zeros((2 * grid[0] - 1) * (2 * grid[1] - 1), num_heads))
        self.register_buffer("relative_position_index", relative_position_index(*grid), persistent=False)

    def relative_bias(self, dtype: torch.dtype) -> Tensor:
        """(heads, N, N) additive attention mask, N = grid positions."""
        n = self.relative_position_index.shape[0]
        bias = self.relative_position_bias_table[self.relative_position_index.reshape(-1)]
        return bias.reshape(n, n, self.num_heads).permute(2, 0, 1).to(dtype)


def _attend(q: Tensor, k: Tensor, v: Tensor, bias: Tensor, scale: float, dropout: float) -> Tensor:
    """(B, heads, N, hd) attention with an additive bias; `dropout` on the weights (0 outside training)."""
    return F.scaled_dot_product_attention(q, k, v, attn_mask=bias, dropout_p=dropout, scale=scale)


class WindowAttention(RelativeBias):
    """Multi-head self-attention inside one window of window x window tokens (no shift, no mask)."""

    def __init__(self, dim: int, window: int, num_heads: int, qkv_bias: bool, qk_scale: float | None,
                 attention_dropout: float, dropout: float) -> None:
        super().__init__((window, window), num_heads)
        self.scale = qk_scale or (dim // num_heads) ** -0.5
        self.qkv = nn.Linear(dim, 3 * dim, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)
        self.attention_dropout = attention_dropout
        self.dropout = dropout

    def forward(self, x: Tensor) -> Tensor:
        """x: (windows, window * window, C)."""
        b, n, c = x.shape
        q, k, v = self.qkv(x).reshape(b, n, 3, self.num_heads, c // self.num_heads).permute(2, 0, 3, 1, 4)
        dropout = self.attention_dropout if self.training else 0.0
        out = _attend(q, k, v, self.relative_bias(q.dtype), self.scale, dropout)
        return F.dropout(self.proj(out.transpose(1, 2).reshape(b, n, c)), self.dropout, self.training)


class GlobalAttention(RelativeBias):
    """MOA: each window-sized query patch attends to every key patch, keys being the windows grown by one
    pixel on each side (so neighbours overlap), on a map reduced to dim // reduction channels.

    Queries are window x window patches (one per window), keys (window + 2)^2 patches at `key_stride`;
    their features are the flattened patches. The relative bias lives on the grid of query patches.
    """

    def __init__(self, dim: int, resolution: tuple[int, int], window: int, num_heads: int, reduction: int,
                 key_stride: int, qkv_bias: bool, qk_scale: float | None, attention_dropout: float,
                 dropout: float) -> None:
        grid = (resolution[0] // window, resolution[1] // window)
        super().__init__(grid, num_heads)
        self.resolution = resolution
        self.window = window
        self.key_stride = key_stride
        reduced = dim // reduction
        self.scale = qk_scale or (dim // num_heads) ** -0.5
        self.pre_conv = nn.Conv2d(dim, reduced, 1)
        self.q = nn.Linear(reduced * window**2, dim, bias=qkv_bias)
        self.kv = nn.Linear(reduced * (window + 2) ** 2, 2 * dim, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)
        self.attention_dropout = attention_dropout
        self.dropout = dropout

    def forward(self, y: Tensor) -> Tensor:
        """y: the normalised stage output (B, H * W, C) in raster order -> G: (B, query patches, C)."""
        b, _, c = y.shape
        (h, w), p = self.resolution, self.window
        n = self.grid[0] * self.grid[1]
        z = self.pre_conv(y.reshape(b, c, h, w))  # reinterpretation: (L, C) memory read as (C, H, W)
        r = z.shape[1]
        # patch features in (row-in-patch, column-in-patch, channel) order, then the (features, patches)
        # memory read as (patches, features): reinterpretation
        queries = z.reshape(b, r, self.grid[0], p, self.grid[1], p).permute(0, 3, 5, 1, 2, 4).reshape(b, n, -1)
        # key patches in (channel, row, column) order; (features, patches) memory read as (patches, features)
        keys = F.unfold(z, kernel_size=p + 2, stride=self.key_stride, padding=1).reshape(b, n, -1)
        hd = c // self.num_heads
        q = self.q(queries).reshape(b, n, self.num_heads, hd).transpose(1, 2)
        k, v = self.kv(keys).reshape(b, n, 2, self.num_heads, hd).permute(2, 0, 3, 1, 4)
        dropout = self.attention_dropout if self.training else 0.0
        out = _attend(q, k, v, self.relative_bias(q.dtype), self.scale, dropout)
        return F.dropout(self.proj(out.transpose(1, 2).reshape(b, n, c)), self.dropout, self.training)
