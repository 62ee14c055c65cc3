"""Which frames make a clip: `num_frames` frames `stride` apart, inside a segment of a video.

Short videos (fewer frames than a clip spans) never raise. The rule (`data.short_video`):
  * `loop` (default, as DMVR's `sample_sequence`): the video is played repeatedly, index % length;
  * `pad`: the clip runs to the last frame, which is then repeated.
"""
from __future__ import annotations

import random

import numpy as np

SHORT_VIDEO_RULES = ("loop", "pad")


def clip_span(num_frames: int, stride: int) -> int:
    """Number of source frames covered by one clip."""
    return (num_frames - 1) * stride + 1


def _clip_at(start: int, num_frames: int, stride: int, length: int, short_video: str) -> np.ndarray:
    indices = start + stride * np.arange(num_frames)
    if short_video == "loop":
        return indices % length
    if short_video == "pad":
        return np.minimum(indices, length - 1)
    raise ValueError(f"data.short_video={short_video!r} must be one of {SHORT_VIDEO_RULES}")


def random_clip(length: int, num_frames: int, stride: int, short_video: str = "loop",
                rng: random.Random | None = None) -> np.ndarray:
    """Training: one clip at a uniformly random start (start 0 if the video is short)."""
    rng = rng or random
    last_start = length - clip_span(num_frames, stride)
    start = rng.randint(0, last_start) if last_start > 0 else 0
    return _clip_at(start, num_frames, stride, length, short_video)


def evenly_spaced_clips(length: int, num_frames: int, stride: int, num_clips: int,
                        short_video: str = "loop") -> list[np.ndarray]:
    """Evaluation: `num_clips` clips with starts linearly spaced over the video (1 clip: the middle one)."""
    last_start = max(length - clip_span(num_frames, stride), 0)
    if num_clips == 1:
        starts = [last_start // 2]
    else:
        starts = np.round(np.linspace(0, last_start, num_clips)).astype(int).tolist()
    return [_clip_at(s, num_frames, stride, length, short_video) for s in starts]
