"""Test-only: an independent float64 NumPy forward pass of scenic's ViViT (all four attention types), working
directly on the Flax parameter tree and scenic's config dict.

Written from shared/reference/vivit_spec.md §2 and §5 only (not from this project's torch modules or its
Flax->PyTorch mapping), so agreement between it and `model_from_scenic` on random parameters means both follow
scenic; it is itself checked on the fixture, whose logits scenic produced. Also here: the Flax parameter
shapes a config implies (`param_shapes`) and random parameters of those shapes (`random_params`).

Conventions (scenic's): input (B, T, H, W, 3); `patches.size` is (h, w, t); Flax kernels (in, out), q/k/v
kernels (in, heads, head_dim), out kernels (heads, head_dim, out), conv kernel (t, h, w, 3, d).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

Arrays = Mapping[str, np.ndarray]
TYPES = ("spacetime", "factorized_encoder", "factorized_self_attention_block", "factorized_dot_product_attention")


# ---- the config ------------------------------------------------------------------------------------------

def _kind(config: Mapping[str, Any]) -> str:
    return config["model"]["attention_config"]["type"]


def _grid(config: Mapping[str, Any], image: tuple[int, int]) -> tuple[int, int, int]:
    h, w, t = config["model"]["patches"]["size"]
    return config["dataset_configs"]["num_frames"] // t, image[0] // h, image[1] // w


def _encoders(config: Mapping[str, Any]) -> list[tuple[str, dict[str, int]]]:
    """(Flax name, widths) of each Encoder in the model."""
    m = config["model"]
    if _kind(config) == "factorized_encoder":
        return [("SpatialTransformer", m["spatial_transformer"]), ("TemporalTransformer", m["temporal_transformer"])]
    return [("Transformer", {k: m[k] for k in ("num_heads", "mlp_dim", "num_layers")})]


def param_shapes(config: Mapping[str, Any], num_classes: int, image: tuple[int, int]) -> dict[str, tuple[int, ...]]:
    """Every Flax leaf of the model and its shape, as vivit_spec.md §2 lists them."""
    m = config["model"]
    d = m["hidden_size"]
    h, w, t = m["patches"]["size"]
    nt, nh, nw = _grid(config, image)
    token = int(m["classifier"] == "token")
    kind = _kind(config)
    shapes: dict[str, tuple[int, ...]] = {"embedding/kernel": (t, h, w, 3, d), "embedding/bias": (d,),
                                          "output_projection/kernel": (d, num_classes),
                                          "output_projection/bias": (num_classes,)}
    for name, widths in _encoders(config):
        heads, mlp = widths["num_heads"], widths["mlp_dim"]
        if name == "SpatialTransformer":
            tokens = nh * nw
        elif name == "TemporalTransformer":
            tokens = nt
        else:
            tokens = nt * nh * nw
        if token:
            shapes["cls" if name == "Transformer" else f"cls_{name}"] = (1, 1, d)
        shapes[f"{name}/posembed_input/pos_embedding"] = (1, tokens + token, d)
        shapes[f"{name}/encoder_norm/scale"] = shapes[f"{name}/encoder_norm/bias"] = (d,)
        for layer in range(widths["num_layers"]):
            b = f"{name}/encoderblock_{layer}"
            if kind == "factorized_self_attention_block":
                norms, attns, mlp_name = ("space", "time", "mlp"), ("space", "time"), "MlpBlock"
                norm_names = [f"LayerNorm_{n}" for n in norms]
                attn_names = [f"MultiHeadDotProductAttention_{a}" for a in attns]
            else:
                norm_names, attn_names, mlp_name = ["LayerNorm_0", "LayerNorm_1"], ["MultiHeadDotProductAttention_0"], \
                    "MlpBlock_0"
            for n in norm_names:
                shapes[f"{b}/{n}/scale"] = shapes[f"{b}/{n}/bias"] = (d,)
            for a in attn_names:
                for part in ("query", "key", "value"):
                    shapes[f"{b}/{a}/{part}/kernel"] = (d, heads, d // heads)
                    shapes[f"{b}/{a}/{part}/bias"] = (heads, d // heads)
                shapes[f"{b}/{a}/out/kernel"] = (heads, d // heads, d)
                shapes[f"{b}/{a}/out/bias"] = (d,)
            shapes[f"{b}/{mlp_name}/Dense_0/kernel"] = (d, mlp)
            shapes[f"{b}/{mlp_name}/Dense_0/bias"] = (mlp,)
            shapes[f"{b}/{mlp_name}/Dense_1/kernel"] = (mlp, d)
            shapes[f"{b}/{mlp_name}/Dense_1/bias"] = (d,)
    return shapes


def random_params(shapes: Mapping[str, tuple[int, ...]], seed: int = 0) -> dict[str, np.ndarray]:
    """float32 parameters; LayerNorm scales around 1, everything else around 0."""
    rng = np.random.default_rng(seed)
    out = {}
    for path, shape in sorted(shapes.items()):
        value = rng.normal(0.0, 0.2, shape)
        if path.endswith("/scale"):
            value += 1.0
        out[path] = value.astype(np.float32)
    return out


# ---- the forward pass ------------------------------------------------------------------------------------

def _ln(x: np.ndarray, p: Arrays, name: str) -> np.ndarray:
    mean = x.mean(-1, keepdims=True)
    var = (x * x).mean(-1, keepdims=True) - mean * mean  # flax: E[x^2] - E[x]^2
    return (x - mean) / np.sqrt(var + 1e-6) * p[f"{name}/scale"] + p[f"{name}/bias"]


def _gelu(x: np.ndarray) -> np.ndarray:
    return 0.5 * x * (1.0 + np.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x ** 3)))


def _softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def _qkv(x: np.ndarray, p: Arrays, name: str) -> list[np.ndarray]:
    """(..., d) -> q, k, v of shape (..., heads, head_dim); q already divided by sqrt(head_dim)."""
    out = [np.einsum("...d,dhk->...hk", x, p[f"{name}/{part}/kernel"]) + p[f"{name}/{part}/bias"]
           for part in ("query", "key", "value")]
    out[0] = out[0] / math.sqrt(out[0].shape[-1])
    return out


def _out(o: np.ndarray, p: Arrays, name: str) -> np.ndarray:
    return np.einsum("...hk,hkd->...d", o, p[f"{name}/out/kernel"]) + p[f"{name}/out/bias"]


def _mha(x: np.ndarray, p: Arrays, name: str) -> np.ndarray:
    """Self-attention over the second-to-last axis of x (..., n, d)."""
    q, k, v = _qkv(x, p, name)
    weights = _softmax(np.einsum("...qhk,...shk->...hqs", q, k))
    return _out(np.einsum("...hqs,...shk->...qhk", weights, v), p, name)


def _factorized_dot_product(x: np.ndarray, p: Arrays, name: str) -> np.ndarray:
    """x (B, nt, ns, d): heads [0, H/2) softmax over time, [H/2, H) over space (vivit_spec.md §5.4)."""
    q, k, v = _qkv(x, p, name)  # (B, nt, ns, H, dh)
    half = q.shape[-2] // 2
    qt, kt, vt = (a[..., :half, :] for a in (q, k, v))
    qs, ks, vs = (a[..., half:, :] for a in (q, k, v))
    w_time = _softmax(np.einsum("bqshk,bpshk->bshqp", qt, kt))  # per (b, s, head) over frames
    o_time = np.einsum("bshqp,bpshk->bqshk", w_time, vt)
    w_space = _softmax(np.einsum("btqhk,btphk->bthqp", qs, ks))  # per (b, t, head) over locations
    o_space = np.einsum("bthqp,btphk->btqhk", w_space, vs)
    return _out(np.concatenate([o_time, o_space], axis=-2), p, name)


def _mlp(x: np.ndarray, p: Arrays, name: str) -> np.ndarray:
    h = _gelu(x @ p[f"{name}/Dense_0/kernel"] + p[f"{name}/Dense_0/bias"])
    return h @ p[f"{name}/Dense_1/kernel"] + p[f"{name}/Dense_1/bias"]


def _encoder(x: np.ndarray, p: Arrays, name: str, cls: str | None, layers: int, kind: str, nt: int,
             order: str) -> np.ndarray:
    """scenic's Encoder on (B, N, d) and the pooling: CLS output (token) or mean (gap) -> (B, d)."""
    if cls is not None:
        x = np.concatenate([np.broadcast_to(p[cls], (x.shape[0], 1, x.shape[-1])), x], axis=1)
    x = x + p[f"{name}/posembed_input/pos_embedding"]
    b, n, d = x.shape
    for layer in range(layers):
        blk = f"{name}/encoderblock_{layer}"
        if kind == "factorized_self_attention_block":
            grid = x.reshape(b, nt, n // nt, d)
            for axis in (("space", "time") if order == "space_time" else ("time", "space")):
                seq = grid if axis == "space" else grid.transpose(0, 2, 1, 3)  # attention over axis -2
                attention = f"{blk}/MultiHeadDotProductAttention_{axis}"
                seq = seq + _mha(_ln(seq, p, f"{blk}/LayerNorm_{axis}"), p, attention)
                grid = seq if axis == "space" else seq.transpose(0, 2, 1, 3)
            x = grid.reshape(b, n, d)
            x = x + _mlp(_ln(x, p, f"{blk}/LayerNorm_mlp"), p, f"{blk}/MlpBlock")
            continue
        y = _ln(x, p, f"{blk}/LayerNorm_0")
        if kind == "factorized_dot_product_attention":
            y = _factorized_dot_product(y.reshape(b, nt, n // nt, d), p,
                                        f"{blk}/MultiHeadDotProductAttention_0").reshape(b, n, d)
        else:
            y = _mha(y, p, f"{blk}/MultiHeadDotProductAttention_0")
        x = x + y
        x = x + _mlp(_ln(x, p, f"{blk}/LayerNorm_1"), p, f"{blk}/MlpBlock_0")
    x = _ln(x, p, f"{name}/encoder_norm")
    return x[:, 0] if cls is not None else x.mean(axis=1)


def forward(config: Mapping[str, Any], params: Arrays, video: np.ndarray) -> np.ndarray:
    """Logits (B, classes) of scenic's ViViT for `video` (B, T, H, W, 3), in float64."""
    p = {k: np.asarray(v, dtype=np.float64) for k, v in params.items()}
    x = np.asarray(video, dtype=np.float64)
    m = config["model"]
    h, w, t = m["patches"]["size"]
    b, frames, height, width, _ = x.shape
    nt, nh, nw = frames // t, height // h, width // w
    # tubelet conv, VALID, kernel = stride: gather patches (B, nt, nh, nw, t, h, w, 3)
    patches = x[:, :nt * t, :nh * h, :nw * w].reshape(b, nt, t, nh, h, nw, w, 3).transpose(0, 1, 3, 5, 2, 4, 6, 7)
    tokens = np.einsum("bxyzthwc,thwcd->bxyzd", patches, p["embedding/kernel"]) + p["embedding/bias"]
    d = tokens.shape[-1]
    kind = _kind(config)
    token = m["classifier"] == "token"
    order = m["attention_config"].get("attention_order", "space_time")
    if kind == "factorized_encoder":
        sp, tp = m["spatial_transformer"], m["temporal_transformer"]
        frames_in = tokens.reshape(b * nt, nh * nw, d)
        per_frame = _encoder(frames_in, p, "SpatialTransformer", "cls_SpatialTransformer" if token else None,
                             sp["num_layers"], kind, 1, order).reshape(b, nt, d)
        pooled = _encoder(per_frame, p, "TemporalTransformer", "cls_TemporalTransformer" if token else None,
                          tp["num_layers"], kind, 1, order)
    else:
        pooled = _encoder(tokens.reshape(b, nt * nh * nw, d), p, "Transformer", "cls" if token else None,
                          m["num_layers"], kind, nt, order)
    return pooled @ p["output_projection/kernel"] + p["output_projection/bias"]


def scenic_config(kind: str, classifier: str, *, d: int = 16, heads: int = 2, mlp: int = 24, layers: int = 2,
                  patch: tuple[int, int, int] = (4, 4, 2), frames: int = 4, crop: Any = None,
                  order: str | None = None, temporal: dict[str, int] | None = None) -> dict[str, Any]:
    """A small scenic ViViT config dict of the layout of the fixture's `config` (the keys the model reads)."""
    model: dict[str, Any] = {
        "attention_config": {"type": kind}, "classifier": classifier, "hidden_size": d, "num_heads": heads,
        "mlp_dim": mlp, "num_layers": layers, "patches": {"size": list(patch)}, "representation_size": None,
        "dropout_rate": 0.0, "attention_dropout_rate": 0.0,
        "temporal_encoding_config": {"method": "3d_conv", "kernel_init_method": "central_frame_initializer"},
    }
    if order is not None:
        model["attention_config"]["attention_order"] = order
    if kind == "factorized_encoder":
        model["spatial_transformer"] = {"num_heads": heads, "mlp_dim": mlp, "num_layers": layers}
        model["temporal_transformer"] = temporal or {"num_heads": heads, "mlp_dim": mlp, "num_layers": 1}
    data: dict[str, Any] = {"num_frames": frames}
    if crop is not None:
        data["crop_size"] = crop
    return {"dataset_configs": data, "model": model}
