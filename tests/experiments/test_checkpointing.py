"""LastCheckpoint and resume_checkpoint with a real Lightning Trainer on a tiny regression model (seconds)."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import lightning as L
import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from mtv.runner.checkpointing import LAST, PREVIOUS, CheckpointWriteError, LastCheckpoint, Preempted, resume_checkpoint


class Tiny(L.LightningModule):
    """y = w x on random data; logs an epoch-averaged loss like the video classifier does."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)  # the same initial weights in every run
        self.layer = torch.nn.Linear(4, 1)

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = torch.nn.functional.mse_loss(self.layer(x), y)
        self.log("train/loss", loss, on_step=True, on_epoch=True)
        return loss

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)

    def train_dataloader(self):
        # 8 identical batches: a resumed run sees the same data at every step although this loader
        # cannot restart mid-epoch (the run.py tests cover real, resumable data)
        g = torch.Generator().manual_seed(0)
        x, y = torch.randn(4, 4, generator=g), torch.randn(4, 1, generator=g)
        return DataLoader(TensorDataset(x.repeat(8, 1), y.repeat(8, 1)), batch_size=4)


class SignalAt(L.Callback):
    def __init__(self, step: int, signum: int) -> None:
        self.step, self.signum = step, signum

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if trainer.global_step == self.step:
            os.kill(os.getpid(), self.signum)


def _trainer(tmp_path: Path, *callbacks: L.Callback, max_epochs: int = 1) -> L.Trainer:
    return L.Trainer(max_epochs=max_epochs, callbacks=list(callbacks), logger=False, enable_checkpointing=False,
                     enable_progress_bar=False, enable_model_summary=False, default_root_dir=str(tmp_path))


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGUSR1, signal.SIGUSR2])
def test_stop_signal_saves_last_ckpt_and_raises_preempted(tmp_path: Path, signum: int) -> None:
    before = signal.getsignal(signum)
    last = LastCheckpoint(tmp_path / "ckpt", every_n_train_steps=None)
    with pytest.raises(Preempted) as stopped:
        _trainer(tmp_path, last, SignalAt(3, signum), max_epochs=3).fit(Tiny())
    assert stopped.value.signum == signum
    saved = torch.load(tmp_path / "ckpt" / LAST, map_location="cpu", weights_only=True)
    assert saved["global_step"] == 4  # the step during which the signal arrived is finished, then saved
    assert signal.getsignal(signum) == before  # handlers restored: the process behaves as before fit


def test_last_ckpt_at_every_epoch_end_and_every_n_steps_keeps_the_previous(tmp_path: Path) -> None:
    seen: list[int] = []

    class Record(L.Callback):
        def on_train_epoch_end(self, trainer, pl_module) -> None:
            seen.append(torch.load(tmp_path / LAST, weights_only=True)["global_step"])

    _trainer(tmp_path, LastCheckpoint(tmp_path, every_n_train_steps=3), Record(), max_epochs=2).fit(Tiny())
    assert seen == [8, 16]  # 8 batches per epoch: written at each epoch end (LastCheckpoint runs first)
    steps = {torch.load(tmp_path / name, weights_only=True)["global_step"] for name in (LAST, PREVIOUS)}
    assert steps == {16, 15}  # the last save and the one before it (step 15 = 5 x 3)
    assert not list(tmp_path.glob(".*.tmp"))  # written under a temporary name, then renamed


def test_epoch_average_after_a_mid_epoch_resume_counts_every_step(tmp_path: Path) -> None:
    straight = _trainer(tmp_path / "a", LastCheckpoint(tmp_path / "a", every_n_train_steps=None))
    straight.fit(Tiny())
    with pytest.raises(Preempted):
        _trainer(tmp_path / "b", LastCheckpoint(tmp_path / "b", None), SignalAt(4, signal.SIGTERM)).fit(Tiny())
    resumed = _trainer(tmp_path / "b", LastCheckpoint(tmp_path / "b", None))
    resumed.fit(Tiny(), ckpt_path=str(tmp_path / "b" / LAST), weights_only=True)
    expected = straight.callback_metrics["train/loss_epoch"]
    torch.testing.assert_close(resumed.callback_metrics["train/loss_epoch"], expected)


def test_corrupt_last_ckpt_falls_back_to_the_previous_one(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    _trainer(tmp_path, LastCheckpoint(tmp_path, every_n_train_steps=2)).fit(Tiny())
    assert resume_checkpoint(tmp_path) == tmp_path / LAST
    data = (tmp_path / LAST).read_bytes()
    (tmp_path / LAST).write_bytes(data[: len(data) // 2])  # a copy cut short
    assert resume_checkpoint(tmp_path) == tmp_path / PREVIOUS
    assert f"{tmp_path / LAST} is corrupt" in caplog.text
    (tmp_path / PREVIOUS).write_bytes(data[:100])
    assert resume_checkpoint(tmp_path) is None  # nothing readable: start from scratch


def test_unwritable_checkpoint_directory_fails_with_path_and_os_error(tmp_path: Path) -> None:
    (tmp_path / "ckpt").symlink_to("/sys")  # not writable, not even by root
    with pytest.raises(CheckpointWriteError, match=f"{tmp_path / 'ckpt'}: Permission denied"):
        _trainer(tmp_path, LastCheckpoint(tmp_path / "ckpt")).fit(Tiny())


@pytest.mark.parametrize("value", [0, -5, 2.5, "100"])
def test_bad_every_n_train_steps_is_a_config_error_naming_the_key(value: object) -> None:
    from mtv import ConfigError
    from mtv.runner.checkpointing import check_every_n_train_steps

    with pytest.raises(ConfigError, match="callbacks.checkpoint.every_n_train_steps"):
        check_every_n_train_steps(value)
