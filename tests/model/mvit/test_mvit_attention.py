"""PoolingAttention against a NumPy loop implementation written from the spec (mvit_reference.py)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import tiny_config
from mvit_reference import attention

from mtv.models.mvit.config import MViTBlock, block_geometry
from mtv.models.mvit.model import PoolingAttention
from mtv.models.registry import ModelInputs


def _perturbed(module: torch.nn.Module, seed: int) -> None:
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for param in module.parameters():
            param.add_(0.2 * torch.randn(param.shape, generator=generator))


def _compare(cfg, index: int, inputs: ModelInputs, grid=None) -> None:
    geo = block_geometry(cfg, inputs)[index]
    attn = PoolingAttention(cfg, index, geo).eval()
    _perturbed(attn, seed=index)
    grid = grid or geo.grid_in
    tokens = int(np.prod(grid)) + int(cfg.cls_token)
    x = torch.randn(2, tokens, geo.dim_in, generator=torch.Generator().manual_seed(7))
    with torch.no_grad():
        out, out_grid = attn(x, grid)
    block = cfg.blocks[index]
    pools = {part: stride for part, kernel, stride in (("q", block.kernel_q, block.stride_q),
                                                       ("k", block.kernel_kv, block.stride_kv),
                                                       ("v", block.kernel_kv, block.stride_kv))
             if np.prod(kernel) > 1 or np.prod(stride) > 1}
    params = {k: v.double().numpy() for k, v in attn.state_dict().items()}
    for b in range(2):
        ref, ref_grid = attention(x[b].double().numpy(), grid, params, geo.heads, cfg.cls_token, pools,
                                  geo.rel_pos_rows is not None, cfg.residual_pool)
        assert tuple(ref_grid) == tuple(out_grid)
        np.testing.assert_allclose(out[b].numpy(), ref, rtol=0, atol=2e-5)


INPUTS = ModelInputs(5, 8, (32, 32))  # token grid 4x8x8


@pytest.mark.parametrize("index", [0, 1, 3])
@pytest.mark.parametrize("cls_token", [True, False])
def test_v2_attention_matches_reference(index, cls_token):
    """Relative bias with q/kv grids of different sizes (blocks 0, 3), q pooling (1, 3), residual pooling."""
    _compare(tiny_config(True, cls_token=cls_token), index, INPUTS)


def test_v2_temporal_pooling_matches_reference():
    _compare(tiny_config(True, temporal_stride=2), 3, INPUTS)


def test_v1_attention_matches_reference():
    _compare(tiny_config(False), 1, INPUTS)


def test_relative_tables_interpolated_at_another_grid():
    """Tables sized for a 4x8x8 grid, run on 6x4x4: every table is linearly resized at run time."""
    cfg = tiny_config(True, blocks=[MViTBlock(2, 8, 8, [3, 3, 3], [3, 3, 3], [1, 1, 1], [1, 2, 2])])
    _compare(cfg, 0, INPUTS, grid=(6, 4, 4))
