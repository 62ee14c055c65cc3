"""The MTV family's entry points: validate and build from the `model` node (an MTVModelConfig).

One schema serves four `model.name`s: `mtv`, `slowfast` (frame strides instead of tubelets in time),
`mtv_single_view` (MTV's single-view baseline: one view, MTV's global encoder) and `ensemble` (one
single-view MTV per view of `variant`, trained in one job, predictions averaged).
"""

from __future__ import annotations

from dataclasses import replace

from torch import nn

from mtv.errors import ConfigError
from mtv.models.ensemble import Ensemble
from mtv.models.mtv.checkpoint_init import init_from_checkpoint
from mtv.models.mtv.config import MTVConfig, MTVModelConfig
from mtv.models.mtv.model import MTV
from mtv.models.registry import ModelInputs
from mtv.models.vit_init import checkpoints_for_members, init_views_from_vit


def member_cfgs(cfg: MTVModelConfig) -> list[MTVModelConfig]:
    """The `model` node of each single model to build: the node itself, or one per ensemble member
    (`model.members`, by default one single-view member per view of `model.variant`)."""
    if cfg.name != "ensemble":
        return [cfg]
    members = cfg.members or [v.strip() for v in str(cfg.variant or "").split("+") if v.strip()]
    if not members:
        raise ConfigError("model=ensemble needs model.members (or model.variant), e.g. ['B/2', 'S/4', 'Ti/8']")
    checkpoints = checkpoints_for_members(cfg.init.vit_checkpoints, members)
    return [replace(cfg, name="mtv", variant=v, members=None, init=replace(cfg.init, vit_checkpoints=c))
            for v, c in zip(members, checkpoints)]


def model_configs(cfg: MTVModelConfig, inputs: ModelInputs) -> list[MTVConfig]:
    """Validated configs of the model (one per ensemble member) without allocating a tensor."""
    if cfg.name == "mtv_single_view" and "+" in str(cfg.variant):
        raise ConfigError(f"model=mtv_single_view is single-view but model.variant={cfg.variant!r}; "
                          "use e.g. model/variant=B2")
    return [MTVConfig.from_cfg(member, inputs.num_classes, inputs.num_frames, inputs.image_size)
            for member in member_cfgs(cfg)]


def validate(cfg: MTVModelConfig, inputs: ModelInputs) -> None:
    """Start-up check: every rule of MTVConfig.validate, per ensemble member."""
    model_configs(cfg, inputs)


def build(cfg: MTVModelConfig, inputs: ModelInputs) -> nn.Module:
    """An MTV (or an Ensemble of single-view MTVs for `name: ensemble`), randomly initialised, then views
    loaded from ImageNet ViTs where `model.init.vit_checkpoints` names them, then everything loaded from
    an MTV checkpoint where `model.init.checkpoint` names one (fine-tuning)."""
    models = []
    for member, config in zip(member_cfgs(cfg), model_configs(cfg, inputs)):
        model = MTV(config)
        if member.init.vit_checkpoints:
            init_views_from_vit(model, member.init.vit_checkpoints, member.init.inflation)
        if member.init.checkpoint:
            init_from_checkpoint(model, member.init.checkpoint, member.init.restore_head)
        models.append(model)
    return Ensemble(models) if cfg.name == "ensemble" else models[0]
