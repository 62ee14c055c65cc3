"""Loggers and callbacks of a run, built from the `_target_` nodes of `logger` and `callbacks`.

Adding a logger or callback is a YAML file (conf/logger/*.yaml, conf/callbacks/*.yaml) naming a Lightning
Logger / Callback class and its arguments; nothing here names one. Every logger gets the resolved run
config as its hyperparameters (W&B config, CSV hparams.yaml, MLflow params).

W&B (conf/logger/wandb.yaml): one run per job, group = experiment (and sweep), name = the job's
overrides, offline by default. Its id is kept in the run directory (`wandb_id.txt`, resolver
`${mtv.run_id:...}` in mtv.runner.resolvers), so a resumed job continues the same W&B run.
"""

from __future__ import annotations

import csv
import logging
import warnings
from pathlib import Path
from typing import Any

import hydra.utils
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.loggers import CSVLogger, Logger, WandbLogger
from lightning.pytorch.utilities import rank_zero_only
from omegaconf import DictConfig, OmegaConf

from mtv.runner.resolvers import RUN_ID_FILE, run_id

log = logging.getLogger(__name__)

class ResumableCSVLogger(CSVLogger):
    """<run dir>/metrics.csv. On resume, the rows logged before the checkpoint's step are kept
    (Lightning's CSV writer empties the file when it starts): call `keep_before_step` first."""

    def __init__(self, save_dir: str) -> None:
        super().__init__(save_dir=save_dir, name="", version="")

    @property
    def experiment(self) -> Any:
        """Lightning's writer, without its warning that the run directory is not empty: metrics.csv
        lives in the run directory beside config.yaml on purpose."""
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Experiment logs directory .* exists and is not empty")
            return super().experiment

    def keep_before_step(self, step: int) -> None:
        path = Path(self.log_dir) / "metrics.csv"
        if not path.exists():
            return
        with path.open(newline="") as handle:
            previous = [row for row in csv.DictReader(handle) if int(row["step"] or 0) < step]
        if previous:
            writer = self.experiment  # creating it empties metrics.csv
            writer.metrics_keys = sorted(set().union(*previous))
            with path.open("w", newline="") as handle:
                out = csv.DictWriter(handle, fieldnames=writer.metrics_keys)
                out.writeheader()
                out.writerows(previous)


def build_loggers(cfg: DictConfig, run_dir: Path, is_rank_zero: bool, resume_step: int | None = None) -> list[Logger]:
    """The `logger` nodes, instantiated, given the run config; `resume_step`: the step training resumes at."""
    loggers: list[Logger] = [hydra.utils.instantiate(node) for node in cfg.logger.values()]
    params = OmegaConf.to_container(cfg, resolve=True)
    for logger in loggers:
        if resume_step is not None and is_rank_zero and isinstance(logger, ResumableCSVLogger):
            logger.keep_before_step(resume_step)
        logger.log_hyperparams(params)
    if is_rank_zero and any(isinstance(logger, WandbLogger) for logger in loggers):
        (run_dir / RUN_ID_FILE).write_text(run_id(str(run_dir)))
    return loggers
@rank_zero_only
def record_summary(loggers: list[Logger], values: dict[str, Any]) -> None:
    """Summary values (params, GMACs per view, ...) so the W&B dashboard can chart accuracy vs compute."""
    for logger in loggers:
        if isinstance(logger, WandbLogger):
            logger.experiment.summary.update(values)


def finish_wandb(failed: bool) -> None:
    """Close this job's W&B run (also after a failure), so the next job of a sweep gets its own."""
    import wandb

    if wandb.run is not None:
        wandb.finish(exit_code=1 if failed else 0)


def build_callbacks(cfg: DictConfig) -> list[Callback]:
    """The `callbacks` nodes, instantiated (start-up checks made sure each is a Lightning Callback)."""
    return [hydra.utils.instantiate(node) for node in cfg.callbacks.values()]
