"""Initialising a ViViT from an ImageNet ViT or from another ViViT, as scenic's `init_from` does.

From an image ViT (`model.init.vit_checkpoint`, any format `mtv.models.vit_init` reads), following scenic's
`initialise_from_train_state` (vivit/model_utils.py):
- the 2-D patch kernel becomes the tubelet kernel (central frame or average inflation; the patch must
  match, as scenic asserts), its bias is copied;
- models 1, 3, 4: the ViT CLS token (model 1) and the position embedding go to `encoder`; the image grid is
  tiled over the nt frame slots (`posemb_change=tile`, scenic's K400 setting), or resized to the model's
  grid first (`resize_tile`), or resized as a whole (`resize`); the CLS slot is kept for `token` models
  and dropped for `gap`;
- model 2: the same into `spatial_encoder` (its grid is one frame's); the ViT's CLS token is not used,
  because scenic names the target `cls_SpatialTransformer` and skips the ViT's `cls`;
- blocks are copied one to one; in model 3 the ViT attention goes to both the space and the time attention,
  LN_0 to the space norm and LN_1 to the MLP norm, and the time norm keeps its fresh init;
- the ViT's final LayerNorm goes to the (spatial) encoder's norm; model 2's temporal encoder and the head
  keep their random init.

From a ViViT checkpoint of this project (`model.init.checkpoint`: converted from scenic, or trained here):
same architecture required; position embeddings are refitted when the input size differs (spatial ones
by `posemb_change`, model 2's temporal one by 1-D linear interpolation), the head is kept unless
`restore_head`. Everything is checked before the model is touched, so a misfit raises one ConfigError.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor

from mtv.checkpoints import read_model_weights
from mtv.errors import ConfigError
from mtv.models.resize import resize_grid
from mtv.models.vit_init import inflate_kernel, read_vit_trunk
from mtv.models.vivit.config import FACTORIZED_ENCODER, FACTORIZED_SELF_ATTENTION
from mtv.models.vivit.model import ViViT

_MODEL3_PARTS = {"norm1": "norm_space", "norm2": "norm_mlp", "mlp": "mlp"}  # + attn -> attn_space, attn_time


def fit_position_embedding(
    source: Tensor, target: Tensor, source_cls: bool, target_cls: bool, method: str,
    grid: tuple[int, int], label: str,
) -> Tensor:
    """`source` (1, [1+]M, d) refitted to `target`'s shape (1, [1+]N, d), scenic's `init_posemb`.

    `grid` is the target's spatial (rows, columns); `method` is tile | resize_tile | resize | linear (1-D
    interpolation, for the temporal encoder). The CLS slot comes from the source when both have one, from
    the target when only it has one, and is dropped when the target has none."""
    tokens = source[:, int(source_cls):]
    n = target.shape[1] - int(target_cls)
    if tokens.shape[1] != n:
        tokens = _refit(tokens, n, method, grid, label)
    if not target_cls:
        return tokens
    cls = source[:, :1] if source_cls else target[:, :1]
    return torch.cat([cls, tokens], dim=1)


def _refit(tokens: Tensor, n: int, method: str, grid: tuple[int, int], label: str) -> Tensor:
    m = tokens.shape[1]
    if method == "linear":
        return F.interpolate(tokens.transpose(1, 2), size=n, mode="linear", align_corners=True).transpose(1, 2)
    if method == "tile":
        if n % m:
            raise ConfigError(
                f"{label}: {m} position embeddings cannot be tiled to {n} tokens; set "
                "model.init.posemb_change=resize_tile (resize the image grid, then tile over frame slots)"
            )
        return tokens.repeat(1, n // m, 1)
    side = math.isqrt(m)
    if side * side != m:
        raise ConfigError(f"{label}: {m} position embeddings are not a square grid that could be resized")
    if method == "resize":
        target_side = math.isqrt(n)
        if target_side * target_side != n:
            raise ConfigError(f"{label}: posemb_change=resize needs a square target of tokens, got {n}; "
                              "use resize_tile")
        return resize_grid(tokens, side, (target_side, target_side))
    per_slot = grid[0] * grid[1]  # resize_tile
    return resize_grid(tokens, side, grid).repeat(1, n // per_slot, 1)


def _first_encoder(model: ViViT) -> str:
    return "spatial_encoder" if model.spec.attention == FACTORIZED_ENCODER else "encoder"


def _spatial_grid(model: ViViT) -> tuple[int, int]:
    _, nh, nw = model.spec.grid
    return nh, nw


def _vit_updates(model: ViViT, path: str | Path, inflation: str, posemb_change: str) -> dict[str, Tensor]:
    spec = model.spec
    source = f"model.init.vit_checkpoint={str(path)!r}"
    trunk = read_vit_trunk(path, final_norm=True)
    vit = trunk.tensors
    kernel = vit["patch_embed.proj.weight"]  # (d, 3, p, p)
    checks = [("width", spec.hidden_size, kernel.shape[0]), ("layers", spec.num_layers, trunk.depth),
              ("MLP width", spec.mlp_dim, vit["blocks.0.mlp.fc1.weight"].shape[0]),
              ("patch", tuple(spec.patch[:2]), tuple(kernel.shape[2:]))]
    if trunk.num_heads is not None:  # Flax files record it; timm state dicts do not
        checks.append(("head count", spec.num_heads, trunk.num_heads))
    for what, want, got in checks:
        if want != got:
            raise ConfigError(
                f"{source}: the model's {what} is {want} but the checkpoint's is {got}; give a ViT of the "
                f"encoder size and patch of model.variant={spec.label!r}"
            )
    encoder = _first_encoder(model)
    target = getattr(model, encoder)
    updates = {"tokenizer.weight": inflate_kernel(kernel, spec.patch[2], inflation),
               "tokenizer.bias": vit["patch_embed.proj.bias"]}
    has_cls = "cls_token" in vit
    if encoder == "encoder" and target.cls_token is not None and has_cls:
        updates["encoder.cls_token"] = vit["cls_token"]
    updates[f"{encoder}.pos_embed"] = fit_position_embedding(
        vit["pos_embed"], target.pos_embed.detach(), has_cls, target.cls_token is not None, posemb_change,
        _spatial_grid(model), source)
    for name, tensor in vit.items():
        if name.startswith("norm."):
            updates[f"{encoder}.{name}"] = tensor
        if not name.startswith("blocks."):
            continue
        _, layer, part, rest = name.split(".", 3)
        dst = f"{encoder}.blocks.{layer}"
        if spec.attention != FACTORIZED_SELF_ATTENTION:
            updates[f"{dst}.{part}.{rest}"] = tensor
        elif part == "attn":
            updates[f"{dst}.attn_space.{rest}"] = tensor
            updates[f"{dst}.attn_time.{rest}"] = tensor.clone()
        else:
            updates[f"{dst}.{_MODEL3_PARTS[part]}.{rest}"] = tensor
    return updates


def _checkpoint_updates(model: ViViT, path: str | Path, restore_head: bool, posemb_change: str) -> dict[str, Tensor]:
    source = f"model.init.checkpoint={str(path)!r}"
    state = read_model_weights(path, "model.init.checkpoint")
    target = model.state_dict()
    keep = set() if restore_head else {"head.weight", "head.bias"}

    def architecture(names: set[str]) -> set[str]:  # CLS tokens may differ (token vs gap), as in scenic
        return {k for k in names if not k.endswith("cls_token") and k not in keep}

    missing = sorted(architecture(set(target)) - set(state))
    unexpected = sorted(architecture(set(state)) - set(target))
    if missing or unexpected:
        first = f"missing {missing[0]}" if missing else f"unexpected {unexpected[0]}"
        raise ConfigError(
            f"{source} is not a ViViT of this architecture ({display(model)}): {first} "
            f"({len(missing)} missing, {len(unexpected)} unexpected); check model.attention and model.variant"
        )
    updates: dict[str, Tensor] = {}
    for key, value in target.items():
        if key in keep or key not in state:
            continue
        src = state[key].to(value.dtype)
        if key.endswith("pos_embed"):
            encoder = key.split(".")[0]
            has_cls = f"{encoder}.cls_token"
            method = "linear" if encoder == "temporal_encoder" else posemb_change
            src = fit_position_embedding(src, value, has_cls in state, has_cls in target, method,
                                         _spatial_grid(model), source)
        if src.shape != value.shape:
            raise ConfigError(
                f"{source}: {key} has shape {tuple(src.shape)}, the model needs {tuple(value.shape)}; only "
                "position embeddings follow the input size (for another class count leave restore_head off)"
            )
        updates[key] = src
    return updates


def display(model: ViViT) -> str:
    return f"model {model.spec.model_number}, {model.spec.attention}"


@torch.no_grad()
def _apply(model: ViViT, updates: dict[str, Tensor], source: str) -> None:
    params = dict(model.named_parameters())
    for name, tensor in updates.items():  # all checked before the first copy
        if name not in params or params[name].shape != tensor.shape:
            want = tuple(params[name].shape) if name in params else "no such parameter"
            raise ConfigError(f"{source}: {name} would get shape {tuple(tensor.shape)}, the model has {want}")
    for name, tensor in updates.items():
        params[name].copy_(tensor)


def init_from_vit(
    model: ViViT, path: str | Path, inflation: str = "central_frame", posemb_change: str = "tile"
) -> None:
    """Load an ImageNet ViT into the model's spatial parts (module docstring)."""
    _apply(model, _vit_updates(model, path, inflation, posemb_change), f"model.init.vit_checkpoint={str(path)!r}")


def init_from_checkpoint(
    model: ViViT, path: str | Path, restore_head: bool = False, posemb_change: str = "tile"
) -> None:
    """Load another ViViT's weights for fine-tuning (module docstring)."""
    _apply(model, _checkpoint_updates(model, path, restore_head, posemb_change), f"model.init.checkpoint={str(path)!r}")
