"""Shared pieces of the MViT tests: the fixture folder, Hydra composition of the real presets, tiny configs."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from mtv.models.mvit.config import MViTBlock, MViTConfig

ROOT = Path(__file__).resolve().parents[3]
FIXTURES = ROOT.parent / "shared" / "reference" / "fixtures" / "mvit"


@pytest.fixture(scope="session")
def fixtures() -> Path:
    if not FIXTURES.is_dir():
        pytest.skip(f"reference fixtures not found at {FIXTURES}")
    return FIXTURES


def compose_model(preset: str, tmp_path: Path, overrides: list[str] = ()) -> MViTConfig:
    """`model=<preset>` at paper size, composed by Hydra from conf/ as run.py composes it."""
    import mtv.runner  # noqa: F401  (registers the families' schemas in Hydra's ConfigStore)

    with initialize_config_dir(str(ROOT / "conf"), version_base=None):
        cfg = compose("config", overrides=[f"model={preset}", "scale=paper", *overrides])
    return OmegaConf.to_object(cfg.model)


def tiny_blocks(v2: bool, temporal_stride: int = 1) -> list[MViTBlock]:
    """Three stages (dims 8 -> 16 -> 32) on a 4x8x8 token grid; v1 changes width at a stage's end, v2 at its
    start; `temporal_stride` also pools time at the second transition."""
    k = [3, 3, 3]
    q1, q2 = [1, 2, 2], [temporal_stride, 2, 2]
    if v2:
        return [MViTBlock(1, 8, 8, k, k, [1, 1, 1], [1, 4, 4]), MViTBlock(2, 8, 16, k, k, q1, [1, 2, 2]),
                MViTBlock(2, 16, 16, k, k, [1, 1, 1], [1, 2, 2]), MViTBlock(4, 16, 32, k, k, q2, [1, 1, 1])]
    return [MViTBlock(1, 8, 16, [], k, [], [1, 4, 4]), MViTBlock(2, 16, 16, k, k, q1, [1, 2, 2]),
            MViTBlock(2, 16, 32, [], k, [], [1, 2, 2]), MViTBlock(4, 32, 32, k, k, q2, [1, 1, 1])]


def tiny_config(v2: bool, **changes) -> MViTConfig:
    """A tiny v1 or v2 MViT (a few thousand parameters)."""
    temporal_stride = changes.pop("temporal_stride", 1)
    fields = {"blocks": tiny_blocks(v2, temporal_stride), "dropout": 0.0, "stochastic_depth": 0.0}
    if v2:
        fields.update(pos_embed="none", rel_pos_spatial=True, rel_pos_temporal=True, residual_pool=True,
                      dim_mul_in_att=True)
    fields.update(changes)
    return MViTConfig(**fields)


def reference_renames(fixtures: Path) -> dict[str, tuple[str, int]]:
    """PySlowFast key -> (torchvision key, torchvision ndim), block index as `{}`: generalised from the published
    full-size mapping, independent of the mapping the code under test uses."""
    mapping = json.loads((fixtures / "keys" / "key_mapping_full.json").read_text())
    block = re.compile(r"^blocks\.\d+\.")
    return {block.sub("blocks.{}.", pair["pyslowfast"]): (block.sub("blocks.{}.", pair["torchvision"]),
                                                           len(pair["tv_shape"]))
            for pairs in mapping.values() for pair in pairs}


def to_torchvision(state: dict, fixtures: Path) -> dict:
    """Our (PySlowFast-named) state dict in torchvision's names and shapes, by the reference mapping."""
    renames = reference_renames(fixtures)
    out = {}
    for key, value in state.items():
        match = re.match(r"^blocks\.(\d+)\.(.*)$", key)
        template = f"blocks.{{}}.{match.group(2)}" if match else key
        name, ndim = renames[template]
        out[name.format(match.group(1)) if match else name] = value.reshape(value.shape[value.ndim - ndim:])
    return out
