"""scenic MTV -> this project's MTV: the config and the parameters, with every shape checked.

`model_from_scenic(config, params)` takes scenic's config as a plain dict and the parameters as
'/'-joined Flax paths (a mapping, an `.npz` of that mapping, or a released msgpack checkpoint).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mtv.config import MTVConfig
from mtv.errors import ConfigError
from mtv.interop.flax_msgpack import params_from_train_state, read_msgpack
from mtv.model import MTV

Params = Mapping[str, np.ndarray]


def load_params(params: Params | str | Path) -> dict[str, np.ndarray]:
    """Flat '/'-joined Flax parameters from a mapping, an `.npz` file or a msgpack checkpoint."""
    if isinstance(params, Mapping):
        return {key: np.asarray(value) for key, value in params.items()}
    path = Path(params)
    if not path.is_file():
        raise FileNotFoundError(f"scenic parameters: no file at {path}")
    if path.suffix == ".npz":
        with np.load(path) as data:
            return {key: data[key] for key in data.files}
    return params_from_train_state(read_msgpack(path), source=str(path))


def _dense(kernel: np.ndarray) -> np.ndarray:
    return kernel.T


def _heads_in(kernel: np.ndarray) -> np.ndarray:
    """Attention q/k/v kernel (in, heads, head_dim) -> Linear weight (heads*head_dim, in)."""
    return kernel.reshape(kernel.shape[0], -1).T


def _heads_out(kernel: np.ndarray) -> np.ndarray:
    """Attention out kernel (heads, head_dim, out) -> Linear weight (out, heads*head_dim)."""
    return kernel.reshape(-1, kernel.shape[-1]).T


def _block(flax: Params, src: dict[str, str], dst: str, out: dict[str, np.ndarray]) -> None:
    """One pre-LN block; `src` names the Flax sub-paths of its two norms, attention and MLP."""
    ln0, attn, ln1, mlp = src["ln0"], src["attn"], src["ln1"], src["mlp"]
    out[f"{dst}.norm1.weight"] = flax[f"{ln0}/scale"]
    out[f"{dst}.norm1.bias"] = flax[f"{ln0}/bias"]
    out[f"{dst}.attn.qkv.weight"] = np.concatenate([_heads_in(flax[f"{attn}/{p}/kernel"]) for p in ("query", "key", "value")])
    out[f"{dst}.attn.qkv.bias"] = np.concatenate([flax[f"{attn}/{p}/bias"].reshape(-1) for p in ("query", "key", "value")])
    out[f"{dst}.attn.proj.weight"] = _heads_out(flax[f"{attn}/out/kernel"])
    out[f"{dst}.attn.proj.bias"] = flax[f"{attn}/out/bias"]
    out[f"{dst}.norm2.weight"] = flax[f"{ln1}/scale"]
    out[f"{dst}.norm2.bias"] = flax[f"{ln1}/bias"]
    for i, fc in enumerate(("fc1", "fc2")):
        out[f"{dst}.mlp.{fc}.weight"] = _dense(flax[f"{mlp}/Dense_{i}/kernel"])
        out[f"{dst}.mlp.{fc}.bias"] = flax[f"{mlp}/Dense_{i}/bias"]


def _plain_block(prefix: str) -> dict[str, str]:
    return {"ln0": f"{prefix}/LayerNorm_0", "attn": f"{prefix}/MultiHeadDotProductAttention_0",
            "ln1": f"{prefix}/LayerNorm_1", "mlp": f"{prefix}/MlpBlock_0"}


def flax_to_state_dict(flax: Params, config: MTVConfig) -> dict[str, torch.Tensor]:
    """Map scenic's parameter tree onto `MTV(config).state_dict()` names and layouts."""
    out: dict[str, np.ndarray] = {}
    mv = "MultiviewEncoder"
    fusion_layers = set(config.fusion.layers) if config.fusion.type == "cva" else set()
    try:
        for i, view in enumerate(config.views):
            out[f"views.{i}.tokenizer.weight"] = flax[f"embedding_view{i}/kernel"].transpose(4, 3, 0, 1, 2)
            out[f"views.{i}.tokenizer.bias"] = flax[f"embedding_view{i}/bias"]
            if config.classifier == "token":
                out[f"views.{i}.cls_token"] = flax[f"cls_view{i}"]
            out[f"views.{i}.pos_embed"] = flax[f"{mv}/posembed_input_view{i}/pos_embedding"]
            for layer in range(view.num_layers):
                if layer in fusion_layers:
                    cv = f"{mv}/cross_view_encoderblock_{layer}"
                    src = {"ln0": f"{cv}/msa_ln_view{i}", "attn": f"{cv}/msa_view{i}",
                           "ln1": f"{cv}/mlp_ln_view{i}", "mlp": f"{cv}/mlp_view{i}"}
                else:
                    src = _plain_block(f"{mv}/encoderblock_{layer}_view{i}")
                _block(flax, src, f"views.{i}.blocks.{layer}", out)
        if config.fusion.type == "cva":
            for layer in config.fusion.layers:
                cv = f"{mv}/cross_view_encoderblock_{layer}"
                for i in range(len(config.views)):
                    out[f"fusion.norms.{layer}.{i}.weight"] = flax[f"{cv}/cross_attention_ln_view{i}/scale"]
                    out[f"fusion.norms.{layer}.{i}.bias"] = flax[f"{cv}/cross_attention_ln_view{i}/bias"]
                for q, kv in config.cva_pairs():
                    src, dst = f"{cv}/cross_attention_view{q}_{kv}", f"fusion.attention.{layer}_{q}_{kv}"
                    for part, name in (("query", "q"), ("key", "k"), ("value", "v")):
                        out[f"{dst}.{name}.weight"] = _heads_in(flax[f"{src}/{part}/kernel"])
                        out[f"{dst}.{name}.bias"] = flax[f"{src}/{part}/bias"].reshape(-1)
                    out[f"{dst}.proj.weight"] = _heads_out(flax[f"{src}/out/kernel"])
                    out[f"{dst}.proj.bias"] = flax[f"{src}/out/bias"]
        elif config.fusion.type == "bottleneck":
            out["fusion.tokens"] = flax["bottleneck"]
            for key in flax:
                match = re.fullmatch(rf"{mv}/bottleneck_linear_(\d+)_view(\d+)/kernel", key)
                if match:
                    dst = f"fusion.projections.{match[1]}_view{match[2]}"
                    out[f"{dst}.weight"] = _dense(flax[key])
                    out[f"{dst}.bias"] = flax[key.replace("/kernel", "/bias")]
        g = "global_encoder"
        if config.classifier == "token":
            out["global_encoder.cls_token"] = flax["cls_global"]
        out["global_encoder.pos_embed"] = flax[f"{g}/posembed_input/pos_embedding"]
        for layer in range(config.global_encoder.num_layers):
            _block(flax, _plain_block(f"{g}/encoderblock_{layer}"), f"global_encoder.blocks.{layer}", out)
        out["global_encoder.norm.weight"] = flax[f"{g}/encoder_norm/scale"]
        out["global_encoder.norm.bias"] = flax[f"{g}/encoder_norm/bias"]
        if config.global_encoder.merge == "time":
            for i in range(len(config.views)):
                out[f"global_encoder.time_projections.{i}.weight"] = _dense(flax[f"global_encoder_linear_view{i}/kernel"])
                out[f"global_encoder.time_projections.{i}.bias"] = flax[f"global_encoder_linear_view{i}/bias"]
        out["head.weight"] = _dense(flax["output_projection/kernel"])
        out["head.bias"] = flax["output_projection/bias"]
    except KeyError as err:
        raise ConfigError(
            f"scenic parameters: missing {err} needed by the config (views {config.variant}, fusion "
            f"{config.fusion.type} at {list(config.fusion.layers)}); do the config and the parameters belong together?"
        ) from err
    return {key: torch.from_numpy(np.ascontiguousarray(value, dtype=np.float32)) for key, value in out.items()}


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


def model_from_scenic(config: Mapping[str, Any], params: Params | str | Path) -> MTV:
    """An MTV in eval mode that computes what scenic computes for this config and these parameters.

    Inputs are (B, 3, T, H, W) float; scenic's layout is (B, T, H, W, 3), so permute(0, 4, 1, 2, 3) first.
    The image size is read from the position embeddings, so any resolution of the checkpoint works.
    """
    flax = load_params(params)
    mtv_config = MTVConfig.from_scenic(config, image_size=_image_size_from(flax, config))
    model = MTV(mtv_config)
    load_state_dict_checked(model, flax_to_state_dict(flax, mtv_config), "scenic parameters")
    return model.eval()


def _image_size_from(flax: Params, config: Mapping[str, Any]) -> tuple[int, int]:
    """Infer the square input size from view 0's position embedding and patch size."""
    view = config["model"]["view_configs"][0]
    h, w, _ = view["patches"]["size"]
    key = "MultiviewEncoder/posembed_input_view0/pos_embedding"
    if key not in flax:
        raise ConfigError(f"scenic parameters: missing {key!r}")
    tokens = flax[key].shape[1] - int(config["model"].get("classifier", "token") == "token")
    side = int(round(tokens ** 0.5))
    if side * side != tokens or h != w:
        raise ConfigError(f"scenic parameters: cannot infer a square image size from {tokens} tokens of patch {h}x{w}")
    return side * h, side * w
