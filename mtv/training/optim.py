"""Optimiser, learning-rate schedule and parameter groups for training (scenic's recipe by default).

* SGD with momentum 0.9 (scenic) or AdamW.
* Linear warm-up then cosine decay, evaluated per optimizer step:
  lr(s) = base * min(1, s / W) * (min + (1 - min) * 0.5 * (1 + cos(pi * (s - W) / (S - W)))).
* No weight decay on 1-D parameters (norms, biases) and on what the model's `no_weight_decay()` names
  (timm's convention: position embeddings, CLS and bottleneck tokens for MTV).
* Optional layer-wise learning-rate decay: scale = decay ** (num_layers - 1 - layer_id(name)).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Optional

import torch
from torch import nn

from mtv.errors import ConfigError

OPTIMIZERS = ("sgd", "adamw")


@dataclass
class OptimConfig:
    """The `optim` node (conf/optim/*.yaml): optimiser, schedule and clipping. Defaults: scenic's recipe."""

    name: str = "sgd"  # sgd | adamw
    lr: float = 0.1
    momentum: float = 0.9  # sgd only
    nesterov: bool = False  # sgd only
    weight_decay: float = 0.0
    betas: tuple[float, float] = (0.9, 0.999)  # adamw only
    layer_decay: Optional[float] = None  # e.g. 0.75: lr of layer l = lr * decay^(num_layers - 1 - l)
    warmup_epochs: float = 2.5
    min_lr: float = 0.0
    grad_clip: Optional[float] = 1.0  # max global gradient norm; null = no clipping

    def validate(self) -> None:
        if self.name not in OPTIMIZERS:
            raise ConfigError(f"optim.name={self.name!r} is not one of {', '.join(OPTIMIZERS)}")
        if self.layer_decay is not None and not 0 < self.layer_decay <= 1:
            raise ConfigError(f"optim.layer_decay={self.layer_decay}: must be in (0, 1], or null for none")


def _no_weight_decay(model: nn.Module) -> set[str]:
    """Parameter names the model exempts from weight decay (`no_weight_decay()`, timm's convention)."""
    names = getattr(model, "no_weight_decay", None)
    return set(names()) if callable(names) else set()


def _layer_scales(model: nn.Module, decay: float | None) -> dict[str, tuple[float, int | None]]:
    """(learning-rate multiplier, layer id) per parameter name; (1, None) without layer decay.

    An Ensemble's members each get their own depth scale (names start with `members.<i>.`)."""
    names = [name for name, p in model.named_parameters() if p.requires_grad]
    if not decay:
        return {name: (1.0, None) for name in names}
    scales = {}
    for name in names:
        owner, local = model, name
        if name.startswith("members."):
            index, local = name.split(".", 2)[1:]
            owner = model.members[int(index)]
        depth = owner.num_layers_for_lr_decay
        layer = owner.layer_id(local)
        scales[name] = (decay ** (depth - 1 - layer), layer)
    return scales


def param_groups(model: nn.Module, weight_decay: float, layer_decay: float | None) -> list[dict[str, Any]]:
    """One group per (weight decay on/off, lr scale); each group carries `lr_scale` for the schedule and a
    `name` (`decay` / `no_decay`, with `/layer<id>` under layer decay) for the learning-rate monitor."""
    scales = _layer_scales(model, layer_decay)
    exempt = _no_weight_decay(model)
    groups: dict[tuple[bool, float], dict[str, Any]] = {}
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        decay = param.ndim > 1 and name not in exempt
        scale, layer = scales[name]
        label = ("decay" if decay else "no_decay") + ("" if layer is None else f"/layer{layer}")
        group = groups.setdefault(
            (decay, scale), {"params": [], "weight_decay": weight_decay if decay else 0.0, "lr_scale": scale,
                             "name": label}
        )
        group["params"].append(param)
    return list(groups.values())


def build_optimizer(model: nn.Module, cfg: OptimConfig) -> torch.optim.Optimizer:
    """The optimiser over `param_groups(model, ...)`, each group at lr * its layer-decay scale."""
    cfg.validate()
    groups = param_groups(model, cfg.weight_decay, cfg.layer_decay)
    for group in groups:
        group["lr"] = cfg.lr * group["lr_scale"]
    if cfg.name == "sgd":
        return torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum, nesterov=cfg.nesterov)
    return torch.optim.AdamW(groups, lr=cfg.lr, betas=tuple(cfg.betas))


def warmup_cosine(step: int, warmup_steps: int, total_steps: int, min_ratio: float = 0.0) -> float:
    """Multiplier of the base learning rate at optimizer step `step` (0-based)."""
    if warmup_steps > 0 and step < warmup_steps:
        return step / warmup_steps
    span = max(total_steps - warmup_steps, 1)
    progress = min(max(step - warmup_steps, 0) / span, 1.0)
    return min_ratio + (1.0 - min_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))


def build_scheduler(
    optimizer: torch.optim.Optimizer, cfg: OptimConfig, steps_per_epoch: int, total_steps: int
) -> torch.optim.lr_scheduler.LambdaLR:
    """Warm-up of `optim.warmup_epochs` epochs (in steps, capped at the run's length), then cosine."""
    warmup = min(round(cfg.warmup_epochs * steps_per_epoch), total_steps)
    min_ratio = cfg.min_lr / cfg.lr if cfg.lr > 0 else 0.0
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: warmup_cosine(step, warmup, total_steps, min_ratio)
    )
