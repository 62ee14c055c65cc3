"""Batch-level mixup / cutmix with label smoothing, returning soft targets.

Like scenic (and timm), each example is mixed with the example at the mirrored position of the batch,
with one lambda per batch. Cutmix cuts one box, the same in every frame. Multi-head labels (B, n_heads)
give the heads' soft targets concatenated in head order, matching the model's concatenated logits.
"""
from __future__ import annotations

import math
import random
from typing import Sequence

import torch
import torch.nn.functional as F


def smooth_one_hot(labels: torch.Tensor, num_classes: Sequence[int], smoothing: float) -> torch.Tensor:
    """(B,) or (B, n_heads) labels -> (B, sum(num_classes)); scenic's convention:
    on = 1 - eps + eps/K, off = eps/K, per head."""
    labels = labels.view(labels.shape[0], -1)
    parts = []
    for head, k in enumerate(num_classes):
        one_hot = F.one_hot(labels[:, head], k).float()
        parts.append(one_hot * (1 - smoothing) + smoothing / k)
    return torch.cat(parts, dim=1)


class MixupCutmix:
    """`(video (B, 3, T, H, W), label) -> (video, soft_targets)`.

    `prob`: chance that a batch is mixed at all; with both alphas > 0, cutmix is chosen with
    probability `switch_prob`. `num_classes` is an int, or one size per head.
    """

    def __init__(self, mixup_alpha: float = 0.0, cutmix_alpha: float = 0.0, prob: float = 1.0,
                 label_smoothing: float = 0.0, num_classes: int | Sequence[int] = 1000,
                 switch_prob: float = 0.5) -> None:
        self.mixup_alpha, self.cutmix_alpha = float(mixup_alpha), float(cutmix_alpha)
        self.prob, self.switch_prob = float(prob), float(switch_prob)
        self.label_smoothing = float(label_smoothing)
        self.num_classes = [int(num_classes)] if isinstance(num_classes, int) else [int(k) for k in num_classes]

    def __call__(self, video: torch.Tensor, label: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        targets = smooth_one_hot(label, self.num_classes, self.label_smoothing).to(video.device)
        use_cutmix = self.cutmix_alpha > 0 and (self.mixup_alpha <= 0 or random.random() < self.switch_prob)
        alpha = self.cutmix_alpha if use_cutmix else self.mixup_alpha
        if alpha <= 0 or random.random() >= self.prob:
            return video, targets
        lam = random.betavariate(alpha, alpha)
        flipped = video.flip(0)
        if use_cutmix:
            video, lam = self._cutmix(video, flipped, lam)
        else:
            video = video * lam + flipped * (1 - lam)
        return video, targets * lam + targets.flip(0) * (1 - lam)

    @staticmethod
    def _cutmix(video: torch.Tensor, flipped: torch.Tensor, lam: float) -> tuple[torch.Tensor, float]:
        """Paste a box of area (1 - lam) from the mirrored example (timm's `rand_bbox`: an odd cut size
        puts the extra pixel after the centre); lam is corrected for clipping."""
        h, w = video.shape[-2:]
        cut_h, cut_w = int(h * math.sqrt(1 - lam)), int(w * math.sqrt(1 - lam))
        cy, cx = random.randrange(h), random.randrange(w)
        y0, y1 = max(cy - cut_h // 2, 0), min(cy + (cut_h + 1) // 2, h)
        x0, x1 = max(cx - cut_w // 2, 0), min(cx + (cut_w + 1) // 2, w)
        video = video.clone()
        video[..., y0:y1, x0:x1] = flipped[..., y0:y1, x0:x1]
        return video, 1 - (y1 - y0) * (x1 - x0) / (h * w)
