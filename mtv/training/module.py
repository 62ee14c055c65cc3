"""The LightningModule: loss, optimisation and metrics around any model built from the config.

* Loss: cross-entropy against soft targets (mixup / cutmix / label smoothing from the datamodule), mean
  over heads for multi-head datasets. An Ensemble trains each member on its own loss (losses summed,
  gradients clipped per member), so the members stay the separately trained models the baseline needs.
* Optimiser and schedule: mtv.training.optim (SGD 0.9 or AdamW, warm-up + cosine per step, no decay on norms,
  biases, embeddings and tokens, optional layer-wise lr decay); gradient clipping by global norm.
* Metrics: per clip (val and test) and per video over all test views (multi-view), see mtv.training.metrics.
* Resume: the random state of every training step is a function of (seed, step, rank) and augmentation
  is seeded per sample (mtv.runner.data), so a resumed run repeats exactly what the killed run would do.
"""

from __future__ import annotations

import random
from typing import Any

import lightning as L
import numpy as np
import torch
from torch import Tensor, nn

from datamodules import MixupCutmix
from datamodules.mixup import smooth_one_hot
from mtv.models.ensemble import Ensemble
from mtv.training.metrics import ClassificationMetrics, split_heads
from mtv.training.multiview import MultiViewAggregator
from mtv.training.optim import OptimConfig, build_optimizer, build_scheduler


def soft_cross_entropy(logits: Tensor, targets: Tensor, heads: dict[str, int] | None) -> Tensor:
    """Mean over the batch (and over heads) of -sum(targets * log_softmax(logits))."""
    if not heads:
        return -(targets * logits.float().log_softmax(-1)).sum(-1).mean()
    losses = [
        -(t * l.float().log_softmax(-1)).sum(-1).mean()
        for l, t in zip(split_heads(logits, heads).values(), split_heads(targets, heads).values())
    ]
    return torch.stack(losses).mean()


def step_seed(seed: int, step: int, rank: int) -> int:
    """Seed of one training step: resumed runs draw the same dropout / mixup as the original."""
    return (seed * 1_000_003 + step * 9_176 + rank * 7_919) % (2**31 - 1)


class VideoClassifier(L.LightningModule):
    """Trains and evaluates `net`, a model mapping video (B, 3, T, H, W) to logits (B, classes).

    Everything it needs is an explicit argument. `run_config` (the resolved run config, a plain dict) is
    only stored in every checkpoint as `hyper_parameters["cfg"]`, so that `task=eval` can rebuild `net`.
    """

    def __init__(
        self,
        net: nn.Module,
        optim: OptimConfig,
        num_classes: int,
        heads: dict[str, int] | None = None,
        seed: int = 0,
        mixup: MixupCutmix | None = None,
        compile: bool = False,
        activation_checkpointing: bool = False,
        run_config: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        self.save_hyperparameters({"cfg": run_config}, logger=False)
        self.model = net
        self.optim = optim
        self.seed = seed
        self.mixup = mixup
        self.heads = {k: int(v) for k, v in heads.items()} if heads else None
        self.num_classes = int(num_classes)
        if activation_checkpointing:
            for part in self._parts():
                part.grad_checkpointing = True
        if compile:
            self.model.compile()
        self.val_metrics = ClassificationMetrics(self.num_classes, self.heads)
        self.test_clip_metrics = ClassificationMetrics(self.num_classes, self.heads)
        self.aggregator = MultiViewAggregator()
        self.test_results: dict[str, float] = {}

    def _parts(self) -> list[nn.Module]:
        """Units trained and clipped separately: the members of an Ensemble, else the model."""
        return list(self.model.members) if isinstance(self.model, Ensemble) else [self.model]

    def forward(self, video: Tensor) -> Tensor:
        return self.model(video)

    # ---- training -----------------------------------------------------------------------------
    def on_train_batch_start(self, batch: Any, batch_idx: int) -> None:
        seed = step_seed(self.seed, self.global_step, self.global_rank)
        torch.manual_seed(seed)
        random.seed(seed)
        np.random.seed(seed)

    def _targets(self, video: Tensor, label: Tensor) -> tuple[Tensor, Tensor]:
        if self.mixup is not None:
            return self.mixup(video, label)
        sizes = list(self.heads.values()) if self.heads else [self.num_classes]
        return video, smooth_one_hot(label, sizes, 0.0).to(video.device)

    def training_step(self, batch: dict[str, Tensor], batch_idx: int) -> Tensor:
        video, targets = self._targets(batch["video"], batch["label"])
        if isinstance(self.model, Ensemble):
            loss = sum(soft_cross_entropy(lg, targets, self.heads) for lg in self.model.member_logits(video))
        else:
            loss = soft_cross_entropy(self.model(video), targets, self.heads)
        self.log("train/loss", loss, on_step=True, on_epoch=True, prog_bar=True, batch_size=len(video))
        if "num_bad" in batch:  # replacements this epoch, all ranks; carried across a mid-epoch resume
            self.log("train/unreadable_replaced", batch["num_bad"].sum().float(), on_step=False, on_epoch=True,
                     reduce_fx="sum", sync_dist=True, batch_size=len(video))
        return loss

    def configure_gradient_clipping(self, optimizer: torch.optim.Optimizer, gradient_clip_val=None,
                                    gradient_clip_algorithm=None) -> None:
        if self.optim.grad_clip:
            for part in self._parts():
                torch.nn.utils.clip_grad_norm_(part.parameters(), self.optim.grad_clip)

    def configure_optimizers(self) -> dict[str, Any]:
        optimizer = build_optimizer(self.model, self.optim)
        total = int(self.trainer.estimated_stepping_batches)
        epochs = max(int(self.trainer.max_epochs or 1), 1)
        per_epoch = (
            total // epochs
            if self.trainer.max_steps == -1
            else max(int(self.trainer.num_training_batches) // self.trainer.accumulate_grad_batches, 1)
        )
        scheduler = build_scheduler(optimizer, self.optim, per_epoch, total)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}

    # ---- validation: one prediction per clip -------------------------------------------------
    def _clip_step(self, batch: dict[str, Tensor], metrics: ClassificationMetrics) -> tuple[Tensor, Tensor]:
        logits = self.model(batch["video"])
        valid = batch.get("valid", torch.ones(len(logits), dtype=torch.bool, device=logits.device))
        if valid.any():
            metrics.update(logits[valid], batch["label"][valid])
        return logits, valid

    def validation_step(self, batch: dict[str, Tensor], batch_idx: int) -> None:
        self._clip_step(batch, self.val_metrics)

    def on_validation_epoch_end(self) -> None:
        self.log_dict({f"val/{k}": v for k, v in self.val_metrics.compute().items()}, prog_bar=True)
        self.val_metrics.reset()

    # ---- test: per clip and per video (mean of logits over all views) -------------------------
    def test_step(self, batch: dict[str, Tensor], batch_idx: int) -> None:
        logits, valid = self._clip_step(batch, self.test_clip_metrics)
        self.aggregator.update(logits, batch["label"], batch["video_index"], valid, batch.get("view_index"))

    def on_test_epoch_end(self) -> None:
        clip = self.test_clip_metrics.compute()
        videos = self.aggregator.compute()  # the videos this rank owns, duplicates removed; counts of all
        video_metrics = ClassificationMetrics(self.num_classes, self.heads).to(self.device)  # summed over ranks
        if videos["num_videos"] > videos["num_unreadable"]:
            if len(videos["labels"]):
                video_metrics.update(videos["logits"].to(self.device), videos["labels"].to(self.device))
            results = video_metrics.compute()
        else:
            results = {}
        results.update({f"clip_{k}": v for k, v in clip.items()})
        results["num_videos"] = float(videos["num_videos"])
        results["num_unreadable"] = float(videos["num_unreadable"])
        self.test_results = results
        # identical on every rank already (the metrics synchronised their states): no sync
        self.log_dict({f"test/{k}": v for k, v in results.items()}, sync_dist=False)
        self.test_clip_metrics.reset()
        self.aggregator.reset()
