"""Training data that a resumed run replays exactly, around any datamodule from `build_datamodule`.

A mid-epoch resume must see the same batches, in the same order, with the same augmentation, as the
run that was killed. The datamodule's own train loader shuffles with the global RNG and augments with
Python's `random`, whose state depends on everything run before. So the train loader is rebuilt with:

* `ResumableSampler`: the epoch's order is a function of (seed, epoch) only, sharded over DDP ranks like
  DistributedSampler (it is one, so Lightning leaves it alone); it can start part-way into an epoch.
* `SeededDataset`: re-seeds `random`, numpy and torch from (seed, epoch, index) before each sample, so
  augmentation does not depend on workers, order or restarts.
* `ResumableDataLoader`: Lightning saves its `state_dict` (epoch, batches the loop consumed) in every
  checkpoint (Lightning's stateful-loader protocol).

`ResumableData` wraps the datamodule and changes nothing but `train_dataloader`. On resume it starts the
loader at the checkpoint's position itself (`data_position`): Lightning would restore it too late, after
`configure_optimizers` (which asks for the number of steps) has already built and prefetched the loader.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from typing import Any

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from mtv.checkpoints import read_checkpoint


def sample_seed(seed: int, epoch: int, index: int) -> int:
    return (seed * 1_000_003 + epoch * 100_003 + index) % (2**31 - 1)


class SeededDataset(Dataset):
    """`dataset[(epoch, index)]` = `inner[index]` with every RNG seeded from (seed, epoch, index)."""

    def __init__(self, inner: Dataset, seed: int) -> None:
        self.inner, self.seed = inner, seed

    def __len__(self) -> int:
        return len(self.inner)

    def __getitem__(self, key: tuple[int, int]) -> Any:
        epoch, index = key
        seed = sample_seed(self.seed, epoch, index)
        random.seed(seed)
        np.random.seed(seed)
        torch.manual_seed(seed)
        return self.inner[index]


class ResumableSampler(DistributedSampler):
    """Shuffled (epoch, index) keys for this rank; `start` skips the first samples of the epoch."""

    def __init__(self, dataset: Dataset, num_replicas: int, rank: int, seed: int, drop_last: bool) -> None:
        super().__init__(dataset, num_replicas=num_replicas, rank=rank, shuffle=True, seed=seed, drop_last=drop_last)
        self.start = 0

    def __iter__(self) -> Iterator[tuple[int, int]]:
        indices = list(super().__iter__())[self.start :]
        self.start = 0  # only the first epoch after a restart is partial
        return iter([(self.epoch, index) for index in indices])

    def __len__(self) -> int:
        return self.num_samples  # the whole epoch's length, also when resuming part-way


class ResumableDataLoader(DataLoader):
    """DataLoader with Lightning's `state_dict` / `load_state_dict`: (epoch, batches consumed)."""

    def __init__(self, *args: Any, consumed: Callable[[], int], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._consumed = consumed

    def state_dict(self) -> dict[str, int]:
        return {"epoch": int(self.sampler.epoch), "batches": int(self._consumed())}

    def load_state_dict(self, state: dict[str, int]) -> None:
        self.sampler.set_epoch(state["epoch"])
        self.sampler.start = state["batches"] * int(self.batch_size)


def data_position(checkpoint_path: str | None) -> dict[str, int] | None:
    """Where a checkpoint left training: the train loader's state (epoch, batches consumed, from
    `ResumableDataLoader.state_dict`) and the global step."""
    if checkpoint_path is None:
        return None
    checkpoint = read_checkpoint(checkpoint_path, key="resume")
    fit_loop = checkpoint["loops"]["fit_loop"]
    states = fit_loop["state_dict"].get("combined_loader")
    step = int(checkpoint["global_step"])
    if not states or fit_loop["epoch_loop.batch_progress"]["is_last_batch"]:  # the next epoch, from its start
        return {"epoch": int(checkpoint["epoch"]) + 1, "batches": 0, "step": step}
    return {**states[0], "step": step}


def resumable(loader: DataLoader, seed: int, trainer: L.Trainer,
              position: dict[str, int] | None = None) -> ResumableDataLoader:
    """The same loader (batch size, workers, collate, ...) with resumable order and seeded samples,
    starting at `position` (a saved `state_dict`) when given."""
    dataset = SeededDataset(loader.dataset, seed)
    sampler = ResumableSampler(dataset, trainer.world_size, trainer.global_rank, seed, loader.drop_last)

    def consumed() -> int:  # batches the training loop has taken from the current epoch
        return trainer.fit_loop.epoch_loop.batch_progress.current.ready

    resumable_loader = ResumableDataLoader(
        dataset,
        batch_size=loader.batch_size,
        sampler=sampler,
        num_workers=loader.num_workers,
        collate_fn=loader.collate_fn,
        pin_memory=loader.pin_memory,
        drop_last=loader.drop_last,
        worker_init_fn=loader.worker_init_fn,
        persistent_workers=loader.persistent_workers,
        consumed=consumed,
    )
    if position is not None:
        resumable_loader.load_state_dict(position)
    return resumable_loader


class ResumableData(L.LightningDataModule):
    """`inner` unchanged except for a resumable train loader (see module docstring)."""

    def __init__(self, inner: L.LightningDataModule, seed: int, position: dict[str, int] | None = None) -> None:
        super().__init__()
        self.inner, self.seed, self.position = inner, seed, position
        self.prepare_data_per_node = inner.prepare_data_per_node

    def prepare_data(self) -> None:
        self.inner.prepare_data()

    def setup(self, stage: str) -> None:
        self.inner.trainer = self.trainer
        self.inner.setup(stage)

    def teardown(self, stage: str) -> None:
        self.inner.teardown(stage)

    def train_dataloader(self) -> DataLoader:
        loader = resumable(self.inner.train_dataloader(), self.seed, self.trainer, self.position)
        self.position = None  # later epochs start from their beginning
        return loader

    def val_dataloader(self) -> Any:
        return self.inner.val_dataloader()

    def test_dataloader(self) -> Any:
        return self.inner.test_dataloader()
