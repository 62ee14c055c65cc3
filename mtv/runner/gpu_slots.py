"""One GPU per job when a sweep runs jobs in parallel on one machine (hydra/launcher=parallel).

Hydra gives parallel jobs no GPU assignment (hydra#1331), and `job.num % num_gpus` is wrong as soon as
jobs finish out of order. Each job instead takes an exclusive lock on a free GPU's lock file in the sweep
directory (released when the job ends, also when it crashes) and trains on that GPU.
"""

from __future__ import annotations

import fcntl
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import torch
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig


@contextmanager
def gpu_slot(lock_dir: Path, num_gpus: int, poll_s: float = 1.0) -> Iterator[int]:
    """Wait for a free GPU index among `num_gpus`; hold it for the duration of the block."""
    lock_dir.mkdir(parents=True, exist_ok=True)
    while True:
        for index in range(num_gpus):
            handle = open(lock_dir / f"gpu{index}.lock", "w")
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                handle.close()
                continue
            try:
                yield index
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)
                handle.close()
            return
        time.sleep(poll_s)


def _parallel_launcher() -> bool:
    return "joblib" in str(HydraConfig.get().launcher.get("_target_", "")).lower()


@contextmanager
def maybe_gpu_slot(cfg: DictConfig, run_dir: Path) -> Iterator[None]:
    """Under the parallel launcher with one GPU per job, pin the job to a free GPU (trainer.devices=[i])."""
    if not (_parallel_launcher() and cfg.trainer.accelerator in ("gpu", "cuda") and torch.cuda.device_count() > 1):
        yield
        return
    with gpu_slot(run_dir.parent / ".gpu_locks", torch.cuda.device_count()) as index:
        cfg.trainer.devices = [index]
        yield
