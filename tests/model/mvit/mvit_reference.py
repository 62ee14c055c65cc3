"""A plain NumPy (float64, explicit loops) pooling attention written from mvit_spec.md §2, to check
`PoolingAttention` against something that shares no code with it: depthwise conv pooling of the grid tokens
with zero padding, LayerNorm over head_dim, scaled scores plus the decomposed relative bias of each
(query, key) pair, softmax, residual pooling, output projection."""

from __future__ import annotations

import math

import numpy as np


def depthwise_conv3d(x: np.ndarray, kernel: np.ndarray, stride: tuple[int, ...]) -> np.ndarray:
    """x (C, T, H, W), kernel (C, kt, kh, kw), padding k // 2, stride per axis."""
    c, *size = x.shape
    ks = kernel.shape[1:]
    pads = [k // 2 for k in ks]
    padded = np.pad(x, [(0, 0)] + [(p, p) for p in pads])
    out_size = [(n + 2 * p - k) // s + 1 for n, p, k, s in zip(size, pads, ks, stride)]
    out = np.zeros((c, *out_size))
    for t in range(out_size[0]):
        for h in range(out_size[1]):
            for w in range(out_size[2]):
                t0, h0, w0 = t * stride[0], h * stride[1], w * stride[2]
                patch = padded[:, t0:t0 + ks[0], h0:h0 + ks[1], w0:w0 + ks[2]]
                out[:, t, h, w] = (patch * kernel).reshape(c, -1).sum(1)
    return out


def layer_norm(x: np.ndarray, weight: np.ndarray, bias: np.ndarray, eps: float = 1e-6) -> np.ndarray:
    mean = x.mean(-1, keepdims=True)
    var = ((x - mean) ** 2).mean(-1, keepdims=True)
    return (x - mean) / np.sqrt(var + eps) * weight + bias


def resize_table(table: np.ndarray, rows: int) -> np.ndarray:
    """Linear interpolation along the rows, half-pixel centres (PyTorch's align_corners=False)."""
    length = table.shape[0]
    if length == rows:
        return table
    out = np.zeros((rows, table.shape[1]))
    for i in range(rows):
        src = max((i + 0.5) * length / rows - 0.5, 0.0)
        lo = min(math.floor(src), length - 1)
        hi = min(lo + 1, length - 1)
        frac = src - lo
        out[i] = table[lo] * (1 - frac) + table[hi] * frac
    return out


def _cubic(x: float, a: float = -0.75) -> float:
    """Keys' cubic convolution kernel with PyTorch's a = -0.75."""
    x = abs(x)
    if x <= 1:
        return ((a + 2) * x - (a + 3)) * x * x + 1
    if x < 2:
        return ((a * x - 5 * a) * x + 8 * a) * x - 4 * a
    return 0.0


def resize_cubic(table: np.ndarray, rows: int) -> np.ndarray:
    """Bicubic resampling along the rows (half-pixel centres, edge rows repeated), as PyTorch's
    bicubic mode does per axis."""
    length = table.shape[0]
    out = np.zeros((rows, *table.shape[1:]))
    for i in range(rows):
        src = (i + 0.5) * length / rows - 0.5
        base = math.floor(src)
        for tap in range(-1, 3):
            index = min(max(base + tap, 0), length - 1)
            out[i] += _cubic(src - (base + tap)) * table[index]
    return out


def rel_index(qi: int, ki: int, q_size: int, k_size: int) -> int:
    q_ratio, k_ratio = max(k_size / q_size, 1.0), max(q_size / k_size, 1.0)
    return math.floor(qi * q_ratio - ki * k_ratio + (k_size - 1) * k_ratio)


def attention(x: np.ndarray, grid, p: dict, heads: int, has_cls: bool, pools: dict, rel: bool,
              residual_pool: bool) -> tuple[np.ndarray, tuple[int, int, int]]:
    """One example x (N, C_in) -> (Nq, C_attn). `p`: parameters by PySlowFast name (no `attn.` prefix);
    `pools`: part -> stride for the parts that have a pooler."""
    n = x.shape[0]
    qkv = x @ p["qkv.weight"].T + p["qkv.bias"]
    dim = qkv.shape[1] // 3
    hd = dim // heads
    q, k, v = (qkv[:, i * dim:(i + 1) * dim].reshape(n, heads, hd).transpose(1, 0, 2) for i in range(3))
    grids = {}
    pooled = {}
    for part, tensor in (("q", q), ("k", k), ("v", v)):
        if part not in pools:
            pooled[part], grids[part] = tensor, tuple(grid)
            continue
        out = []
        for head in range(heads):
            cls, tokens = (tensor[head, :1], tensor[head, 1:]) if has_cls else (tensor[head, :0], tensor[head])
            volume = tokens.T.reshape(hd, *grid)
            conv = depthwise_conv3d(volume, p[f"pool_{part}.weight"][:, 0], pools[part])
            grids[part] = conv.shape[1:]
            seq = np.concatenate([cls, conv.reshape(hd, -1).T])
            out.append(layer_norm(seq, p[f"norm_{part}.weight"], p[f"norm_{part}.bias"]))
        pooled[part] = np.stack(out)
    q, k, v = pooled["q"], pooled["k"], pooled["v"]
    gq, gk = grids["q"], grids["k"]
    skip = int(has_cls)
    scores = np.einsum("hqc,hkc->hqk", q * hd ** -0.5, k)
    if rel:
        tables = {axis: resize_table(p[f"rel_pos_{axis}"], 2 * max(gq[i], gk[i]) - 1)
                  for i, axis in enumerate("thw")}
        q_coords = [(t, h, w) for t in range(gq[0]) for h in range(gq[1]) for w in range(gq[2])]
        k_coords = [(t, h, w) for t in range(gk[0]) for h in range(gk[1]) for w in range(gk[2])]
        for head in range(heads):
            for a, qc in enumerate(q_coords):
                query = q[head, skip + a]
                for b, kc in enumerate(k_coords):
                    bias = sum(query @ tables[axis][rel_index(qc[i], kc[i], gq[i], gk[i])]
                               for i, axis in enumerate("thw"))
                    scores[head, skip + a, skip + b] += bias
    scores = np.exp(scores - scores.max(-1, keepdims=True))
    out = (scores / scores.sum(-1, keepdims=True)) @ v
    if residual_pool:
        out[:, skip:] += q[:, skip:]
    out = out.transpose(1, 0, 2).reshape(out.shape[1], dim)
    return out @ p["proj.weight"].T + p["proj.bias"], gq
