"""Build a model from the Hydra `model` node (see docs/architecture.md for the schema)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from torch import nn

from mtv.config import MTVConfig
from mtv.ensemble import Ensemble
from mtv.errors import ConfigError
from mtv.model import MTV


def build_model(
    model_cfg: Mapping[str, Any], num_classes: int, num_frames: int, image_size: int | Sequence[int]
) -> nn.Module:
    """An MTV (or an Ensemble of single-view MTVs for `name: ensemble`), randomly initialised."""
    if model_cfg.get("name") == "ensemble":
        members = model_cfg.get("members") or []
        if not members:
            raise ConfigError("model=ensemble needs model.members, e.g. ['B/2', 'S/4', 'Ti/8']")
        return Ensemble(
            [build_model({**dict(model_cfg), "name": "mtv", "variant": v, "members": None},
                         num_classes, num_frames, image_size) for v in members]
        )
    return MTV(MTVConfig.from_cfg(model_cfg, num_classes, num_frames, image_size))
