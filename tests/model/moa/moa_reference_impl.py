"""Test-only MoA forward pass written from the text of shared/reference/moa_spec.md §2, not from mtv.models.moa.

It is deliberately plain and slow: windows and patches are cut out one by one with explicit loops, the
relative index is built pair by pair, attention is an explicit softmax, and it reads the parameters by
their key names from a state dict in the authors' layout (§2.6). Use it in float64 on tiny models.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

EPS = 1e-5  # nn.LayerNorm default (§2.5)


def _ln(x: Tensor, sd: Mapping[str, Tensor], key: str) -> Tensor:
    return F.layer_norm(x, (x.shape[-1],), sd[f"{key}.weight"], sd[f"{key}.bias"], eps=EPS)


def _dense(x: Tensor, sd: Mapping[str, Tensor], key: str) -> Tensor:
    out = x @ sd[f"{key}.weight"].T
    return out + sd[f"{key}.bias"] if f"{key}.bias" in sd else out


def _bias(table: Tensor, n: int) -> Tensor:
    """(heads, n*n, n*n) from a ((2n-1)^2, heads) table, Swin index (dh + n-1)(2n-1) + (dw + n-1)."""
    pos = [(r, c) for r in range(n) for c in range(n)]
    index = torch.tensor([[(a[0] - b[0] + n - 1) * (2 * n - 1) + (a[1] - b[1] + n - 1) for b in pos] for a in pos])
    return table[index].permute(2, 0, 1)


def _mha(q: Tensor, k: Tensor, v: Tensor, bias: Tensor, heads: int) -> Tensor:
    """q: (B, N, C), k, v: (B, M, C) -> (B, N, C), scale head_dim^-0.5, additive bias before softmax."""
    b, n, c = q.shape
    hd = c // heads
    split = lambda t: t.reshape(b, t.shape[1], heads, hd).transpose(1, 2)  # noqa: E731
    logits = torch.einsum("bhnd,bhmd->bhnm", split(q) * hd**-0.5, split(k)) + bias
    out = torch.einsum("bhnm,bhmd->bhnd", logits.softmax(-1), split(v))
    return out.transpose(1, 2).reshape(b, n, c)


def _local_block(x: Tensor, sd: Mapping[str, Tensor], key: str, res: int, win: int, heads: int) -> Tensor:
    b, _, c = x.shape
    grid = _ln(x, sd, f"{key}.norm1").reshape(b, res, res, c)
    out = torch.zeros_like(grid)
    bias = _bias(sd[f"{key}.attn.relative_position_bias_table"], win)
    for i in range(res // win):
        for j in range(res // win):
            tokens = grid[:, i * win:(i + 1) * win, j * win:(j + 1) * win].reshape(b, win * win, c)
            q, k, v = _dense(tokens, sd, f"{key}.attn.qkv").chunk(3, dim=-1)
            attended = _dense(_mha(q, k, v, bias, heads), sd, f"{key}.attn.proj")
            out[:, i * win:(i + 1) * win, j * win:(j + 1) * win] = attended.reshape(b, win, win, c)
    x = x + out.reshape(b, res * res, c)
    h = F.gelu(_dense(_ln(x, sd, f"{key}.norm2"), sd, f"{key}.mlp.fc1"))
    return x + _dense(h, sd, f"{key}.mlp.fc2")


def _moa(x: Tensor, sd: Mapping[str, Tensor], key: str, res: int, win: int, heads: int, stride: int) -> Tensor:
    """The stage tail of §2.3, reinterpretations included."""
    b, length, c = x.shape
    n = res // win
    y = _ln(x, sd, f"{key}.norm1")
    z = F.conv2d(y.reshape(b, c, res, res), sd[f"{key}.glb_attn.pre_conv.weight"], sd[f"{key}.glb_attn.pre_conv.bias"])
    cr = z.shape[1]
    # queries: rearrange 'b c (h p1) (w p2) -> b (p1 p2 c) h w', then that memory read as (n*n, features)
    qi = torch.zeros(b, win * win * cr, n, n, dtype=x.dtype)
    for p1 in range(win):
        for p2 in range(win):
            for ch in range(cr):
                qi[:, (p1 * win + p2) * cr + ch] = z[:, ch, p1::win, p2::win]
    query = qi.reshape(b, n * n, win * win * cr)
    # keys: (win+2)^2 patches of the 1-padded map at `stride`, features in (c, kh, kw) order, as Unfold
    padded = F.pad(z, (1, 1, 1, 1))
    count = (res - win) // stride + 1
    cols = torch.stack([padded[:, :, i * stride:i * stride + win + 2, j * stride:j * stride + win + 2].reshape(b, -1)
                        for i in range(count) for j in range(count)], dim=-1)  # (B, D_k, L_k)
    key_in = cols.reshape(b, count * count, -1)
    q = _dense(query, sd, f"{key}.glb_attn.q")
    kv = _dense(key_in, sd, f"{key}.glb_attn.kv").reshape(b, n * n, 2, c)
    g = _mha(q, kv[:, :, 0], kv[:, :, 1], _bias(sd[f"{key}.glb_attn.relative_position_bias_table"], n), heads)
    g = _dense(g, sd, f"{key}.glb_attn.proj")
    x = x + (y.reshape(b, n * n, win, win, c) + g.reshape(b, n * n, 1, 1, c)).reshape(b, length, c)
    x = _ln(x, sd, f"{key}.norm2")
    conv = F.conv2d(x.reshape(b, c, res, res), sd[f"{key}.post_conv.weight"], sd[f"{key}.post_conv.bias"], padding=1)
    return x + conv.reshape(b, length, c)


def _merge(x: Tensor, sd: Mapping[str, Tensor], key: str, res: int) -> Tensor:
    b, _, c = x.shape
    g = x.reshape(b, res, res, c)
    x = torch.cat([g[:, 0::2, 0::2], g[:, 1::2, 0::2], g[:, 0::2, 1::2], g[:, 1::2, 1::2]], -1).reshape(b, -1, 4 * c)
    return _dense(_ln(x, sd, f"{key}.norm"), sd, f"{key}.reduction")


def reference_logits(kwargs: Mapping[str, Any], sd: Mapping[str, Tensor], images: Tensor,
                     key_stride: int | None = None) -> Tensor:
    """Logits of `MOATransformer(**kwargs)` (square images) with the MOA key stride `key_stride`
    (None: the window size, the spec's generalisation; the authors' code uses 14)."""
    patch, window = kwargs["patch_size"], kwargs["window_size"]
    x = F.conv2d(images, sd["patch_embed.proj.weight"], sd["patch_embed.proj.bias"], stride=patch)
    x = _ln(x.flatten(2).transpose(1, 2), sd, "patch_embed.norm")
    res = kwargs["img_size"] // patch
    stages = len(kwargs["depths"])
    for i, (depth, heads) in enumerate(zip(kwargs["depths"], kwargs["num_heads"])):
        win = res if res <= window else window
        for j in range(depth):
            x = _local_block(x, sd, f"layers.{i}.blocks.{j}", res, win, heads)
        if i < stages - 1:
            if res >= window:
                x = _moa(x, sd, f"layers.{i}", res, window, heads, key_stride or window)
            x = _merge(x, sd, f"layers.{i}.downsample", res)
            res //= 2
    pooled = _ln(x, sd, "norm").mean(1)
    return _dense(pooled, sd, "head")
