"""The model of a composed config (mtv.build_model), and its validated configs for start-up checks."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from omegaconf import DictConfig, OmegaConf
from torch import nn

import mtv
from mtv import MTVConfig


def model_node(cfg: Mapping[str, Any]) -> dict[str, Any]:
    """`cfg.model` as a plain dict; an ensemble without `members` gets one member per view of its variant."""
    node = cfg["model"]
    model_cfg = dict(OmegaConf.to_container(node, resolve=True) if isinstance(node, DictConfig) else node)
    if model_cfg.get("name") == "ensemble" and not model_cfg.get("members"):
        model_cfg["members"] = [view.strip() for view in str(model_cfg.get("variant", "")).split("+") if view.strip()]
    return model_cfg


def _inputs(cfg: Mapping[str, Any]) -> dict[str, Any]:
    return {"num_classes": int(cfg["dataset"]["num_classes"]), "num_frames": int(cfg["data"]["num_frames"]),
            "image_size": cfg["data"]["crop_size"]}


def model_configs(cfg: Mapping[str, Any]) -> list[MTVConfig]:
    """Validated configs of the model (one per ensemble member) without allocating any tensor; raises
    mtv.ConfigError naming the offending key."""
    model_cfg = model_node(cfg)
    if model_cfg.get("name") == "ensemble":
        specs = [{**model_cfg, "name": "mtv", "variant": v, "members": None} for v in model_cfg["members"]]
    else:
        specs = [model_cfg]
    return [MTVConfig.from_cfg(spec, **_inputs(cfg)) for spec in specs]


def build_model(cfg: Mapping[str, Any]) -> nn.Module:
    """The model of `cfg` (an Ensemble for model=ensemble), initialised as `model.init` says."""
    return mtv.build_model(model_node(cfg), **_inputs(cfg))
