"""scenic MTV -> this project's MTV: the config and the parameters, with every shape checked (ViViT configs
are handed to `mtv.interop.scenic_vivit`).

`model_from_scenic(config, params)` takes scenic's config as a plain dict and the parameters as
'/'-joined Flax paths (a mapping, an `.npz` of that mapping, or a released msgpack checkpoint).

Every Flax leaf is read with the shape the config implies (attention kernels in Flax's (in, heads,
head_dim) layout, so a wrong head count is caught even where the flattened PyTorch shape would fit), and
leaves the config does not use are an error too: a checkpoint with more views or other fusion layers than
its config would otherwise load into a different model without complaint.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mtv.errors import ConfigError
from mtv.interop.flax_msgpack import flatten, params_from_train_state, read_msgpack
from mtv.models.mtv.config import CLASSIFIERS, MTVConfig
from mtv.models.mtv.model import MTV

Params = Mapping[str, Any]
MV = "MultiviewEncoder"


def load_params(params: Params | str | Path) -> dict[str, np.ndarray]:
    """Flat '/'-joined Flax parameters from a mapping (flat or nested), an `.npz` file or a msgpack
    checkpoint (a file, or a checkpoint directory: its latest `checkpoint_<step>`)."""
    if isinstance(params, Mapping):
        return flatten(params)
    path = Path(params)
    if path.suffix == ".npz":
        if not path.is_file():
            raise FileNotFoundError(f"scenic parameters: no file at {path}")
        with np.load(path) as data:
            return {key: data[key] for key in data.files}
    return params_from_train_state(read_msgpack(path), source=str(path))


class _FlaxTree:
    """Flax leaves read by path with the shape the config needs; remembers what was read."""

    def __init__(self, params: Mapping[str, np.ndarray], source: str) -> None:
        self.params = params
        self.source = source
        self.used: set[str] = set()

    def take(self, path: str, shape: tuple[int, ...]) -> np.ndarray:
        if path not in self.params:
            raise ConfigError(
                f"{self.source}: missing parameter {path!r} (shape {shape}) that the config needs; "
                "do the config and the parameters belong together?"
            )
        value = np.asarray(self.params[path])
        if value.shape != tuple(shape):
            raise ConfigError(
                f"{self.source}: parameter {path!r} has shape {value.shape}, the config needs {tuple(shape)}; "
                "check view sizes, heads, patches, frames and classes in the config"
            )
        self.used.add(path)
        return value

    def unused(self) -> list[str]:
        return sorted(set(self.params) - self.used)


def _attention(
    tree: _FlaxTree, src: str, dst: str, q_dim: int, kv_dim: int, width: int, heads: int, out: dict, fused: bool
) -> None:
    """Flax attention (query/key/value kernels (in, heads, head_dim), out kernel (heads, head_dim, q_dim))
    -> Linear layers; heads-major flattening matches `.view(B, L, heads, head_dim)`. `fused` writes
    self-attention's single qkv Linear, otherwise separate q, k, v."""
    head_dim = width // heads
    weights, biases = [], []
    for part, in_dim in (("query", q_dim), ("key", kv_dim), ("value", kv_dim)):
        weights.append(tree.take(f"{src}/{part}/kernel", (in_dim, heads, head_dim)).reshape(in_dim, width).T)
        biases.append(tree.take(f"{src}/{part}/bias", (heads, head_dim)).reshape(width))
    if fused:
        out[f"{dst}.qkv.weight"] = np.concatenate(weights)
        out[f"{dst}.qkv.bias"] = np.concatenate(biases)
    else:
        for name, weight, bias in zip("qkv", weights, biases):
            out[f"{dst}.{name}.weight"] = weight
            out[f"{dst}.{name}.bias"] = bias
    out[f"{dst}.proj.weight"] = tree.take(f"{src}/out/kernel", (heads, head_dim, q_dim)).reshape(width, q_dim).T
    out[f"{dst}.proj.bias"] = tree.take(f"{src}/out/bias", (q_dim,))


def _layer_norm(tree: _FlaxTree, src: str, dst: str, dim: int, out: dict) -> None:
    out[f"{dst}.weight"] = tree.take(f"{src}/scale", (dim,))
    out[f"{dst}.bias"] = tree.take(f"{src}/bias", (dim,))


def _dense(tree: _FlaxTree, src: str, dst: str, in_dim: int, out_dim: int, out: dict) -> None:
    out[f"{dst}.weight"] = tree.take(f"{src}/kernel", (in_dim, out_dim)).T
    out[f"{dst}.bias"] = tree.take(f"{src}/bias", (out_dim,))


def _block(tree: _FlaxTree, src: dict[str, str], dst: str, dim: int, heads: int, mlp: int, out: dict) -> None:
    """One pre-LN block; `src` names the Flax sub-paths of its two norms, attention and MLP."""
    _layer_norm(tree, src["ln0"], f"{dst}.norm1", dim, out)
    _attention(tree, src["attn"], f"{dst}.attn", dim, dim, dim, heads, out, fused=True)
    _layer_norm(tree, src["ln1"], f"{dst}.norm2", dim, out)
    _dense(tree, f"{src['mlp']}/Dense_0", f"{dst}.mlp.fc1", dim, mlp, out)
    _dense(tree, f"{src['mlp']}/Dense_1", f"{dst}.mlp.fc2", mlp, dim, out)


def _plain_block(prefix: str) -> dict[str, str]:
    return {"ln0": f"{prefix}/LayerNorm_0", "attn": f"{prefix}/MultiHeadDotProductAttention_0",
            "ln1": f"{prefix}/LayerNorm_1", "mlp": f"{prefix}/MlpBlock_0"}


def _view_block(tree: _FlaxTree, config: MTVConfig, i: int, layer: int, out: dict) -> None:
    """View i's block at `layer`: a plain ViT block, or its half of a CVA layer's block."""
    view = config.views[i]
    if config.fusion.type == "cva" and layer in config.fusion.layers:
        cv = f"{MV}/cross_view_encoderblock_{layer}"
        src = {"ln0": f"{cv}/msa_ln_view{i}", "attn": f"{cv}/msa_view{i}",
               "ln1": f"{cv}/mlp_ln_view{i}", "mlp": f"{cv}/mlp_view{i}"}
    else:
        src = _plain_block(f"{MV}/encoderblock_{layer}_view{i}")
    _block(tree, src, f"views.{i}.blocks.{layer}", view.hidden_size, view.num_heads, view.mlp_dim, out)


def _fusion(tree: _FlaxTree, config: MTVConfig, out: dict) -> None:
    views, fusion = config.views, config.fusion
    if fusion.type == "cva":
        for layer in fusion.layers:
            cv = f"{MV}/cross_view_encoderblock_{layer}"
            for i, view in enumerate(views):
                _layer_norm(tree, f"{cv}/cross_attention_ln_view{i}", f"fusion.norms.{layer}.{i}", view.hidden_size,
                            out)
            for q, kv in config.cva_pairs():
                src = views[q] if fusion.use_query_config else views[kv]
                _attention(tree, f"{cv}/cross_attention_view{q}_{kv}", f"fusion.attention.{layer}_{q}_{kv}",
                           views[q].hidden_size, views[kv].hidden_size, src.hidden_size, src.num_heads, out,
                           fused=False)
    elif fusion.type == "bottleneck":
        # scenic walks the views in order and projects the bottleneck whenever its width differs
        order = list(range(len(views)))[::-1] if fusion.descending else list(range(len(views)))
        width = views[order[0]].hidden_size
        out["fusion.tokens"] = tree.take("bottleneck", (1, config.t_min, fusion.bottleneck_tokens, width))
        for layer in fusion.layers:
            for v in order:
                if layer < views[v].num_layers and views[v].hidden_size != width:
                    _dense(tree, f"{MV}/bottleneck_linear_{layer}_view{v}", f"fusion.projections.{layer}_view{v}",
                           width, views[v].hidden_size, out)
                    width = views[v].hidden_size
    elif fusion.type != "none":
        raise ConfigError(f"scenic has no {fusion.type!r} fusion; expected cva, bottleneck or none")


def flax_to_state_dict(
    flax: Params, config: MTVConfig, source: str = "scenic parameters", ignore: Collection[str] = ()
) -> dict[str, torch.Tensor]:
    """Map scenic's parameter tree onto `MTV(config).state_dict()` names and layouts.

    Raises ConfigError naming the first missing or misshapen leaf, or the leaves the config does not use
    (except those in `ignore`)."""
    tree = _FlaxTree(flax, source)
    out: dict[str, np.ndarray] = {}
    token = config.classifier == "token"
    for i, view in enumerate(config.views):
        h, w, t = view.patch
        d = view.hidden_size
        kernel = tree.take(f"embedding_view{i}/kernel", (t, h, w, 3, d))
        out[f"views.{i}.tokenizer.weight"] = kernel.transpose(4, 3, 0, 1, 2)  # Conv3d: (d, 3, t, h, w)
        out[f"views.{i}.tokenizer.bias"] = tree.take(f"embedding_view{i}/bias", (d,))
        if token:
            out[f"views.{i}.cls_token"] = tree.take(f"cls_view{i}", (1, config.temporal_tokens(i), 1, d))
        gh, gw = config.spatial_grid(i)
        out[f"views.{i}.pos_embed"] = tree.take(f"{MV}/posembed_input_view{i}/pos_embedding", (1, gh * gw + token, d))
        for layer in range(view.num_layers):
            _view_block(tree, config, i, layer, out)
    _fusion(tree, config, out)

    g, width = config.global_encoder, config.global_width
    if g.merge == "time":
        for i, view in enumerate(config.views):
            _dense(tree, f"global_encoder_linear_view{i}", f"global_encoder.time_projections.{i}", view.hidden_size,
                   width, out)
    if token:
        out["global_encoder.cls_token"] = tree.take("cls_global", (1, 1, width))
    out["global_encoder.pos_embed"] = tree.take(
        "global_encoder/posembed_input/pos_embedding", (1, config.global_tokens + token, width)
    )
    for layer in range(g.num_layers):
        _block(tree, _plain_block(f"global_encoder/encoderblock_{layer}"), f"global_encoder.blocks.{layer}",
               width, g.num_heads, g.mlp_dim, out)
    _layer_norm(tree, "global_encoder/encoder_norm", "global_encoder.norm", width, out)
    _dense(tree, "output_projection", "head", width, config.num_classes, out)

    unused = [key for key in tree.unused() if key not in ignore]
    if unused:
        shown = ", ".join(unused[:6]) + (f", ... ({len(unused)} in all)" if len(unused) > 6 else "")
        raise ConfigError(
            f"{source}: parameters the config does not use: {shown}; the checkpoint has more views, blocks or "
            "fusion parameters than the config describes"
        )
    return {key: torch.from_numpy(np.array(value, dtype=np.float32, order="C")) for key, value in out.items()}


def load_state_dict_checked(model: torch.nn.Module, state: Mapping[str, torch.Tensor], source: str) -> None:
    """`load_state_dict(strict=True)` with one error that lists every missing, unexpected or misshapen key."""
    expected = model.state_dict()
    problems = [f"missing {k}" for k in expected if k not in state]
    problems += [f"unexpected {k}" for k in state if k not in expected]
    problems += [
        f"{k}: shape {tuple(v.shape)} in {source}, model needs {tuple(expected[k].shape)}"
        for k, v in state.items() if k in expected and v.shape != expected[k].shape
    ]
    if problems:
        shown = "; ".join(problems[:8]) + (f"; ... ({len(problems)} in all)" if len(problems) > 8 else "")
        raise ConfigError(f"{source} does not fit the model: {shown}")
    model.load_state_dict(state, strict=True)


def scenic_model_config(config: Mapping[str, Any], flax: Params) -> MTVConfig:
    """Our MTVConfig for scenic's config, with what the config leaves out read from the parameters: the
    image size (from the position embeddings, unless `dataset_configs.crop_size` is given) and the class
    count when `dataset_configs.num_classes` is missing (scenic's k600/k700 MTV-L configs lose it)."""
    config = dict(config)
    classifier = (config.get("model") or {}).get("classifier", "token")
    if classifier not in CLASSIFIERS:  # checked first: it decides the position-embedding lengths
        raise ConfigError(f"scenic config model.classifier={classifier!r}: supported are {', '.join(CLASSIFIERS)}")
    data = dict(config.get("dataset_configs") or {})
    if "num_classes" not in data and "output_projection/kernel" in flax:
        data["num_classes"] = int(np.shape(flax["output_projection/kernel"])[-1])
    config["dataset_configs"] = data
    return MTVConfig.from_scenic(config, image_size=_image_size(config, flax))


def _image_size(config: Mapping[str, Any], flax: Params) -> tuple[int, int]:
    """`dataset_configs.crop_size`, or the (preferably square) size whose patch grids give every view's
    position-embedding length."""
    crop = config["dataset_configs"].get("crop_size")
    if crop is not None:
        if np.ndim(crop) == 0:
            return int(crop), int(crop)
        height, width = (int(c) for c in crop)
        return height, width
    try:
        patches = [tuple(int(p) for p in v["patches"]["size"]) for v in config["model"]["view_configs"]]
    except (KeyError, TypeError) as err:
        raise ConfigError(f"scenic config: model.view_configs[*].patches.size is missing ({err})") from err
    cls = int(config["model"].get("classifier", "token") == "token")
    grids = []
    for i in range(len(patches)):
        key = f"{MV}/posembed_input_view{i}/pos_embedding"
        if key not in flax or np.ndim(flax[key]) != 3:
            raise ConfigError(f"scenic parameters: need {key!r} of shape (1, tokens, width) to infer the image size")
        grids.append(np.shape(flax[key])[1] - cls)
    (h0, w0, _), n0 = patches[0], grids[0]
    from_view0 = [(rows * h0, n0 // rows * w0) for rows in range(1, n0 + 1) if n0 % rows == 0]
    fitting = [
        (height, width) for height, width in from_view0
        if all(height % h == 0 and width % w == 0 and (height // h) * (width // w) == n
               for (h, w, _), n in zip(patches, grids))
    ]
    # if no size fits every view, go on with view 0's so that the shape check names the misfit parameter
    candidates = fitting or from_view0
    square = [c for c in candidates if c[0] == c[1]]
    if len(square) == 1 or len(candidates) == 1:
        return (square or candidates)[0]
    raise ConfigError(
        f"scenic parameters: cannot infer the image size from position embeddings of {grids} tokens "
        f"(candidates {candidates}); set dataset_configs.crop_size in the config"
    )


def model_from_scenic(config: Mapping[str, Any], params: Params | str | Path) -> torch.nn.Module:
    """An MTV (or, for a ViViT config with `model.attention_config`, a ViViT) in eval mode that computes what
    scenic computes for this config and these parameters.

    Inputs are (B, 3, T, H, W) float; scenic's layout is (B, T, H, W, 3), so permute(0, 4, 1, 2, 3) first.
    """
    from mtv.interop.scenic_vivit import is_vivit_config, vivit_from_scenic  # it builds on this module

    if is_vivit_config(config):
        return vivit_from_scenic(config, params)
    flax = load_params(params)
    mtv_config = scenic_model_config(config, flax)
    model = MTV(mtv_config)
    fusion = (config.get("model") or {}).get("cross_view_fusion") or {}
    # scenic creates the bottleneck parameter even when no layer fuses; nothing reads it then
    ignore = {"bottleneck"} if fusion.get("type") == "bottleneck" and mtv_config.fusion.type == "none" else set()
    load_state_dict_checked(model, flax_to_state_dict(flax, mtv_config, ignore=ignore), "scenic parameters")
    return model.eval()
