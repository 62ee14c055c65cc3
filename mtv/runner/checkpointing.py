"""`checkpoints/last.ckpt` that survives kills, preemption and time-outs (issue 11).

A cluster ends a job with a signal (SLURM: SIGTERM on preemption, `scancel` and `scontrol requeue`;
submitit's SIGUSR2 shortly before the time limit) or without one (SIGKILL, a dead node). `LastCheckpoint`
makes either cost at most the work since the last save:

* it writes `last.ckpt` at the end of every epoch (after that epoch's validation) and every
  `every_n_train_steps` optimizer steps, atomically: the new file is written under a temporary name and
  renamed over the old one, whose previous version is kept as `last-previous.ckpt`, so a kill during a
  save leaves a readable checkpoint;
* on SIGTERM / SIGUSR1 / SIGUSR2 it finishes the current step, saves `last.ckpt` and raises `Preempted`
  (every DDP rank stops at the same step: the decision is reduced over ranks), so the job ends with
  `status: preempted` and a non-zero exit code instead of being killed mid-write;
* it checks at start-up that the checkpoint directory can be written and fails the job with the path and
  the OS error if not;
* it carries the running sums of epoch-averaged training metrics (e.g. `train/loss_epoch`) in the
  checkpoint, so the epoch a run resumes in averages every step of that epoch, not only those after it.

`resume_checkpoint` picks what a resumed run starts from: `last.ckpt`, or, when that file is corrupt
(a truncated copy, a full disk), `last-previous.ckpt`, naming the bad file in the log.
"""

from __future__ import annotations

import logging
import os
import signal
import zipfile
from pathlib import Path
from types import FrameType
from typing import Any, Callable

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.plugins.environments import SLURMEnvironment, TorchElasticEnvironment
from lightning.pytorch.trainer.connectors.logger_connector.result import _ResultMetric

from mtv.errors import ConfigError

log = logging.getLogger(__name__)

LAST = "last.ckpt"
PREVIOUS = "last-previous.ckpt"
STOP_SIGNALS = (signal.SIGTERM, signal.SIGUSR1, signal.SIGUSR2)
# K400 MTV-B at scenic's recipe (batch 64 on 8 GPUs) runs at roughly 1-2 optimizer steps per second, so
# 1000 steps is ~8-15 minutes of lost work at most (an epoch is ~3,750 steps, about an hour).
DEFAULT_EVERY_N_TRAIN_STEPS = 1000

SignalHandler = Callable[[int, FrameType | None], Any] | int | None


class Preempted(Exception):
    """Training stopped on a signal after saving last.ckpt; `previous_handler` is whoever handled the
    signal before training (e.g. submitit, which requeues the SLURM job on SIGUSR2)."""

    def __init__(self, signum: int, checkpoint: Path, previous_handler: SignalHandler) -> None:
        super().__init__(f"stopped by {signal.Signals(signum).name} after saving {checkpoint}")
        self.signum, self.checkpoint, self.previous_handler = signum, checkpoint, previous_handler


class CheckpointWriteError(RuntimeError):
    """A checkpoint could not be written (the job fails instead of claiming checkpoints it has not)."""


def _check_writable(directory: Path) -> None:
    """Create the directory and write a probe file there, or fail with the path and the OS error."""
    probe = directory / f".write-test.{os.getpid()}"
    try:
        directory.mkdir(parents=True, exist_ok=True)
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as err:
        reason = err.strerror or str(err)
        raise CheckpointWriteError(f"cannot write checkpoints to {directory}: {reason}") from err


def is_readable_checkpoint(path: Path) -> bool:
    """True if `path` is a complete torch.save archive (every member's CRC checks): cheaper than loading it
    and catches truncated and partly overwritten files."""
    try:
        with zipfile.ZipFile(path) as archive:
            return archive.testzip() is None
    except (OSError, zipfile.BadZipFile):
        return False


def resume_checkpoint(checkpoint_dir: Path) -> Path | None:
    """The checkpoint a resumed run starts from: last.ckpt, else (missing or corrupt) last-previous.ckpt."""
    last, previous = checkpoint_dir / LAST, checkpoint_dir / PREVIOUS
    if last.exists() and is_readable_checkpoint(last):
        return last
    if last.exists():
        log.warning("resume: %s is corrupt (not a complete checkpoint archive)%s", last,
                    f"; falling back to {previous}" if previous.exists() else "")
    if previous.exists() and is_readable_checkpoint(previous):
        return previous
    if previous.exists():
        log.warning("resume: %s is corrupt too", previous)
    return None


def resume_from_dir(checkpoint_dir: Path) -> str | None:
    """`ckpt_path` for a resumed fit (None: start from scratch, which is logged)."""
    found = resume_checkpoint(checkpoint_dir)
    if found is None:
        log.info("resume: no readable checkpoint in %s yet, starting from scratch", checkpoint_dir)
    return str(found) if found else None


def cluster_plugins() -> list[Any]:
    """Trainer plugins: under SLURM, Lightning's SLURM environment without its auto-requeue, so submitit
    is the only one that requeues (docs/experiments.md "Preemption, requeue and time-outs")."""
    slurm_ranks = SLURMEnvironment.detect() and not TorchElasticEnvironment.detect()  # not our own workers
    return [SLURMEnvironment(auto_requeue=False)] if slurm_ranks else []


def check_every_n_train_steps(value: Any) -> None:
    """callbacks.checkpoint.every_n_train_steps: a positive int or null (checked at start-up)."""
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
        raise ConfigError(f"callbacks.checkpoint.every_n_train_steps={value!r}: use a positive number of "
                          "optimizer steps, or null to save last.ckpt at epoch ends only")


class LastCheckpoint(Callback):
    """last.ckpt at every epoch end and every `every_n_train_steps` steps; saves and stops on signals."""

    def __init__(self, dirpath: str | Path, every_n_train_steps: int | None = DEFAULT_EVERY_N_TRAIN_STEPS) -> None:
        check_every_n_train_steps(every_n_train_steps)
        self.dirpath = Path(dirpath)
        self.every_n_train_steps = every_n_train_steps
        self._signal: int | None = None
        # who handled the signals before this job's Trainer existed (submitit in a SLURM job): they get
        # the signal after last.ckpt is saved; Lightning's handlers (installed by fit) are only restored
        self._outer_handlers = {signum: signal.getsignal(signum) for signum in STOP_SIGNALS}
        self._previous_handlers: dict[int, SignalHandler] = {}
        self._pending_epoch_sums: list[dict[str, Any]] | None = None
        self._trainer: L.Trainer | None = None
        self._seen_step: int | None = None

    @property
    def last_path(self) -> Path:
        return self.dirpath / LAST

    # -- start-up and signals ------------------------------------------------------------------------------

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        self._trainer = trainer
        if stage == "fit" and trainer.is_global_zero:
            _check_writable(self.dirpath)

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # installed after Lightning's own handlers (registered when fit starts), so these are the ones
        # that run; Lightning's are back after fit (its SLURM auto-requeue is off: cluster_plugins)
        self._signal = None
        for signum in STOP_SIGNALS:
            self._previous_handlers[signum] = signal.signal(signum, self._on_signal)

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        log.warning("received %s: saving %s after this step, then stopping", signal.Signals(signum).name,
                    self.last_path)
        self._signal = signum

    def _restore_signal_handlers(self) -> None:
        for signum, handler in self._previous_handlers.items():
            signal.signal(signum, handler if handler is not None else signal.SIG_DFL)
        self._previous_handlers = {}

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._restore_signal_handlers()

    def on_exception(self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException) -> None:
        self._restore_signal_handlers()

    # -- when to save --------------------------------------------------------------------------------------

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        self._merge_resumed_epoch_sums(trainer)
        step = trainer.global_step
        if step == self._seen_step:  # gradient accumulation: act only after an optimizer step
            return
        self._seen_step = step
        stop = self._stop_requested(trainer)
        if stop or (self.every_n_train_steps and step > 0 and step % self.every_n_train_steps == 0):
            self.save(trainer)
        if stop:
            self._raise_preempted()

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # Lightning 2 runs the epoch's validation before this hook: the checkpoint includes it
        self.save(trainer)
        if self._stop_requested(trainer):
            self._raise_preempted()

    def _stop_requested(self, trainer: L.Trainer) -> bool:
        """A signal reached any rank (all ranks stop at the same step, or DDP would hang)."""
        return bool(trainer.strategy.reduce_boolean_decision(self._signal is not None, all=False))

    def _raise_preempted(self) -> None:
        signum = self._signal if self._signal is not None else signal.SIGTERM  # another rank got it
        raise Preempted(signum, self.last_path, self._outer_handlers.get(signum))

    def save(self, trainer: L.Trainer) -> None:
        """Write last.ckpt atomically; keep the version before it as last-previous.ckpt."""
        tmp = self.dirpath / f".{LAST}.tmp"
        try:
            trainer.save_checkpoint(tmp, weights_only=False)  # the full state a resume needs; rank 0 writes
            if trainer.is_global_zero:
                if self.last_path.exists():
                    os.replace(self.last_path, self.dirpath / PREVIOUS)
                os.replace(tmp, self.last_path)
        except OSError as err:
            raise CheckpointWriteError(f"cannot write checkpoint {self.last_path}: {err.strerror or err}") from err
        trainer.strategy.barrier("last_checkpoint_saved")

    # -- epoch-averaged training metrics across a resume ---------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        # called on every rank while a checkpoint is assembled: gather each rank's running sums
        if self._trainer is None:
            return {}
        return {"epoch_sums": _gather(self._trainer, _epoch_sums(self._trainer))}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self._pending_epoch_sums = state_dict.get("epoch_sums")

    def _merge_resumed_epoch_sums(self, trainer: L.Trainer) -> None:
        """After the first step of a resumed epoch, add the sums saved mid-epoch to Lightning's
        accumulators (which restart empty on resume)."""
        pending, self._pending_epoch_sums = self._pending_epoch_sums, None
        if not pending:
            return
        saved = pending[trainer.global_rank] if trainer.global_rank < len(pending) else {}
        if saved.get("epoch") != trainer.current_epoch:
            return  # saved at an epoch end: the resumed epoch starts from zero anyway
        for key, metric in _epoch_metrics(trainer).items():
            if key in saved["sums"]:
                _merge(metric, *saved["sums"][key])


def _epoch_metrics(trainer: L.Trainer) -> dict[str, _ResultMetric]:
    """The training loop's epoch-level accumulators (`self.log(..., on_epoch=True)` of plain tensors)."""
    results = trainer.fit_loop.epoch_loop._results
    return {key: metric for key, metric in results.items()
            if isinstance(metric, _ResultMetric) and metric.meta.on_epoch and metric.is_tensor}


def _epoch_sums(trainer: L.Trainer) -> dict[str, Any]:
    """(value, cumulated batch size) of each epoch accumulator: a mean keeps a batch-weighted sum."""
    if not trainer.training:
        return {"epoch": None, "sums": {}}
    sums = {}
    for key, metric in _epoch_metrics(trainer).items():
        count = metric.cumulated_batch_size.detach().cpu().clone() if metric.meta.is_mean_reduction else None
        sums[key] = (metric.value.detach().cpu().clone(), count)
    return {"epoch": trainer.current_epoch, "sums": sums}


def _merge(metric: _ResultMetric, value: torch.Tensor, count: torch.Tensor | None) -> None:
    """Combine a saved accumulator with the live one, by the metric's reduction."""
    value = value.to(metric.value.device)
    if metric.meta.is_max_reduction:
        metric.value = torch.maximum(metric.value, value)
    elif metric.meta.is_min_reduction:
        metric.value = torch.minimum(metric.value, value)
    else:
        metric.value = metric.value + value
    if count is not None and metric.meta.is_mean_reduction:
        metric.cumulated_batch_size = metric.cumulated_batch_size + count.to(metric.cumulated_batch_size.device)


def _gather(trainer: L.Trainer, local: dict[str, Any]) -> list[dict[str, Any]]:
    """One entry per rank (rank 0 writes the checkpoint, every rank needs its own sums back)."""
    if trainer.world_size == 1 or not torch.distributed.is_initialized():
        return [local]
    gathered: list[Any] = [None] * trainer.world_size
    torch.distributed.all_gather_object(gathered, local)
    return gathered
