"""Build a model from the Hydra `model` node (see docs/architecture.md for the schema)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from torch import nn

from mtv.config import MTVConfig
from mtv.ensemble import Ensemble
from mtv.errors import ConfigError
from mtv.model import MTV
from mtv.mtv_init import init_from_checkpoint
from mtv.vit_init import checkpoints_for_members, init_views_from_vit


def build_model(
    model_cfg: Mapping[str, Any], num_classes: int, num_frames: int, image_size: int | Sequence[int]
) -> nn.Module:
    """An MTV (or an Ensemble of single-view MTVs for `name: ensemble`), randomly initialised, then views
    loaded from ImageNet ViTs where `model.init.vit_checkpoints` names them, then everything loaded from
    an MTV checkpoint where `model.init.checkpoint` names one (fine-tuning)."""
    init = dict(model_cfg.get("init") or {})
    if model_cfg.get("name") == "ensemble":
        members = model_cfg.get("members") or []
        if not members:
            raise ConfigError("model=ensemble needs model.members, e.g. ['B/2', 'S/4', 'Ti/8']")
        per_member = checkpoints_for_members(init.get("vit_checkpoints"), members)
        return Ensemble(
            [build_model({**dict(model_cfg), "name": "mtv", "variant": v, "members": None,
                          "init": {**init, "vit_checkpoints": c}},
                         num_classes, num_frames, image_size) for v, c in zip(members, per_member)]
        )
    model = MTV(MTVConfig.from_cfg(model_cfg, num_classes, num_frames, image_size))
    if init.get("vit_checkpoints"):
        init_views_from_vit(model, init["vit_checkpoints"], init.get("inflation") or "central_frame")
    if init.get("checkpoint"):
        init_from_checkpoint(model, init["checkpoint"], bool(init.get("restore_head", False)))
    return model
