"""Build a model from the Hydra `model` node (see docs/architecture.md for the schema)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from torch import nn

from mtv.models.mtv.config import MTVConfig
from mtv.models.mtv.ensemble import Ensemble
from mtv.errors import ConfigError
from mtv.models.mtv.model import MTV
from mtv.models.mtv.checkpoint_init import init_from_checkpoint
from mtv.models.vit_init import checkpoints_for_members, init_views_from_vit


def member_cfgs(model_cfg: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The `model` node of each single model to build: the node itself, or one per ensemble member
    (`model.members`, by default one single-view member per view of `model.variant`)."""
    model_cfg = dict(model_cfg)
    if model_cfg.get("name") != "ensemble":
        return [model_cfg]
    members = model_cfg.get("members") or [v.strip() for v in str(model_cfg.get("variant") or "").split("+") if v.strip()]
    if not members:
        raise ConfigError("model=ensemble needs model.members (or model.variant), e.g. ['B/2', 'S/4', 'Ti/8']")
    init = dict(model_cfg.get("init") or {})
    checkpoints = checkpoints_for_members(init.get("vit_checkpoints"), members)
    return [{**model_cfg, "name": "mtv", "variant": v, "members": None, "init": {**init, "vit_checkpoints": c}}
            for v, c in zip(members, checkpoints)]


def model_configs(
    model_cfg: Mapping[str, Any], num_classes: int, num_frames: int, image_size: int | Sequence[int]
) -> list[MTVConfig]:
    """Validated configs of the model (one per ensemble member) without allocating a tensor: start-up
    checks call this before any data is read."""
    return [MTVConfig.from_cfg(cfg, num_classes, num_frames, image_size) for cfg in member_cfgs(model_cfg)]


def build_model(
    model_cfg: Mapping[str, Any], num_classes: int, num_frames: int, image_size: int | Sequence[int]
) -> nn.Module:
    """An MTV (or an Ensemble of single-view MTVs for `name: ensemble`), randomly initialised, then views
    loaded from ImageNet ViTs where `model.init.vit_checkpoints` names them, then everything loaded from
    an MTV checkpoint where `model.init.checkpoint` names one (fine-tuning)."""
    models = []
    for cfg, config in zip(member_cfgs(model_cfg), model_configs(model_cfg, num_classes, num_frames, image_size)):
        model = MTV(config)
        init = cfg.get("init") or {}
        if init.get("vit_checkpoints"):
            init_views_from_vit(model, init["vit_checkpoints"], init.get("inflation") or "central_frame")
        if init.get("checkpoint"):
            init_from_checkpoint(model, init["checkpoint"], bool(init.get("restore_head", False)))
        models.append(model)
    return Ensemble(models) if model_cfg.get("name") == "ensemble" else models[0]
