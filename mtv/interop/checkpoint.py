"""Model checkpoints that carry their own architecture: written by `python -m mtv.interop.convert`, read by
`load_model_checkpoint` (run.py `task=eval ckpt_path=...`, fine-tuning from `model.init.checkpoint`).

Format (a `torch.save` dict of tensors and plain Python values, so `torch.load(weights_only=True)` reads it):

    {"state_dict": {"model.<name>": tensor, ...},   # MTV.state_dict() under the LightningModule's `model.`
     "model_cfg": {...},                            # the Hydra `model` node, plain dict, for mtv.build_model
     "num_classes": int, "num_frames": int, "image_size": [height, width],
     "source": "scenic"}                            # where the weights came from
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from mtv.checkpoints import MODEL_PREFIX, model_weights, read_checkpoint
from mtv.errors import ConfigError
from mtv.interop.scenic import load_state_dict_checked
from mtv.models import build_model

META_KEYS = ("model_cfg", "num_classes", "num_frames", "image_size", "source")


def save_model_checkpoint(
    path: str | Path,
    model: nn.Module,
    model_cfg: Mapping[str, Any],
    num_classes: int,
    num_frames: int,
    image_size: tuple[int, int],
    source: str,
) -> None:
    state = {MODEL_PREFIX + key: value.detach().clone().contiguous() for key, value in model.state_dict().items()}
    torch.save(
        {"state_dict": state, "model_cfg": dict(model_cfg), "num_classes": int(num_classes),
         "num_frames": int(num_frames), "image_size": [int(s) for s in image_size], "source": source},
        path,
    )


def _build(meta: Mapping[str, Any]) -> nn.Module:
    """The model of `meta['model_cfg']`, through its registered family (MTV when it names none)."""
    return build_model(dict(meta["model_cfg"]), meta["num_classes"], meta["num_frames"], meta["image_size"])


def load_model_checkpoint(path: str | Path) -> tuple[nn.Module, dict[str, Any]]:
    """(model in eval mode, meta): the model rebuilt from `meta['model_cfg']` (its family's build) and its
    weights loaded strictly; meta is everything in the file but the state dict."""
    path = Path(path)
    ckpt = read_checkpoint(path)
    missing = [key for key in ("state_dict", *META_KEYS) if key not in ckpt]
    if missing:
        raise ConfigError(
            f"{path}: not a model checkpoint of mtv.interop (missing {', '.join(missing)}); "
            "write one with `python -m mtv.interop.convert`"
        )
    meta = {key: ckpt[key] for key in META_KEYS}
    model = _build(meta)
    state = model_weights(ckpt["state_dict"])
    load_state_dict_checked(model, state, str(path))
    return model.eval(), meta
