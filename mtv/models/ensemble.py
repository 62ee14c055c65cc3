"""Ensemble baseline: separately trained single-view models, predictions averaged after softmax."""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn


class Ensemble(nn.Module):
    """Average of the members' softmax outputs, returned as log-probabilities (so argmax and NLL work)."""

    def __init__(self, members: list[nn.Module]) -> None:
        super().__init__()
        if not members:
            raise ValueError("an ensemble needs at least one member model")
        self.members = nn.ModuleList(members)

    def no_weight_decay(self) -> set[str]:
        return {f"members.{i}.{name}" for i, member in enumerate(self.members)
                for name in getattr(member, "no_weight_decay", set)()}

    def member_logits(self, video: Tensor) -> list[Tensor]:
        return [member(video) for member in self.members]

    def forward(self, video: Tensor) -> Tensor:
        log_probs = torch.stack([logits.log_softmax(-1) for logits in self.member_logits(video)])
        return torch.logsumexp(log_probs, dim=0) - math.log(len(self.members))
