"""ViViT initialisation: from ImageNet ViTs (every file format the shared loader reads) into each of the four
models, and from another ViViT checkpoint for fine-tuning, with scenic's resizing rules.

The identity checks use an independent image-ViT forward (`vit_tokens` of the MTV ViT-init tests): a ViViT
initialised from a ViT and fed a static video computes the ViT on the image where scenic's init makes that
true (model 1 with one frame slot, every frame slot of model 2's spatial encoder)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the ViT writers of the MTV ViT-init tests
from test_vit_init import (
    DEPTH,
    HEADS,
    MLP,
    PATCH,
    WIDTH,
    bilinear_aligned,
    images,
    make_vit,
    vit_tokens,
    write_vit,  # noqa: E402
)

from mtv import ConfigError  # noqa: E402
from mtv.interop.checkpoint import save_model_checkpoint  # noqa: E402
from mtv.models.registry import ModelInputs, get_family  # noqa: E402
from mtv.models.vivit.config import ViViTConfig, ViViTInitConfig  # noqa: E402

SIZES = {"B": {"hidden_size": WIDTH, "num_heads": HEADS, "mlp_dim": MLP, "num_layers": DEPTH}}
FAMILY = get_family("vivit")
ATOL = 1e-5


def build(attention: str, classifier: str, frames: int = 2, image: tuple[int, int] = (32, 32),
          **init) -> torch.nn.Module:
    cfg = ViViTConfig(variant=f"B/{PATCH}x2", attention=attention, classifier=classifier, encoder_sizes=SIZES,
                      init=ViViTInitConfig(**init))
    torch.manual_seed(0)
    return FAMILY.build(cfg, ModelInputs(5, frames, image)).eval()


def static_video(image: torch.Tensor, frames: int) -> torch.Tensor:
    return image.unsqueeze(2).repeat(1, 1, frames, 1, 1)


def final_norm(sd: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    return F.layer_norm(x, (x.shape[-1],), sd["norm.weight"], sd["norm.bias"], eps=1e-6)


@pytest.mark.parametrize("fmt", ["vit_npz", "big_vision_opt_target_npz", "timm_pth", "timm_safetensors"])
def test_model1_from_vit_computes_the_vit_on_a_static_clip(tmp_path, fmt):
    """One frame slot: tokens, position embeddings, CLS, blocks and final norm are the ViT's."""
    sd = make_vit()
    model = build("spacetime", "token", vit_checkpoint=str(write_vit(fmt, sd, tmp_path)))
    image = images()
    with torch.no_grad():
        ours = model.forward_features(static_video(image, 2))
    torch.testing.assert_close(ours, final_norm(sd, vit_tokens(sd, image))[:, 0], atol=ATOL, rtol=0)


def test_model2_spatial_encoder_is_the_vit_per_frame_slot(tmp_path):
    """Every slot's spatial output is the ViT's, except that scenic keeps the spatial CLS at zero (it skips
    the ViT's `cls`, the target's name being `cls_SpatialTransformer`). The temporal encoder keeps its init."""
    sd = make_vit()
    model = build("factorized_encoder", "token", frames=4, vit_checkpoint=str(write_vit("vit_npz", sd, tmp_path)))
    fresh = build("factorized_encoder", "token", frames=4)
    image = images()
    tokens = model.tokenizer(static_video(image, 4)).flatten(2).transpose(1, 2)  # (B, 2 * 16, d)
    with torch.no_grad():
        per_slot = model.spatial_encoder(tokens.reshape(4, 16, WIDTH), chunks=2)
    reference = final_norm(sd, vit_tokens({**sd, "cls_token": torch.zeros_like(sd["cls_token"])}, image))[:, 0]
    torch.testing.assert_close(per_slot, reference.repeat_interleave(2, dim=0), atol=ATOL, rtol=0)
    for name, value in fresh.temporal_encoder.state_dict().items():
        torch.testing.assert_close(model.temporal_encoder.state_dict()[name], value, atol=0, rtol=0, msg=name)
    assert torch.count_nonzero(model.head.weight) == 0


@pytest.mark.parametrize("classifier", ["gap"])
def test_model3_gets_the_vit_attention_for_space_and_time(tmp_path, classifier):
    sd = make_vit()
    model = build("factorized_self_attention", classifier, frames=4,
                  vit_checkpoint=str(write_vit("timm_pth", sd, tmp_path)))
    state = model.state_dict()
    for layer in range(DEPTH):
        src, dst = f"blocks.{layer}", f"encoder.blocks.{layer}"
        for ours, theirs in [("attn_space.qkv", "attn.qkv"), ("attn_time.qkv", "attn.qkv"),
                             ("attn_space.proj", "attn.proj"), ("attn_time.proj", "attn.proj"),
                             ("norm_space", "norm1"), ("norm_mlp", "norm2"), ("mlp.fc1", "mlp.fc1"),
                             ("mlp.fc2", "mlp.fc2")]:
            for leaf in ("weight", "bias"):
                torch.testing.assert_close(state[f"{dst}.{ours}.{leaf}"], sd[f"{src}.{theirs}.{leaf}"], atol=0, rtol=0)
        assert torch.equal(state[f"{dst}.norm_time.weight"], torch.ones(WIDTH))  # fresh, as in scenic
        assert torch.equal(state[f"{dst}.norm_time.bias"], torch.zeros(WIDTH))
    # gap: the ViT's CLS slot is dropped and the image grid is tiled over the two frame slots
    torch.testing.assert_close(state["encoder.pos_embed"], sd["pos_embed"][:, 1:].repeat(1, 2, 1), atol=0, rtol=0)
    assert model.encoder.cls_token is None


def test_model4_gets_blocks_and_tiled_position_embeddings(tmp_path):
    sd = make_vit()
    model = build("factorized_dot_product", "gap", frames=6, vit_checkpoint=str(write_vit("vit_npz", sd, tmp_path)))
    state = model.state_dict()
    for name, value in sd.items():
        if name.startswith("blocks."):
            torch.testing.assert_close(state[f"encoder.{name}"], value, atol=1e-7, rtol=0, msg=name)
    torch.testing.assert_close(state["encoder.pos_embed"], sd["pos_embed"][:, 1:].repeat(1, 3, 1), atol=1e-7, rtol=0)
    kernel = state["tokenizer.weight"]  # central frame of the 2-frame tubelet holds the 2-D kernel
    torch.testing.assert_close(kernel[:, :, 1], sd["patch_embed.proj.weight"], atol=1e-7, rtol=0)
    assert torch.count_nonzero(kernel[:, :, 0]) == 0


def test_average_inflation_spreads_the_kernel_over_the_tubelet(tmp_path):
    sd = make_vit()
    model = build("spacetime", "token", vit_checkpoint=str(write_vit("timm_pth", sd, tmp_path)), inflation="average")
    for t in range(2):
        torch.testing.assert_close(model.tokenizer.weight[:, :, t], sd["patch_embed.proj.weight"] / 2)


def test_larger_image_needs_resize_tile(tmp_path):
    """A 4x4 ViT grid cannot be tiled to 6x6 frames; resize_tile resizes it (scipy zoom order 1), then tiles."""
    sd = make_vit()
    path = str(write_vit("timm_pth", sd, tmp_path))
    with pytest.raises(ConfigError, match="cannot be tiled to 72 tokens; set model.init.posemb_change=resize_tile"):
        build("spacetime", "token", image=(48, 48), frames=4, vit_checkpoint=path)
    model = build("spacetime", "token", image=(48, 48), frames=4, vit_checkpoint=path, posemb_change="resize_tile")
    grid = sd["pos_embed"][0, 1:].reshape(4, 4, WIDTH).numpy()
    expected = torch.from_numpy(bilinear_aligned(grid, (6, 6)).reshape(36, WIDTH)).float()
    pos = model.encoder.pos_embed.detach()
    torch.testing.assert_close(pos[0, 0], sd["pos_embed"][0, 0], atol=0, rtol=0)  # CLS slot kept
    torch.testing.assert_close(pos[0, 1:], expected.repeat(2, 1), atol=1e-5, rtol=0)


@pytest.mark.parametrize("change, message", [
    ({"width": 48}, r"model's width is 32 but the checkpoint's is 48"),
    ({"depth": 3}, r"model's layers is 2 but the checkpoint's is 3"),
    ({"patch": 4, "grid": 8}, r"model's patch is \(8, 8\) but the checkpoint's is \(4, 4\)"),
])
def test_vit_that_does_not_fit_is_named(tmp_path, change, message):
    path = str(write_vit("timm_pth", make_vit(**change), tmp_path))
    with pytest.raises(ConfigError, match=message):
        build("spacetime", "token", vit_checkpoint=path)


# ---- fine-tuning from a ViViT checkpoint --------------------------------------------------------------

def save(model: torch.nn.Module, path: Path, frames: int) -> str:
    save_model_checkpoint(path, model, {"name": "vivit"}, 5, frames, (32, 32), source="test")
    return str(path)


def perturbed(model: torch.nn.Module) -> torch.nn.Module:
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.1)
    return model


def test_checkpoint_to_more_frames_tiles_model1_position_embeddings(tmp_path):
    source = perturbed(build("spacetime", "token", frames=4))
    path = save(source, tmp_path / "m1.ckpt", frames=4)
    model = build("spacetime", "token", frames=8, checkpoint=path)
    pos = source.encoder.pos_embed.detach()
    expected = torch.cat([pos[:, :1], pos[:, 1:].repeat(1, 2, 1)], dim=1)
    torch.testing.assert_close(model.encoder.pos_embed.detach(), expected, atol=0, rtol=0)
    torch.testing.assert_close(model.encoder.blocks[1].mlp.fc2.weight, source.encoder.blocks[1].mlp.fc2.weight)
    assert torch.count_nonzero(model.head.weight) == 0  # a new head unless restore_head
    restored = build("spacetime", "token", frames=8, checkpoint=path, restore_head=True)
    torch.testing.assert_close(restored.head.weight, source.head.weight)


def test_checkpoint_to_more_frames_interpolates_model2_temporal_embeddings(tmp_path):
    source = perturbed(build("factorized_encoder", "token", frames=4))
    path = save(source, tmp_path / "m2.ckpt", frames=4)
    model = build("factorized_encoder", "token", frames=8, checkpoint=path)
    pos = source.temporal_encoder.pos_embed.detach().numpy()[0]  # CLS + 2 slots -> CLS + 4 slots
    slots = np.stack([np.interp(np.linspace(0, 1, 4), np.linspace(0, 1, 2), pos[1:, c]) for c in range(WIDTH)], 1)
    expected = np.concatenate([pos[:1], slots])[None]
    np.testing.assert_allclose(model.temporal_encoder.pos_embed.detach().numpy(), expected, atol=1e-6, rtol=0)
    torch.testing.assert_close(model.spatial_encoder.pos_embed, source.spatial_encoder.pos_embed)


def test_checkpoint_of_another_attention_type_is_refused(tmp_path):
    path = save(build("spacetime", "gap"), tmp_path / "m1.ckpt", frames=2)
    with pytest.raises(ConfigError, match=r"not a ViViT of this architecture \(model 3, factorized_self_attention\): "
                                          r"missing encoder.blocks.0.attn_space"):
        build("factorized_self_attention", "gap", checkpoint=path)


def test_checkpoint_with_another_width_names_the_first_misfit(tmp_path):
    other = get_family("vivit").build(
        ViViTConfig(variant=f"B/{PATCH}x2", encoder_sizes={"B": {**SIZES["B"], "mlp_dim": 16}}),
        ModelInputs(5, 2, (32, 32)))
    path = save(other, tmp_path / "other.ckpt", frames=2)
    with pytest.raises(ConfigError,
                       match=r"encoder.blocks.0.mlp.fc1.weight has shape \(16, 32\), the model needs \(64, 32\)"):
        build("spacetime", "token", checkpoint=path)


def test_flax_vit_with_another_head_count_is_named(tmp_path):
    """Same tensor sizes, other heads: only the Flax layout (d, heads, head_dim) tells, and it is checked."""
    path = str(write_vit("vit_npz", make_vit(), tmp_path, heads=4))
    with pytest.raises(ConfigError, match="model's head count is 2 but the checkpoint's is 4"):
        build("spacetime", "token", vit_checkpoint=path)


@pytest.mark.parametrize("change", ["resize", "resize_tile"])
def test_model2_spatial_grid_is_resized_for_a_larger_image(tmp_path, change):
    """Model 2's spatial embedding is one frame's grid: 4x4 -> 6x6 by either resizing method; tile cannot."""
    sd = make_vit()
    path = str(write_vit("timm_pth", sd, tmp_path))
    with pytest.raises(ConfigError, match="cannot be tiled to 36 tokens"):
        build("factorized_encoder", "token", image=(48, 48), vit_checkpoint=path)
    model = build("factorized_encoder", "token", image=(48, 48), vit_checkpoint=path, posemb_change=change)
    grid = sd["pos_embed"][0, 1:].reshape(4, 4, WIDTH).numpy()
    expected = torch.from_numpy(bilinear_aligned(grid, (6, 6)).reshape(36, WIDTH)).float()
    torch.testing.assert_close(model.spatial_encoder.pos_embed.detach()[0, 1:], expected, atol=1e-5, rtol=0)
