"""`model.init.checkpoint`: torchvision state dicts and PySlowFast `.pyth` files, for evaluation and fine-tuning."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from conftest import tiny_config, to_torchvision
from mvit_reference import resize_cubic, resize_table

from mtv.errors import ConfigError
from mtv.models.mvit.config import MViTInit
from mtv.models.registry import ModelInputs, get_family

SOURCE = ModelInputs(5, 8, (32, 32))
FAMILY = get_family("mvit")


def _source(v2: bool):
    torch.manual_seed(0)
    return FAMILY.build(tiny_config(v2), SOURCE).eval()


def _save(tmp_path, model, layout: str, fixtures):
    state = model.state_dict()
    if layout == "torchvision":
        path = tmp_path / "mvit_tv.pth"
        torch.save(to_torchvision(state, fixtures), path)
    else:
        path = tmp_path / "checkpoint_epoch_00010.pyth"
        torch.save({"epoch": 10, "model_state": state, "optimizer_state": {}, "cfg": "MVIT:\n  DEPTH: 4\n"}, path)
    return str(path)


def _with_checkpoint(cfg, path):
    return dataclasses.replace(cfg, init=MViTInit(checkpoint=path))


@pytest.mark.parametrize("layout", ["torchvision", "pyslowfast"])
@pytest.mark.parametrize("v2", [False, True])
def test_evaluation_reproduces_the_saved_model(layout, v2, tmp_path, fixtures):
    source = _source(v2)
    path = _save(tmp_path, source, layout, fixtures)
    torch.manual_seed(123)  # another random init, overwritten by the checkpoint
    model = FAMILY.build(_with_checkpoint(tiny_config(v2), path), SOURCE).eval()
    video = torch.randn(2, 3, 8, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(model(video), source(video), rtol=0, atol=0)


def test_fine_tuning_v2_new_head_and_resized_tables(tmp_path, fixtures):
    """Other classes, clip and crop: the head stays new; relative tables are linearly resized."""
    source = _source(True)
    path = _save(tmp_path, source, "pyslowfast", fixtures)
    target = ModelInputs(3, 16, (48, 48))
    torch.manual_seed(1)
    fresh = FAMILY.build(tiny_config(True), target)
    torch.manual_seed(1)
    model = FAMILY.build(_with_checkpoint(tiny_config(True), path), target)
    got, src, new = model.state_dict(), source.state_dict(), fresh.state_dict()
    torch.testing.assert_close(got["head.projection.weight"], new["head.projection.weight"])
    assert got["head.projection.weight"].shape == (3, 32)
    assert got["blocks.0.attn.rel_pos_h"].shape == (23, 8) and got["blocks.0.attn.rel_pos_t"].shape == (15, 8)
    for key in ("blocks.0.attn.rel_pos_h", "blocks.0.attn.rel_pos_t", "blocks.3.attn.rel_pos_w"):
        expected = resize_table(src[key].double().numpy(), got[key].shape[0])
        np.testing.assert_allclose(got[key].numpy(), expected, rtol=0, atol=1e-6)
    torch.testing.assert_close(got["blocks.2.mlp.fc1.weight"], src["blocks.2.mlp.fc1.weight"])
    assert model(torch.randn(1, 3, 16, 48, 48)).shape == (1, 3)


def test_fine_tuning_v1_resizes_position_embeddings(tmp_path, fixtures):
    source = _source(False)
    path = _save(tmp_path, source, "torchvision", fixtures)
    model = FAMILY.build(_with_checkpoint(tiny_config(False), path), ModelInputs(5, 12, (48, 48)))
    got, src = model.state_dict(), source.state_dict()
    temporal = resize_table(src["pos_embed_temporal"][0].double().numpy(), 6)
    np.testing.assert_allclose(got["pos_embed_temporal"][0].numpy(), temporal, rtol=0, atol=1e-6)
    grid = src["pos_embed_spatial"][0].double().numpy().reshape(8, 8, -1)  # bicubic = rows, then columns
    spatial = resize_cubic(resize_cubic(grid, 12).transpose(1, 0, 2), 12).transpose(1, 0, 2)
    np.testing.assert_allclose(got["pos_embed_spatial"][0].numpy(), spatial.reshape(144, -1), rtol=0, atol=1e-6)
    torch.testing.assert_close(got["head.projection.weight"], src["head.projection.weight"])  # same classes: kept
    torch.testing.assert_close(got["pos_embed_class"], src["pos_embed_class"])


def test_missing_key_is_named_with_its_shape(tmp_path):
    state = _source(True).state_dict()
    del state["blocks.1.attn.norm_q.weight"]
    path = tmp_path / "broken.pyth"
    torch.save({"model_state": state}, path)
    with pytest.raises(ConfigError, match=r"blocks\.1\.attn\.norm_q\.weight is missing \(expected shape \[8\]\)"):
        FAMILY.build(_with_checkpoint(tiny_config(True), str(path)), SOURCE)


def test_misshapen_key_is_named_with_the_expected_shape(tmp_path):
    state = _source(True).state_dict()
    state["blocks.2.attn.qkv.weight"] = torch.zeros(48, 12)
    path = tmp_path / "wide.pyth"
    torch.save({"model_state": state}, path)
    with pytest.raises(ConfigError, match=r"blocks\.2\.attn\.qkv\.weight has shape \[48, 12\], expected \[48, 16\]"):
        FAMILY.build(_with_checkpoint(tiny_config(True), str(path)), SOURCE)


def test_v2_checkpoint_into_a_v1_model_is_refused(tmp_path, fixtures):
    path = _save(tmp_path, _source(True), "torchvision", fixtures)
    with pytest.raises(ConfigError, match="does not fit the model"):
        FAMILY.build(_with_checkpoint(tiny_config(False), path), SOURCE)


def test_unreadable_checkpoints(tmp_path):
    with pytest.raises(ConfigError, match="no such file"):
        FAMILY.validate(_with_checkpoint(tiny_config(True), str(tmp_path / "absent.pyth")), SOURCE)
    path = tmp_path / "not_weights.pt"
    torch.save({"epoch": 3}, path)
    with pytest.raises(ConfigError, match="model_state"):
        FAMILY.build(_with_checkpoint(tiny_config(True), str(path)), SOURCE)
    torch.save({"blocks.0.norm1.weight": torch.zeros(8)}, path)
    with pytest.raises(ConfigError, match="conv_proj.weight"):
        FAMILY.build(_with_checkpoint(tiny_config(True), str(path)), SOURCE)
