"""DDP on several devices of one machine, inside or outside a Hydra sweep (the fix for Lightning #11300).

Lightning's own DDP launcher re-runs `sys.argv` once per extra device. Under `-m` that command is a
whole new sweep (or, with Hydra, lands in another output directory), which is why Hydra multirun and
Lightning DDP break each other. We never let Lightning re-launch: the Hydra job process writes its fully
resolved config to `<run dir>/config.yaml` and starts one worker per device,

    python -m mtv.runner.worker <run dir>/config.yaml

through torch.distributed's elastic launcher (what torchrun runs, in this process: `elastic_launch` with
a c10d rendezvous on a free localhost port, like `torchrun --standalone`), so every rank runs exactly this
job, in this job's directory. Lightning sees torchelastic's variables (LOCAL_RANK, RANK, WORLD_SIZE,
MASTER_ADDR/PORT) and treats the processes as started externally. If a worker dies the agent stops the
others and the job is marked failed, while the sweep goes on to the next job; on SIGTERM the agent passes
the signal on (the workers save last.ckpt and stop) and waits for them. Workers die with this process
(mtv.runner.liveness). No process group lives in the Hydra process, so sequential jobs of a sweep cannot
leak into each other.

When SLURM (srun, e.g. through the submitit launcher) or torchrun started the processes, every process
is already one rank and runs the task itself.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, ListConfig

from mtv import ConfigError
from mtv.runner.liveness import PARENT_PID_ENV
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


def run_process_group(cfg: DictConfig, config_path: Path) -> dict[str, Any]:
    """Start one worker per device from the job's resolved config file, wait, return rank 0's results."""
    from torch.distributed.elastic.multiprocessing.api import SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.launcher.api import LaunchConfig, elastic_launch

    run_dir = config_path.parent
    n = _device_count(cfg.trainer.devices)
    os.environ[PARENT_PID_ENV] = str(os.getpid())  # the workers check they still have this parent
    launch = LaunchConfig(min_nodes=1, max_nodes=1, nproc_per_node=n, run_id=f"mtv-{os.getpid()}",
                          rdzv_backend="c10d", rdzv_endpoint="127.0.0.1:0",  # torchrun --standalone
                          max_restarts=0, monitor_interval=0.5)
    error = None
    try:
        elastic_launch(launch, sys.executable)("-m", "mtv.runner.worker", str(config_path))
    except ChildFailedError as err:
        error = "DDP worker failed: " + "; ".join(
            f"rank {rank} exited with code {failure.exitcode}" for rank, failure in sorted(err.failures.items()))
    except SignalException as err:  # this process got SIGTERM & co: the agent stopped the workers (they save)
        error = f"stopped by signal {err.sigval}"
    record = read_results(run_dir) or {"status": "failed", "output_dir": str(run_dir)}
    if error and record.get("status") not in ("failed", "preempted"):
        record.update(status="failed", error=error)
        write_results(run_dir, record)
    return record
