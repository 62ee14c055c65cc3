"""Fine-tuning from an MTV checkpoint: same shapes load exactly, input-dependent tensors are resized."""

from __future__ import annotations

import pytest
import torch

from mtv import ConfigError, build_model
from mtv.interop.checkpoint import save_model_checkpoint
from mtv.models.mtv.checkpoint_init import init_from_checkpoint

torch.set_num_threads(1)

CFG = {
    "variant": "Ti/8x4+S/8x2",
    "encoder_sizes": {"Ti": {"hidden_size": 16, "num_heads": 2, "mlp_dim": 32, "num_layers": 2},
                      "S": {"hidden_size": 32, "num_heads": 2, "mlp_dim": 64, "num_layers": 2}},
    "fusion": {"type": "bottleneck", "layers": [1], "bottleneck_tokens": 2},
    "global_encoder": {"num_layers": 1, "num_heads": 2, "mlp_dim": 32},
}


def trained(num_classes: int = 5, frames: int = 8, size: int = 32):
    model = build_model(CFG, num_classes, frames, size)
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for param in model.parameters():
            param.add_(0.1 * torch.randn(param.shape, generator=gen))
    return model.eval()


def test_same_architecture_reloads_exactly_from_a_file(tmp_path):
    source = trained()
    path = tmp_path / "mtv.ckpt"
    save_model_checkpoint(path, source, CFG, 5, 8, (32, 32), "test")
    model = build_model({**CFG, "init": {"checkpoint": str(path), "restore_head": True}}, 5, 8, 32).eval()
    x = torch.randn(2, 3, 8, 32, 32)
    with torch.no_grad():
        assert torch.allclose(model(x), source(x), atol=1e-6)


def test_new_frame_count_resolution_and_classes_are_resized():
    source = trained()
    model = build_model(CFG, 7, 16, 48)  # 2x the slots, 6x6 grid instead of 4x4, new classes
    init_from_checkpoint(model, source.state_dict())
    view0 = model.views[0]
    assert view0.cls_token.shape == (1, 4, 1, 16)
    # linear interpolation with aligned corners keeps the end points
    assert torch.allclose(view0.cls_token[0, [0, -1]], source.views[0].cls_token[0, [0, -1]])
    assert torch.allclose(view0.pos_embed[0, 0], source.views[0].pos_embed[0, 0])  # CLS slot kept
    g_new, g_old = model.global_encoder.pos_embed, source.global_encoder.pos_embed
    assert g_new.shape == (1, 1 + 8, 48) and torch.allclose(g_new[0, [0, 1, -1]], g_old[0, [0, 1, -1]])
    assert model.fusion.tokens.shape == (1, 4, 2, 32)
    assert torch.equal(model.head.weight, torch.zeros(7, 48))  # the head is the new model's
    assert torch.equal(model.views[1].blocks[0].attn.qkv.weight, source.views[1].blocks[0].attn.qkv.weight)
    assert torch.isfinite(model(torch.randn(1, 3, 16, 48, 48))).all()


def test_constant_cls_tokens_stay_constant_when_resized():
    source = trained()
    with torch.no_grad():
        source.views[1].cls_token.fill_(1.0)
    model = build_model(CFG, 5, 16, 32)
    init_from_checkpoint(model, source.state_dict())
    assert torch.allclose(model.views[1].cls_token, torch.ones(1, 8, 1, 32))


def test_other_architecture_is_rejected_naming_the_tensor():
    source = trained()
    other = build_model({**CFG, "fusion": {"type": "none"}}, 5, 8, 32)
    with pytest.raises(ConfigError, match="unexpected fusion.tokens"):
        init_from_checkpoint(other, source.state_dict())
    wider = build_model({**CFG, "encoder_sizes": {**CFG["encoder_sizes"], "Ti": {"hidden_size": 24,
                         "num_heads": 2, "mlp_dim": 32, "num_layers": 2}}}, 5, 8, 32)
    with pytest.raises(ConfigError, match="views.0.*cannot be resized|views.0.*needs"):
        init_from_checkpoint(wider, source.state_dict())


def test_missing_file_is_named(tmp_path):
    with pytest.raises(ConfigError, match="model.init.checkpoint=.*no such file"):
        build_model({**CFG, "init": {"checkpoint": str(tmp_path / "nope.ckpt")}}, 5, 8, 32)
