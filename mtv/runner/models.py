"""The model of a composed config (mtv.build_model), and its validated configs for start-up checks."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from omegaconf import DictConfig, OmegaConf
from torch import nn

from mtv import MTVConfig
from mtv.models.mtv.build import build_model as build_from_model_node
from mtv.models.mtv.build import model_configs as validated_model_configs


def model_node(cfg: Mapping[str, Any]) -> dict[str, Any]:
    """`cfg.model` as a plain dict."""
    node = cfg["model"]
    return dict(OmegaConf.to_container(node, resolve=True) if isinstance(node, DictConfig) else node)


def _inputs(cfg: Mapping[str, Any]) -> dict[str, Any]:
    return {"num_classes": int(cfg["dataset"]["num_classes"]), "num_frames": int(cfg["data"]["num_frames"]),
            "image_size": cfg["data"]["crop_size"]}


def model_configs(cfg: Mapping[str, Any]) -> list[MTVConfig]:
    """Validated configs of the model (one per ensemble member) without allocating any tensor; raises
    mtv.ConfigError naming the offending key."""
    return validated_model_configs(model_node(cfg), **_inputs(cfg))


def build_model(cfg: Mapping[str, Any]) -> nn.Module:
    """The model of `cfg` (an Ensemble for model=ensemble), initialised as `model.init` says."""
    return build_from_model_node(model_node(cfg), **_inputs(cfg))
