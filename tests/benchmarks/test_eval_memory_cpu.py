"""benchmarks/eval_memory.py on a tiny evaluation set: real gloo ranks, both layouts (no memory thresholds)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))  # the spawned ranks import the script's module by name

import eval_memory  # noqa: E402


@pytest.mark.slow
@pytest.mark.parametrize("layout", ["sampler", "blocks"])
def test_each_rank_stores_its_share_and_returns_its_own_videos(layout: str) -> None:
    size = eval_memory.EvalSize(videos=30, views=4, classes=10, note="tiny")
    row = eval_memory.measure(size, 2, eval_memory.parse_args(["--layout", layout, "--videos-per-batch", "4"]))
    assert row["stored_mb"] == pytest.approx(15 * 4 * 10 * 4 / 1e6)  # 15 videos x 4 views x 10 float32
    assert row["videos_per_rank"] == 15  # videos 0, 2, ... on rank 0 and 1, 3, ... on rank 1
    assert row["peak_mb"] >= 0


def test_layouts_cover_every_video_once() -> None:
    size = eval_memory.EvalSize(videos=31, views=1, classes=2, note="tiny")
    for layout in ("sampler", "blocks"):
        ranks = [list(eval_memory.videos_of_rank(size, 4, r, layout)) for r in range(4)]
        assert sorted(v for videos in ranks for v in videos) == list(range(31)), layout
