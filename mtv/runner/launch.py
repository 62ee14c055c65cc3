"""DDP on several devices of one machine, inside or outside a Hydra sweep (the fix for Lightning #11300).

Lightning's own DDP launcher re-runs `sys.argv` once per extra device. Under `-m` that command is a
whole new sweep (or, with Hydra, lands in another output directory), which is why Hydra multirun and
Lightning DDP break each other. We never let Lightning re-launch: the Hydra job process writes its fully
resolved config to `<run dir>/config.yaml` and starts one worker per device,

    LOCAL_RANK=i WORLD_SIZE=n MASTER_ADDR=127.0.0.1 MASTER_PORT=<free> python -m mtv.runner.worker <run dir>/config.yaml

so every rank runs exactly this job, in this job's directory. Lightning sees LOCAL_RANK and treats the
processes as started externally (like torchrun). The job process waits for the workers; if one dies,
the others are stopped and the job is marked failed, while the sweep goes on to the next job. No
process group lives in the Hydra process, so sequential jobs of a sweep cannot leak into each other.

When SLURM (srun, e.g. through the submitit launcher) or torchrun started the processes, every process
is already one rank and runs the task itself.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, ListConfig

from mtv import ConfigError
from mtv.runner.results import read_results, write_results

EXTERNAL_LAUNCH_VARS = ("LOCAL_RANK", "TORCHELASTIC_RUN_ID")


def _device_count(devices: Any) -> int:
    """trainer.devices as a number of processes: 2, [0, 1], "2", "0,1"; -1 = every GPU; "auto" = 1."""
    if isinstance(devices, (list, tuple, ListConfig)):
        return len(devices)
    text = str(devices).strip()
    if "," in text:
        return len([d for d in text.split(",") if d.strip()])
    if text == "-1":
        import torch

        return torch.cuda.device_count()
    return int(text) if text.isdigit() else 1


def started_externally() -> bool:
    """True when srun / torchrun already started one process per rank."""
    if any(var in os.environ for var in EXTERNAL_LAUNCH_VARS):
        return True
    return int(os.environ.get("SLURM_NTASKS", "1")) > 1 and os.environ.get("SLURM_JOB_NAME") not in ("bash", "interactive")


def needs_own_processes(cfg: DictConfig) -> bool:
    """True for DDP on several devices of this machine when nobody else started the processes."""
    devices = _device_count(cfg.trainer.devices)
    return str(cfg.trainer.strategy).startswith("ddp") and devices > 1 and not started_externally()


def check_launch(cfg: DictConfig) -> None:
    """Several nodes need their processes started on every node (srun or torchrun), not by us."""
    if int(cfg.trainer.num_nodes) > 1 and not started_externally():
        raise ConfigError(
            f"trainer.num_nodes={cfg.trainer.num_nodes} needs one process per GPU started on every node: "
            "use hydra/launcher=slurm, or torchrun on each node with a fixed hydra.run.dir"
        )


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _stop(procs: list[subprocess.Popen], grace_s: float = 10.0) -> None:
    for p in procs:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
    deadline = time.time() + grace_s
    for p in procs:
        try:
            p.wait(timeout=max(deadline - time.time(), 0.1))
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def run_process_group(cfg: DictConfig, config_path: Path) -> dict[str, Any]:
    """Start one worker per device from the job's resolved config file, wait, return rank 0's results."""
    run_dir = config_path.parent
    n = _device_count(cfg.trainer.devices)
    env = {**os.environ, "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(_free_port()),
           "WORLD_SIZE": str(n), "NODE_RANK": "0"}
    command = [sys.executable, "-m", "mtv.runner.worker", str(config_path)]
    procs = [subprocess.Popen(command, env={**env, "LOCAL_RANK": str(rank)}) for rank in range(n)]
    failed: list[str] = []
    try:
        while any(p.poll() is None for p in procs) and not failed:
            time.sleep(0.5)
            failed = [f"rank {r} exited with code {p.returncode}" for r, p in enumerate(procs) if p.returncode]
    finally:
        _stop(procs)
    record = read_results(run_dir) or {"status": "failed", "output_dir": str(run_dir)}
    if failed and record.get("status") != "failed":
        record.update(status="failed", error=f"DDP worker failed: {'; '.join(failed)}")
        write_results(run_dir, record)
    return record
