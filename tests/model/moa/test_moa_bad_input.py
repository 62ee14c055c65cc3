"""Configurations MoA cannot build give one ConfigError naming the key and the fix, from `validate` alone
(what start-up checks call, before any data is read or tensor allocated) and from `build`."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from moa_helpers import authors_kwargs, compose_model  # noqa: E402

from mtv import ConfigError  # noqa: E402
from mtv.interop.moa import model_from_authors  # noqa: E402
from mtv.models.registry import ModelInputs, get_family  # noqa: E402

# (preset, overrides, crop size, message pattern)
BAD = {
    # 96 / 4 = 24 tokens: windows of 14 do not tile stage 0
    "window_not_tiling": ("moa_tiny", (), 96, r"model\.window_size=14: stage 0's 24x24 token map .* not tiled"),
    # 64 / 1 = 64, then 32, 16, 8: window 6 fails at stage 0 already
    "window_not_tiling_cifar": ("moa_tiny_32", ("window_size=6",), 64, r"model\.window_size=6: stage 0's 64x64"),
    "few_moa_channels": ("moa_tiny_32", ("embed_dim=16", "num_heads=[1,2,4,8]"), 32,
                         r"model\.embed_dim=16: stage 0 has an MOA module but only 16 channels, fewer than "
                         r"model\.moa_reduction=32"),
    "heads_not_dividing": ("moa_base_32", ("num_heads=[3,6,12,24]",), 32,
                           r"model\.num_heads\[0\]=3 does not divide stage 0's width 128"),
    "heads_per_stage": ("moa_tiny", ("num_heads=[3,6]",), 224, r"model\.num_heads=\[3, 6\] has 2 entries .* 3 stages"),
    "crop_not_patches": ("moa_tiny", (), 226, r"data\.crop_size=226x226 is not a multiple of model\.patch_size=4"),
    # 40 / 4 = 10 -> 5: window 5 tiles both, but the odd 5x5 map cannot be merged
    "odd_map": ("moa_tiny", ("window_size=5",), 40, r"stage 1's 5x5 token map is odd"),
    "key_stride": ("moa_tiny_32", ("moa_key_stride=3",), 32, r"model\.moa_key_stride=3: stage 0 has a 8x8 grid"),
    "rate": ("moa_tiny", ("stochastic_depth=1.5",), 224, r"model\.stochastic_depth=1\.5 must be a rate"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_config_is_named(case: str) -> None:
    preset, overrides, size, pattern = BAD[case]
    cfg = compose_model(preset, *overrides)
    family = get_family(cfg.name)
    inputs = ModelInputs(num_classes=10, num_frames=2, image_size=(size, size))
    with pytest.raises(ConfigError, match=pattern):
        family.validate(cfg, inputs)
    with pytest.raises(ConfigError, match=pattern):
        family.build(cfg, inputs)


def test_presets_are_valid_at_their_size() -> None:
    for preset, size in (("moa_tiny", 224), ("moa_small", 224), ("moa_base", 224), ("moa_tiny_32", 32),
                         ("moa_base_32", 32)):
        cfg = compose_model(preset)
        get_family(cfg.name).validate(cfg, ModelInputs(num_classes=10, num_frames=8, image_size=(size, size)))


def test_authors_crashing_config_is_refused() -> None:
    """The authors' MOA_base_patch1_window4_32 (embed 128, heads 3..24) crashes in their forward; here it is named."""
    kwargs = authors_kwargs(img_size=32, patch_size=1, embed_dim=128, depths=[2, 2, 6, 2], num_heads=[3, 6, 12, 24],
                            window_size=4, num_classes=10)
    with pytest.raises(ConfigError, match=r"model\.num_heads\[0\]=3 does not divide stage 0's width 128"):
        model_from_authors(kwargs, {})
    with pytest.raises(ConfigError, match=r"ape=True is not supported"):
        model_from_authors({**kwargs, "ape": True}, {})
