"""Build a MoA model from the `model` node: validate, construct (authors' init), then load `model.init`."""

from __future__ import annotations

from mtv.models.moa.checkpoint import init_from_checkpoint
from mtv.models.moa.config import MoAConfig, validate
from mtv.models.moa.model import MoATransformer
from mtv.models.registry import ModelInputs


def build_model(cfg: MoAConfig, inputs: ModelInputs) -> MoATransformer:
    """A MoA-Transformer for `inputs` (any clip length: frames share the backbone), from `cfg.init.checkpoint`
    when one is named (an image checkpoint initialises a video model's per-frame backbone as it is)."""
    validate(cfg, inputs)
    model = MoATransformer(cfg, inputs.num_classes, inputs.image_size)
    if cfg.init.checkpoint:
        init_from_checkpoint(model, cfg.init.checkpoint)
    return model
