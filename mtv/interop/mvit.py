"""MViT models from torchvision's constructor arguments or PySlowFast's config, without either package.

`model_from_torchvision(kwargs, state_dict)`: `kwargs` are torchvision's `MViT(...)` arguments as plain JSON
(`block_setting` a list of dicts with MSBlockConfig's fields). `model_from_pyslowfast(cfg, state_dict)`:
`cfg` is PySlowFast's config as a plain dict (its MVIT, MODEL and DATA sections are read). Both return an
eval-mode module that maps (B, 3, T, H, W) to pre-softmax logits (PySlowFast's eval-time softmax is left
out), with the weights loaded strictly; settings we do not implement raise ConfigError naming them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from torch import Tensor

from mtv.errors import ConfigError
from mtv.models.mvit import build
from mtv.models.mvit.checkpoint import load_strict
from mtv.models.mvit.config import MViTBlock, MViTConfig
from mtv.models.mvit.model import MViT
from mtv.models.registry import ModelInputs

_TORCHVISION_ARGS = frozenset({
    "spatial_size", "temporal_size", "block_setting", "residual_pool", "residual_with_cls_embed", "rel_pos_embed",
    "proj_after_attn", "dropout", "attention_dropout", "stochastic_depth_prob", "num_classes", "block",
    "norm_layer", "patch_embed_kernel", "patch_embed_stride", "patch_embed_padding",
})
_BLOCK_FIELDS = ("num_heads", "input_channels", "output_channels", "kernel_q", "kernel_kv", "stride_q", "stride_kv")


def _ints(value: Sequence[Any]) -> list[int]:
    return [int(v) for v in value]


def torchvision_config(kwargs: Mapping[str, Any]) -> tuple[MViTConfig, ModelInputs]:
    """Our config and inputs for torchvision `MViT(**kwargs)` (defaults as in torchvision 0.28)."""
    unknown = sorted(set(kwargs) - _TORCHVISION_ARGS)
    if unknown:
        raise ConfigError(f"torchvision MViT argument(s) {', '.join(unknown)} are not known")
    for key in ("block", "norm_layer"):
        if kwargs.get(key) is not None:
            raise ConfigError(f"torchvision MViT {key}={kwargs[key]!r}: only the default (None) is supported")
    blocks = []
    for i, block in enumerate(kwargs["block_setting"]):
        missing = [f for f in _BLOCK_FIELDS if f not in block]
        if missing:
            raise ConfigError(f"block_setting[{i}] lacks {', '.join(missing)}")
        blocks.append(MViTBlock(**{f: (_ints(block[f]) if f.startswith(("kernel", "stride")) else int(block[f]))
                                   for f in _BLOCK_FIELDS}))
    rel_pos = bool(kwargs["rel_pos_embed"])
    cfg = MViTConfig(
        display_name="MViT (torchvision)",
        blocks=blocks,
        patch_kernel=_ints(kwargs.get("patch_embed_kernel", (3, 7, 7))),
        patch_stride=_ints(kwargs.get("patch_embed_stride", (2, 4, 4))),
        patch_padding=_ints(kwargs.get("patch_embed_padding", (1, 3, 3))),
        cls_token=True,
        pos_embed="none" if rel_pos else "separable",
        rel_pos_spatial=rel_pos,
        rel_pos_temporal=rel_pos,
        residual_pool=bool(kwargs["residual_pool"]),
        residual_pool_cls=bool(kwargs["residual_with_cls_embed"]),
        dim_mul_in_att=bool(kwargs["proj_after_attn"]),
        dropout=float(kwargs.get("dropout", 0.5)),
        block_dropout=float(kwargs.get("attention_dropout", 0.0)),
        stochastic_depth=float(kwargs.get("stochastic_depth_prob", 0.0)),
    )
    spatial = kwargs["spatial_size"]
    height, width = (int(spatial),) * 2 if isinstance(spatial, (int, float)) else _ints(spatial)
    return cfg, ModelInputs(int(kwargs.get("num_classes", 400)), int(kwargs["temporal_size"]), (height, width))


def round_width(width: float, multiplier: float, divisor: int = 1) -> int:
    """PySlowFast's `round_width`: width * multiplier rounded to a multiple of divisor, never below 90%."""
    if not multiplier:
        return int(width)
    width *= multiplier
    out = max(1, int(width + divisor / 2) // divisor * divisor)
    if out < 0.9 * width:
        out += divisor
    return int(out)


def _unsupported(mvit: Mapping[str, Any], model: Mapping[str, Any]) -> str | None:
    """The first PySlowFast setting we do not implement, described, or None."""
    checks = (
        ((mvit.get("REV") or {}).get("ENABLE", False), "reversible MViT (MVIT.REV.ENABLE)"),
        (mvit.get("SEPARATE_QKV", False), "separate q/k/v projections (MVIT.SEPARATE_QKV)"),
        (mvit.get("USE_MEAN_POOLING", False), "the mean-pooling head (MVIT.USE_MEAN_POOLING: mean, then norm)"),
        (mvit.get("POOL_FIRST", False), "pooling before the q/k/v projections (MVIT.POOL_FIRST)"),
        (mvit.get("MODE", "conv") != "conv", f"MVIT.MODE={mvit.get('MODE')!r} pooling (only 'conv')"),
        (float(mvit.get("LAYER_SCALE_INIT_VALUE", 0.0) or 0.0) > 0, "layer scale (MVIT.LAYER_SCALE_INIT_VALUE)"),
        (mvit.get("NORM_STEM", False), "a norm after the patch embedding (MVIT.NORM_STEM)"),
        (mvit.get("USE_FIXED_SINCOS_POS", False), "fixed sin-cos position embeddings (MVIT.USE_FIXED_SINCOS_POS)"),
        (mvit.get("PATCH_2D", False), "2-D patch embedding (MVIT.PATCH_2D)"),
        (mvit.get("NORM", "layernorm") != "layernorm", f"MVIT.NORM={mvit.get('NORM')!r} (only 'layernorm')"),
        (model.get("ARCH", "mvit") != "mvit", f"MODEL.ARCH={model.get('ARCH')!r} (only 'mvit')"),
    )
    return next((what for bad, what in checks if bad), None)


def pyslowfast_blocks(mvit: Mapping[str, Any]) -> list[MViTBlock]:
    """Per-block settings from PySlowFast's MVIT grammar (DEPTH, EMBED_DIM, NUM_HEADS, DIM_MUL, HEAD_MUL,
    POOL_Q_STRIDE, POOL_KV_STRIDE[_ADAPTIVE], POOL_KVQ_KERNEL, DIM_MUL_IN_ATT), as its MViT builds them."""
    depth = int(mvit["DEPTH"])
    dim_mul, head_mul = [1.0] * (depth + 1), [1.0] * (depth + 1)
    for index, value in mvit.get("DIM_MUL") or []:
        dim_mul[int(index)] = float(value)
    for index, value in mvit.get("HEAD_MUL") or []:
        head_mul[int(index)] = float(value)
    kernel = mvit.get("POOL_KVQ_KERNEL")
    stride_q: list[list[int]] = [[] for _ in range(depth)]
    for index, *stride in mvit.get("POOL_Q_STRIDE") or []:
        stride_q[int(index)] = _ints(stride)
    stride_kv: list[list[int]] = [[] for _ in range(depth)]
    adaptive = mvit.get("POOL_KV_STRIDE_ADAPTIVE")
    if adaptive is not None:  # the kv stride shrinks by each q stride, from the block that has it on
        current = _ints(adaptive)
        for i in range(depth):
            if stride_q[i]:
                current = [max(c // s, 1) for c, s in zip(current, stride_q[i])]
            stride_kv[i] = list(current)
    else:
        for index, *stride in mvit.get("POOL_KV_STRIDE") or []:
            stride_kv[int(index)] = _ints(stride)

    def kernel_for(stride: list[int]) -> list[int]:
        if not stride:
            return []
        return _ints(kernel) if kernel is not None else [s + 1 if s > 1 else s for s in stride]

    blocks = []
    dim, heads = int(mvit["EMBED_DIM"]), int(mvit["NUM_HEADS"])
    in_att = bool(mvit.get("DIM_MUL_IN_ATT", False))
    for i in range(depth):
        heads = round_width(heads, head_mul[i])
        if in_att:
            dim_out = round_width(dim, dim_mul[i], divisor=round_width(heads, head_mul[i]))
        else:
            dim_out = round_width(dim, dim_mul[i + 1], divisor=round_width(heads, head_mul[i + 1]))
        blocks.append(MViTBlock(heads, dim, dim_out, kernel_for(stride_q[i]), kernel_for(stride_kv[i]),
                                stride_q[i], stride_kv[i]))
        dim = dim_out
    return blocks


def pyslowfast_config(cfg: Mapping[str, Any]) -> tuple[MViTConfig, ModelInputs]:
    """Our config and inputs for PySlowFast `MViT(cfg)`; ConfigError for what we do not implement."""
    try:
        mvit, model, data = cfg["MVIT"], cfg["MODEL"], cfg["DATA"]
    except KeyError as err:
        raise ConfigError(f"PySlowFast config lacks its {err.args[0]} section") from None
    what = _unsupported(mvit, model)
    if what is not None:
        raise ConfigError(f"PySlowFast config asks for {what}, which the mvit family does not implement")
    abs_pos = mvit.get("USE_ABS_POS", True)
    config = MViTConfig(
        display_name="MViT (PySlowFast)",
        blocks=pyslowfast_blocks(mvit),
        patch_kernel=_ints(mvit.get("PATCH_KERNEL", (3, 7, 7))),
        patch_stride=_ints(mvit.get("PATCH_STRIDE", (2, 4, 4))),
        patch_padding=_ints(mvit.get("PATCH_PADDING", (2, 4, 4))),
        cls_token=bool(mvit.get("CLS_EMBED_ON", True)),
        pos_embed=("separable" if mvit.get("SEP_POS_EMBED", False) else "joint") if abs_pos else "none",
        rel_pos_spatial=bool(mvit.get("REL_POS_SPATIAL", False)),
        rel_pos_temporal=bool(mvit.get("REL_POS_TEMPORAL", False)),
        residual_pool=bool(mvit.get("RESIDUAL_POOLING", False)),
        dim_mul_in_att=bool(mvit.get("DIM_MUL_IN_ATT", False)),
        mlp_ratio=float(mvit.get("MLP_RATIO", 4.0)),
        qkv_bias=bool(mvit.get("QKV_BIAS", True)),
        dropout=float(model.get("DROPOUT_RATE", 0.5)),
        block_dropout=float(mvit.get("DROPOUT_RATE", 0.0)),
        stochastic_depth=float(mvit.get("DROPPATH_RATE", 0.1)),
    )
    crop = int(data.get("TRAIN_CROP_SIZE", 224))
    return config, ModelInputs(int(model.get("NUM_CLASSES", 400)), int(data.get("NUM_FRAMES", 8)), (crop, crop))


def _loaded(config: MViTConfig, inputs: ModelInputs, state_dict: Mapping[str, Tensor], source: str) -> MViT:
    model = build(config, inputs)
    load_strict(model, state_dict, source)
    return model.eval()


def model_from_torchvision(kwargs: Mapping[str, Any], state_dict: Mapping[str, Tensor]) -> MViT:
    """Eval-mode MViT equal to torchvision's `MViT(**kwargs)` with `state_dict` loaded (either key layout)."""
    return _loaded(*torchvision_config(kwargs), state_dict, "torchvision state dict")


def model_from_pyslowfast(cfg: Mapping[str, Any], state_dict: Mapping[str, Tensor]) -> MViT:
    """Eval-mode MViT equal to PySlowFast's `MViT(cfg)` with `state_dict` loaded, returning pre-softmax logits."""
    return _loaded(*pyslowfast_config(cfg), state_dict, "PySlowFast state dict")
