"""Multi-view evaluation: average raw logits over all views of each video (scenic), exactly once per video
under DDP, each video averaged on the one rank that owns it.

Lightning's DistributedSampler pads the test set so every rank gets as many batches (needed for collectives
and FSDP, see docs/data.md), which repeats a few videos on other ranks. Video `v` belongs to rank
`v % world_size`: `compute()` sends every clip to its video's owner in one all-to-all, and the owner keeps one
row per (video_index, view_index), the first in rank order, so padded or otherwise repeated views never count
twice. A rank thus holds its own clips and receives only those of its own videos: memory per rank is
O(videos x views x classes / ranks), where gathering every clip on every rank held all of them on each
(benchmarks/eval_memory.py measures both).
"""
from __future__ import annotations

import torch
import torch.distributed as dist
from torch import Tensor

STATES = ("logits", "labels", "video_index", "view_index", "valid")


class MultiViewAggregator:
    """`update(logits, labels, video_index, valid, view_index=None)` per test batch; `compute()` -> dict with
    per-video averaged `logits` of the readable videos this rank owns (sorted by video index), their `labels`
    and `video_index`, and, over all ranks, `num_videos` (distinct videos seen, readable or not) and
    `num_unreadable`.

    Under DDP the per-video rows are split between the ranks (each video on exactly one), so metrics over them
    must add up their states across ranks (torchmetrics' default `sync_on_compute`); one process gets all.

    Without `view_index`, the k-th clip of a video within one `update` call is taken as view k, which holds
    for the batches of `EvalVideoDataset` (all views of a video are in one batch).

    States stay on the logits' device; `compute()` must be called on every rank (it exchanges rows, on the
    GPU under NCCL), and returns CPU tensors. A plain class, not a torchmetrics Metric, whose compute() would
    squeeze a single video's results to scalars.
    """

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.states: dict[str, list[Tensor]] = {name: [] for name in STATES}

    def update(self, logits: Tensor, labels: Tensor, video_index: Tensor, valid: Tensor,
               view_index: Tensor | None = None) -> None:
        if view_index is None:
            view_index = _position_within_video(video_index)
        device = logits.device
        self.states["logits"].append(logits.detach().float())
        self.states["labels"].append(labels.detach().long().view(len(labels), -1).to(device))
        self.states["video_index"].append(video_index.detach().long().to(device))
        self.states["view_index"].append(view_index.detach().long().to(device))
        self.states["valid"].append(valid.detach().bool().to(device))

    def compute(self) -> dict[str, Tensor | int]:
        logits, keys = self._rows()
        if _distributed():
            logits, keys = _send_to_owners(logits, keys)  # from here on, only the clips of this rank's videos
        logits, keys = logits.cpu(), keys.cpu()
        videos, views, valid, labels = keys[:, 0], keys[:, 1], keys[:, 2].bool(), keys[:, 3:]
        result = _average_per_video(logits, labels, videos, views, valid)
        if _distributed():
            counts = torch.tensor([result["num_videos"], result["num_unreadable"]], device=_comm_device())
            dist.all_reduce(counts)
            result["num_videos"], result["num_unreadable"] = (int(c) for c in counts.tolist())
        return result

    def _rows(self) -> tuple[Tensor, Tensor]:
        """This rank's clips: logits (N, classes) and one integer row per clip, (video, view, valid, labels...).

        The states are concatenated in place (each list becomes one tensor), so their pieces are freed and a
        second compute() costs nothing more. Under DDP a rank that saw no clip still takes part, with
        (0, classes) rows: the widths are agreed on (the largest over ranks) before anything is sent."""
        for name in STATES:
            if len(self.states[name]) > 1:
                self.states[name] = [torch.cat(self.states[name])]
        device = _comm_device() if _distributed() else torch.device("cpu")
        logits = keys = None
        if self.states["logits"]:
            (logits,), (videos,), (views,), (valid,), (labels,) = (self.states[name] for name in
                                                                  ("logits", "video_index", "view_index", "valid",
                                                                   "labels"))
            logits = logits.to(device)
            keys = torch.cat([videos[:, None], views[:, None], valid[:, None].long(), labels], dim=1).to(device)
        widths = [0 if logits is None else logits.shape[1], 0 if keys is None else keys.shape[1]]
        if _distributed():
            agreed = torch.tensor(widths, device=device)
            dist.all_reduce(agreed, op=dist.ReduceOp.MAX)
            widths = agreed.tolist()
        if logits is None:
            logits = torch.empty(0, widths[0], device=device)
            keys = torch.empty(0, max(widths[1], 4), dtype=torch.long, device=device)
        return logits, keys


def _distributed() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def _comm_device() -> torch.device:
    """Where the exchanged tensors must live: the current GPU under NCCL, else the CPU (gloo)."""
    if dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def _send_to_owners(logits: Tensor, keys: Tensor) -> tuple[Tensor, Tensor]:
    """Every row to the rank that owns its video (video % world size), in one all-to-all per tensor. The
    received rows come in rank order, and in update order within a rank, as a gather would give them."""
    world = dist.get_world_size()
    owner = keys[:, 0] % world
    send = torch.bincount(owner, minlength=world)
    foreign = (send.sum() - send[dist.get_rank()]).reshape(1)
    dist.all_reduce(foreign)
    if foreign.item() == 0:  # every clip is on its owner already (DistributedSampler's order): nothing to send
        return logits, keys
    order = torch.argsort(owner, stable=True)
    receive = torch.empty_like(send)
    dist.all_to_all_single(receive, send)
    send_sizes, receive_sizes = send.tolist(), receive.tolist()
    in_order = bool((owner[1:] >= owner[:-1]).all())  # grouped by owner already: no sorted copy
    exchanged = []
    for rows in (logits, keys):
        received = rows.new_empty((sum(receive_sizes), rows.shape[1]))
        dist.all_to_all_single(received, rows if in_order else rows[order], receive_sizes, send_sizes)
        exchanged.append(received)
    return exchanged[0], exchanged[1]


def _average_per_video(logits: Tensor, labels: Tensor, videos: Tensor, views: Tensor,
                       valid: Tensor) -> dict[str, Tensor | int]:
    """The first row of each (video, view) counts, repeats add into a discarded row (no copy of the logits);
    the mean of raw logits per readable video."""
    if videos.numel() == 0:
        return {"logits": logits, "labels": labels.squeeze(1) if labels.shape[1] == 1 else labels,
                "video_index": videos, "num_videos": 0, "num_unreadable": 0}
    key = videos * (int(views.max()) + 1) + views
    unique_keys, inverse = torch.unique(key, return_inverse=True)
    first = torch.full((len(unique_keys),), len(key), dtype=torch.long).scatter_reduce(
        0, inverse, torch.arange(len(key)), reduce="amin")
    video_ids, per_row = torch.unique(videos, return_inverse=True)
    target = torch.full_like(per_row, len(video_ids))  # the discarded row
    target[first] = per_row[first]
    rows = len(video_ids) + 1
    unreadable = (torch.zeros(rows, dtype=torch.long).index_add_(0, target, (~valid).long()) > 0)[:-1]
    sums = torch.zeros(rows, logits.shape[1]).index_add_(0, target, logits)[:-1]
    counts = torch.zeros(rows).index_add_(0, target, torch.ones(len(target)))[:-1]
    video_labels = torch.zeros(len(video_ids), labels.shape[1], dtype=torch.long).index_copy_(
        0, per_row[first], labels[first])
    keep = ~unreadable
    return {
        "logits": (sums / counts[:, None])[keep],
        "labels": video_labels[keep].squeeze(1) if video_labels.shape[1] == 1 else video_labels[keep],
        "video_index": video_ids[keep],
        "num_videos": len(video_ids),
        "num_unreadable": int(unreadable.sum()),
    }


def _position_within_video(video_index: Tensor) -> Tensor:
    """0, 1, 2, ... for the successive clips of each video in this batch."""
    position = torch.zeros_like(video_index)
    seen: dict[int, int] = {}
    for i, v in enumerate(video_index.tolist()):
        position[i] = seen.get(v, 0)
        seen[v] = position[i].item() + 1
    return position
