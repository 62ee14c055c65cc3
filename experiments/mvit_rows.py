"""Published Kinetics-400 numbers of the MViT pyramids, for the `compare_pyramids_views` sweep and its table.

Plain data: one row per model, the Hydra overrides that build it here, and what its authors report. GFLOPs
are per view (one clip x crop) and are multiply-adds, as in the papers; `views` is temporal clips x spatial
crops at test time. Our own counts for the same models (mvit_spec.md §4) are in `measured_gmacs`.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class PublishedRow:
    """One model of the comparison: how to build it here and its published K400 result."""

    name: str  # config-safe
    label: str  # as printed in the table
    overrides: dict[str, object] = field(default_factory=dict)
    top1: float | None = None  # published K400 top-1 (None: not in our reference material)
    gflops_per_view: float | None = None  # published, multiply-adds
    params_m: float | None = None  # published, millions
    views: str = ""  # test views, clips x crops
    measured_gmacs: float | None = None  # ours = torchvision / PySlowFast code, FlopCounterMode (mvit_spec.md §4)
    source: str = ""


MVIT_ROWS: tuple[PublishedRow, ...] = (
    PublishedRow(
        "mvit_b_16x4", "MViT-B 16x4", {"model": "mvit_v1_b", "data.num_frames": 16, "data.stride": 4},
        top1=78.4, gflops_per_view=70.5, params_m=36.6, views="5x1", measured_gmacs=70.599,
        source="PySlowFast model zoo (MViT-B 16x4); Fan et al. 2021",
    ),
    PublishedRow(
        "mvit_b_32x3", "MViT-B 32x3", {"model": "mvit_v1_b_32x3", "data.num_frames": 32, "data.stride": 3},
        top1=80.2, gflops_per_view=170.0, params_m=36.6, views="5x1", measured_gmacs=169.958,
        source="Fan et al. 2021 (MViT), Kinetics-400 table",
    ),
    PublishedRow(
        "mvitv2_s_16x4", "MViTv2-S 16x4", {"model": "mvit_v2_s", "data.num_frames": 16, "data.stride": 4},
        top1=81.0, gflops_per_view=64.0, params_m=34.5, views="5x1", measured_gmacs=64.224,
        source="PySlowFast model zoo / projects/mvitv2 README (MViTv2-S 16x4)",
    ),
    PublishedRow(
        "mvitv2_b_32x3", "MViTv2-B 32x3", {"model": "mvit_v2_b", "data.num_frames": 32, "data.stride": 3},
        top1=None, gflops_per_view=225.0, params_m=51.2, views="5x1", measured_gmacs=224.473,
        source="PySlowFast projects/mvitv2 README (params and GFLOPs; top-1 not in our reference material)",
    ),
)


def row(name: str) -> PublishedRow:
    """The row called `name`, or a KeyError listing the known ones."""
    for candidate in MVIT_ROWS:
        if candidate.name == name:
            return candidate
    raise KeyError(f"no MViT row {name!r}; rows: {', '.join(r.name for r in MVIT_ROWS)}")
