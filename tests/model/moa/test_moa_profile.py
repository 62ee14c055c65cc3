"""MoA counts against the numbers measured on the authors' code (shared/reference/moa_spec.md §3).

The presets are composed from conf/model/*.yaml by Hydra and built on the meta device, so the full-size
models cost no memory. Totals: parameters exactly, GMACs within 0.5 % (the acceptance criterion); per
component the spec's printed digits (parameters exactly, GMACs to half a unit of the 4th decimal).
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from moa_helpers import compose_model  # noqa: E402

from mtv.models.registry import ModelInputs, get_family  # noqa: E402

torch.set_num_threads(1)

COMPONENTS = ("patch_embed", "layers.0", "layers.1", "layers.2", "layers.3", "head")
# preset: (size, classes, params total, GMACs total, params per component, GMACs per component) from §3
ROWS = {
    "moa_tiny": (224, 1000, 17_638_396, 5.4112, (4_896, 599_916, 2_382_120, 14_265_696, None, 385_000),
                 (0.0145, 1.2519, 1.1339, 3.0106, None, 0.0004)),
    "moa_small": (224, 1000, 39_036_940, 9.9271, (4_896, 599_916, 2_382_120, 35_664_240, None, 385_000),
                  (0.0145, 1.2519, 1.1339, 7.5264, None, 0.0004)),
    "moa_base": (224, 1000, 69_091_480, 17.2219, (6_528, 1_062_672, 4_227_296, 63_280_960, None, 513_000),
                 (0.0193, 2.1207, 1.9633, 13.1180, None, 0.0005)),
    # the "stride fix" rows: key stride = window, where the authors' code crashes
    "moa_tiny_32": (32, 100, 30_056_152, 1.6941, (576, 417_804, 1_659_960, 13_721_280, 14_178_096, 76_900),
                    (0.0003, 0.3399, 0.3361, 0.7905, 0.2273, 0.0001)),
    # heads [4, 8, 16, 32] instead of the authors' [3, 6, 12, 24]: one more head per 3 widens every bias table;
    # local tables have 7^2 rows (window 4), MOA tables 15^2, 7^2, 3^2 (grids 8, 4, 2)
    "moa_base_32": (32, 100, 53_361_311 + 49 * (2 * 1 + 2 * 2 + 6 * 4 + 2 * 8) + 225 * 1 + 49 * 2 + 9 * 4, 3.0046,
                    None, None),
}


def _profile(preset: str, size: int, classes: int, frames: int = 1) -> dict:
    cfg = compose_model(preset)
    family = get_family(cfg.name)
    inputs = ModelInputs(num_classes=classes, num_frames=frames, image_size=(size, size))
    with torch.device("meta"):
        model = family.build(cfg, inputs)
    return family.profile(model, inputs)


@pytest.mark.parametrize("preset", sorted(ROWS))
def test_counts_match_authors(preset: str) -> None:
    size, classes, params_total, gmacs_total, params, gmacs = ROWS[preset]
    profile = _profile(preset, size, classes)
    assert profile["input"] == [1, 3, 1, size, size]
    if params_total is not None:
        assert profile["params_total"] == params_total
    assert profile["gmacs_per_view"] == pytest.approx(gmacs_total, rel=0.005)
    for name, p, g in zip(COMPONENTS, params or (None,) * 6, gmacs or (None,) * 6):
        if p is not None:
            assert profile["params"][name] == p, name
        if g is not None:
            assert abs(profile["gmacs"][name] - g) <= 5e-5, name
    assert sum(profile["params"].values()) == profile["params_total"]
    assert sum(profile["gmacs"].values()) == pytest.approx(profile["gmacs_per_view"])


def test_video_clip_costs_its_frames() -> None:
    image = _profile("moa_tiny_32", 32, 10)
    clip = _profile("moa_tiny_32", 32, 10, frames=4)
    assert clip["input"] == [1, 3, 4, 32, 32] and clip["params_total"] == image["params_total"]
    # the backbone runs 4 times, the head once on the averaged features
    head = image["gmacs"]["head"]
    assert clip["gmacs_per_view"] == pytest.approx(4 * (image["gmacs_per_view"] - head) + head, rel=1e-9)


def test_format_profile_lists_components_and_stages() -> None:
    profile = _profile("moa_tiny", 224, 1000)
    text = get_family("moa").format_profile(profile)
    assert "17,638,396" in text and "5.4112" in text and "| layers.2 | 14,265,696 | 3.0106 |" in text
    assert "| 0 | 56x56 | 96 | 14 | 4x4 | 14 |" in text and "no MOA" in text
