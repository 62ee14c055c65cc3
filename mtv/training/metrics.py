"""Classification metrics: top-1 / top-5 and mean class accuracy, or per-head and action accuracy for
multi-head datasets (EPIC-Kitchens: verb, noun; action = both heads right).

The same class scores clips (updated every step) and videos (updated once with the per-video logits of the
multi-view aggregator, which splits the videos between the ranks); either way the states are added up
across DDP ranks at `compute()`, so every rank gets the metrics of all clips or all videos.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torchmetrics.aggregation import MeanMetric
from torchmetrics.classification import MulticlassAccuracy


def split_heads(logits: Tensor, heads: dict[str, int]) -> dict[str, Tensor]:
    """Concatenated logits (B, sum of head sizes) -> {head: (B, size)} in the heads' order."""
    return dict(zip(heads, logits.split(list(heads.values()), dim=-1)))


class ClassificationMetrics(nn.Module):
    """`update(logits, labels)`; `compute()` -> {"top1", "top5", "mean_class"} for one head, or
    {"<head>_top1", "<head>_top5", "action_top1", "top1" (= action)} for several."""

    def __init__(self, num_classes: int, heads: dict[str, int] | None = None) -> None:
        super().__init__()
        self.heads = dict(heads) if heads else None
        sizes = self.heads or {"": num_classes}
        self.accuracy = nn.ModuleDict()
        for head, size in sizes.items():
            prefix = f"{head}_" if head else ""
            self.accuracy[f"{prefix}top1"] = MulticlassAccuracy(size, top_k=1, average="micro")
            if size >= 5:
                self.accuracy[f"{prefix}top5"] = MulticlassAccuracy(size, top_k=5, average="micro")
            if not head:
                self.accuracy["mean_class"] = MulticlassAccuracy(size, top_k=1, average="macro")
        self.action = MeanMetric() if self.heads else None

    def update(self, logits: Tensor, labels: Tensor) -> None:
        logits = logits.detach().float()
        if self.heads is None:
            for name, metric in self.accuracy.items():
                metric.update(logits, labels.view(-1))
            return
        labels = labels.view(len(labels), -1)
        correct = torch.ones(len(labels), dtype=torch.bool, device=labels.device)
        for k, (head, head_logits) in enumerate(split_heads(logits, self.heads).items()):
            for name, metric in self.accuracy.items():
                if name.startswith(f"{head}_"):
                    metric.update(head_logits, labels[:, k])
            correct &= head_logits.argmax(-1) == labels[:, k]
        self.action.update(correct.float())

    def compute(self) -> dict[str, float]:
        values = {name: float(metric.compute()) for name, metric in self.accuracy.items()}
        if self.action is not None:
            values["action_top1"] = float(self.action.compute())
            values["top1"] = values["action_top1"]
        return values

    def reset(self) -> None:
        for metric in self.accuracy.values():
            metric.reset()
        if self.action is not None:
            self.action.reset()
