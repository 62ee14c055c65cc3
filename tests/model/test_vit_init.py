"""ImageNet-ViT initialisation of MTV views (mtv/models/vit_init.py).

Tiny image ViTs with random weights are written in every supported file layout inside the tests; an
independent image-ViT forward (plain torch ops on the timm-format tensors) is the reference. The central
check is the known identity: a view initialised from a ViT, fed a video whose frames are all the same image,
computes for every temporal slot the ViT's token features of that image.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from omegaconf import OmegaConf
from safetensors.torch import save_file
from torch import Tensor

from mtv.errors import ConfigError
from mtv.models import build_model
from mtv.models.ensemble import Ensemble
from mtv.models.mtv.config import FusionConfig, GlobalEncoderConfig, MTVConfig, ViewConfig
from mtv.models.mtv.model import MTV
from mtv.models.vit_init import init_views_from_vit, load_vit_checkpoint

WIDTH, HEADS, MLP, DEPTH, PATCH = 32, 2, 64, 2, 8
ATOL = 1e-5


# ---- tiny image ViTs and their files ---------------------------------------------------------------
def make_vit(width: int = WIDTH, mlp: int = MLP, depth: int = DEPTH, patch: int = PATCH, grid: int = 4,
             seed: int = 0) -> dict[str, Tensor]:
    """A timm-format ViT state dict with random weights (including the final norm and a head)."""
    gen = torch.Generator().manual_seed(seed)

    def rand(*shape: int, std: float = 0.1) -> Tensor:
        return torch.randn(*shape, generator=gen) * std

    sd = {
        "cls_token": rand(1, 1, width),
        "pos_embed": rand(1, 1 + grid * grid, width),
        "patch_embed.proj.weight": rand(width, 3, patch, patch, std=0.05),
        "patch_embed.proj.bias": rand(width),
    }
    for layer in range(depth):
        b = f"blocks.{layer}"
        sd |= {
            f"{b}.norm1.weight": 1 + rand(width), f"{b}.norm1.bias": rand(width),
            f"{b}.attn.qkv.weight": rand(3 * width, width, std=0.2), f"{b}.attn.qkv.bias": rand(3 * width),
            f"{b}.attn.proj.weight": rand(width, width), f"{b}.attn.proj.bias": rand(width),
            f"{b}.norm2.weight": 1 + rand(width), f"{b}.norm2.bias": rand(width),
            f"{b}.mlp.fc1.weight": rand(mlp, width), f"{b}.mlp.fc1.bias": rand(mlp),
            f"{b}.mlp.fc2.weight": rand(width, mlp), f"{b}.mlp.fc2.bias": rand(width),
        }
    return sd | {"norm.weight": 1 + rand(width), "norm.bias": rand(width),
                 "head.weight": rand(10, width), "head.bias": rand(10)}


def trunk(sd: dict[str, Tensor]) -> dict[str, Tensor]:
    """What the loader keeps: everything but the final norm and the head."""
    return {k: v for k, v in sd.items() if not k.startswith(("norm.", "head."))}


def to_flax(sd: dict[str, Tensor], heads: int, linen: bool, big_vision_posemb: bool) -> dict[str, np.ndarray]:
    """The same ViT as flat '/'-joined Flax arrays (original ViT / AugReg / big_vision layouts).

    `big_vision_posemb`: a top-level `pos_embedding` without CLS slot, added before the CLS is prepended;
    the CLS slot's embedding is folded into `cls`, so the network computes the same function.
    """
    def np_(t: Tensor) -> np.ndarray:
        return t.numpy().copy()

    width = sd["patch_embed.proj.weight"].shape[0]
    hd = width // heads
    names = ("LayerNorm_0", "MultiHeadDotProductAttention_0", "LayerNorm_1", "MlpBlock_0") if linen else \
        ("LayerNorm_0", "MultiHeadDotProductAttention_1", "LayerNorm_2", "MlpBlock_3")
    out = {"embedding/kernel": np_(sd["patch_embed.proj.weight"].permute(2, 3, 1, 0)),
           "embedding/bias": np_(sd["patch_embed.proj.bias"])}
    pos, cls = sd["pos_embed"], sd["cls_token"]
    if big_vision_posemb:
        out["pos_embedding"], out["cls"] = np_(pos[:, 1:]), np_(cls + pos[:, :1])
    else:
        out["Transformer/posembed_input/pos_embedding"], out["cls"] = np_(pos), np_(cls)
    depth = len({k.split(".")[1] for k in sd if k.startswith("blocks.")})
    for layer in range(depth):
        s, d = f"blocks.{layer}", f"Transformer/encoderblock_{layer}"
        ln0, attn, ln1, mlp = (f"{d}/{n}" for n in names)
        out[f"{ln0}/scale"], out[f"{ln0}/bias"] = np_(sd[f"{s}.norm1.weight"]), np_(sd[f"{s}.norm1.bias"])
        weights = sd[f"{s}.attn.qkv.weight"].chunk(3)
        biases = sd[f"{s}.attn.qkv.bias"].chunk(3)
        for part, w, bias in zip(("query", "key", "value"), weights, biases):
            out[f"{attn}/{part}/kernel"] = np_(w.T.reshape(width, heads, hd))
            out[f"{attn}/{part}/bias"] = np_(bias.reshape(heads, hd))
        out[f"{attn}/out/kernel"] = np_(sd[f"{s}.attn.proj.weight"].T.reshape(heads, hd, width))
        out[f"{attn}/out/bias"] = np_(sd[f"{s}.attn.proj.bias"])
        out[f"{ln1}/scale"], out[f"{ln1}/bias"] = np_(sd[f"{s}.norm2.weight"]), np_(sd[f"{s}.norm2.bias"])
        for i, fc in enumerate(("fc1", "fc2")):
            out[f"{mlp}/Dense_{i}/kernel"] = np_(sd[f"{s}.mlp.{fc}.weight"].T)
            out[f"{mlp}/Dense_{i}/bias"] = np_(sd[f"{s}.mlp.{fc}.bias"])
    out["Transformer/encoder_norm/scale"] = np_(sd["norm.weight"])
    out["Transformer/encoder_norm/bias"] = np_(sd["norm.bias"])
    out["head/kernel"], out["head/bias"] = np_(sd["head.weight"].T), np_(sd["head.bias"])
    return out


FORMATS = ("vit_npz", "big_vision_params_npz", "big_vision_opt_target_npz", "timm_pth", "timm_safetensors")


def write_vit(fmt: str, sd: dict[str, Tensor], directory: Path, heads: int = HEADS, name: str = "vit") -> Path:
    """Write `sd` as one of FORMATS and return the path."""
    if fmt == "timm_pth":
        path = directory / f"{name}.pth"
        torch.save(sd, path)
    elif fmt == "timm_safetensors":
        path = directory / f"{name}.safetensors"
        save_file({k: v.contiguous() for k, v in sd.items()}, str(path))
    else:
        path = directory / f"{name}.npz"
        if fmt == "vit_npz":  # google-research/vision_transformer: flat pre-Linen names
            arrays = to_flax(sd, heads, linen=False, big_vision_posemb=False)
        elif fmt == "big_vision_params_npz":  # newer big_vision: params/ prefix, Linen names, posemb without CLS
            arrays = {f"params/{k}": v for k, v in to_flax(sd, heads, linen=True, big_vision_posemb=True).items()}
        else:  # older big_vision train state (what scenic converts): opt/target/ prefix, pre-Linen names
            arrays = {f"opt/target/{k}": v for k, v in to_flax(sd, heads, linen=False, big_vision_posemb=False).items()}
            arrays |= {"opt/state/step": np.array(1000), "extra/accum_train_time": np.array(1.0)}
        np.savez(path, **arrays)
    return path


# ---- independent image-ViT forward ---------------------------------------------------------------
def vit_tokens(sd: dict[str, Tensor], images: Tensor, heads: int = HEADS) -> Tensor:
    """Token features (B, 1 + N, d) of an image ViT before its final norm: LN eps 1e-6, tanh GELU."""
    weight = sd["patch_embed.proj.weight"]
    width, patch = weight.shape[0], weight.shape[-1]
    x = F.conv2d(images, weight, sd["patch_embed.proj.bias"], stride=patch).flatten(2).transpose(1, 2)
    x = torch.cat([sd["cls_token"].expand(len(x), -1, -1), x], dim=1) + sd["pos_embed"]
    b, n, _ = x.shape
    depth = len({k.split(".")[1] for k in sd if k.startswith("blocks.")})
    for layer in range(depth):
        p = f"blocks.{layer}."
        y = F.layer_norm(x, (width,), sd[p + "norm1.weight"], sd[p + "norm1.bias"], eps=1e-6)
        q, k, v = (t.reshape(b, n, heads, -1).transpose(1, 2)
                   for t in F.linear(y, sd[p + "attn.qkv.weight"], sd[p + "attn.qkv.bias"]).chunk(3, dim=-1))
        attention = (q @ k.transpose(-1, -2) / math.sqrt(width // heads)).softmax(dim=-1)
        y = (attention @ v).transpose(1, 2).reshape(b, n, width)
        x = x + F.linear(y, sd[p + "attn.proj.weight"], sd[p + "attn.proj.bias"])
        y = F.layer_norm(x, (width,), sd[p + "norm2.weight"], sd[p + "norm2.bias"], eps=1e-6)
        y = F.gelu(F.linear(y, sd[p + "mlp.fc1.weight"], sd[p + "mlp.fc1.bias"]), approximate="tanh")
        x = x + F.linear(y, sd[p + "mlp.fc2.weight"], sd[p + "mlp.fc2.bias"])
    return x


def bilinear_aligned(grid: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Reference resize (h, w, c) -> (*size, c): bilinear, corner samples on corner samples (scipy zoom order 1)."""
    h, w, _ = grid.shape
    out = np.zeros((*size, grid.shape[2]))
    for i in range(size[0]):
        for j in range(size[1]):
            y = i * (h - 1) / (size[0] - 1) if size[0] > 1 else 0.0
            x = j * (w - 1) / (size[1] - 1) if size[1] > 1 else 0.0
            y0, x0 = min(int(y), h - 2), min(int(x), w - 2)
            fy, fx = y - y0, x - x0
            out[i, j] = ((1 - fy) * (1 - fx) * grid[y0, x0] + (1 - fy) * fx * grid[y0, x0 + 1]
                         + fy * (1 - fx) * grid[y0 + 1, x0] + fy * fx * grid[y0 + 1, x0 + 1])
    return out


# ---- tiny MTVs -----------------------------------------------------------------------------------
def view(patch: tuple[int, int, int] = (PATCH, PATCH, 2), width: int = WIDTH, mlp: int = MLP,
         name: str = "Ti/2", size: str = "Ti") -> ViewConfig:
    return ViewConfig(width, HEADS, mlp, DEPTH, patch, name=name, size=size)


def tiny_mtv(views: list[ViewConfig], num_frames: int = 4, image: tuple[int, int] = (32, 32),
             written_order: tuple[int, ...] = (), fusion: FusionConfig = FusionConfig(),
             classifier: str = "token") -> MTV:
    config = MTVConfig(views=tuple(views), num_classes=5, num_frames=num_frames, image_size=image, fusion=fusion,
                       global_encoder=GlobalEncoderConfig(num_layers=1, num_heads=2, mlp_dim=32),
                       classifier=classifier, written_order=written_order)
    config.validate()
    torch.manual_seed(1)
    return MTV(config).eval()


def static_video(images: Tensor, frames: int) -> Tensor:
    return images.unsqueeze(2).repeat(1, 1, frames, 1, 1)


def slot_tokens(model: MTV, video: Tensor, index: int = 0) -> Tensor:
    """View `index`'s encoder output as (B, slots, 1 + N, d)."""
    x = model.encode_views(video)[index]
    per_slot = model.views[index].pos_embed.shape[1]
    return x.reshape(video.shape[0], -1, per_slot, x.shape[-1])


def images(batch: int = 2, size: tuple[int, int] = (32, 32), seed: int = 3) -> Tensor:
    return torch.rand(batch, 3, *size, generator=torch.Generator().manual_seed(seed)) * 2 - 1


# ---- loading ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("fmt", [f for f in FORMATS if f != "big_vision_params_npz"])
def test_every_format_loads_to_the_timm_trunk(tmp_path: Path, fmt: str) -> None:
    sd = make_vit()
    loaded = load_vit_checkpoint(write_vit(fmt, sd, tmp_path))
    expected = trunk(sd)
    assert loaded.keys() == expected.keys()
    for key, value in expected.items():
        torch.testing.assert_close(loaded[key], value, atol=0, rtol=0, msg=key)


def test_big_vision_posemb_without_cls_slot_gets_a_zero_slot(tmp_path: Path) -> None:
    sd = make_vit()
    loaded = load_vit_checkpoint(write_vit("big_vision_params_npz", sd, tmp_path))
    torch.testing.assert_close(loaded["pos_embed"][:, 0], torch.zeros(1, WIDTH), atol=0, rtol=0)
    torch.testing.assert_close(loaded["pos_embed"][:, 1:], sd["pos_embed"][:, 1:], atol=0, rtol=0)
    torch.testing.assert_close(loaded["cls_token"], sd["cls_token"] + sd["pos_embed"][:, :1])


def test_wrapped_torch_checkpoint_is_unwrapped(tmp_path: Path) -> None:
    sd = make_vit()
    torch.save({"model": sd, "epoch": 300}, tmp_path / "deit.pth")
    assert load_vit_checkpoint(tmp_path / "deit.pth").keys() == trunk(sd).keys()


# ---- the identity -------------------------------------------------------------------------------
@pytest.mark.parametrize("fmt", FORMATS)
def test_central_frame_view_reproduces_image_vit_on_static_video(tmp_path: Path, fmt: str) -> None:
    sd = make_vit()
    model = tiny_mtv([view(patch=(PATCH, PATCH, 2))], num_frames=4)
    init_views_from_vit(model, [write_vit(fmt, sd, tmp_path)])
    x = images()
    with torch.no_grad():
        tokens = slot_tokens(model, static_video(x, 4))
    expected = vit_tokens(sd, x)
    assert tokens.shape == (2, 2, 17, WIDTH)
    for slot in range(2):
        torch.testing.assert_close(tokens[:, slot], expected, atol=ATOL, rtol=1e-4)


@pytest.mark.parametrize("inflation", ["central_frame", "average"])
def test_inflation_identity_with_four_frame_tubelets(tmp_path: Path, inflation: str) -> None:
    sd = make_vit()
    model = tiny_mtv([view(patch=(PATCH, PATCH, 4), name="Ti/4")], num_frames=8)
    init_views_from_vit(model, [write_vit("timm_safetensors", sd, tmp_path)], inflation=inflation)
    x = images()
    with torch.no_grad():
        tokens = slot_tokens(model, static_video(x, 8))
    for slot in range(2):
        torch.testing.assert_close(tokens[:, slot], vit_tokens(sd, x), atol=ATOL, rtol=1e-4)


def test_inflation_decides_which_frames_a_tubelet_sees(tmp_path: Path) -> None:
    """On a moving video, central-frame slot j sees frame 4j + 2 only; average sees the tubelet's mean frame."""
    sd = make_vit()
    path = write_vit("timm_pth", sd, tmp_path)
    video = torch.rand(1, 3, 8, 32, 32, generator=torch.Generator().manual_seed(5)) * 2 - 1
    for inflation, frame_of_slot in (
        ("central_frame", lambda j: video[:, :, 4 * j + 2]),
        ("average", lambda j: video[:, :, 4 * j: 4 * j + 4].mean(dim=2)),
    ):
        model = tiny_mtv([view(patch=(PATCH, PATCH, 4), name="Ti/4")], num_frames=8)
        init_views_from_vit(model, [path], inflation=inflation)
        with torch.no_grad():
            tokens = slot_tokens(model, video)
        for slot in range(2):
            torch.testing.assert_close(tokens[:, slot], vit_tokens(sd, frame_of_slot(slot)), atol=ATOL, rtol=1e-4)


def test_tokenizer_cls_and_blocks_are_placed_as_scenic_does(tmp_path: Path) -> None:
    sd = make_vit()
    model = tiny_mtv([view(patch=(PATCH, PATCH, 4), name="Ti/4")], num_frames=8)
    init_views_from_vit(model, [write_vit("vit_npz", sd, tmp_path)])
    v = model.views[0]
    weight = v.tokenizer.weight.detach()  # (d, 3, t, h, w)
    torch.testing.assert_close(weight[:, :, 2], sd["patch_embed.proj.weight"])
    assert weight[:, :, [0, 1, 3]].abs().max() == 0
    torch.testing.assert_close(v.tokenizer.bias.detach(), sd["patch_embed.proj.bias"])
    assert v.cls_token.shape == (1, 2, 1, WIDTH)
    for slot in range(2):
        torch.testing.assert_close(v.cls_token.detach()[0, slot], sd["cls_token"][0])
    torch.testing.assert_close(v.pos_embed.detach(), sd["pos_embed"])
    torch.testing.assert_close(v.blocks[1].mlp.fc2.weight.detach(), sd["blocks.1.mlp.fc2.weight"])


# ---- resizing -------------------------------------------------------------------------------------
@pytest.mark.parametrize("image", [(48, 48), (32, 48)])
def test_position_embedding_grid_is_resized_keeping_cls(tmp_path: Path, image: tuple[int, int]) -> None:
    """ViT at 32 px with patch 8 has a 4x4 grid; the view at 48x48 needs 6x6, at 32x48 needs 4x6."""
    sd = make_vit()
    model = tiny_mtv([view()], image=image)
    init_views_from_vit(model, [write_vit("timm_safetensors", sd, tmp_path)])
    gh, gw = image[0] // PATCH, image[1] // PATCH
    pos = model.views[0].pos_embed.detach()
    assert pos.shape == (1, 1 + gh * gw, WIDTH)
    torch.testing.assert_close(pos[:, 0], sd["pos_embed"][:, 0], atol=0, rtol=0)
    expected = bilinear_aligned(sd["pos_embed"][0, 1:].reshape(4, 4, WIDTH).double().numpy(), (gh, gw))
    torch.testing.assert_close(pos[0, 1:].reshape(gh, gw, WIDTH), torch.from_numpy(expected).float())
    with torch.no_grad():
        assert model(static_video(images(size=image), 4)).shape == (2, 5)


def test_patch_kernel_is_resized_to_the_view_patch(tmp_path: Path) -> None:
    """ViT/16 at 32 px (2x2 grid) into a view with 8x8 patches (4x4 grid): kernel and grid both resized."""
    sd = make_vit(patch=16, grid=2)
    model = tiny_mtv([view()])
    init_views_from_vit(model, [write_vit("vit_npz", sd, tmp_path)])
    kernel = model.views[0].tokenizer.weight.detach()[:, :, 1]  # central frame of t=2
    assert kernel.shape == (WIDTH, 3, PATCH, PATCH)
    source = sd["patch_embed.proj.weight"].permute(2, 3, 0, 1).reshape(16, 16, -1).double().numpy()
    expected = torch.from_numpy(bilinear_aligned(source, (PATCH, PATCH))).float().reshape(PATCH, PATCH, WIDTH, 3)
    torch.testing.assert_close(kernel, expected.permute(2, 3, 0, 1))
    assert model.views[0].pos_embed.shape == (1, 17, WIDTH)


# ---- classifiers and checkpoints with or without CLS ----------------------------------------------------
def test_gap_model_drops_the_vit_cls(tmp_path: Path) -> None:
    sd = make_vit()
    model = tiny_mtv([view()], classifier="gap")
    init_views_from_vit(model, [write_vit("timm_pth", sd, tmp_path)])
    assert model.views[0].cls_token is None
    torch.testing.assert_close(model.views[0].pos_embed.detach(), sd["pos_embed"][:, 1:], atol=0, rtol=0)


def test_vit_without_cls_keeps_the_views_own_cls(tmp_path: Path) -> None:
    sd = make_vit()
    sd.pop("cls_token")
    sd["pos_embed"] = sd["pos_embed"][:, 1:]
    model = tiny_mtv([view()])
    cls_before = model.views[0].cls_token.detach().clone()
    slot_before = model.views[0].pos_embed.detach()[:, :1].clone()
    init_views_from_vit(model, [write_vit("timm_safetensors", sd, tmp_path)])
    torch.testing.assert_close(model.views[0].cls_token.detach(), cls_before, atol=0, rtol=0)
    torch.testing.assert_close(model.views[0].pos_embed.detach()[:, :1], slot_before, atol=0, rtol=0)
    torch.testing.assert_close(model.views[0].pos_embed.detach()[:, 1:], sd["pos_embed"], atol=0, rtol=0)


# ---- several views -------------------------------------------------------------------------------
def two_view_model(fusion: FusionConfig = FusionConfig()) -> MTV:
    """Written 'S/2+Ti/4'; the model stores Ti/4 (2 slots x 16 tokens) first, S/2 (4 slots) second."""
    ti = view(patch=(PATCH, PATCH, 4), name="Ti/4", size="Ti")
    s = view(patch=(PATCH, PATCH, 2), width=48, mlp=96, name="S/2", size="S")
    return tiny_mtv([ti, s], num_frames=8, written_order=(1, 0), fusion=fusion)


@pytest.mark.parametrize("by", ["list", "size"])
def test_each_view_gets_its_own_checkpoint(tmp_path: Path, by: str) -> None:
    vit_ti, vit_s = make_vit(seed=1), make_vit(width=48, mlp=96, seed=2)
    path_ti = write_vit("vit_npz", vit_ti, tmp_path, name="ti")
    path_s = write_vit("timm_pth", vit_s, tmp_path, name="s")
    model = two_view_model()
    init_views_from_vit(model, [path_s, path_ti] if by == "list" else {"Ti": path_ti, "S": path_s})
    x = images()
    with torch.no_grad():
        ti_tokens, s_tokens = slot_tokens(model, static_video(x, 8), 0), slot_tokens(model, static_video(x, 8), 1)
    for slot in range(2):
        torch.testing.assert_close(ti_tokens[:, slot], vit_tokens(vit_ti, x), atol=ATOL, rtol=1e-4)
    for slot in range(4):  # two slots per time chunk attend jointly; identical slots leave the result unchanged
        torch.testing.assert_close(s_tokens[:, slot], vit_tokens(vit_s, x), atol=ATOL, rtol=1e-4)


def test_size_mapping_initialises_every_view_of_that_size(tmp_path: Path) -> None:
    vit = make_vit()
    model = tiny_mtv([view(patch=(PATCH, PATCH, 4), name="Ti/4"), view(name="Ti/2")], num_frames=8)
    init_views_from_vit(model, {"Ti": write_vit("timm_pth", vit, tmp_path)})
    for v in model.views:
        torch.testing.assert_close(v.blocks[0].attn.qkv.weight.detach(), vit["blocks.0.attn.qkv.weight"])


def test_none_keeps_a_views_random_init(tmp_path: Path) -> None:
    model = two_view_model()
    before = {k: v.clone() for k, v in model.state_dict().items() if k.startswith("views.1.")}
    vit = make_vit()
    init_views_from_vit(model, [None, write_vit("timm_pth", vit, tmp_path)])  # written S/2 (None), Ti/4
    after = model.state_dict()
    assert all(torch.equal(after[k], v) for k, v in before.items())
    assert torch.equal(after["views.0.blocks.0.attn.qkv.weight"], vit["blocks.0.attn.qkv.weight"])


@pytest.mark.parametrize("fusion", ["cva", "bottleneck", "mlp"])
def test_fusion_global_encoder_and_head_keep_their_init(tmp_path: Path, fusion: str) -> None:
    model = two_view_model(FusionConfig(type=fusion, layers=(1,)))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    vit_ti, vit_s = make_vit(seed=1), make_vit(width=48, mlp=96, seed=2)
    init_views_from_vit(model, {"Ti": write_vit("timm_pth", vit_ti, tmp_path, name="ti"),
                                "S": write_vit("timm_pth", vit_s, tmp_path, name="s")})
    after = model.state_dict()
    others = [k for k in before if not k.startswith("views.")]
    assert any(k.startswith("fusion.") for k in others) and any(k.startswith("global_encoder.") for k in others)
    for key in others:
        assert torch.equal(after[key], before[key]), key
    assert all(not torch.equal(after[k], before[k]) for k in before if k.startswith("views."))
    if fusion != "bottleneck":  # zero-initialised fusion: the views still compute their ViTs' features
        x = images()
        with torch.no_grad():
            torch.testing.assert_close(slot_tokens(model, static_video(x, 8), 1)[:, 3], vit_tokens(vit_s, x),
                                       atol=ATOL, rtol=1e-4)


# ---- errors ----------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"width": 48, "mlp": 96}, r"view 'Ti/2' \(index 0\) has width 32 but checkpoint .*vit\.npz has 48"),
        ({"depth": 3}, r"view 'Ti/2' \(index 0\) has 2 layers but checkpoint .* has 3"),
        ({"mlp": 128}, r"view 'Ti/2' \(index 0\) has MLP width 64 but checkpoint .* has 128"),
        ({"heads": 4}, r"view 'Ti/2' \(index 0\) has 2 heads but checkpoint .* has 4"),
    ],
)
def test_mismatched_checkpoint_names_view_and_value(tmp_path: Path, change: dict[str, int], message: str) -> None:
    heads = change.pop("heads", HEADS)
    path = write_vit("vit_npz", make_vit(**change), tmp_path, heads=heads)
    with pytest.raises(ConfigError, match=message):
        init_views_from_vit(tiny_mtv([view()]), [path])


def test_failure_leaves_the_model_untouched(tmp_path: Path) -> None:
    model = two_view_model()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    good, bad = write_vit("timm_pth", make_vit(), tmp_path, name="ti"), write_vit("timm_pth", make_vit(), tmp_path)
    with pytest.raises(ConfigError, match=r"view 'S/2' \(index 1\) has width 48 but checkpoint .* has 32"):
        init_views_from_vit(model, [bad, good])  # written S/2 first: the 32-wide ViT does not fit it
    assert all(torch.equal(model.state_dict()[k], v) for k, v in before.items())


def test_inconsistent_checkpoint_is_caught_before_loading(tmp_path: Path) -> None:
    sd = make_vit()
    sd["blocks.1.mlp.fc2.weight"] = torch.zeros(WIDTH, MLP + 1)
    model = tiny_mtv([view()])
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(ConfigError, match=r"views\.0\.blocks\.1\.mlp\.fc2\.weight would get shape \(32, 65\)"):
        init_views_from_vit(model, [write_vit("timm_pth", sd, tmp_path)])
    assert all(torch.equal(model.state_dict()[k], v) for k, v in before.items())


@pytest.mark.parametrize(
    ("checkpoints", "inflation", "message"),
    [
        (["a.pth"], "central_frame", r"has 1 entries but model.variant='S/2\+Ti/4' has 2 views"),
        ("a.pth", "central_frame", r"has one path but model.variant='S/2\+Ti/4' has 2 views"),
        ({"B": "a.pth"}, "central_frame", r"encoder sizes \['B'\] name no view .* allowed keys: S, Ti"),
        ([None, None], "temporal", r"model.init.inflation='temporal' is not one of central_frame, average"),
        ([None, "missing.pth"], "central_frame", r"ViT checkpoint missing.pth: no such file"),
    ],
)
def test_bad_arguments_are_config_errors(checkpoints: object, inflation: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        init_views_from_vit(two_view_model(), checkpoints, inflation)  # type: ignore[arg-type]


def test_unsupported_checkpoints_are_named(tmp_path: Path) -> None:
    sd = make_vit() | {"reg_token": torch.zeros(1, 4, WIDTH)}
    with pytest.raises(ConfigError, match=r"unsupported parameters reg_token\. Only plain ViTs"):
        load_vit_checkpoint(write_vit("timm_pth", sd, tmp_path))
    sd = make_vit()
    del sd["blocks.1.attn.qkv.bias"]
    with pytest.raises(ConfigError, match=r"has no 'blocks\.1\.attn\.qkv\.bias'"):
        load_vit_checkpoint(write_vit("timm_safetensors", sd, tmp_path))
    (tmp_path / "vit.ckpt").write_bytes(b"")
    with pytest.raises(ConfigError, match=r"unknown file type '\.ckpt'"):
        load_vit_checkpoint(tmp_path / "vit.ckpt")


def test_non_square_checkpoint_grid_cannot_be_resized(tmp_path: Path) -> None:
    sd = make_vit()
    sd["pos_embed"] = sd["pos_embed"][:, :13]  # CLS + 12 patch positions (e.g. a 3x4 grid)
    with pytest.raises(ConfigError, match=r"needs a 4x4 position-embedding grid, but checkpoint .* has 12 patch"):
        init_views_from_vit(tiny_mtv([view()]), [write_vit("timm_pth", sd, tmp_path)])


# ---- build_model wiring ------------------------------------------------------------------------------
def ti_cfg(**fields: object) -> dict[str, object]:
    """A Hydra-like model node with ViT-Ti views and a tiny global encoder."""
    return {"name": "mtv", "global_encoder": {"num_layers": 1, "num_heads": 2, "mlp_dim": 32}, **fields}


def test_build_model_loads_init_vit_checkpoints_in_written_order(tmp_path: Path) -> None:
    vit_a, vit_b = make_vit(width=192, mlp=768, depth=12, patch=16, grid=14, seed=1), \
        make_vit(width=192, mlp=768, depth=12, patch=16, grid=14, seed=2)
    path_a = write_vit("timm_safetensors", vit_a, tmp_path, name="a")
    path_b = write_vit("timm_safetensors", vit_b, tmp_path, name="b")
    cfg = OmegaConf.create(ti_cfg(variant="Ti/2+Ti/4", init={"vit_checkpoints": [str(path_a), str(path_b)],
                                                             "inflation": "average"}))
    model = build_model(cfg, num_classes=3, num_frames=4, image_size=32)
    assert [v.name for v in model.config.views] == ["Ti/4", "Ti/2"]  # fewest tokens first
    torch.testing.assert_close(model.views[1].blocks[11].mlp.fc1.weight.detach(), vit_a["blocks.11.mlp.fc1.weight"])
    torch.testing.assert_close(model.views[0].blocks[11].mlp.fc1.weight.detach(), vit_b["blocks.11.mlp.fc1.weight"])
    torch.testing.assert_close(model.views[0].tokenizer.weight.detach()[:, :, 0], vit_b["patch_embed.proj.weight"] / 4)
    assert model.views[0].pos_embed.shape == (1, 5, 192)  # 14x14 grid resized to 2x2 for 32 px

    plain = build_model(OmegaConf.create(ti_cfg(variant="Ti/2+Ti/4", init={"vit_checkpoints": None})), 3, 4, 32)
    assert not torch.equal(plain.views[1].blocks[11].mlp.fc1.weight, model.views[1].blocks[11].mlp.fc1.weight)


def test_build_model_gives_each_ensemble_member_its_checkpoint(tmp_path: Path) -> None:
    vit = make_vit(width=192, mlp=768, depth=12, patch=16, grid=2, seed=1)
    path = write_vit("timm_pth", vit, tmp_path)
    cfg = ti_cfg(name="ensemble", members=["Ti/2", "Ti/4"], init={"vit_checkpoints": [None, str(path)]})
    ensemble = build_model(OmegaConf.create(cfg), num_classes=3, num_frames=4, image_size=32)
    assert isinstance(ensemble, Ensemble)
    first, second = ensemble.members
    torch.testing.assert_close(second.views[0].cls_token.detach()[0, 0], vit["cls_token"][0])
    assert first.views[0].cls_token.abs().max() == 0  # random init: zero CLS
    by_size = build_model(OmegaConf.create({**cfg, "init": {"vit_checkpoints": {"Ti": str(path)}}}), 3, 4, 32)
    assert all(torch.equal(m.views[0].cls_token[0, 0].detach(), vit["cls_token"][0]) for m in by_size.members)
