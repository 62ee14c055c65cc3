"""The model of a composed run config: its family, inputs, validation, construction and counts.

The runner reaches every family through `mtv.models` (the registry) and never names one.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from omegaconf import DictConfig, OmegaConf
from torch import nn

from mtv.models import ModelInputs, model_inputs, model_schema


def inputs_of(cfg: Mapping[str, Any]) -> ModelInputs:
    """Classes, clip length and crop of a run config (`dataset.num_classes`, `data.num_frames/crop_size`)."""
    return model_inputs(cfg["dataset"]["num_classes"], cfg["data"]["num_frames"], cfg["data"]["crop_size"])


def _model_node(cfg: Mapping[str, Any], with_init: bool) -> dict[str, Any]:
    node = cfg["model"]
    node = dict(OmegaConf.to_container(node, resolve=True) if isinstance(node, DictConfig) else node)
    if not with_init and "init" in node:  # rebuilding a trained model, or counting: no weight files read
        family, _ = model_schema(node)
        node["init"] = OmegaConf.to_container(OmegaConf.structured(family.config).init)
    return node


def validate_model_of(cfg: Mapping[str, Any]) -> None:
    """Raise mtv.ConfigError naming the key if the run's model cannot be built; allocates nothing."""
    family, node = model_schema(_model_node(cfg, with_init=True))
    family.validate(node, inputs_of(cfg))


def model_of(cfg: Mapping[str, Any], with_init: bool = True) -> nn.Module:
    """The run's model, initialised as `model.init` says (or randomly, `with_init=False`)."""
    family, node = model_schema(_model_node(cfg, with_init))
    return family.build(node, inputs_of(cfg))


def profile_of(model: nn.Module, model_cfg: Mapping[str, Any], inputs: ModelInputs) -> dict[str, Any]:
    """Counts of `model` (a model of `model_cfg`'s family, or an Ensemble of them) for one clip of `inputs`."""
    family, _ = model_schema(model_cfg)
    return family.profile(model, inputs)


def format_profile_of(profile: dict[str, Any], model_cfg: Mapping[str, Any]) -> str:
    """`profile` as Markdown, by the family of `model_cfg`."""
    family, _ = model_schema(model_cfg)
    return family.format_profile(profile)



def describe_model(model_cfg: Mapping[str, Any]) -> dict[str, Any]:
    """The family's results.json fields for a `model` node (name first)."""
    family, node = model_schema(model_cfg)
    return {"model": node.name, **(family.describe(node) if family.describe else {})}
