"""The model zoo: one subpackage per model family (each registers itself, see `registry`), plus the layers,
loaders and counting they share. Everything outside the zoo builds models through these functions."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from torch import nn

from mtv.errors import ConfigError
from mtv.models.registry import ModelFamily, ModelInputs, families, get_family, register_family
from mtv.schema import to_schema

__all__ = ["ModelFamily", "ModelInputs", "build_model", "families", "get_family", "model_inputs", "model_schema",
           "register_family", "validate_model"]


def model_inputs(num_classes: int, num_frames: int, image_size: int | Sequence[int]) -> ModelInputs:
    """ModelInputs with the crop as (height, width)."""
    size = (int(image_size),) * 2 if isinstance(image_size, int) else tuple(int(s) for s in image_size)
    if len(size) != 2:
        raise ConfigError(f"data.crop_size={image_size!r}: give one integer or (height, width)")
    return ModelInputs(int(num_classes), int(num_frames), size)  # type: ignore[arg-type]


def model_schema(model_cfg: Any) -> tuple[ModelFamily, Any]:
    """The family of a `model` node (by `model.name`) and the node as that family's config dataclass."""
    name = model_cfg.name if hasattr(model_cfg, "name") else (model_cfg or {}).get("name", "mtv")
    family = get_family(str(name))
    return family, to_schema(family.config, model_cfg, "model.")


def validate_model(model_cfg: Any, num_classes: int, num_frames: int, image_size: int | Sequence[int]) -> None:
    """Raise ConfigError naming the key if the model cannot be built for these inputs; allocates nothing."""
    family, cfg = model_schema(model_cfg)
    family.validate(cfg, model_inputs(num_classes, num_frames, image_size))


def build_model(model_cfg: Mapping[str, Any] | Any, num_classes: int, num_frames: int,
                image_size: int | Sequence[int]) -> nn.Module:
    """The initialised model of a `model` node (any registered family)."""
    family, cfg = model_schema(model_cfg)
    return family.build(cfg, model_inputs(num_classes, num_frames, image_size))
