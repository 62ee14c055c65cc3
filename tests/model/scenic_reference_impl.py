"""Test-only: an independent float64 NumPy forward pass of scenic's MTV, working on the Flax parameter tree.

Written from the written description (shared/reference/scenic_reference.md §4 and mtv_spec.md §2-§3), not
from this project's torch modules or its Flax->PyTorch mapping, so that agreement between it and
`mtv.interop.scenic.model_from_scenic` on random parameters means both follow scenic. It is validated on
the scenic fixture, whose logits scenic itself produced. Also here: the Flax parameter shapes a scenic
config implies (`param_shapes`) and random parameters of those shapes (`random_params`), to build cases the
fixture does not cover.

Conventions (scenic's): input (B, F, H, W, 3); views in config order; Flax kernels (in, out), attention
q/k/v kernels (in, heads, head_dim), attention out kernels (heads, head_dim, out), conv kernels
(t, h, w, 3, D).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

Shapes = dict[str, tuple[int, ...]]
Arrays = Mapping[str, np.ndarray]


# ---- reading scenic's config ------------------------------------------------------------------------

def _views(config: Mapping[str, Any]) -> list[dict[str, Any]]:
    return [
        {"d": v["hidden_size"], "heads": v["num_heads"], "mlp": v["mlp_dim"], "layers": v["num_layers"],
         "patch": tuple(v["patches"]["size"])}
        for v in config["model"]["view_configs"]
    ]


def _fusion(config: Mapping[str, Any]) -> tuple[str, list[int], Mapping[str, Any]]:
    """(type, layers, block); type 'none' for cross_view_fusion=None."""
    block = config["model"].get("cross_view_fusion")
    if block is None:
        return "none", [], {}
    return block["type"], list(block.get("fusion_layers") or []), block


def _temporal_dims(config: Mapping[str, Any]) -> list[int]:
    frames = config["dataset_configs"]["num_frames"]
    return [frames // v["patch"][2] for v in _views(config)]


def _cva_pairs(n: int, descending: bool) -> list[tuple[int, int]]:
    """(query, key/value): descending: k = n-1..1 -> (k-1, k); else k = 0..n-2 -> (k+1, k)."""
    if descending:
        return [(k - 1, k) for k in range(n - 1, 0, -1)]
    return [(k + 1, k) for k in range(n - 1)]


def _bottleneck_order(n: int, descending: bool) -> list[int]:
    return list(range(n - 1, -1, -1)) if descending else list(range(n))


# ---- parameter shapes ------------------------------------------------------------------------------

def _block_shapes(prefix: str, names: tuple[str, str, str, str], d: int, heads: int, mlp: int) -> Shapes:
    ln0, attn, ln1, mlp_name = (f"{prefix}/{n}" for n in names)
    hd = d // heads
    shapes: Shapes = {}
    for ln in (ln0, ln1):
        shapes[f"{ln}/scale"] = (d,)
        shapes[f"{ln}/bias"] = (d,)
    for part in ("query", "key", "value"):
        shapes[f"{attn}/{part}/kernel"] = (d, heads, hd)
        shapes[f"{attn}/{part}/bias"] = (heads, hd)
    shapes[f"{attn}/out/kernel"] = (heads, hd, d)
    shapes[f"{attn}/out/bias"] = (d,)
    shapes[f"{mlp_name}/Dense_0/kernel"] = (d, mlp)
    shapes[f"{mlp_name}/Dense_0/bias"] = (mlp,)
    shapes[f"{mlp_name}/Dense_1/kernel"] = (mlp, d)
    shapes[f"{mlp_name}/Dense_1/bias"] = (d,)
    return shapes


VIT_BLOCK = ("LayerNorm_0", "MultiHeadDotProductAttention_0", "LayerNorm_1", "MlpBlock_0")


def param_shapes(config: Mapping[str, Any], image_size: tuple[int, int]) -> Shapes:
    """Every Flax parameter path of scenic's MTV for this config, with its shape."""
    views = _views(config)
    n = len(views)
    dims = _temporal_dims(config)
    t_min, t_max = min(dims), max(dims)
    token = config["model"]["classifier"] == "token"
    kind, layers, block = _fusion(config)
    descending = block.get("fuse_in_descending_order", True)
    height, width = image_size
    shapes: Shapes = {}
    for i, v in enumerate(views):
        ph, pw, pt = v["patch"]
        shapes[f"embedding_view{i}/kernel"] = (pt, ph, pw, 3, v["d"])
        shapes[f"embedding_view{i}/bias"] = (v["d"],)
        if token:
            shapes[f"cls_view{i}"] = (1, dims[i], 1, v["d"])
        tokens = (height // ph) * (width // pw) + int(token)
        shapes[f"MultiviewEncoder/posembed_input_view{i}/pos_embedding"] = (1, tokens, v["d"])
    for layer in range(max(v["layers"] for v in views)):
        if kind == "cross_view_attention" and layer in layers:
            cv = f"MultiviewEncoder/cross_view_encoderblock_{layer}"
            for i, v in enumerate(views):
                shapes[f"{cv}/cross_attention_ln_view{i}/scale"] = (v["d"],)
                shapes[f"{cv}/cross_attention_ln_view{i}/bias"] = (v["d"],)
                if layer < v["layers"]:
                    shapes.update(_block_shapes(cv, (f"msa_ln_view{i}", f"msa_view{i}", f"mlp_ln_view{i}",
                                                     f"mlp_view{i}"), v["d"], v["heads"], v["mlp"]))
            for q, kv in _cva_pairs(n, descending):
                src = views[q] if block.get("use_query_config", True) else views[kv]
                heads, hd = src["heads"], src["d"] // src["heads"]
                name = f"{cv}/cross_attention_view{q}_{kv}"
                shapes[f"{name}/query/kernel"] = (views[q]["d"], heads, hd)
                shapes[f"{name}/key/kernel"] = (views[kv]["d"], heads, hd)
                shapes[f"{name}/value/kernel"] = (views[kv]["d"], heads, hd)
                for part in ("query", "key", "value"):
                    shapes[f"{name}/{part}/bias"] = (heads, hd)
                shapes[f"{name}/out/kernel"] = (heads, hd, views[q]["d"])
                shapes[f"{name}/out/bias"] = (views[q]["d"],)
        else:
            for i, v in enumerate(views):
                if layer < v["layers"]:
                    shapes.update(_block_shapes(f"MultiviewEncoder/encoderblock_{layer}_view{i}", VIT_BLOCK,
                                                v["d"], v["heads"], v["mlp"]))
    if kind == "bottleneck":
        order = _bottleneck_order(n, descending)
        bn_width = views[order[0]]["d"]
        shapes["bottleneck"] = (1, t_min, block["bottleneck_tokens"], bn_width)
        for layer in sorted(layers):
            for v in order:
                if layer < views[v]["layers"] and views[v]["d"] != bn_width:
                    name = f"MultiviewEncoder/bottleneck_linear_{layer}_view{v}"
                    shapes[f"{name}/kernel"] = (bn_width, views[v]["d"])
                    shapes[f"{name}/bias"] = (views[v]["d"],)
                    bn_width = views[v]["d"]
    g = config["model"]["global_encoder_config"]
    merge = g.get("merge_axis", "channel")
    if merge == "channel":
        width, length = sum(v["d"] for v in views), t_max
    else:
        width, length = g["hidden_size"], sum(dims)
        for i, v in enumerate(views):
            shapes[f"global_encoder_linear_view{i}/kernel"] = (v["d"], width)
            shapes[f"global_encoder_linear_view{i}/bias"] = (width,)
    if token:
        shapes["cls_global"] = (1, 1, width)
    shapes["global_encoder/posembed_input/pos_embedding"] = (1, length + int(token), width)
    for layer in range(g["num_layers"]):
        shapes.update(_block_shapes(f"global_encoder/encoderblock_{layer}", VIT_BLOCK, width, g["num_heads"],
                                    g["mlp_dim"]))
    shapes["global_encoder/encoder_norm/scale"] = (width,)
    shapes["global_encoder/encoder_norm/bias"] = (width,)
    shapes["output_projection/kernel"] = (width, config["dataset_configs"]["num_classes"])
    shapes["output_projection/bias"] = (config["dataset_configs"]["num_classes"],)
    return shapes


def random_params(shapes: Shapes, seed: int) -> dict[str, np.ndarray]:
    """float32 parameters of O(1) activations: kernels N(0, 1/fan_in), LayerNorm scales near 1, small
    biases, and clearly non-zero CLS tokens, position embeddings and bottleneck tokens."""
    rng = np.random.default_rng(seed)
    params = {}
    for path, shape in sorted(shapes.items()):
        z = rng.standard_normal(shape)
        name = path.rsplit("/", 1)[-1]
        if name == "kernel":
            qkv = path.split("/")[-2] in ("query", "key", "value")
            fan_in = shape[0] if qkv else math.prod(shape[:-1])
            value = z / math.sqrt(fan_in)
        elif name == "scale":
            value = 1.0 + 0.2 * z
        elif name == "bias":
            value = 0.1 * z
        else:  # pos_embedding, cls_view*, cls_global, bottleneck
            value = 0.5 * z
        params[path] = value.astype(np.float32)
    return params


# ---- forward pass ----------------------------------------------------------------------------------

def _layer_norm(x: np.ndarray, p: Arrays, prefix: str) -> np.ndarray:
    mean = x.mean(-1, keepdims=True)
    var = ((x - mean) ** 2).mean(-1, keepdims=True)
    return (x - mean) / np.sqrt(var + 1e-6) * p[f"{prefix}/scale"] + p[f"{prefix}/bias"]


def _gelu(x: np.ndarray) -> np.ndarray:
    """Flax's default GELU: the tanh approximation."""
    return 0.5 * x * (1.0 + np.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x ** 3)))


def _dense(x: np.ndarray, p: Arrays, prefix: str) -> np.ndarray:
    return x @ p[f"{prefix}/kernel"] + p[f"{prefix}/bias"]


def _softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def _attention(xq: np.ndarray, xkv: np.ndarray, p: Arrays, prefix: str) -> np.ndarray:
    """Multi-head attention over the last two axes (tokens, channels); heads from the kernel shapes."""
    q = np.einsum("...nc,chk->...hnk", xq, p[f"{prefix}/query/kernel"]) + p[f"{prefix}/query/bias"][:, None]
    k = np.einsum("...mc,chk->...hmk", xkv, p[f"{prefix}/key/kernel"]) + p[f"{prefix}/key/bias"][:, None]
    v = np.einsum("...mc,chk->...hmk", xkv, p[f"{prefix}/value/kernel"]) + p[f"{prefix}/value/bias"][:, None]
    weights = _softmax(np.einsum("...hnk,...hmk->...hnm", q, k) / math.sqrt(q.shape[-1]))
    heads = np.einsum("...hnm,...hmk->...hnk", weights, v)
    return np.einsum("...hnk,hko->...no", heads, p[f"{prefix}/out/kernel"]) + p[f"{prefix}/out/bias"]


def _vit_block(x: np.ndarray, p: Arrays, prefix: str, names: tuple[str, str, str, str] = VIT_BLOCK) -> np.ndarray:
    ln0, attn, ln1, mlp = (f"{prefix}/{n}" for n in names)
    y = _layer_norm(x, p, ln0)
    x = x + _attention(y, y, p, attn)
    y = _layer_norm(x, p, ln1)
    return x + _dense(_gelu(_dense(y, p, f"{mlp}/Dense_0")), p, f"{mlp}/Dense_1")


def forward(config: Mapping[str, Any], params: Arrays, video: np.ndarray) -> dict[str, np.ndarray]:
    """scenic's MTV inference on `video` (B, F, H, W, 3); returns logits and the fixture's intermediates."""
    p = {k: np.asarray(v, dtype=np.float64) for k, v in params.items()}
    x_in = np.asarray(video, dtype=np.float64)
    views = _views(config)
    n = len(views)
    dims = _temporal_dims(config)
    t_min, t_max = min(dims), max(dims)
    token = config["model"]["classifier"] == "token"
    kind, layers, block = _fusion(config)
    descending = block.get("fuse_in_descending_order", True)
    batch, frames, height, width, _ = x_in.shape
    out: dict[str, np.ndarray] = {}

    # tokenizer (conv with kernel = stride = tubelet), per-slot CLS, grouping into T_min chunks, posemb
    xs = []
    for i, v in enumerate(views):
        ph, pw, pt = v["patch"]
        gh, gw = height // ph, width // pw
        patches = x_in.reshape(batch, frames // pt, pt, gh, ph, gw, pw, 3)
        emb = np.einsum("btpxhywc,phwcd->btxyd", patches, p[f"embedding_view{i}/kernel"]) + p[f"embedding_view{i}/bias"]
        out[f"embedding_view{i}_out"] = emb
        tokens = emb.reshape(batch, dims[i], gh * gw, v["d"])
        if token:
            cls = np.broadcast_to(p[f"cls_view{i}"], (batch, dims[i], 1, v["d"]))
            tokens = np.concatenate([cls, tokens], axis=2)
        per_slot = tokens.shape[2]
        slots = dims[i] // t_min
        tokens = tokens.reshape(batch, t_min, slots * per_slot, v["d"])
        out[f"mv_encoder_in_view{i}"] = tokens
        pos = p[f"MultiviewEncoder/posembed_input_view{i}/pos_embedding"][0]  # (per_slot, d), same for every slot
        tokens = (tokens.reshape(batch, t_min, slots, per_slot, v["d"]) + pos).reshape(tokens.shape)
        xs.append(tokens)

    # multiview encoder: each chunk separately (leading axes (B, T_min) are batch-like everywhere below)
    bottleneck = None
    if kind == "bottleneck":
        bottleneck = np.broadcast_to(p["bottleneck"], (batch,) + p["bottleneck"].shape[1:])
    for layer in range(max(v["layers"] for v in views)):
        if kind == "cross_view_attention" and layer in layers:
            cv = f"MultiviewEncoder/cross_view_encoderblock_{layer}"
            normed = [_layer_norm(x, p, f"{cv}/cross_attention_ln_view{i}") for i, x in enumerate(xs)]
            for q, kv in _cva_pairs(n, descending):
                xs[q] = xs[q] + _attention(normed[q], normed[kv], p, f"{cv}/cross_attention_view{q}_{kv}")
            for i, v in enumerate(views):
                if layer < v["layers"]:
                    names = (f"msa_ln_view{i}", f"msa_view{i}", f"mlp_ln_view{i}", f"mlp_view{i}")
                    xs[i] = _vit_block(xs[i], p, cv, names)
        elif kind == "bottleneck" and layer in layers:
            nb = bottleneck.shape[2]
            for i in _bottleneck_order(n, descending):
                if layer >= views[i]["layers"]:
                    continue
                if bottleneck.shape[-1] != views[i]["d"]:
                    bottleneck = _dense(bottleneck, p, f"MultiviewEncoder/bottleneck_linear_{layer}_view{i}")
                joined = _vit_block(np.concatenate([xs[i], bottleneck], axis=2), p,
                                    f"MultiviewEncoder/encoderblock_{layer}_view{i}")
                xs[i], bottleneck = joined[:, :, :-nb], joined[:, :, -nb:]
        else:
            for i, v in enumerate(views):
                if layer < v["layers"]:
                    xs[i] = _vit_block(xs[i], p, f"MultiviewEncoder/encoderblock_{layer}_view{i}")
    for i, x in enumerate(xs):
        out[f"mv_encoder_out_view{i}"] = x

    # one feature per temporal slot and view, merged for the global encoder
    features = []
    for i, x in enumerate(xs):
        slots = x.reshape(batch, dims[i], -1, views[i]["d"])
        features.append(slots[:, :, 0] if token else slots.mean(axis=2))
    g = config["model"]["global_encoder_config"]
    if g.get("merge_axis", "channel") == "channel":
        merged = np.concatenate([np.tile(f, (1, t_max // f.shape[1], 1)) for f in features], axis=-1)
    else:
        projected = [_dense(f, p, f"global_encoder_linear_view{i}") for i, f in enumerate(features)]
        merged = np.concatenate(projected, axis=1)
    out["global_encoder_in_before_cls"] = merged
    x = merged
    if token:
        x = np.concatenate([np.broadcast_to(p["cls_global"], (batch, 1, x.shape[-1])), x], axis=1)
    x = x + p["global_encoder/posembed_input/pos_embedding"]
    for layer in range(g["num_layers"]):
        x = _vit_block(x, p, f"global_encoder/encoderblock_{layer}")
    x = _layer_norm(x, p, "global_encoder/encoder_norm")
    out["global_encoder_out"] = x
    out["pre_logits"] = x[:, 0] if token else x.mean(axis=1)
    out["logits"] = _dense(out["pre_logits"], p, "output_projection")
    return out
