"""Map-style video datasets (map-style so Lightning can shard them under DDP) and their collate.

Every item is a dict of tensors with a leading "clips" dimension (k repeated-augmentation clips in
training, temporal clips x spatial crops in evaluation); `collate_clips` concatenates along it. The
training set also builds whole batches (`__getitems__`), which the DataLoader prefers.
"""
from __future__ import annotations

import math
import random
from typing import Sequence

import numpy as np
import torch
from torch.utils.data import Dataset, get_worker_info

from .bad_inputs import DECODE_ERROR_POLICIES, BadVideoLog
from .formats import VideoRecord
from .normalize import Normalization
from .readers import DecodeError, read_frames
from .sampling import evenly_spaced_clips, random_clip
from .transforms import EvalTransform, TrainTransform


class ClipDecoder:
    """Decodes clips of a record: the segment's frames, a sampling rule, decord with PyAV fallback."""

    def __init__(self, data_cfg) -> None:
        self.num_frames, self.stride = int(data_cfg.num_frames), int(data_cfg.stride)
        self.short_video = str(data_cfg.short_video)
        self.backend, self.fallback = str(data_cfg.backend), data_cfg.get("fallback_backend")
        self.num_threads = int(data_cfg.decode_threads)

    def decode(self, record: VideoRecord, clips_for_length) -> torch.Tensor:
        """`clips_for_length(segment_length) -> list of index arrays`; returns uint8 (n, T, H, W, 3)."""
        num_clips = 0

        def indices(video_length: int) -> np.ndarray:
            nonlocal num_clips
            first = min(record.start_frame, video_length - 1)
            last = video_length - 1 if record.end_frame is None else min(record.end_frame, video_length - 1)
            clips = clips_for_length(max(last - first + 1, 1))
            num_clips = len(clips)
            return first + np.concatenate(clips)

        frames = read_frames(record.path, indices, self.backend, self.num_threads, self.fallback)
        return frames.view(num_clips, self.num_frames, *frames.shape[1:])


def _label_tensor(label: int | tuple[int, ...], n: int) -> torch.Tensor:
    return torch.tensor(label, dtype=torch.long).expand(n, *([len(label)] if isinstance(label, tuple) else []))


class TrainVideoDataset(Dataset):
    """Random clips with augmentation; an undecodable video is replaced by a random other one.

    Each item holds `repeat_aug` clips at independent random positions of one opened video, each
    augmented independently (repeated augmentation: decode cost shared by k samples).
    """

    def __init__(self, records: Sequence[VideoRecord], data_cfg, bad_log: BadVideoLog, split: str = "train",
                 norm: Normalization | None = None) -> None:
        self.records = list(records)
        self.decoder = ClipDecoder(data_cfg)
        self.transform = TrainTransform(data_cfg, norm)
        self.repeat = int(data_cfg.repeat_aug)
        self.on_error = _decode_error_policy(data_cfg)
        self.max_retries = int(data_cfg.max_decode_retries)
        self.bad_log, self.split = bad_log, split

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        return self._fill([index], self._clip_buffer(self.repeat, shared=False))

    def __getitems__(self, indices: list[int]) -> dict[str, torch.Tensor]:
        """A whole batch at once (DataLoader calls this when it exists): clips are augmented straight
        into the batch tensor, in shared memory inside a worker, so no collate copy is needed."""
        return self._fill(indices, self._clip_buffer(len(indices) * self.repeat, shared=get_worker_info() is not None))

    def _clip_buffer(self, n: int, shared: bool) -> torch.Tensor:
        shape = (n, 3, self.decoder.num_frames, self.transform.crop, self.transform.crop)
        return _shared_empty(shape, torch.float32) if shared else torch.empty(shape)

    def _fill(self, indices: list[int], video: torch.Tensor) -> dict[str, torch.Tensor]:
        labels, video_index, num_bad = [], [], torch.zeros(len(video), dtype=torch.long)
        for k, index in enumerate(indices):
            index, record, clips, bad = self._decode_or_replace(index)
            for j, clip in enumerate(clips):
                self.transform(clip, out=video[k * self.repeat + j])
            num_bad[k * self.repeat] = bad  # counted once per decoded video, so batch sums are exact
            labels.append(_label_tensor(record.label, self.repeat))
            video_index.append(torch.full((self.repeat,), index, dtype=torch.long))
        return {"video": video, "label": torch.cat(labels), "video_index": torch.cat(video_index), "num_bad": num_bad}

    def _decode_or_replace(self, index: int) -> tuple[int, VideoRecord, torch.Tensor, int]:
        """Decode `repeat_aug` random clips of video `index`, or of a random other video when it fails."""
        num_bad = 0
        while True:
            record = self.records[index]
            try:
                clips = self.decoder.decode(record, lambda n: [
                    random_clip(n, self.decoder.num_frames, self.decoder.stride, self.decoder.short_video)
                    for _ in range(self.repeat)])
                return index, record, clips, num_bad
            except DecodeError as err:
                self.bad_log.record(self.split, record.path, err)
                if self.on_error == "error":
                    raise RuntimeError(f"cannot decode {record.path} ({err}); data.on_decode_error=error. "
                                       f"Set data.on_decode_error=skip to replace unreadable videos.") from err
                num_bad += 1
                if num_bad > self.max_retries:
                    raise RuntimeError(f"{num_bad} unreadable videos in a row (last: {record.path}); see "
                                       f"{self.bad_log.path}: is the whole dataset unreadable?") from err
                index = random.randrange(len(self.records))


class EvalVideoDataset(Dataset):
    """All views of one video per item: `num_clips` evenly spaced clips x `num_crops` spatial crops,
    view_index = clip * num_crops + crop. An undecodable video yields zero clips with valid=False
    (never a substitute: evaluation must say how many videos it could not read)."""

    def __init__(self, records: Sequence[VideoRecord], data_cfg, bad_log: BadVideoLog, split: str,
                 num_clips: int, num_crops: int, norm: Normalization | None = None) -> None:
        self.records = list(records)
        self.decoder = ClipDecoder(data_cfg)
        self.transform = EvalTransform(data_cfg, num_crops, norm)
        self.num_clips, self.num_crops = num_clips, num_crops
        self.crop = int(data_cfg.crop_size)
        self.on_error = _decode_error_policy(data_cfg)
        self.bad_log, self.split = bad_log, split

    @property
    def num_views(self) -> int:
        return self.num_clips * self.num_crops

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        record = self.records[index]
        n = self.num_views
        valid = True
        try:
            clips = self.decoder.decode(record, lambda length: evenly_spaced_clips(
                length, self.decoder.num_frames, self.decoder.stride, self.num_clips, self.decoder.short_video))
            video = torch.cat([self.transform(clip) for clip in clips])
        except DecodeError as err:
            self.bad_log.record(self.split, record.path, err)
            if self.on_error == "error":
                raise RuntimeError(f"cannot decode {self.split} video {record.path} ({err}); "
                                   f"data.on_decode_error=error") from err
            video = torch.zeros(n, 3, self.decoder.num_frames, self.crop, self.crop)
            valid = False
        return {"video": video, "label": _label_tensor(record.label, n),
                "video_index": torch.full((n,), index, dtype=torch.long),
                "view_index": torch.arange(n), "valid": torch.full((n,), valid)}


def _decode_error_policy(data_cfg) -> str:
    policy = str(data_cfg.on_decode_error)
    if policy not in DECODE_ERROR_POLICIES:
        raise ValueError(f"data.on_decode_error={policy!r} must be one of {DECODE_ERROR_POLICIES}")
    return policy


def _shared_empty(shape: tuple[int, ...], dtype: torch.dtype) -> torch.Tensor:
    """An uninitialised tensor in shared memory: what a worker sends back without another copy
    (the same private storage call torch's default_collate uses)."""
    storage = torch.UntypedStorage._new_shared(math.prod(shape) * dtype.itemsize)
    return torch.empty(0, dtype=dtype).set_(storage).view(shape)


def collate_clips(items: list[dict[str, torch.Tensor]] | dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Concatenate items along their leading clips dimension (a batch from `__getitems__` passes as is).

    In a DataLoader worker the batch is written straight into shared memory (as torch's
    default_collate does): a 32x224x224 float batch is ~150 MB, and one copy fewer is measurable.
    """
    if isinstance(items, dict):
        return items
    in_worker = get_worker_info() is not None
    batch = {}
    for key in items[0]:
        parts = [item[key] for item in items]
        shape = (sum(len(p) for p in parts), *parts[0].shape[1:])
        out = _shared_empty(shape, parts[0].dtype) if in_worker else None
        batch[key] = torch.cat(parts, out=out)
    return batch
