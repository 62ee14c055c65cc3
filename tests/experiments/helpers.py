"""Helpers for the experiment tests: run run.py as a subprocess, read results and W&B offline runs."""

from __future__ import annotations

import json
import os
import signal
import signal as signal_module
import struct
import subprocess
import sys
import time
from pathlib import Path

from lightning.pytorch.callbacks import Callback

REPO = Path(__file__).resolve().parents[2]


def run_py(*args: str, env: dict[str, str], timeout: int = 600) -> subprocess.CompletedProcess:
    """`python run.py <args>` from the repository root; output captured as text."""
    return subprocess.run([sys.executable, "run.py", *args], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=timeout)


def table_py(sweep: Path) -> subprocess.CompletedProcess:
    """`python -m experiments.table <sweep>`."""
    return subprocess.run([sys.executable, "-m", "experiments.table", str(sweep)], cwd=REPO, capture_output=True,
                          text=True, timeout=120)


def results(run_dir: Path) -> dict:
    return json.loads((run_dir / "results.json").read_text())


class KillAt(Callback):
    """SIGKILL this process right after optimizer step $MTV_TEST_KILL_AT_STEP (a crash mid-epoch)."""

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        step = os.environ.get("MTV_TEST_KILL_AT_STEP")
        if step is not None and trainer.global_step >= int(step):
            os.kill(os.getpid(), signal.SIGKILL)


def wandb_records(run_file: Path) -> list:
    """Protobuf records of an offline `run-<id>.wandb` file (LevelDB-log framing: 7-byte file header,
    32 KiB blocks of chunks with a 7-byte header: crc32 u32, length u16, type u8 full/first/middle/last)."""
    from wandb.proto import wandb_internal_pb2 as pb

    data = run_file.read_bytes()
    assert data[:4] == b":W&B", f"{run_file} is not a W&B run file"
    records, pending, pos, block = [], b"", 7, 32768
    while pos + 7 <= len(data):
        left = block - pos % block
        if left < 7:  # block trailer
            pos += left
            continue
        _, length, kind = struct.unpack("<IHB", data[pos : pos + 7])
        if length == 0 and kind == 0:
            pos += left
            continue
        chunk = data[pos + 7 : pos + 7 + length]
        pos += 7 + length
        pending = chunk if kind in (1, 2) else pending + chunk
        if kind in (1, 4):
            record = pb.Record()
            record.ParseFromString(pending)
            records.append(record)
            pending = b""
    return records


def wandb_content(run_dir: Path) -> dict[str, set]:
    """Run ids, history keys and config keys logged to the offline W&B runs of a run directory."""
    found = {"ids": set(), "history": set(), "config": set(), "summary": set(), "exit": set()}
    for run_file in sorted(run_dir.glob("wandb/offline-run-*/run-*.wandb")):
        for record in wandb_records(run_file):
            kind = record.WhichOneof("record_type")
            if kind == "run":
                found["ids"].add(record.run.run_id)
                found["config"] |= {item.key for item in record.run.config.update}
            elif kind == "config":
                found["config"] |= {item.key for item in record.config.update}
            elif kind == "history":
                found["history"] |= {item.key or "/".join(item.nested_key) for item in record.history.item}
            elif kind == "summary":
                found["summary"] |= {item.key or "/".join(item.nested_key) for item in record.summary.update}
            elif kind == "exit":
                found["exit"].add(record.exit.exit_code)
    return found


class SignalAt(Callback):
    """Send `signal` (default SIGTERM) to this process once, right after optimizer step `step` (what SLURM
    does on preemption, time-out, `scancel` and `scontrol requeue`)."""

    def __init__(self, step: int, signal: str = "SIGTERM") -> None:
        self.step, self.signum = int(step), getattr(signal_module, signal)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if trainer.global_step == self.step and trainer.is_global_zero:
            os.kill(os.getpid(), self.signum)


class SlowSteps(Callback):
    """Sleep $MTV_TEST_STEP_SLEEP seconds after every step, so a test can act while a job is training."""

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        time.sleep(float(os.environ.get("MTV_TEST_STEP_SLEEP", "0")))
