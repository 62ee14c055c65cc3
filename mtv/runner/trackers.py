"""Loggers and callbacks of a run: CSV always, W&B (offline by default) or TensorBoard on request.

W&B: one run per job, group = experiment (and sweep), name = the job's overrides, full resolved config,
rank 0 only (Lightning's WandbLogger creates the run on rank 0 alone). The run id is kept in the run
directory (`wandb_id.txt`), so a resumed job continues the same W&B run.
"""

from __future__ import annotations

import csv
import logging
import secrets
from pathlib import Path
from typing import Any

import hydra.utils
from lightning.pytorch.callbacks import Callback, ModelCheckpoint
from lightning.pytorch.utilities import rank_zero_only
from lightning.pytorch.loggers import CSVLogger, Logger, TensorBoardLogger, WandbLogger
from omegaconf import DictConfig, OmegaConf

from mtv.runner.checkpointing import LastCheckpoint

log = logging.getLogger(__name__)

WANDB_MODES = ("offline", "online", "disabled")
WANDB_ID_FILE = "wandb_id.txt"


def wandb_run_id(run_dir: Path) -> str:
    """The W&B run id of this run directory (created once, then reused on resume)."""
    path = run_dir / WANDB_ID_FILE
    if path.exists():
        return path.read_text().strip()
    run_id = secrets.token_hex(4)
    path.write_text(run_id)
    return run_id


def _csv_logger(run_dir: Path, keep_before_step: int | None) -> CSVLogger:
    """<run dir>/metrics.csv. On resume, the rows logged before the checkpoint's step are kept
    (Lightning's CSV writer empties the file when it starts)."""
    path = run_dir / "metrics.csv"
    previous = []
    if keep_before_step is not None and path.exists():
        with path.open(newline="") as handle:
            previous = [row for row in csv.DictReader(handle) if int(row["step"] or 0) < keep_before_step]
    logger = CSVLogger(save_dir=str(run_dir), name="", version="")
    if previous:
        writer = logger.experiment  # creating it empties metrics.csv
        writer.metrics_keys = sorted(set().union(*previous))
        with path.open("w", newline="") as handle:
            out = csv.DictWriter(handle, fieldnames=writer.metrics_keys)
            out.writeheader()
            out.writerows(previous)
    return logger


def build_loggers(cfg: DictConfig, run_dir: Path, is_rank_zero: bool, resume_step: int | None = None) -> list[Logger]:
    """CSV always; W&B / TensorBoard as configured. `resume_step`: the global step training resumes at."""
    loggers: list[Logger] = [_csv_logger(run_dir, resume_step if is_rank_zero else None)]
    if "tensorboard" in cfg.logger:
        loggers.append(TensorBoardLogger(save_dir=str(run_dir), name="tensorboard", version=""))
    if "wandb" in cfg.logger:
        w = cfg.logger.wandb
        loggers.append(
            WandbLogger(
                project=w.project,
                entity=w.entity,
                group=w.group,
                name=w.name,
                tags=list(w.tags),
                job_type=cfg.task,
                id=wandb_run_id(run_dir) if is_rank_zero else None,
                resume="allow",
                save_dir=str(run_dir),
                mode=w.mode,
                config=OmegaConf.to_container(cfg, resolve=True),
            )
        )
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


def build_callbacks(cfg: DictConfig, run_dir: Path) -> list[Callback]:
    """last.ckpt (every epoch and, optionally, every N steps) and best.ckpt (by the monitored metric)."""
    c = cfg.callbacks
    ckpt_dir = str(run_dir / "checkpoints")
    callbacks: list[Callback] = [
        ModelCheckpoint(dirpath=ckpt_dir, filename="best", monitor=c.checkpoint.monitor, mode=c.checkpoint.mode,
                        save_top_k=1, save_last=False, enable_version_counter=False, auto_insert_metric_name=False),
        LastCheckpoint(ckpt_dir, c.checkpoint.every_n_train_steps),  # epoch ends, every N steps, signals
    ]
    for spec in (c.get("extra") or {}).values():
        callbacks.append(hydra.utils.instantiate(spec))
    return callbacks
