"""Initialise MTV views from ImageNet image-ViT checkpoints, one checkpoint per view (scenic's `init_from vit`).

Two steps, so every file format meets one code path:
1. `load_vit_checkpoint` reads an original ViT / AugReg / big_vision `.npz` or a timm state dict (`.pth`,
   `.safetensors`) into one canonical, timm-like naming (`cls_token`, `pos_embed`, `patch_embed.proj.*`,
   `blocks.{l}.{norm1,attn.qkv,attn.proj,norm2,mlp.fc1,mlp.fc2}.*`). Classification heads and the final
   LayerNorm are dropped: MTV's view encoders have neither.
2. `init_views_from_vit` maps that onto each view: the 2-D patch kernel is resized to the view's patch if
   needed and inflated over the tubelet's time axis, the CLS token is tiled over the view's temporal slots,
   the position embedding is copied (bilinearly resized when the patch grid differs, CLS slot kept), and the
   blocks are copied as they are (fusion-layer blocks are the views' own blocks, so nothing is special).
   Fusion, global encoder and head keep their own initialisation.

Everything is validated before the model is touched, so a bad checkpoint raises one ConfigError and leaves
the model as it was. Resizing is bilinear with corners aligned, which is what scenic's
`scipy.ndimage.zoom(order=1)` computes.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from mtv.checkpoints import read_state_dict
from mtv.errors import ConfigError
from mtv.models.mtv.config import MTVConfig
from mtv.models.mtv.model import MTV
from mtv.models.resize import resize_bilinear, resize_grid
from mtv.models.variants import parse_view

INFLATIONS = ("central_frame", "average")

PathLike = str | Path
# one path (or None: keep the random init) per view in the order written in the variant, or size name -> path
Checkpoints = Sequence[PathLike | None] | Mapping[str, PathLike | None]

_BLOCK_PARTS = ("norm1", "attn.qkv", "attn.proj", "norm2", "mlp.fc1", "mlp.fc2")
# a Flax block's (norm, attention, norm, MLP) under the two naming generations: pre-Linen names are numbered
# across module types (original ViT / AugReg releases), Linen names per type (newer big_vision)
_PRE_LINEN_BLOCK = ("LayerNorm_0", "MultiHeadDotProductAttention_1", "LayerNorm_2", "MlpBlock_3")
_LINEN_BLOCK = ("LayerNorm_0", "MultiHeadDotProductAttention_0", "LayerNorm_1", "MlpBlock_0")
_NPZ_PREFIXES = ("opt/target/", "params/")  # older big_vision train states, newer big_vision param files
_NPZ_POSEMB_KEYS = ("Transformer/posembed_input/pos_embedding", "Transformer/pos_embedding", "pos_embedding")
# parameters that exist in image ViTs but have no counterpart in an MTV view: heads and the final norm
_NPZ_IGNORED = ("head/", "pre_logits/", "MAPHead_0/", "Transformer/encoder_norm/")
_TIMM_IGNORED = ("head.", "pre_logits.", "attn_pool.", "norm.", "fc_norm.")
_TORCH_SUFFIXES = (".pth", ".pt", ".bin")


@dataclass(frozen=True)
class ViTTrunk:
    """A read image-ViT checkpoint: its tensors (canonical names) and what the file says about its shape."""

    tensors: dict[str, Tensor]  # canonical names
    depth: int
    num_heads: int | None  # Flax files record it in the attention kernels; timm state dicts do not


# ---- reading checkpoints -------------------------------------------------------------------------
def load_vit_checkpoint(path: PathLike, final_norm: bool = False) -> dict[str, Tensor]:
    """An image ViT's trunk as float32 tensors under canonical timm-like names, whatever the file format.

    `final_norm`: also return the encoder's final LayerNorm as `norm.weight` / `norm.bias` where the file has
    one (ViViT keeps it; MTV's views have none).

    If the checkpoint has a CLS token, `pos_embed` always has a CLS slot: checkpoints that add position
    embeddings before prepending the CLS (big_vision, timm `no_embed_class`) get a zero slot, which computes
    the same thing.
    """
    return read_vit_trunk(path, final_norm).tensors


def read_vit_trunk(path: PathLike, final_norm: bool = False) -> ViTTrunk:
    """`load_vit_checkpoint` with the depth and, for Flax files, the head count."""
    path = Path(path)
    source = str(path)
    if not path.is_file():
        raise ConfigError(f"ViT checkpoint {source}: no such file")
    suffix = path.suffix.lower()
    if suffix == ".npz":
        with np.load(path) as data:
            return _from_flax({key: data[key] for key in data.files}, source, final_norm)
    if suffix == ".safetensors":
        from safetensors.torch import load_file

        return _from_timm(load_file(str(path)), source, final_norm)
    if suffix in _TORCH_SUFFIXES:
        return _from_timm(read_state_dict(path, key="ViT checkpoint"), source, final_norm)
    raise ConfigError(
        f"ViT checkpoint {source}: unknown file type {suffix!r}; use .npz (original ViT / AugReg / big_vision) "
        f"or a timm state dict ({', '.join(_TORCH_SUFFIXES)}, .safetensors)"
    )


class _Arrays:
    """A checkpoint's arrays by name; remembers which were used, so unsupported leftovers can be named."""

    def __init__(self, arrays: Mapping[str, Any], source: str) -> None:
        self.arrays = arrays
        self.source = source
        self.used: set[str] = set()

    def __contains__(self, name: str) -> bool:
        return name in self.arrays

    def take(self, name: str) -> Tensor:
        if name not in self.arrays:
            raise ConfigError(f"ViT checkpoint {self.source} has no {name!r}; expected a plain image ViT")
        self.used.add(name)
        value = self.arrays[name]
        if isinstance(value, Tensor):
            return value.detach().to(torch.float32)
        return torch.from_numpy(np.asarray(value, dtype=np.float32))

    def depth(self, pattern: str) -> int:
        """Number of encoder blocks, from the block indices captured by `pattern`; they must run 0..L-1."""
        found = {int(m[1]) for name in self.arrays if (m := re.match(pattern, name))}
        if not found or found != set(range(len(found))):
            raise ConfigError(
                f"ViT checkpoint {self.source}: encoder blocks {sorted(found)} found; expected blocks 0..L-1 "
                "stored one per layer (scanned / stacked blocks are not supported)"
            )
        return len(found)

    def check_leftovers(self, ignored: tuple[str, ...]) -> None:
        left = sorted(k for k in self.arrays if k not in self.used and not k.startswith(ignored))
        if left:
            shown = ", ".join(left[:6]) + (f", ... ({len(left)} in all)" if len(left) > 6 else "")
            raise ConfigError(
                f"ViT checkpoint {self.source}: unsupported parameters {shown}. Only plain ViTs can initialise a "
                "view: patch embedding, optional class token, learned position embedding, pre-LN blocks "
                "(no register tokens, LayerScale, pre-norm or qk-norm)"
            )


def _from_flax(arrays: Mapping[str, np.ndarray], source: str, final_norm: bool = False) -> ViTTrunk:
    """Original ViT / AugReg / big_vision `.npz`: '/'-joined Flax names, optionally under a train-state prefix."""
    for prefix in _NPZ_PREFIXES:
        if any(key.startswith(prefix) for key in arrays):
            arrays = {key[len(prefix):]: value for key, value in arrays.items() if key.startswith(prefix)}
            break
    a = _Arrays(arrays, source)
    out: dict[str, Tensor] = {}
    out["patch_embed.proj.weight"] = a.take("embedding/kernel").permute(3, 2, 0, 1)  # (p,p,3,d) -> (d,3,p,p)
    out["patch_embed.proj.bias"] = a.take("embedding/bias")
    if "cls" in a:
        out["cls_token"] = a.take("cls")
    posemb = next((key for key in _NPZ_POSEMB_KEYS if key in a), None)
    if posemb is None:
        raise ConfigError(f"ViT checkpoint {source} has no learned position embedding (one of {_NPZ_POSEMB_KEYS})")
    out["pos_embed"] = a.take(posemb)
    depth = a.depth(r"Transformer/encoderblock_(\d+)/")
    heads = None
    for layer in range(depth):
        block = f"Transformer/encoderblock_{layer}"
        names = _PRE_LINEN_BLOCK if f"{block}/MlpBlock_3/Dense_0/kernel" in a else _LINEN_BLOCK
        ln0, attn, ln1, mlp = (f"{block}/{name}" for name in names)
        dst = f"blocks.{layer}"
        out[f"{dst}.norm1.weight"] = a.take(f"{ln0}/scale")
        out[f"{dst}.norm1.bias"] = a.take(f"{ln0}/bias")
        kernels = [a.take(f"{attn}/{part}/kernel") for part in ("query", "key", "value")]  # (d, heads, head_dim)
        heads = kernels[0].shape[1]
        out[f"{dst}.attn.qkv.weight"] = torch.cat([k.reshape(k.shape[0], -1).T for k in kernels])
        out[f"{dst}.attn.qkv.bias"] = torch.cat([a.take(f"{attn}/{part}/bias").reshape(-1)
                                                 for part in ("query", "key", "value")])
        out_kernel = a.take(f"{attn}/out/kernel")  # (heads, head_dim, d)
        out[f"{dst}.attn.proj.weight"] = out_kernel.reshape(-1, out_kernel.shape[-1]).T
        out[f"{dst}.attn.proj.bias"] = a.take(f"{attn}/out/bias")
        out[f"{dst}.norm2.weight"] = a.take(f"{ln1}/scale")
        out[f"{dst}.norm2.bias"] = a.take(f"{ln1}/bias")
        for i, fc in enumerate(("fc1", "fc2")):
            out[f"{dst}.mlp.{fc}.weight"] = a.take(f"{mlp}/Dense_{i}/kernel").T
            out[f"{dst}.mlp.{fc}.bias"] = a.take(f"{mlp}/Dense_{i}/bias")
    if final_norm and "Transformer/encoder_norm/scale" in a:
        out["norm.weight"] = a.take("Transformer/encoder_norm/scale")
        out["norm.bias"] = a.take("Transformer/encoder_norm/bias")
    a.check_leftovers(_NPZ_IGNORED)
    return ViTTrunk(_with_cls_slot({k: v.contiguous() for k, v in out.items()}), depth, heads)


def _from_timm(state: Mapping[str, Any], source: str, final_norm: bool = False) -> ViTTrunk:
    """timm `VisionTransformer` state dict: already canonical, checked for completeness and extras."""
    a = _Arrays(state, source)
    out = {name: a.take(name) for name in ("patch_embed.proj.weight", "patch_embed.proj.bias", "pos_embed")}
    if "cls_token" in a:
        out["cls_token"] = a.take("cls_token")
    depth = a.depth(r"blocks\.(\d+)\.")
    for layer in range(depth):
        for part in _BLOCK_PARTS:
            for leaf in ("weight", "bias"):
                name = f"blocks.{layer}.{part}.{leaf}"
                out[name] = a.take(name)
    if final_norm and "norm.weight" in a:
        out |= {name: a.take(name) for name in ("norm.weight", "norm.bias")}
    a.check_leftovers(_TIMM_IGNORED)
    return ViTTrunk(_with_cls_slot(out), depth, None)


def _with_cls_slot(tensors: dict[str, Tensor]) -> dict[str, Tensor]:
    """Give `pos_embed` a zero CLS slot where the checkpoint has a CLS token that gets no position embedding.

    Such checkpoints are told apart by their position-embedding count: a square patch grid (N = s*s) without
    the slot rather than 1 + N with it, the rule big_vision itself uses when loading old checkpoints.
    """
    pos = tensors["pos_embed"]
    if "cls_token" in tensors and _is_square(pos.shape[1]):
        tensors["pos_embed"] = torch.cat([torch.zeros_like(pos[:, :1]), pos], dim=1)
    return tensors


def _is_square(n: int) -> bool:
    return math.isqrt(n) ** 2 == n


# ---- initialising views --------------------------------------------------------------------------
def init_views_from_vit(model: MTV, checkpoints: Checkpoints, inflation: str = "central_frame") -> None:
    """Load one image-ViT checkpoint into each view that has one; see the module docstring.

    `checkpoints`: one path (or None to keep the view's random init) per view in the order written in the
    variant string (`B/2+S/4+Ti/8` -> [ViT-B, ViT-S, ViT-Ti]), or a mapping from encoder size name to path
    (`{"B": vit_b}` initialises every B view of `B/2+B/4+B/8`).
    """
    if inflation not in INFLATIONS:
        raise ConfigError(f"model.init.inflation={inflation!r} is not one of {', '.join(INFLATIONS)}")
    config = model.config
    loaded: dict[str, ViTTrunk] = {}
    updates: dict[str, Tensor] = {}
    for index, path in enumerate(_paths_per_view(config, checkpoints)):
        if path is None:
            continue
        source = str(path)
        if source not in loaded:
            loaded[source] = read_vit_trunk(path)
        own_pos_embed = model.views[index].pos_embed.detach()
        for name, tensor in _view_tensors(config, index, loaded[source], source, inflation, own_pos_embed).items():
            updates[f"views.{index}.{name}"] = tensor
    params = dict(model.named_parameters())
    for name, tensor in updates.items():  # cannot fail for a consistent file; guards against inconsistent ones
        if params[name].shape != tensor.shape:
            raise ConfigError(
                f"model.init.vit_checkpoints: {name} would get shape {tuple(tensor.shape)} from the checkpoint, "
                f"the model needs {tuple(params[name].shape)}"
            )
    with torch.no_grad():
        for name, tensor in updates.items():
            params[name].copy_(tensor)


def _paths_per_view(config: MTVConfig, checkpoints: Checkpoints) -> list[PathLike | None]:
    """Checkpoint paths in the model's view order (fewest tokens first)."""
    views = config.views
    if isinstance(checkpoints, Mapping):
        sizes = [view.size for view in views]
        unknown = [key for key in checkpoints if key not in sizes]
        if unknown:
            raise ConfigError(
                f"model.init.vit_checkpoints: encoder sizes {unknown} name no view of model.variant="
                f"{config.variant!r}; allowed keys: {', '.join(sorted(set(sizes)))}"
            )
        return [checkpoints.get(view.size) for view in views]
    order = config.written_order or tuple(range(len(views)))
    written = "+".join(views[i].name for i in order)
    if isinstance(checkpoints, (str, Path)) or len(checkpoints) != len(views):
        got = "one path" if isinstance(checkpoints, (str, Path)) else f"{len(checkpoints)} entries"
        raise ConfigError(
            f"model.init.vit_checkpoints has {got} but model.variant={written!r} has {len(views)} views; "
            "give a list with one path (or null) per view in the order written, or a mapping from encoder "
            "size to path"
        )
    paths: list[PathLike | None] = [None] * len(views)
    for k, path in enumerate(checkpoints):
        paths[order[k]] = path
    return paths


def _view_tensors(
    config: MTVConfig, index: int, vit: ViTTrunk, source: str, inflation: str, own_pos_embed: Tensor
) -> dict[str, Tensor]:
    """New values for view `index`'s parameters (names relative to `model.views[index]`)."""
    view = config.views[index]
    label = f"view {view.name!r} (index {index})" if view.name else f"view {index}"
    t = vit.tensors
    kernel = t["patch_embed.proj.weight"]  # (d, channels, p, p)
    checks = [  # (what, the view's value, the checkpoint's value)
        ("width {}", view.hidden_size, kernel.shape[0]),
        ("{} layers", view.num_layers, vit.depth),
        ("MLP width {}", view.mlp_dim, t["blocks.0.mlp.fc1.weight"].shape[0]),
        ("{} input channels", 3, kernel.shape[1]),
    ]
    if vit.num_heads is not None:
        checks.append(("{} heads", view.num_heads, vit.num_heads))
    for what, want, got in checks:
        if want != got:
            raise ConfigError(
                f"model.init.vit_checkpoints: {label} has {what.format(want)} but checkpoint {source} has {got}; "
                "give a ViT of the view's encoder size, or null to keep the view's random init"
            )
    h, w, frames = view.patch
    if kernel.shape[-2:] != (h, w):
        kernel = resize_bilinear(kernel, (h, w))
    out = {"tokenizer.weight": inflate_kernel(kernel, frames, inflation), "tokenizer.bias": t["patch_embed.proj.bias"]}
    has_cls = config.classifier == "token"
    if has_cls and "cls_token" in t:
        out["cls_token"] = t["cls_token"].reshape(1, 1, 1, -1).repeat(1, config.temporal_tokens(index), 1, 1)
    pos = t["pos_embed"]
    out["pos_embed"] = _fit_grid(pos[:, int("cls_token" in t):], config.spatial_grid(index), label, source)
    if has_cls:  # a checkpoint without CLS keeps the view's own CLS slot, as scenic does
        cls_slot = pos[:, :1] if "cls_token" in t else own_pos_embed[:, :1]
        out["pos_embed"] = torch.cat([cls_slot, out["pos_embed"]], dim=1)
    out.update({name: tensor for name, tensor in t.items() if name.startswith("blocks.")})
    return out


def inflate_kernel(kernel: Tensor, frames: int, inflation: str) -> Tensor:
    """2-D patch kernel (d, 3, h, w) -> tubelet kernel (d, 3, frames, h, w).

    `central_frame`: the kernel at time index frames // 2, zeros elsewhere (scenic's ViT init);
    `average`: the kernel at every time index divided by frames (I3D-style inflation).
    Both give the image ViT's patch embedding on a video whose frames are all the same.
    """
    if inflation == "average":
        return kernel.unsqueeze(2).repeat(1, 1, frames, 1, 1) / frames
    weight = kernel.new_zeros(kernel.shape[0], kernel.shape[1], frames, *kernel.shape[2:])
    weight[:, :, frames // 2] = kernel
    return weight


def _fit_grid(grid: Tensor, size: tuple[int, int], label: str, source: str) -> Tensor:
    """Patch position embeddings (1, N, d) -> (1, gh * gw, d), bilinearly resized if the grid differs.

    The checkpoint's grid is taken as square; a non-square one can only be copied, so its count must match.
    """
    n = grid.shape[1]
    side = math.isqrt(n)
    gh, gw = size
    if (side, side) == (gh, gw) or (n == gh * gw and side * side != n):
        return grid
    if side * side != n:
        raise ConfigError(
            f"model.init.vit_checkpoints: {label} needs a {gh}x{gw} position-embedding grid, but checkpoint "
            f"{source} has {n} patch positions, not a square grid that could be resized"
        )
    return resize_grid(grid, side, size)


# ---- ensembles ------------------------------------------------------------------------------------
def checkpoints_for_members(checkpoints: Checkpoints | None, members: Sequence[str]) -> list[Checkpoints | None]:
    """Split an ensemble's `init.vit_checkpoints` (one path per member, or size -> path) into one per member."""
    if not checkpoints:
        return [None] * len(members)
    sizes = [parse_view(member).size for member in members]
    if isinstance(checkpoints, Mapping):
        unknown = [key for key in checkpoints if key not in sizes]
        if unknown:
            raise ConfigError(
                f"model.init.vit_checkpoints: encoder sizes {unknown} name no member of model.members="
                f"{list(members)}; allowed keys: {', '.join(sorted(set(sizes)))}"
            )
        return [{size: checkpoints[size]} if size in checkpoints else {} for size in sizes]
    if isinstance(checkpoints, (str, Path)) or len(checkpoints) != len(members):
        raise ConfigError(
            f"model.init.vit_checkpoints={checkpoints!r}: give one path (or null) per member of "
            f"model.members={list(members)}, or a mapping from encoder size to path"
        )
    return [[path] for path in checkpoints]
