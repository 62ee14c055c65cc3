"""MViTv2's decomposed relative position bias (Li et al. 2022), as an additive attention mask.

For a query at (t, h, w) and a key at (t', h', w') the bias is <q, R_t[d_t]> + <q, R_h[d_h]> + <q, R_w[d_w]>,
with q the pooled, normed, unscaled query and d the query-key distance per axis, scaled up to the finer of
the two grids. Tables whose length is not 2 * max(q, k) - 1 are linearly interpolated at run time, as both
PySlowFast and torchvision do, so a model runs at any clip or crop size.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def table_at(table: Tensor, rows: int) -> Tensor:
    """A (L, C) table resized to (rows, C) by linear interpolation (unchanged if it already fits)."""
    if table.shape[0] == rows:
        return table
    return F.interpolate(table.T.unsqueeze(0), size=rows, mode="linear").squeeze(0).T


def distance_index(q_size: int, k_size: int, device: torch.device) -> Tensor:
    """(q_size, k_size) row of the table for each query/key pair along one axis (PySlowFast's formula)."""
    q_ratio = max(k_size / q_size, 1.0)
    k_ratio = max(q_size / k_size, 1.0)
    dist = torch.arange(q_size, device=device)[:, None] * q_ratio - torch.arange(k_size, device=device)[None, :] * k_ratio
    dist += (k_size - 1) * k_ratio
    return dist.long()


def _axis_terms(q: Tensor, table: Tensor, q_size: int, k_size: int, axis: str) -> Tensor:
    """<q, R[d]> for one axis: (B, heads, t, h, w, k_size)."""
    rel = table_at(table, 2 * max(q_size, k_size) - 1)[distance_index(q_size, k_size, table.device)]
    return torch.einsum(f"bnthwc,{axis}kc->bnthwk", q, rel)


def rel_pos_bias(
    q: Tensor,
    grid_q: tuple[int, int, int],
    grid_k: tuple[int, int, int],
    rel_pos_h: Tensor | None,
    rel_pos_w: Tensor | None,
    rel_pos_t: Tensor | None,
) -> Tensor:
    """Bias (B, heads, Nq, Nk) between the grid tokens (no CLS) of q (B, heads, Nq, C) and a key grid."""
    b, n, _, c = q.shape
    (qt, qh, qw), (kt, kh, kw) = grid_q, grid_k
    r_q = q.reshape(b, n, qt, qh, qw, c)
    bias = q.new_zeros(b, n, qt, qh, qw, kt, kh, kw)
    if rel_pos_h is not None and rel_pos_w is not None:
        bias = bias + _axis_terms(r_q, rel_pos_h, qh, kh, "h")[..., None, :, None]
        bias = bias + _axis_terms(r_q, rel_pos_w, qw, kw, "w")[..., None, None, :]
    if rel_pos_t is not None:
        bias = bias + _axis_terms(r_q, rel_pos_t, qt, kt, "t")[..., :, None, None]
    return bias.reshape(b, n, qt * qh * qw, kt * kh * kw)
