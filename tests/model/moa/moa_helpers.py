"""Shared pieces of the MoA tests: the fixture directory, Hydra composition of the presets, tiny configs and
state dicts in the authors' layout (index buffers included, every parameter perturbed so none is trivial)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf
from torch import Tensor

from mtv.models.moa.config import MoAConfig
from mtv.models.moa.model import MoATransformer

REPO = Path(__file__).resolve().parents[3]
FIXTURE = next((Path(p) for p in (os.environ.get("MTV_MOA_FIXTURE"), REPO / "shared/reference/fixtures/moa",
                                  REPO.parent / "shared/reference/fixtures/moa")
                if p and (Path(p) / "tiny224_state_dict.pt").is_file()), None)


def compose_model(preset: str, *overrides: str) -> MoAConfig:
    """conf/model/<preset>.yaml composed by Hydra against the family's schema, as the runner will do it."""
    import mtv.runner  # noqa: F401  (registers the families' schemas in Hydra's ConfigStore)

    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base=None):
        cfg = compose("config", overrides=[f"model={preset}", "scale=paper", *(f"model.{o}" for o in overrides)])
    return OmegaConf.to_object(cfg.model)


def authors_kwargs(**kwargs: Any) -> dict[str, Any]:
    """Constructor kwargs of the authors' MOATransformer with the fixture's fixed values."""
    return {"in_chans": 3, "mlp_ratio": 4.0, "qkv_bias": True, "qk_scale": None, "drop_rate": 0.0,
            "attn_drop_rate": 0.0, "drop_path_rate": 0.1, "ape": False, "patch_norm": True,
            "use_checkpoint": False, **kwargs}


def authors_state(model: MoATransformer, seed: int) -> dict[str, Tensor]:
    """`model`'s state dict, every parameter perturbed by 0.02 N(0, 1), plus the index buffers the authors save."""
    gen = torch.Generator().manual_seed(seed)
    state = {k: v + 0.02 * torch.randn(v.shape, generator=gen, dtype=v.dtype) for k, v in model.state_dict().items()}
    state.update({k: v.clone() for k, v in model.named_buffers() if k.endswith("relative_position_index")})
    return state
