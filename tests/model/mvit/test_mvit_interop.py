"""PySlowFast and torchvision settings beyond the fixtures map to the parameters those implementations create."""

from __future__ import annotations

import copy
import json

import pytest
import torch

from mtv.interop.mvit import model_from_pyslowfast, pyslowfast_config, round_width, torchvision_config
from mtv.models.mvit import build
from mtv.models.mvit.checkpoint import TORCHVISION_KEYS


@pytest.fixture()
def sf_cfg(fixtures):
    return json.loads((fixtures / "sf_v2_tiny_config.json").read_text())["cfg_full"]


def _v1(cfg, **mvit):
    cfg = copy.deepcopy(cfg)
    cfg["MVIT"].update(USE_ABS_POS=True, SEP_POS_EMBED=True, REL_POS_SPATIAL=False, REL_POS_TEMPORAL=False,
                       RESIDUAL_POOLING=False, DIM_MUL_IN_ATT=False, POOL_Q_STRIDE=[[1, 1, 2, 2], [3, 1, 2, 2]])
    cfg["MVIT"].update(mvit)
    return cfg


def _shapes(cfg):
    return {k: list(v.shape) for k, v in build(*pyslowfast_config(cfg)).state_dict().items()}


def test_cls_off_has_no_cls_parameters_and_still_runs(sf_cfg):
    cfg = _v1(sf_cfg, CLS_EMBED_ON=False)
    shapes = _shapes(cfg)
    assert "cls_token" not in shapes and "pos_embed_class" not in shapes
    assert shapes["pos_embed_spatial"] == [1, 64, 16] and shapes["pos_embed_temporal"] == [1, 4, 16]
    state = build(*pyslowfast_config(cfg)).state_dict()
    assert model_from_pyslowfast(cfg, state)(torch.randn(1, 3, 8, 32, 32)).shape == (1, 5)


@pytest.mark.parametrize("cls_on,tokens", [(True, 257), (False, 256)])
def test_joint_position_embedding(sf_cfg, cls_on, tokens):
    shapes = _shapes(_v1(sf_cfg, SEP_POS_EMBED=False, CLS_EMBED_ON=cls_on))
    assert shapes["pos_embed"] == [1, tokens, 16] and "pos_embed_spatial" not in shapes


def test_temporal_q_pooling_geometry(sf_cfg):
    """A temporal q stride halves T: skip max-pool 3x3x3, later blocks' rel_pos_t sized for the pooled T."""
    cfg = copy.deepcopy(sf_cfg)
    cfg["MVIT"]["POOL_Q_STRIDE"] = [[0, 1, 1, 1], [1, 2, 2, 2], [2, 1, 1, 1], [3, 1, 2, 2], [4, 1, 1, 1]]
    model = build(*pyslowfast_config(cfg)).eval()
    assert model.blocks[1].pool_skip.kernel_size == [3, 3, 3]
    assert model.blocks[1].attn.rel_pos_t.shape[0] == 2 * 4 - 1 and model.blocks[2].attn.rel_pos_t.shape[0] == 3
    assert model.blocks[1].attn.pool_k.stride == (1, 2, 2)  # adaptive kv stride: [1, 4, 4] // [2, 2, 2] floored at 1
    assert model(torch.randn(2, 3, 8, 32, 32)).shape == (2, 5)


def test_kernels_from_strides_without_pool_kvq_kernel(sf_cfg):
    cfg = copy.deepcopy(sf_cfg)
    cfg["MVIT"]["POOL_KVQ_KERNEL"] = None
    shapes = _shapes(cfg)
    assert shapes["blocks.0.attn.pool_k.weight"] == [16, 1, 1, 5, 5]  # kv stride [1, 4, 4] -> kernel s + 1
    assert "blocks.0.attn.pool_q.weight" not in shapes  # q stride [1, 1, 1], kernel [1, 1, 1]: no pooler
    assert shapes["blocks.1.attn.pool_q.weight"] == [16, 1, 1, 3, 3]


def test_no_qkv_bias_and_mlp_ratio(sf_cfg):
    cfg = copy.deepcopy(sf_cfg)
    cfg["MVIT"].update(QKV_BIAS=False, MLP_RATIO=2.0)
    shapes = _shapes(cfg)
    assert "blocks.0.attn.qkv.bias" not in shapes and shapes["blocks.0.mlp.fc1.weight"] == [32, 16]


def test_round_width_as_pyslowfast():
    assert round_width(96, 2.0, divisor=4) == 192
    assert round_width(20, 1.5, divisor=8) == 32  # 30 rounds to 32 (nearest multiple of 8, not below 90%)
    assert round_width(7, 1.0) == 7 and round_width(5, 0) == 5


def test_torchvision_residual_with_cls_and_defaults(fixtures):
    kwargs = json.loads((fixtures / "tv_v1_tiny_config.json").read_text())["constructor_kwargs"]
    kwargs = {k: v for k, v in kwargs.items() if k not in ("dropout", "num_classes", "stochastic_depth_prob")}
    cfg, inputs = torchvision_config({**kwargs, "residual_pool": True, "residual_with_cls_embed": True})
    assert cfg.residual_pool_cls and (cfg.dropout, cfg.stochastic_depth, inputs.num_classes) == (0.5, 0.0, 400)


def test_torchvision_key_rules_cover_every_published_key(fixtures):
    """Every torchvision key of the full-size listings is renamed (none passes through unmapped by accident)."""
    import re

    mapping = json.loads((fixtures / "keys" / "key_mapping_full.json").read_text())
    for pairs in mapping.values():
        for pair in pairs:
            name = pair["torchvision"]
            for pattern, repl in TORCHVISION_KEYS:
                name, hits = re.subn(pattern, repl, pair["torchvision"])
                if hits:
                    break
            assert name == pair["pyslowfast"]
