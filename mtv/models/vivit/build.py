"""The family's `validate` and `build`: resolve the `model` node, build ViViT, then apply `model.init`."""

from __future__ import annotations

from mtv.models.registry import ModelInputs
from mtv.models.vivit.config import ViViTConfig, resolve
from mtv.models.vivit.init import init_from_checkpoint, init_from_vit
from mtv.models.vivit.model import ViViT


def validate(cfg: ViViTConfig, inputs: ModelInputs) -> None:
    """Every rule of the node, before any tensor exists (raises mtv.ConfigError)."""
    resolve(cfg, inputs)


def build(cfg: ViViTConfig, inputs: ModelInputs) -> ViViT:
    """ViViT with scenic's random init, then the ImageNet ViT and / or the ViViT checkpoint of `cfg.init`."""
    model = ViViT(resolve(cfg, inputs))
    init = cfg.init
    if init.vit_checkpoint:
        init_from_vit(model, init.vit_checkpoint, init.inflation, init.posemb_change)
    if init.checkpoint:
        init_from_checkpoint(model, init.checkpoint, init.restore_head, init.posemb_change)
    return model
