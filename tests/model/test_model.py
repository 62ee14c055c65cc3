"""The MTV model: structure, fusion types, baselines, initial behaviour and bad-config errors."""

from __future__ import annotations

import copy

import pytest
import torch

from mtv import MTV, ConfigError, Ensemble, MTVConfig, build_model
from mtv.models.layers import drop_path
from mtv.models.mtv.fusion import BottleneckFusion, CrossViewAttention, MLPFusion
from mtv.models.variants import parse_variant

torch.set_num_threads(1)

# Tiny encoders keep the structure of the paper's models (views, tubelets, fusion) at test size.
TINY = {"global_encoder": {"num_layers": 1, "num_heads": 2, "mlp_dim": 32}}


def tiny_model(variant: str = "B/2+S/4+Ti/8", fusion: dict | None = None, **extra) -> MTV:
    """Ti/S/B-shaped views shrunk to width 16-64 and 2-3 layers, 8 frames of 32x32."""
    cfg = {"variant": variant, "fusion": fusion or {"type": "none"}, **TINY, **extra}
    config = MTVConfig.from_cfg(cfg, num_classes=5, num_frames=8, image_size=32)
    small = {"Ti": (16, 2, 32, 2), "S": (32, 2, 64, 2), "B": (64, 4, 128, 3)}
    views = []
    for view in config.views:
        d, h, m, n = small[view.size]
        views.append(type(view)(d, h, m, n, (8, 8, view.patch[2]), view.frame_stride, view.name, view.size))
    config = config.with_views(views)
    config.validate()
    model = MTV(config)
    randomise(model)
    return model


def randomise(model: torch.nn.Module) -> None:
    """Move every parameter off its (often zero) initial value so all paths carry signal."""
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for param in model.parameters():
            param.add_(0.05 * torch.randn(param.shape, generator=gen))


def video(batch: int = 2, frames: int = 8, size: int = 32) -> torch.Tensor:
    return torch.randn(batch, 3, frames, size, size, generator=torch.Generator().manual_seed(1))


# ---- variants and view order ---------------------------------------------------------------------
def test_variant_grammar_matches_scenic_config_utils():
    assert [v.patch for v in parse_variant("B/2")] == [(16, 16, 2)]
    assert [v.patch for v in parse_variant("B/18x2")] == [(18, 18, 2)]
    assert [v.patch for v in parse_variant("B/18x18x2")] == [(18, 18, 2)]
    assert [v.patch for v in parse_variant("S/8+B/4+H/2")] == [(16, 16, 8), (16, 16, 4), (14, 14, 2)]
    assert [v.patch for v in parse_variant("S/14x8+B/12x4+H/18x2")] == [(14, 14, 8), (12, 12, 4), (18, 18, 2)]


@pytest.mark.parametrize("bad", ["X/2", "B2", "B/", "B/2x", "B/0", "B/ax2", "", "B/2++S/4"])
def test_bad_variant_strings_name_the_view(bad):
    with pytest.raises(ConfigError, match="model.variant"):
        MTVConfig.from_cfg({"variant": bad}, 10, 32, 224)


def test_paper_and_scenic_orders_build_the_same_model():
    paper = MTVConfig.from_cfg({"variant": "B/2+S/4+Ti/8"}, 400, 32, 224)
    scenic = MTVConfig.from_cfg({"variant": "Ti/8+S/4+B/2"}, 400, 32, 224)
    assert paper.views == scenic.views
    assert [v.name for v in paper.views] == ["Ti/8", "S/4", "B/2"]
    # written_order maps the k-th written view to its model index (for per-view checkpoints)
    assert paper.written_order == (2, 1, 0)
    assert scenic.written_order == (0, 1, 2)


def test_view_order_follows_token_count_not_encoder_size():
    # B/8 has the fewest tokens, so it is view 0 and queries S/4 in CVA (scenic's t1a row)
    config = MTVConfig.from_cfg({"variant": "B/8+S/4+Ti/2", "fusion": {"type": "cva", "layers": [5, 11]}}, 400, 32, 224)
    assert [v.name for v in config.views] == ["B/8", "S/4", "Ti/2"]
    assert config.cva_pairs() == [(1, 2), (0, 1)]


def test_temporal_alignment_shapes_for_mtv_b():
    config = MTVConfig.from_cfg({"variant": "B/2+S/4+Ti/8"}, 400, 32, 224)
    assert [config.temporal_tokens(i) for i in range(3)] == [4, 8, 16]
    assert (config.t_min, config.t_max, config.global_width) == (4, 16, 1344)
    with torch.device("meta"):
        model = MTV(config)
        tokens = [view.tokenize(torch.empty(2, 3, 32, 224, 224), config.t_min) for view in model.views]
    assert [tuple(t.shape) for t in tokens] == [(8, 197, 192), (8, 394, 384), (8, 788, 768)]


# ---- forward pass and fusion types ------------------------------------------------------------------
@pytest.mark.parametrize("fusion", [
    {"type": "none"},
    {"type": "cva", "layers": [0, 2]},
    {"type": "bottleneck", "layers": [1, 2], "bottleneck_tokens": 2},
    {"type": "mlp", "layers": [1]},
])
def test_every_fusion_type_runs_forward_and_backward(fusion):
    model = tiny_model(fusion=fusion)
    logits = model(video())
    assert logits.shape == (2, 5) and torch.isfinite(logits).all()
    logits.sum().backward()
    grads = [p.grad for p in model.fusion.parameters()]
    assert all(g is not None and g.abs().sum() > 0 for g in grads)


@pytest.mark.parametrize("fusion", [{"type": "cva", "layers": [0, 2]}, {"type": "mlp", "layers": [0, 1]}])
def test_fusion_is_the_identity_at_initialisation(fusion):
    """CVA output projections and MLP-fusion projections start at zero: a fused model computes what the
    same weights compute without fusion (what keeps ViT-initialised views intact)."""
    fused = tiny_model(fusion=fusion)
    plain = tiny_model(fusion={"type": "none"})
    plain.load_state_dict({k: v for k, v in fused.state_dict().items() if not k.startswith("fusion.")})
    with torch.no_grad():
        fused_init = copy.deepcopy(fused)
        for name, param in fused_init.fusion.named_parameters():
            if name.endswith("proj.weight") or name.endswith("proj.bias") or name.startswith("projections"):
                param.zero_()
        assert torch.allclose(fused_init(video()), plain(video()), atol=1e-6)
        assert not torch.allclose(fused(video()), plain(video()), atol=1e-4)  # fusion does act once trained


def test_fresh_model_outputs_zero_logits_like_scenic():
    model = build_model({"variant": "Ti/4+Ti/2", "fusion": {"type": "cva", "layers": [1]}, **TINY}, 7, 8, 32)
    assert torch.equal(model(video()), torch.zeros(2, 7))
    assert isinstance(model.fusion, CrossViewAttention)
    cva = model.fusion.attention
    assert all(torch.equal(m.proj.weight, torch.zeros_like(m.proj.weight)) for m in cva.values())


def test_cva_uses_pre_update_keys_and_reaches_views_without_own_block():
    """MTV-L-like depths: the deeper view's last layer still sends CVA into the finished shallow view."""
    model = tiny_model("B/2+Ti/4", fusion={"type": "cva", "layers": [2]})  # Ti has 2 layers, B has 3
    assert [v.num_layers for v in model.config.views] == [2, 3]
    xs = [torch.randn(4, 2 * 17, 16), torch.randn(4, 4 * 17, 64)]
    blocks = [None, model.views[1].blocks[2]]
    out, _ = model.fusion.fuse(2, xs, blocks, 2, None)
    assert not torch.allclose(out[0], xs[0])  # shallow view got the cross-attention residual
    expected_query = model.fusion.norms["2"][0](xs[0])
    expected = xs[0] + model.fusion.attention["2_0_1"](expected_query, model.fusion.norms["2"][1](xs[1]))
    assert torch.allclose(out[0], expected, atol=1e-6)


def test_bottleneck_projections_follow_width_changes():
    model = tiny_model(fusion={"type": "bottleneck", "layers": [0, 1], "bottleneck_tokens": 3})
    assert isinstance(model.fusion, BottleneckFusion)
    # descending: B (64) -> S (32) -> Ti (16), then back up to B at the next fusion layer
    assert sorted(model.fusion.projections) == ["0_view0", "0_view1", "1_view0", "1_view1", "1_view2"]
    assert model.fusion.tokens.shape == (1, 1, 3, 64)


def test_mlp_fusion_reads_the_neighbour_with_more_tokens():
    model = tiny_model(fusion={"type": "mlp", "layers": [1]})
    assert isinstance(model.fusion, MLPFusion)
    assert sorted(model.fusion.projections) == ["1_view0", "1_view1"]
    # view 0 (Ti/8, 1 slot per chunk) reads S/4 (2 slots): the S tokens are averaged over those slots
    x = torch.randn(2, 2 * 17, 32)
    aligned = model.fusion._align(x, 1, 0)
    assert aligned.shape == (2, 17, 32)
    assert torch.allclose(aligned, x.view(2, 2, 17, 32).mean(1), atol=1e-6)


def test_channel_merge_tiles_rather_than_interleaves():
    model = tiny_model()
    a = torch.zeros(1, 1, 16)  # Ti/8: 1 slot
    b = torch.arange(2.0).view(1, 2, 1).expand(1, 2, 32)  # S/4: 2 slots
    c = torch.zeros(1, 4, 64)  # B/2: 4 slots
    merged = model.global_encoder.merge_views([a, b, c])
    assert merged[0, :, 16].tolist() == [0, 1, 0, 1]  # tile: s0 s1 s0 s1, not s0 s0 s1 s1


def test_time_merge_and_gap_classifier():
    model = tiny_model(global_encoder={"num_layers": 1, "num_heads": 2, "mlp_dim": 32, "hidden_size": 24,
                                       "merge": "time"}, classifier="gap")
    assert model.global_encoder.pos_embed.shape == (1, 1 + 2 + 4, 24)
    assert model(video()).shape == (2, 5)


# ---- baselines ------------------------------------------------------------------------------------
def test_mtv_single_view_is_a_single_view_configuration():
    model = build_model({"name": "mtv_single_view", "variant": "Ti/2", **TINY}, 3, 8, 32)
    assert isinstance(model, MTV) and len(model.views) == 1
    assert model(video()).shape == (2, 3)


def test_slowfast_views_differ_by_frame_rate():
    cfg = {"name": "slowfast", "variant": "B/1+Ti/1", "frame_strides": [4, 1],
           "fusion": {"type": "cva", "layers": [5, 11]}}
    config = MTVConfig.from_cfg(cfg, 400, 32, 224)
    slow, fast = config.views
    assert (slow.size, slow.frame_stride, config.temporal_tokens(0)) == ("B", 4, 8)
    assert (fast.size, fast.frame_stride, config.temporal_tokens(1)) == ("Ti", 1, 32)
    assert config.cva_pairs() == [(0, 1)]  # slow (fewer tokens) queries fast
    small = build_model({**cfg, "variant": "Ti/1+Ti/1", "fusion": {"type": "cva", "layers": [1]}, **TINY}, 3, 8, 32)
    assert small(video()).shape == (2, 3)


def test_slowfast_with_a_tubelet_view_is_rejected():
    with pytest.raises(ConfigError, match="slowfast.*tubelet length 1"):
        MTVConfig.from_cfg({"name": "slowfast", "variant": "B/2+Ti/1", "frame_strides": [4, 1]}, 400, 32, 224)


def test_ensemble_averages_member_softmax():
    ens = build_model({"name": "ensemble", "members": ["Ti/2", "Ti/4"], **TINY}, 4, 8, 32)
    assert isinstance(ens, Ensemble) and len(ens.members) == 2
    randomise(ens)
    x = video()
    probs = torch.stack([m(x).softmax(-1) for m in ens.members]).mean(0)
    assert torch.allclose(ens(x).exp(), probs, atol=1e-6)


def test_ensemble_members_default_to_the_views_of_the_variant():
    ens = build_model({"name": "ensemble", "variant": "Ti/4+Ti/2", **TINY}, 4, 8, 32)
    assert [m.config.variant for m in ens.members] == ["Ti/4", "Ti/2"]
    with pytest.raises(ConfigError, match="model.members"):
        build_model({"name": "ensemble"}, 4, 8, 32)


def test_unknown_model_keys_are_rejected():
    with pytest.raises(ConfigError, match="unknown key\\(s\\) model.fusion.layer;"):
        build_model({"variant": "B/2", "fusion": {"type": "cva", "layer": [5]}}, 4, 32, 224)
    with pytest.raises(ConfigError, match="model.depth"):
        build_model({"variant": "B/2", "depth": 3}, 4, 32, 224)


# ---- training behaviour ------------------------------------------------------------------------------
def test_stochastic_depth_mask_is_shared_by_an_examples_chunks():
    torch.manual_seed(0)
    x = torch.ones(6 * 4, 3, 2)  # 6 examples x 4 chunks
    out = drop_path(x, 0.5, training=True, chunks=4).view(6, 4, -1)
    assert (out == out[:, :1]).all()  # same decision for every chunk of an example
    assert set(out.unique().tolist()) <= {0.0, 2.0} and len(out.unique()) == 2


def test_grad_checkpointing_gives_the_same_gradients():
    model = tiny_model(fusion={"type": "cva", "layers": [1]})
    model.train()
    x = video()
    model(x).sum().backward()
    plain = {n: p.grad.clone() for n, p in model.named_parameters()}
    model.zero_grad()
    model.grad_checkpointing = True
    model(x).sum().backward()
    assert all(torch.allclose(p.grad, plain[n], atol=1e-5) for n, p in model.named_parameters())


def test_layer_ids_for_lr_decay_increase_with_depth():
    model = tiny_model(fusion={"type": "cva", "layers": [1]})
    ids = {name: model.layer_id(name) for name, _ in model.named_parameters()}
    assert ids["views.0.tokenizer.weight"] == 0
    assert ids["views.2.blocks.2.attn.qkv.weight"] == 3
    assert ids["fusion.attention.1_1_2.q.weight"] == 2
    assert ids["global_encoder.blocks.0.mlp.fc1.weight"] == 4
    assert ids["head.weight"] == model.num_layers_for_lr_decay - 1
    assert max(ids.values()) < model.num_layers_for_lr_decay


# ---- bad configurations: one clear error at build time ----------------------------------------------
@pytest.mark.parametrize(("cfg", "frames", "size", "message"), [
    ({"variant": "B/2+Ti/8", "fusion": {"type": "cva", "layers": [5, 12]}}, 32, 224, r"\[12\] outside .* 0\.\.11"),
    ({"variant": "B/2", "fusion": {"type": "cva", "layers": [-1]}}, 32, 224, "outside"),
    ({"variant": "B/2", "fusion": {"type": "cross"}}, 32, 224, "model.fusion.type='cross' is not one of"),
    ({"variant": "B/2+Ti/8"}, 30, 224, "data.num_frames=30 .* multiple of 8"),
    ({"variant": "B/2"}, 32, 200, "image size 200x200 .* 16x16 patch"),
    ({"variant": "B/2", "global_encoder": {"num_heads": 5}}, 32, 224, "num_heads=5 does not divide .* 768"),
    ({"variant": "B/2+Ti/5"}, 20, 224, "multiples of the smallest"),
    ({"variant": "B/2", "classifier": "mean"}, 32, 224, "model.classifier='mean'"),
    ({"variant": "B/2", "frame_strides": [2, 1]}, 32, 224, "model.frame_strides"),
    ({"variant": "B/2", "stochastic_depth": 1.5}, 32, 224, "model.stochastic_depth"),
    ({"variant": "B/2", "fusion": {"type": "cva", "layers": []}}, 32, 224, "model.fusion.layers is empty"),
    ({"name": "vivid", "variant": "B/2"}, 32, 224, "model.name='vivid' is not a registered model family"),
])
def test_bad_configs_fail_before_any_tensor_is_built(cfg, frames, size, message):
    with pytest.raises(ConfigError, match=message):
        build_model(cfg, 400, frames, size)


def test_heads_that_do_not_divide_a_view_width_are_rejected():
    config = MTVConfig.from_cfg({"variant": "B/2"}, 10, 32, 224)
    view = config.views[0]
    bad = config.with_views([type(view)(100, 12, 400, 2, view.patch, 1, "custom")])
    with pytest.raises(ConfigError, match="12 heads do not divide hidden size 100"):
        bad.validate()


def test_encoder_sizes_shrink_encoders_but_keep_structure():
    cfg = {"variant": "B/2+S/4+Ti/8", "encoder_sizes": {"B": {"hidden_size": 64, "num_heads": 2, "num_layers": 3}}}
    config = MTVConfig.from_cfg(cfg, 10, 32, 224)
    b = config.views[2]
    assert (b.name, b.hidden_size, b.num_heads, b.mlp_dim, b.num_layers) == ("B/2", 64, 2, 3072, 3)
    assert config.views[0].hidden_size == 192  # others untouched
    with pytest.raises(ConfigError, match="model.encoder_sizes.X"):
        MTVConfig.from_cfg({"variant": "B/2", "encoder_sizes": {"X": {}}}, 10, 32, 224)
    with pytest.raises(ConfigError, match="unknown keys \\['width'\\]"):
        MTVConfig.from_cfg({"variant": "B/2", "encoder_sizes": {"B": {"width": 8}}}, 10, 32, 224)
