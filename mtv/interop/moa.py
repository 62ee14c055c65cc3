"""The authors' MoA-Transformer (`MOATransformer(...)` of krushi1992/MOA-transformer) -> this project's model.

`model_from_authors(kwargs, state_dict)` takes their constructor arguments as plain JSON and their state
dict (a mapping, or a file), checks that every tensor fits, and returns an eval-mode model that maps
images (B, 3, H, W) to their logits. Their code runs only where the MOA key stride of 14 they hard-code
gives one key patch per query patch; elsewhere (e.g. their CIFAR configs, window 4) the model uses the
generalisation key stride = window (docs/models/moa.md).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from mtv.checkpoints import read_model_weights
from mtv.errors import ConfigError
from mtv.interop.scenic import load_state_dict_checked
from mtv.models.moa.checkpoint import INDEX_SUFFIX
from mtv.models.moa.config import MoAConfig, validate
from mtv.models.moa.model import MoATransformer
from mtv.models.registry import ModelInputs

# their keyword -> our `model` key
_KEYS = {
    "patch_size": "patch_size", "embed_dim": "embed_dim", "depths": "depths", "num_heads": "num_heads",
    "window_size": "window_size", "mlp_ratio": "mlp_ratio", "qkv_bias": "qkv_bias", "qk_scale": "qk_scale",
    "drop_rate": "dropout", "attn_drop_rate": "attention_dropout", "drop_path_rate": "stochastic_depth",
    "patch_norm": "patch_norm",
}
_FIXED = {"in_chans": 3, "ape": False}  # what the port supports (the authors' defaults)
_IGNORED = ("use_checkpoint",)  # gradient checkpointing: no effect on the numbers
# the authors' constructor defaults (not this family's: their window default is 7, their depths have 4 stages)
_DEFAULTS = {"img_size": 224, "num_classes": 1000, "patch_size": 4, "embed_dim": 96, "depths": [2, 2, 6, 2],
             "num_heads": [3, 6, 12, 24], "window_size": 7, "mlp_ratio": 4.0, "qkv_bias": True, "qk_scale": None,
             "drop_rate": 0.0, "attn_drop_rate": 0.0, "drop_path_rate": 0.1, "patch_norm": True}


def authors_config(kwargs: Mapping[str, Any]) -> tuple[MoAConfig, ModelInputs]:
    """Our `model` node and inputs for the authors' constructor kwargs (their defaults where one is absent)."""
    known = {*_DEFAULTS, *_FIXED, *_IGNORED}
    unknown = sorted(set(kwargs) - known)
    if unknown:
        raise ConfigError(
            f"MOATransformer kwargs: {', '.join(unknown)} not understood; known: {', '.join(sorted(known))}")
    for key, value in _FIXED.items():
        if key in kwargs and kwargs[key] != value:
            raise ConfigError(f"MOATransformer kwargs: {key}={kwargs[key]!r} is not supported (only {value!r})")
    kwargs = {**_DEFAULTS, **kwargs}
    values = {ours: list(kwargs[theirs]) if isinstance(kwargs[theirs], (list, tuple)) else kwargs[theirs]
              for theirs, ours in _KEYS.items()}
    size = kwargs["img_size"]
    size = (int(size), int(size)) if isinstance(size, int) else (int(size[0]), int(size[1]))
    cfg = MoAConfig(name="moa", **values)
    inputs = ModelInputs(num_classes=int(kwargs["num_classes"]), num_frames=1, image_size=size)
    validate(cfg, inputs)
    return cfg, inputs


def model_from_authors(kwargs: Mapping[str, Any], state_dict: Mapping[str, Tensor] | str | Path) -> MoATransformer:
    """An eval-mode model computing what `MOATransformer(**kwargs)` with `state_dict` computes.

    The state dict must fit exactly (the authors' `relative_position_index` buffers, derived from the
    geometry, are checked against ours and then dropped)."""
    cfg, inputs = authors_config(kwargs)
    source = str(state_dict) if isinstance(state_dict, (str, Path)) else "authors' state dict"
    state = read_model_weights(state_dict) if isinstance(state_dict, (str, Path)) else dict(state_dict)
    model = MoATransformer(cfg, inputs.num_classes, inputs.image_size)
    indices = {name: buffer for name, buffer in model.named_buffers() if name.endswith(INDEX_SUFFIX)}
    for key in (k for k in state if k.endswith(INDEX_SUFFIX)):
        if key in indices and not torch.equal(state[key].to(indices[key].dtype), indices[key]):
            raise ConfigError(f"{source}: {key} differs from the index this geometry implies; "
                              "do the kwargs (window_size, img_size, patch_size) belong to these weights?")
    load_state_dict_checked(model, {k: v for k, v in state.items() if not k.endswith(INDEX_SUFFIX)}, source)
    return model.eval()
