"""Optimiser, learning-rate schedule and parameter groups for training (scenic's recipe by default).

* SGD with momentum 0.9 (scenic) or AdamW.
* Linear warm-up then cosine decay, evaluated per optimizer step:
  lr(s) = base * min(1, s / W) * (min + (1 - min) * 0.5 * (1 + cos(pi * (s - W) / (S - W)))).
* No weight decay on norms, biases, position embeddings, CLS and bottleneck tokens.
* Optional layer-wise learning-rate decay: scale = decay ** (num_layers - 1 - layer_id(name)).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

OPTIMIZERS = ("sgd", "adamw")
_NO_DECAY_NAMES = ("pos_embed", "cls", "bottleneck", "fusion.tokens")


def uses_weight_decay(name: str, param: nn.Parameter) -> bool:
    """Matrices and kernels decay; 1-D parameters (norms, biases) and embedding tokens do not."""
    return param.ndim > 1 and not any(key in name for key in _NO_DECAY_NAMES)


def _layer_scales(model: nn.Module, decay: float | None) -> dict[str, float]:
    """Learning-rate multiplier per parameter name (all 1 without layer decay).

    An Ensemble's members each get their own depth scale (names start with `members.<i>.`)."""
    names = [name for name, p in model.named_parameters() if p.requires_grad]
    if not decay:
        return {name: 1.0 for name in names}
    scales = {}
    for name in names:
        owner, local = model, name
        if name.startswith("members."):
            index, local = name.split(".", 2)[1:]
            owner = model.members[int(index)]
        depth = owner.num_layers_for_lr_decay
        scales[name] = decay ** (depth - 1 - owner.layer_id(local))
    return scales


def param_groups(model: nn.Module, weight_decay: float, layer_decay: float | None) -> list[dict[str, Any]]:
    """One group per (weight decay on/off, lr scale); each group carries `lr_scale` for the schedule."""
    scales = _layer_scales(model, layer_decay)
    groups: dict[tuple[bool, float], dict[str, Any]] = {}
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        decay = uses_weight_decay(name, param)
        key = (decay, scales[name])
        group = groups.setdefault(
            key, {"params": [], "weight_decay": weight_decay if decay else 0.0, "lr_scale": key[1]}
        )
        group["params"].append(param)
    return list(groups.values())


def build_optimizer(model: nn.Module, cfg: Mapping[str, Any]) -> torch.optim.Optimizer:
    """`cfg`: the `optim` config node (conf/optim/*.yaml)."""
    name = str(cfg["name"])
    groups = param_groups(model, float(cfg["weight_decay"]), cfg.get("layer_decay"))
    for group in groups:
        group["lr"] = float(cfg["lr"]) * group["lr_scale"]
    if name == "sgd":
        return torch.optim.SGD(groups, lr=float(cfg["lr"]), momentum=float(cfg["momentum"]),
                               nesterov=bool(cfg["nesterov"]))
    if name == "adamw":
        return torch.optim.AdamW(groups, lr=float(cfg["lr"]), betas=tuple(cfg["betas"]))
    raise ValueError(f"optim.name={name!r} is not one of {', '.join(OPTIMIZERS)}")


def warmup_cosine(step: int, warmup_steps: int, total_steps: int, min_ratio: float = 0.0) -> float:
    """Multiplier of the base learning rate at optimizer step `step` (0-based)."""
    if warmup_steps > 0 and step < warmup_steps:
        return step / warmup_steps
    span = max(total_steps - warmup_steps, 1)
    progress = min(max(step - warmup_steps, 0) / span, 1.0)
    return min_ratio + (1.0 - min_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))


def build_scheduler(
    optimizer: torch.optim.Optimizer, cfg: Mapping[str, Any], steps_per_epoch: int, total_steps: int
) -> torch.optim.lr_scheduler.LambdaLR:
    """Warm-up of `optim.warmup_epochs` epochs (in steps, capped at the run's length), then cosine."""
    warmup = min(round(float(cfg["warmup_epochs"]) * steps_per_epoch), total_steps)
    min_ratio = float(cfg["min_lr"]) / float(cfg["lr"]) if float(cfg["lr"]) > 0 else 0.0
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: warmup_cosine(step, warmup, total_steps, min_ratio)
    )
