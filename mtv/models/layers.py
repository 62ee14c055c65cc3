"""Transformer building blocks with scenic's numerics: LayerNorm eps 1e-6, tanh GELU, pre-LN blocks.

Tokens of a view are folded as (batch * chunks, tokens, width): the `chunks` argument lets stochastic depth
draw one mask per example and share it over that example's time chunks, as scenic's vmapped encoder does.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

LN_EPS = 1e-6


def layer_norm(dim: int) -> nn.LayerNorm:
    return nn.LayerNorm(dim, eps=LN_EPS)


def drop_path(x: Tensor, rate: float, training: bool, chunks: int = 1, rescale: bool = True) -> Tensor:
    """Stochastic depth per example, kept rows rescaled by 1/(1-rate) (MTV's StochasticDepth; scenic's ViViT
    blocks do not rescale: `rescale=False`); one draw shared by an example's `chunks` rows."""
    if rate <= 0.0 or not training:
        return x
    keep = 1.0 - rate
    mask = torch.empty(x.shape[0] // chunks, device=x.device, dtype=x.dtype).bernoulli_(keep)
    if rescale:
        mask = mask / keep
    mask = mask.repeat_interleave(chunks).view(-1, *([1] * (x.ndim - 1)))
    return x * mask


class Mlp(nn.Module):
    """Dense -> GELU -> dropout -> Dense -> dropout; `extra` is added before the GELU (MLP fusion).

    `approximate` is scenic's "tanh" by default; PyTorch-born models (MoA) use the exact "none"."""

    def __init__(self, dim: int, hidden: int, dropout: float = 0.0, approximate: str = "tanh") -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)
        self.dropout = dropout
        self.approximate = approximate

    def forward(self, x: Tensor, extra: Tensor | None = None) -> Tensor:
        h = self.fc1(x)
        if extra is not None:
            h = h + extra
        h = F.dropout(F.gelu(h, approximate=self.approximate), self.dropout, self.training)
        return F.dropout(self.fc2(h), self.dropout, self.training)


class Attention(nn.Module):
    """Multi-head self-attention through `scaled_dot_product_attention` (fused qkv, heads-major)."""

    def __init__(self, dim: int, num_heads: int, attention_dropout: float = 0.0) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.attention_dropout = attention_dropout

    def forward(self, x: Tensor) -> Tensor:
        b, n, d = x.shape
        q, k, v = self.qkv(x).view(b, n, 3, self.num_heads, d // self.num_heads).permute(2, 0, 3, 1, 4)
        dropout = self.attention_dropout if self.training else 0.0
        out = F.scaled_dot_product_attention(q, k, v, dropout_p=dropout)
        return self.proj(out.transpose(1, 2).reshape(b, n, d))


class CrossAttention(nn.Module):
    """Attention of one view's tokens (query) over another view's (key/value), widths may differ.

    The output projection starts at zero, so a fusion layer is the identity at initialisation and a
    ViT-initialised view computes what it did before fusion.
    """

    def __init__(self, query_dim: int, kv_dim: int, width: int, num_heads: int, attention_dropout: float = 0.0):
        super().__init__()
        self.num_heads = num_heads
        self.q = nn.Linear(query_dim, width)
        self.k = nn.Linear(kv_dim, width)
        self.v = nn.Linear(kv_dim, width)
        self.proj = nn.Linear(width, query_dim)
        self.attention_dropout = attention_dropout

    def forward(self, query: Tensor, kv: Tensor) -> Tensor:
        b, n, _ = query.shape
        m = kv.shape[1]
        width = self.q.out_features
        head = width // self.num_heads
        q = self.q(query).view(b, n, self.num_heads, head).transpose(1, 2)
        k = self.k(kv).view(b, m, self.num_heads, head).transpose(1, 2)
        v = self.v(kv).view(b, m, self.num_heads, head).transpose(1, 2)
        dropout = self.attention_dropout if self.training else 0.0
        out = F.scaled_dot_product_attention(q, k, v, dropout_p=dropout)
        return self.proj(out.transpose(1, 2).reshape(b, n, width))


class Block(nn.Module):
    """Pre-LN ViT block: x + SD(Dropout(MHSA(LN(x)))), then x + SD(MLP(LN(x)))."""

    def __init__(
        self,
        dim: int,
        num_heads: int,
        mlp_dim: int,
        dropout: float = 0.0,
        attention_dropout: float = 0.0,
        drop_path: float = 0.0,
        attention: Attention | None = None,
        drop_path_rescale: bool = True,
    ) -> None:
        """`attention`: a replacement for the block's self-attention (same parameters, another token
        pattern, e.g. ViViT's factorised dot-product attention); `drop_path_rescale`: see `drop_path`."""
        super().__init__()
        self.norm1 = layer_norm(dim)
        self.attn = attention if attention is not None else Attention(dim, num_heads, attention_dropout)
        self.norm2 = layer_norm(dim)
        self.mlp = Mlp(dim, mlp_dim, dropout)
        self.dropout = dropout
        self.drop_path = drop_path
        self.drop_path_rescale = drop_path_rescale
        self.grad_checkpointing = False

    def attention_residual(self, x: Tensor, chunks: int = 1) -> Tensor:
        y = F.dropout(self.attn(self.norm1(x)), self.dropout, self.training)
        return x + drop_path(y, self.drop_path, self.training, chunks, self.drop_path_rescale)

    def mlp_residual(self, x: Tensor, chunks: int = 1, extra: Tensor | None = None) -> Tensor:
        y = self.mlp(self.norm2(x), extra)
        return x + drop_path(y, self.drop_path, self.training, chunks, self.drop_path_rescale)

    def _forward(self, x: Tensor, chunks: int) -> Tensor:
        return self.mlp_residual(self.attention_residual(x, chunks), chunks)

    def forward(self, x: Tensor, chunks: int = 1) -> Tensor:
        if self.grad_checkpointing and self.training and torch.is_grad_enabled():
            return checkpoint(self._forward, x, chunks, use_reentrant=False)
        return self._forward(x, chunks)


# ---- scenic's random initialisation of these layers --------------------------------------------------
@torch.no_grad()
def init_vit_layer_(module: nn.Module) -> None:
    """scenic's ViT initialiser if `module` is an Attention, Mlp or LayerNorm (other modules are left alone):
    xavier-uniform kernels (q, k, v each on its own (d, d) matrix), zero attention biases, N(0, 1e-6) MLP
    biases, unit LayerNorms. Call it on each of `model.modules()`."""
    if isinstance(module, Attention):
        dim = module.proj.out_features
        for kernel in module.qkv.weight.view(3, dim, dim):
            nn.init.xavier_uniform_(kernel)
        nn.init.zeros_(module.qkv.bias)
        nn.init.xavier_uniform_(module.proj.weight)
        nn.init.zeros_(module.proj.bias)
    elif isinstance(module, Mlp):
        for fc in (module.fc1, module.fc2):
            nn.init.xavier_uniform_(fc.weight)
            nn.init.normal_(fc.bias, std=1e-6)
    elif isinstance(module, nn.LayerNorm):
        nn.init.ones_(module.weight)
        nn.init.zeros_(module.bias)


@torch.no_grad()
def central_frame_init_(conv: nn.Conv3d) -> None:
    """LeCun-normal 2-D patch kernel at the central frame ft//2, zeros elsewhere, zero bias: what scenic's
    `central_frame_initializer` means to do. scenic's own random initialiser zeroes the kernel-width axis
    instead of time (every frame keeps one column), a bug we deliberately do not copy."""
    weight = conv.weight  # (d, 3, t, h, w)
    fan_in = weight.shape[1] * weight.shape[3] * weight.shape[4]
    nn.init.zeros_(weight)
    nn.init.trunc_normal_(weight[:, :, weight.shape[2] // 2], std=1.0 / math.sqrt(fan_in))
    nn.init.zeros_(conv.bias)
