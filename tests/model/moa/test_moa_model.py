"""MoA forward pass: the authors' fixture, an independent spec re-statement on cases the fixture does not cover,
images and videos, and what training needs (stochastic depth, gradients, weight-decay and layer ids)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from moa_helpers import FIXTURE, authors_kwargs, authors_state, compose_model  # noqa: E402
from moa_reference_impl import reference_logits  # noqa: E402

from mtv.interop.moa import authors_config, model_from_authors  # noqa: E402
from mtv.models.moa.model import MoATransformer  # noqa: E402
from mtv.models.registry import ModelInputs, get_family  # noqa: E402

torch.set_num_threads(1)
ATOL = 2e-5  # moa_spec.md §4
needs_fixture = pytest.mark.skipif(FIXTURE is None, reason="MoA fixture not found (set MTV_MOA_FIXTURE)")


@needs_fixture
def test_authors_fixture_logits() -> None:
    kwargs = json.loads((FIXTURE / "tiny224_config.json").read_text())["ctor_kwargs"]
    io = torch.load(FIXTURE / "tiny224_io.pt", weights_only=True)
    model = model_from_authors(kwargs, FIXTURE / "tiny224_state_dict.pt")
    assert not model.training
    with torch.no_grad():
        logits = model(io["input"])
    torch.testing.assert_close(logits, io["logits"], atol=ATOL, rtol=0)


@needs_fixture
def test_reference_reproduces_fixture() -> None:
    """The spec re-statement the other cases are checked against is itself right on the authors' numbers."""
    kwargs = json.loads((FIXTURE / "tiny224_config.json").read_text())["ctor_kwargs"]
    io = torch.load(FIXTURE / "tiny224_io.pt", weights_only=True)
    state = {k: v.double() if v.is_floating_point() else v
             for k, v in torch.load(FIXTURE / "tiny224_state_dict.pt", weights_only=True).items()}
    logits = reference_logits(kwargs, state, io["input"].double())
    torch.testing.assert_close(logits, io["logits"].double(), atol=ATOL, rtol=0)


# (kwargs, key stride of the reference): cases the fixture does not cover
CASES = {
    # CIFAR-style, four stages, 8x8 / 4x4 / 2x2 MOA grids with window 4 (the authors' stride 14 crashes here)
    "cifar_w4": (dict(img_size=32, patch_size=1, embed_dim=32, depths=[1, 1, 1, 1], num_heads=[1, 2, 4, 8],
                      window_size=4, num_classes=3), None),
    # window 7 on 28 -> 14 -> 7: multi-window MOA below 14, last window not clipped; no q/k/v biases
    "w7_three_stages": (dict(img_size=112, patch_size=4, embed_dim=32, depths=[1, 2, 1], num_heads=[2, 2, 4],
                             window_size=7, num_classes=4, qkv_bias=False), None),
    # single-window maps: a one-query MOA at 14x14, then the window clipped 14 -> 7
    "single_window": (dict(img_size=56, patch_size=4, embed_dim=64, depths=[2, 1], num_heads=[2, 4],
                           window_size=14, num_classes=2), None),
    # window 16 on 32x32: the authors' stride 14 happens to give 2x2 key patches, and their code runs with it
    "w16_stride14": (dict(img_size=64, patch_size=2, embed_dim=32, depths=[1, 1], num_heads=[2, 2],
                          window_size=16, num_classes=3), 14),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_matches_spec_reference(case: str) -> None:
    kwargs, stride = CASES[case]
    kwargs = authors_kwargs(**kwargs)
    cfg, inputs = authors_config(kwargs)
    state = authors_state(MoATransformer(cfg, inputs.num_classes, inputs.image_size), seed=7)
    model = model_from_authors(kwargs, state).double()
    images = torch.randn(2, 3, kwargs["img_size"], kwargs["img_size"], generator=torch.Generator().manual_seed(3),
                         dtype=torch.float64)
    with torch.no_grad():
        logits = model(images)
    expected = reference_logits(kwargs, {k: v.double() if v.is_floating_point() else v for k, v in state.items()},
                                images, key_stride=stride)
    torch.testing.assert_close(logits, expected, atol=1e-10, rtol=0)


def test_window_stride_generalisation_differs_from_stride14_in_the_corner_case() -> None:
    """Where the authors' stride 14 runs but is not the window (16), the explicit stride 16 is another model."""
    kwargs = authors_kwargs(**CASES["w16_stride14"][0])
    cfg, inputs = authors_config(kwargs)
    assert [s.moa_key_stride for s in MoATransformer(cfg, 3, inputs.image_size).geometry if s.moa] == [14]
    state = authors_state(MoATransformer(cfg, inputs.num_classes, inputs.image_size), seed=1)
    images = torch.randn(1, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    cfg.moa_key_stride = 16
    other = MoATransformer(cfg, inputs.num_classes, inputs.image_size).eval()
    other.load_state_dict({k: v for k, v in state.items() if not k.endswith("index")})
    with torch.no_grad():
        assert (other(images) - model_from_authors(kwargs, state)(images)).abs().max() > 1e-4


def _tiny_video_model(num_frames: int = 16) -> torch.nn.Module:
    """moa_tiny_32 shrunk the way a smoke run would: 32x32 frames, widths 32..256, one block per stage."""
    cfg = compose_model("moa_tiny_32", "embed_dim=32", "depths=[1,1,1,1]", "num_heads=[1,2,4,8]")
    return get_family(cfg.name).build(cfg, ModelInputs(num_classes=5, num_frames=num_frames, image_size=(32, 32)))


def test_video_is_frames_through_the_backbone_averaged() -> None:
    model = _tiny_video_model().eval()
    video = torch.randn(2, 3, 4, 32, 32, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        logits = model(video)
        per_frame = torch.stack([model(video[:, :, t]) for t in range(4)]).mean(0)  # linear head: same average
        single = model(video[:, :, :1])
        image = model(video[:, :, 0])
    assert logits.shape == (2, 5)
    torch.testing.assert_close(logits, per_frame, atol=1e-5, rtol=0)
    torch.testing.assert_close(single, image, atol=0, rtol=0)
    assert (logits - image).abs().max() > 1e-4  # the other frames count


def test_smoke_shape_trains() -> None:
    """The shape the runner's smoke job feeds: (B, 3, 16, 32, 32) in [-1, 1], gradients everywhere."""
    model = _tiny_video_model(num_frames=16).train()
    assert model.config.stochastic_depth > 0 and model.config.moa_stochastic_depth > 0
    video = torch.rand(2, 3, 16, 32, 32, generator=torch.Generator().manual_seed(0)) * 2 - 1
    loss = torch.nn.functional.cross_entropy(model(video), torch.tensor([1, 3]))
    loss.backward()
    for name, param in model.named_parameters():
        assert param.grad is not None and torch.isfinite(param.grad).all(), name
    assert any(param.grad.abs().sum() > 0 for name, param in model.named_parameters() if "glb_attn" in name)


def test_activation_checkpointing_gives_the_same_gradients() -> None:
    model = _tiny_video_model(num_frames=2).train()
    video = torch.rand(2, 3, 2, 32, 32, generator=torch.Generator().manual_seed(1)) * 2 - 1
    grads = []
    for enabled in (False, True):
        model.grad_checkpointing = enabled
        assert model.grad_checkpointing is enabled
        model.zero_grad()
        torch.manual_seed(0)  # the same stochastic-depth draws
        model(video).square().sum().backward()
        grads.append({name: p.grad.clone() for name, p in model.named_parameters()})
    for name, grad in grads[0].items():
        torch.testing.assert_close(grads[1][name], grad, msg=name)


def test_bad_input_shape_is_reported() -> None:
    model = _tiny_video_model().eval()
    with pytest.raises(ValueError, match="built for 32x32"):
        model(torch.zeros(1, 3, 2, 64, 64))
    with pytest.raises(ValueError, match="images or"):
        model(torch.zeros(3, 32, 32))


def test_weight_decay_and_layer_ids() -> None:
    model = _tiny_video_model()
    tables = model.no_weight_decay()
    # one table per local block (4 stages x 1 block) and per MOA (stages 0-2 of maps 32, 16, 8 with window 4)
    assert len(tables) == 7 and all(name.endswith("relative_position_bias_table") for name in tables)
    assert {"layers.0.glb_attn.relative_position_bias_table",
            "layers.3.blocks.0.attn.relative_position_bias_table"} <= tables
    ids = {name: model.layer_id(name) for name, _ in model.named_parameters()}
    assert model.num_layers_for_lr_decay == 6
    assert ids["patch_embed.proj.weight"] == 0 and ids["head.weight"] == 5 and ids["norm.weight"] == 5
    assert ids["layers.0.blocks.0.attn.qkv.weight"] == 1 and ids["layers.3.blocks.0.mlp.fc1.weight"] == 4
    assert ids["layers.0.post_conv.weight"] == 1 and ids["layers.2.downsample.reduction.weight"] == 3
    assert all(0 <= i < model.num_layers_for_lr_decay for i in ids.values())


def test_absent_kwargs_take_the_authors_constructor_defaults() -> None:
    """MOATransformer() defaults to window 7 and four stages [2, 2, 6, 2], not this family's moa_tiny values."""
    cfg, inputs = authors_config({})
    assert (cfg.window_size, cfg.depths, cfg.num_heads, cfg.embed_dim, cfg.stochastic_depth) == \
        (7, [2, 2, 6, 2], [3, 6, 12, 24], 96, 0.1)
    assert inputs == ModelInputs(num_classes=1000, num_frames=1, image_size=(224, 224))


def test_rectangular_frames() -> None:
    """Beyond the authors (square only): a 32x16 frame has an 8x4 grid of MOA queries and a 15x7 table."""
    cfg = compose_model("moa_tiny_32", "embed_dim=32", "depths=[1,1,1]", "num_heads=[1,2,4]")
    model = get_family("moa").build(cfg, ModelInputs(num_classes=3, num_frames=2, image_size=(32, 16))).eval()
    assert [s.moa_grid for s in model.geometry] == [(8, 4), (4, 2), (0, 0)]
    assert model.layers[0].glb_attn.relative_position_bias_table.shape == (15 * 7, 1)
    with torch.no_grad():
        assert model(torch.randn(2, 3, 2, 32, 16)).shape == (2, 3)
