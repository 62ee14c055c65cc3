"""Clip sampling: bounds, stride, evenly spaced test clips, and the short-video rule."""
from __future__ import annotations

import random

import numpy as np
import pytest

from datamodules.sampling import clip_span, evenly_spaced_clips, random_clip


def test_random_clip_stays_inside_and_keeps_the_stride():
    rng = random.Random(0)
    starts = set()
    for _ in range(200):
        clip = random_clip(100, num_frames=32, stride=2, rng=rng)
        assert clip.min() >= 0 and clip.max() <= 99
        assert np.all(np.diff(clip) == 2)
        starts.add(int(clip[0]))
    assert min(starts) == 0 and max(starts) == 100 - clip_span(32, 2)  # every start reachable


def test_evenly_spaced_clips_cover_the_video():
    clips = evenly_spaced_clips(100, num_frames=8, stride=2, num_clips=4)
    assert [int(c[0]) for c in clips] == [0, 28, 57, 85] and int(clips[-1][-1]) == 99
    middle = evenly_spaced_clips(100, num_frames=8, stride=2, num_clips=1)
    assert int(middle[0][0]) == (100 - 15) // 2


@pytest.mark.parametrize("length", [1, 5, 20])
def test_short_videos_loop_by_default(length):
    clip = random_clip(length, num_frames=16, stride=2)
    assert len(clip) == 16 and clip.max() < length
    assert clip.tolist() == [(2 * i) % length for i in range(16)]
    for c in evenly_spaced_clips(length, num_frames=16, stride=2, num_clips=3):
        assert c.tolist() == [(2 * i) % length for i in range(16)]


def test_short_videos_pad_with_the_last_frame():
    clip = random_clip(5, num_frames=6, stride=1, short_video="pad")
    assert clip.tolist() == [0, 1, 2, 3, 4, 4]


def test_unknown_rule_names_the_key():
    with pytest.raises(ValueError, match="data.short_video"):
        random_clip(5, num_frames=6, stride=1, short_video="stretch")
