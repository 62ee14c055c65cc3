"""Hydra callbacks of run.py (conf/hydra/default.yaml): what a sweep tells its user at start and end."""

from __future__ import annotations

from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig


class SweepDirectory(Callback):
    """Print the sweep directory when a multirun starts and when it ends (where the runs and table go)."""

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        print(f"sweep: runs go to {config.hydra.sweep.dir}", flush=True)

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        print(f"sweep done: {config.hydra.sweep.dir}  (table: python -m experiments.table {config.hydra.sweep.dir})",
              flush=True)
