"""Bad input: one ConfigError naming the key (or checkpoint key) and the fix, before any tensor exists."""

from __future__ import annotations

import copy
import dataclasses
import json

import pytest
import torch
from conftest import tiny_blocks, tiny_config

from mtv.errors import ConfigError
from mtv.interop.mvit import model_from_pyslowfast, model_from_torchvision
from mtv.models.mvit.config import MViTBlock
from mtv.models.registry import ModelInputs, get_family

INPUTS = ModelInputs(5, 8, (32, 32))
validate = get_family("mvit").validate


def _blocks(**changes_by_index):
    blocks = tiny_blocks(v2=True)
    for index, changes in changes_by_index.items():
        blocks[int(index[1:])] = dataclasses.replace(blocks[int(index[1:])], **changes)
    return blocks


@pytest.mark.parametrize("blocks,inputs,match", [
    (_blocks(b1={"stride_q": [1, 3, 3]}), INPUTS, r"model\.blocks\.1\.stride_q=\[1, 3, 3\] does not divide .*\[4, 8, 8\]"),
    (_blocks(b0={"stride_kv": [1, 3, 3]}), INPUTS, r"model\.blocks\.0\.stride_kv=\[1, 3, 3\] does not divide"),
    (_blocks(b3={"stride_q": [3, 2, 2]}), INPUTS, r"model\.blocks\.3\.stride_q=\[3, 2, 2\] does not divide .*\[4, 4, 4\]"),
    (_blocks(), ModelInputs(5, 8, (24, 24)), r"model\.blocks\.0\.stride_kv=\[1, 4, 4\] does not divide .*\[4, 6, 6\]"),
    (_blocks(b1={"num_heads": 3}), INPUTS, r"model\.blocks\.1\.num_heads=3 does not divide the attention width 16"),
    (_blocks(b2={"input_channels": 12}), INPUTS, r"model\.blocks\.2\.input_channels=12: .* set it to 16"),
    (_blocks(b1={"kernel_q": []}), INPUTS, r"model\.blocks\.1\.kernel_q=\[\].*needs both a kernel and a stride"),
    (_blocks(b1={"stride_q": [2, 2]}), INPUTS, r"model\.blocks\.1\.stride_q=\[2, 2\]: give \[\]"),
    ([], INPUTS, r"model\.blocks is empty"),
    (_blocks(), ModelInputs(5, 8, (30, 30)), r"data\.num_frames x data\.crop_size.*multiples of the patch stride"),
])
def test_bad_block_settings(blocks, inputs, match):
    with pytest.raises(ConfigError, match=match):
        validate(tiny_config(True, blocks=blocks), inputs)


def test_v1_heads_must_divide_the_input_width():
    blocks = tiny_blocks(v2=False)
    blocks[0] = MViTBlock(3, 8, 16, [], [3, 3, 3], [], [1, 4, 4])
    with pytest.raises(ConfigError, match=r"model\.blocks\.0\.num_heads=3 .* width 8 \(model\.blocks\.0\.input_channels\)"):
        validate(tiny_config(False, blocks=blocks), INPUTS)


@pytest.mark.parametrize("field,value,match", [
    ("pos_embed", "learned", r"model\.pos_embed='learned'"),
    ("stochastic_depth", 1.0, r"model\.stochastic_depth=1\.0"),
    ("patch_stride", [4, 4], r"model\.patch_stride=\[4, 4\]"),
])
def test_bad_model_fields(field, value, match):
    with pytest.raises(ConfigError, match=match):
        validate(tiny_config(True, **{field: value}), INPUTS)


@pytest.fixture()
def sf_cfg(fixtures):
    return json.loads((fixtures / "sf_v2_tiny_config.json").read_text())["cfg_full"]


@pytest.mark.parametrize("section,key,value,what", [
    ("REV", "ENABLE", True, "reversible MViT"),
    (None, "SEPARATE_QKV", True, "separate q/k/v projections"),
    (None, "USE_MEAN_POOLING", True, "mean-pooling head"),
    (None, "POOL_FIRST", True, "POOL_FIRST"),
    (None, "MODE", "avg", "MVIT.MODE='avg'"),
])
def test_unsupported_pyslowfast_features_are_named(sf_cfg, section, key, value, what):
    cfg = copy.deepcopy(sf_cfg)
    (cfg["MVIT"][section] if section else cfg["MVIT"])[key] = value
    with pytest.raises(ConfigError, match=f"asks for .*{what}.*does not implement"):
        model_from_pyslowfast(cfg, {})


def test_interop_state_dict_that_does_not_fit_names_the_first_key(fixtures):
    config = json.loads((fixtures / "tv_v1_tiny_config.json").read_text())
    state = torch.load(fixtures / "tv_v1_tiny_state_dict.pt", weights_only=True)
    del state["blocks.0.attn.pool_k.pool.weight"]
    with pytest.raises(ConfigError, match=r"blocks\.0\.attn\.pool_k\.weight is missing \(expected shape \[16, 1, 3, 3, 3\]\)"):
        model_from_torchvision(config["constructor_kwargs"], state)


def test_torchvision_arguments_we_do_not_know(fixtures):
    kwargs = json.loads((fixtures / "tv_v1_tiny_config.json").read_text())["constructor_kwargs"]
    with pytest.raises(ConfigError, match="norm_layer"):
        model_from_torchvision({**kwargs, "norm_layer": "BatchNorm1d"}, {})
    with pytest.raises(ConfigError, match="use_gelu"):
        model_from_torchvision({**kwargs, "use_gelu": True}, {})
