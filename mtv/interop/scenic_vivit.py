"""scenic ViViT -> this project's ViViT: config and parameters, every Flax leaf read with the shape the config
implies (vivit_spec.md §2 for the paths and layouts).

`mtv.interop.scenic.model_from_scenic` comes here when the config is a ViViT config (it has
`model.attention_config`); the parameter forms are the same as for MTV (mapping, `.npz`, msgpack).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

from mtv.errors import ConfigError
from mtv.interop.scenic import (
    _attention,
    _block,
    _dense,
    _FlaxTree,
    _layer_norm,
    _plain_block,
    load_params,
    load_state_dict_checked,
)
from mtv.models.registry import ModelInputs
from mtv.models.variants import ENCODER_SIZES, ViewSpec
from mtv.models.vivit.config import (
    FACTORIZED_ENCODER,
    FACTORIZED_SELF_ATTENTION,
    ViViTSpec,
    config_from_dict,
    resolve,
    spec_from_scenic,
)
from mtv.models.vivit.model import ViViT

Params = Mapping[str, Any]


def is_vivit_config(config: Mapping[str, Any]) -> bool:
    """scenic's ViViT configs have `model.attention_config`; MTV's have `model.view_configs`."""
    model = config.get("model") or {}
    return "attention_config" in model and "view_configs" not in model


def _model3_block(tree: _FlaxTree, src: str, dst: str, spec: ViViTSpec, out: dict) -> None:
    d = spec.hidden_size
    for axis in ("space", "time"):
        _layer_norm(tree, f"{src}/LayerNorm_{axis}", f"{dst}.norm_{axis}", d, out)
        _attention(tree, f"{src}/MultiHeadDotProductAttention_{axis}", f"{dst}.attn_{axis}", d, d, d,
                   spec.num_heads, out, fused=True)
    _layer_norm(tree, f"{src}/LayerNorm_mlp", f"{dst}.norm_mlp", d, out)
    _dense(tree, f"{src}/MlpBlock/Dense_0", f"{dst}.mlp.fc1", d, spec.mlp_dim, out)
    _dense(tree, f"{src}/MlpBlock/Dense_1", f"{dst}.mlp.fc2", spec.mlp_dim, d, out)


def _encoder(tree: _FlaxTree, spec: ViViTSpec, src: str, cls: str, dst: str, tokens: int, layers: int,
             heads: int, mlp: int, out: dict) -> None:
    """One scenic Encoder (`src`) with its CLS leaf (`cls`) -> our `Encoder` at `dst`."""
    d = spec.hidden_size
    if spec.has_cls:
        out[f"{dst}.cls_token"] = tree.take(cls, (1, 1, d))
    out[f"{dst}.pos_embed"] = tree.take(f"{src}/posembed_input/pos_embedding", (1, tokens + spec.has_cls, d))
    for layer in range(layers):
        block, target = f"{src}/encoderblock_{layer}", f"{dst}.blocks.{layer}"
        if spec.attention == FACTORIZED_SELF_ATTENTION:
            _model3_block(tree, block, target, spec, out)
        else:
            _block(tree, _plain_block(block), target, d, heads, mlp, out)
    _layer_norm(tree, f"{src}/encoder_norm", f"{dst}.norm", d, out)


def flax_to_state_dict(flax: Params, spec: ViViTSpec, source: str = "scenic parameters") -> dict[str, torch.Tensor]:
    """scenic's ViViT parameter tree -> `ViViT(spec).state_dict()`; ConfigError names the first missing or
    misshapen leaf, or the leaves the config does not use."""
    tree = _FlaxTree(flax, source)
    out: dict[str, np.ndarray] = {}
    h, w, t = spec.patch
    d = spec.hidden_size
    out["tokenizer.weight"] = tree.take("embedding/kernel", (t, h, w, 3, d)).transpose(4, 3, 0, 1, 2)
    out["tokenizer.bias"] = tree.take("embedding/bias", (d,))
    nt = spec.grid[0]
    if spec.attention == FACTORIZED_ENCODER:
        _encoder(tree, spec, "SpatialTransformer", "cls_SpatialTransformer", "spatial_encoder", spec.spatial_tokens,
                 spec.num_layers, spec.num_heads, spec.mlp_dim, out)
        _encoder(tree, spec, "TemporalTransformer", "cls_TemporalTransformer", "temporal_encoder", nt,
                 spec.temporal_layers, spec.temporal_heads, spec.temporal_mlp_dim, out)
    else:
        _encoder(tree, spec, "Transformer", "cls", "encoder", nt * spec.spatial_tokens, spec.num_layers,
                 spec.num_heads, spec.mlp_dim, out)
    _dense(tree, "output_projection", "head", d, spec.num_classes, out)
    unused = tree.unused()
    if unused:
        raise ConfigError(
            f"{source}: parameters the config does not use, first {unused[0]!r} ({len(unused)} in all); the "
            "checkpoint has another attention type, more layers or a classifier other than the config's"
        )
    return {key: torch.from_numpy(np.array(value, dtype=np.float32, order="C")) for key, value in out.items()}


def _first_posemb(config: Mapping[str, Any]) -> str:
    kind = (config["model"].get("attention_config") or {}).get("type")
    return f"{'SpatialTransformer' if kind == 'factorized_encoder' else 'Transformer'}/posembed_input/pos_embedding"


def _image_size(config: Mapping[str, Any], flax: Params) -> tuple[int, int]:
    """`dataset_configs.crop_size`, or the square image whose patch grid gives the position embedding."""
    crop = (config.get("dataset_configs") or {}).get("crop_size")
    if crop is not None:
        return (int(crop), int(crop)) if np.ndim(crop) == 0 else tuple(int(c) for c in crop)  # type: ignore
    model = config["model"]
    key = _first_posemb(config)
    if key not in flax:
        raise ConfigError(f"scenic parameters: need {key!r} to infer the image size; or set dataset_configs.crop_size")
    tokens = np.shape(flax[key])[1] - int(model.get("classifier", "token") == "token")
    h, w, t = (int(p) for p in model["patches"]["size"])
    if model["attention_config"].get("type") != "factorized_encoder":
        tokens //= max(int(config["dataset_configs"]["num_frames"]) // t, 1)
    side = math.isqrt(tokens)
    if side * side != tokens or h != w:
        raise ConfigError(f"scenic parameters: cannot infer the image size from {tokens} patch positions per frame; "
                          "set dataset_configs.crop_size")
    return side * h, side * w


def scenic_vivit_spec(config: Mapping[str, Any], flax: Params) -> ViViTSpec:
    """Our architecture for scenic's config; the class count comes from `output_projection` (scenic's model
    takes it from the dataset, so `dataset_configs.num_classes` may be stale), the image size from
    `dataset_configs.crop_size` or the position embedding."""
    if "output_projection/kernel" in flax:
        num_classes = int(np.shape(flax["output_projection/kernel"])[-1])
    else:
        num_classes = int((config.get("dataset_configs") or {}).get("num_classes", 0))
    return spec_from_scenic(config, num_classes, _image_size(config, flax))


def vivit_from_scenic(config: Mapping[str, Any], params: Params | str) -> ViViT:
    """A ViViT in eval mode computing what scenic computes for this config and these parameters.
    Inputs are (B, 3, T, H, W); scenic's are (B, T, H, W, 3): permute(0, 4, 1, 2, 3) first."""
    flax = load_params(params)
    spec = scenic_vivit_spec(config, flax)
    model = ViViT(spec)
    load_state_dict_checked(model, flax_to_state_dict(flax, spec), "scenic parameters")
    return model.eval()


# ---- the Hydra node of a converted checkpoint ---------------------------------------------------------

def hydra_model_cfg(spec: ViViTSpec) -> dict[str, Any]:
    """Our `model` node (plain dict) for `spec`: a standard encoder size by name, another one through
    `encoder_sizes` (carried under the name 'B')."""
    numbers = {"hidden_size": spec.hidden_size, "num_heads": spec.num_heads, "mlp_dim": spec.mlp_dim,
               "num_layers": spec.num_layers}
    size = next((name for name, s in ENCODER_SIZES.items()
                 if (s.hidden_size, s.num_heads, s.mlp_dim, s.num_layers) == tuple(numbers.values())), None)
    return {
        "name": "vivit",
        "variant": ViewSpec(size or "B", spec.patch).name,
        "attention": spec.attention,
        "attention_order": spec.attention_order,
        "temporal_encoder": {"num_layers": spec.temporal_layers, "num_heads": spec.temporal_heads,
                             "mlp_dim": spec.temporal_mlp_dim},
        "encoder_sizes": None if size else {"B": numbers},
        "classifier": spec.classifier,
        "dropout": spec.dropout,
        "attention_dropout": spec.attention_dropout,
        "stochastic_depth": spec.stochastic_depth,
    }


def checked_model_cfg(spec: ViViTSpec) -> dict[str, Any]:
    """`hydra_model_cfg`, verified to resolve to exactly `spec` through the family's own path."""
    model_cfg = hydra_model_cfg(spec)
    inputs = ModelInputs(spec.num_classes, spec.num_frames, spec.image_size)
    rebuilt = resolve(config_from_dict(model_cfg), inputs)
    if {**vars(rebuilt), "label": ""} != {**vars(spec), "label": ""}:
        raise ConfigError(f"internal: model_cfg {model_cfg} resolves to {rebuilt}, expected {spec}")
    return model_cfg
