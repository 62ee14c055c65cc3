"""The mvit family through the registry: Hydra presets, geometry, counting (issue 10 acceptance), training hooks."""

from __future__ import annotations

import pytest
import torch
from conftest import compose_model, tiny_config

from mtv.models.mvit.config import block_geometry
from mtv.models.registry import ModelInputs, get_family

# issue 10 acceptance (torchvision / PySlowFast measured in mvit_spec.md §4): params exact, GMACs within 0.5%
ACCEPTANCE = [
    ("mvit_v1_b", 16, 36_610_672, 70.599),
    ("mvit_v2_s", 16, 34_537_744, 64.224),
    ("mvit_v2_b", 32, 51_230_128, 224.47),
    ("mvit_v1_b_32x3", 32, 36_611_440, 169.96),
]


@pytest.mark.parametrize("preset,frames,params,gmacs", ACCEPTANCE)
def test_full_size_counts(preset, frames, params, gmacs, tmp_path):
    family = get_family("mvit")
    cfg = compose_model(preset, tmp_path)
    inputs = ModelInputs(400, frames, (224, 224))
    with torch.device("meta"):
        model = family.build(cfg, inputs)
    profile = family.profile(model, inputs)
    assert profile["params_total"] == params == sum(p.numel() for p in model.parameters())
    assert profile["gmacs_per_view"] == pytest.approx(gmacs, rel=0.005)
    assert sum(profile["gmacs"].values()) == pytest.approx(profile["gmacs_per_view"])
    assert profile["input"] == [1, 3, frames, 224, 224]
    table = family.format_profile(profile)
    assert f"{params:,}" in table and "stage4" in table


def test_v1_counts_per_component(tmp_path):
    """The spec's per-module split: conv_proj 42,432 params and 1.062126 GMACs, pos_encoding (CLS included)
    302,016, norm 1,536 and head 307,600."""
    family = get_family("mvit")
    inputs = ModelInputs(400, 16, (224, 224))
    with torch.device("meta"):
        model = family.build(compose_model("mvit_v1_b", tmp_path), inputs)
    profile = family.profile(model, inputs)
    assert profile["params"]["patch_embed"] == 42_432 + 302_016
    assert profile["params"]["head"] == 1_536 + 307_600
    assert profile["gmacs"]["patch_embed"] == pytest.approx(1.062126, rel=1e-5)
    assert profile["blocks_per_stage"] == {"stage1": 1, "stage2": 2, "stage3": 11, "stage4": 2}


# mvit_spec.md §4.2, tv_mvit_v2_s: (block, q grid, kv grid, rel-pos rows h/w/t)
V2_S_GEOMETRY = [(0, (8, 56, 56), (8, 7, 7), (111, 111, 15)), (1, (8, 28, 28), (8, 14, 14), (55, 55, 15)),
                 (3, (8, 14, 14), (8, 14, 14), (27, 27, 15)), (14, (8, 7, 7), (8, 14, 14), (27, 27, 15)),
                 (15, (8, 7, 7), (8, 7, 7), (13, 13, 15))]


def test_v2_s_geometry_matches_spec(tmp_path):
    geometry = block_geometry(compose_model("mvit_v2_s", tmp_path), ModelInputs(400, 16, (224, 224)))
    for index, grid_q, grid_kv, rows in V2_S_GEOMETRY:
        assert (geometry[index].grid_q, geometry[index].grid_kv, geometry[index].rel_pos_rows) == (grid_q, grid_kv,
                                                                                                  rows)
    assert [g.dim_out for g in geometry][:4] == [96, 192, 192, 384]
    assert [g.heads for g in geometry][13:] == [4, 8, 8]


def test_block_settings_override_from_the_command_line(tmp_path):
    cfg = compose_model("mvit_v1_b", tmp_path, ["model.blocks.15.stride_kv=[1,7,7]", "model.cls_token=false"])
    assert cfg.blocks[15].stride_kv == [1, 7, 7] and cfg.blocks[14].stride_kv == [1, 1, 1]
    geometry = block_geometry(cfg, ModelInputs(400, 16, (224, 224)))
    assert geometry[15].grid_kv == (8, 1, 1)


def test_presets_compose_to_their_published_switches(tmp_path):
    v1, v2 = compose_model("mvit_v1_b", tmp_path), compose_model("mvit_v2_s", tmp_path)
    assert (v1.pos_embed, v1.rel_pos_spatial, v1.residual_pool, v1.dim_mul_in_att) == ("separable", False, False, False)
    assert (v2.pos_embed, v2.rel_pos_temporal, v2.residual_pool, v2.dim_mul_in_att) == ("none", True, True, True)
    assert v1.norm_eps == v2.norm_eps == 1e-6 and v1.cls_token and v2.cls_token


@pytest.mark.parametrize("v2", [False, True])
@pytest.mark.parametrize("cls_token", [True, False])
def test_tiny_model_trains(v2, cls_token):
    """A training step with dropout and stochastic depth on: finite loss, every parameter gets a gradient."""
    family = get_family("mvit")
    cfg = tiny_config(v2, cls_token=cls_token, dropout=0.3, stochastic_depth=0.2, block_dropout=0.1)
    model = family.build(cfg, ModelInputs(3, 8, (32, 32))).train()
    logits = model(torch.rand(2, 3, 8, 32, 32) * 2 - 1)
    assert logits.shape == (2, 3)
    torch.nn.functional.cross_entropy(logits, torch.tensor([0, 2])).backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())
    assert ("cls_token" in dict(model.named_parameters())) == cls_token


def test_cls_off_head_averages_normed_tokens():
    model = get_family("mvit").build(tiny_config(True, cls_token=False), ModelInputs(3, 8, (32, 32))).eval()
    video = torch.randn(1, 3, 8, 32, 32)
    with torch.no_grad():
        x, grid = model.patch_embed(video)
        for block in model.blocks:
            x, grid = block(x, grid)
        expected = model.head.projection(model.norm(x).mean(1))
        torch.testing.assert_close(model(video), expected)


def test_layer_decay_and_weight_decay_hooks():
    model = get_family("mvit").build(tiny_config(False), ModelInputs(3, 8, (32, 32)))
    assert model.num_layers_for_lr_decay == len(model.blocks) + 2
    assert model.layer_id("patch_embed.proj.weight") == 0 and model.layer_id("pos_embed_spatial") == 0
    assert model.layer_id("blocks.2.attn.qkv.weight") == 3
    assert model.layer_id("head.projection.weight") == model.num_layers_for_lr_decay - 1
    no_decay = model.no_weight_decay()
    assert {"cls_token", "pos_embed_spatial", "blocks.0.norm1.weight", "head.projection.bias"} <= no_decay
    assert "blocks.0.attn.qkv.weight" not in no_decay and "head.projection.weight" not in no_decay


def test_activation_checkpointing_gives_the_same_gradients():
    family = get_family("mvit")
    grads = []
    for enabled in (False, True):
        torch.manual_seed(0)
        model = family.build(tiny_config(True), ModelInputs(3, 8, (32, 32))).train()
        model.grad_checkpointing = enabled
        model(torch.ones(1, 3, 8, 32, 32)).sum().backward()
        grads.append(model.blocks[1].attn.qkv.weight.grad)
    torch.testing.assert_close(grads[0], grads[1])
