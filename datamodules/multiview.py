"""Multi-view evaluation: average raw logits over all views of each video (scenic), exactly once per
video under DDP.

Lightning's DistributedSampler pads the test set so every rank gets as many batches (needed for
collectives and FSDP, see docs/data.md), which repeats a few videos on other ranks. The aggregator
gathers every clip from every rank and keeps one row per (video_index, view_index), so padded or
otherwise repeated views never count twice.
"""
from __future__ import annotations

import torch
import torch.distributed as dist
from torchmetrics.utilities.distributed import gather_all_tensors

STATES = ("logits", "labels", "video_index", "view_index", "valid")


class MultiViewAggregator:
    """`update(logits, labels, video_index, valid, view_index=None)` per test batch; `compute()` ->
    dict with per-video averaged `logits` (readable videos, sorted by video index), their `labels`
    and `video_index`, `num_videos` (distinct videos seen, readable or not) and `num_unreadable`.

    Without `view_index`, the k-th clip of a video within one `update` call is taken as view k, which
    holds for the batches of `EvalVideoDataset` (all views of a video are in one batch).

    States stay on the logits' device (NCCL gathers device tensors); `compute()` must be called on
    every rank (it gathers), and returns CPU tensors. A plain class, not a torchmetrics Metric, whose
    compute() would squeeze a single video's results to scalars.
    """

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.states: dict[str, list[torch.Tensor]] = {name: [] for name in STATES}

    def update(self, logits: torch.Tensor, labels: torch.Tensor, video_index: torch.Tensor,
               valid: torch.Tensor, view_index: torch.Tensor | None = None) -> None:
        if view_index is None:
            view_index = _position_within_video(video_index)
        device = logits.device
        self.states["logits"].append(logits.detach().float())
        self.states["labels"].append(labels.detach().long().view(len(labels), -1).to(device))
        self.states["video_index"].append(video_index.detach().long().to(device))
        self.states["view_index"].append(view_index.detach().long().to(device))
        self.states["valid"].append(valid.detach().bool().to(device))

    def compute(self) -> dict[str, torch.Tensor | int]:
        logits, labels, videos, views, valid = (_gather(self.states[name]) for name in STATES)
        if videos.numel() == 0:
            return {"logits": logits, "labels": labels, "video_index": videos, "num_videos": 0, "num_unreadable": 0}
        # One row per (video, view): unique keys, first occurrence.
        key = videos * (int(views.max()) + 1) + views
        unique_keys, inverse = torch.unique(key, return_inverse=True)
        first = torch.full((len(unique_keys),), len(key), dtype=torch.long).scatter_reduce(
            0, inverse, torch.arange(len(key)), reduce="amin")
        logits, labels, videos, valid = logits[first], labels[first], videos[first], valid[first]
        video_ids, per_row = torch.unique(videos, return_inverse=True)
        unreadable = torch.zeros(len(video_ids), dtype=torch.long).index_add_(0, per_row, (~valid).long()) > 0
        sums = torch.zeros(len(video_ids), logits.shape[1]).index_add_(0, per_row, logits)
        counts = torch.zeros(len(video_ids)).index_add_(0, per_row, torch.ones(len(per_row)))
        video_labels = torch.zeros(len(video_ids), labels.shape[1], dtype=torch.long).index_copy_(0, per_row, labels)
        keep = ~unreadable
        return {
            "logits": (sums / counts[:, None])[keep],
            "labels": video_labels[keep].squeeze(1) if video_labels.shape[1] == 1 else video_labels[keep],
            "video_index": video_ids[keep],
            "num_videos": len(video_ids),
            "num_unreadable": int(unreadable.sum()),
        }


def _gather(state: list[torch.Tensor]) -> torch.Tensor:
    """This rank's rows, or every rank's rows (uneven sizes allowed) under torch.distributed, on CPU."""
    local = torch.cat(state) if state else torch.empty(0)
    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        return torch.cat([t.cpu() for t in gather_all_tensors(local)])
    return local.cpu()


def _position_within_video(video_index: torch.Tensor) -> torch.Tensor:
    """0, 1, 2, ... for the successive clips of each video in this batch."""
    position = torch.zeros_like(video_index)
    seen: dict[int, int] = {}
    for i, v in enumerate(video_index.tolist()):
        position[i] = seen.get(v, 0)
        seen[v] = position[i].item() + 1
    return position
