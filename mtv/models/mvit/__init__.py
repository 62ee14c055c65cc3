"""MViT v1 and v2 (multiscale vision transformers for video), the pyramid baseline to compare MTV against."""

from __future__ import annotations

from mtv.models.mvit.checkpoint import init_from_checkpoint
from mtv.models.mvit.config import MViTConfig, block_geometry, validate
from mtv.models.mvit.model import MViT
from mtv.models.mvit.profile import format_profile, profile
from mtv.models.registry import ModelFamily, ModelInputs, register_family


def build(cfg: MViTConfig, inputs: ModelInputs) -> MViT:
    """A validated, initialised MViT; weights from `cfg.init.checkpoint` when it names one."""
    validate(cfg, inputs)
    model = MViT(cfg, block_geometry(cfg, inputs), inputs.num_classes)
    if cfg.init.checkpoint:
        init_from_checkpoint(model, cfg.init.checkpoint)
    return model


FAMILY = register_family(ModelFamily(
    name="mvit",
    config=MViTConfig,
    validate=validate,
    build=build,
    profile=profile,
    format_profile=format_profile,
    docs="docs/models/mvit.md",
))
