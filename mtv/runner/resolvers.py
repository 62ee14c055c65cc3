"""OmegaConf resolvers used by conf/ (registered once, on import)."""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime
from pathlib import Path

from omegaconf import OmegaConf


def _stamp() -> str:
    """Run directory name: microsecond timestamp plus random suffix, so two jobs started in the same
    instant never share a directory (hydra#2925: Hydra's directory creation is not atomic)."""
    return f"{datetime.now():%Y-%m-%d_%H-%M-%S.%f}_{secrets.token_hex(2)}"


def _num_gpus(default: int) -> int:
    """GPUs on this machine (parallel launcher's job count); `default` where there are none."""
    import torch

    count = torch.cuda.device_count()
    return count if count > 0 else int(default)


RUN_ID_FILE = "wandb_id.txt"


def run_id(run_dir: str) -> str:
    """The tracker run id of a run directory: the one saved there, else one derived from its path (the
    same directory always gets the same id, so a resumed job continues its W&B run)."""
    path = Path(run_dir) / RUN_ID_FILE
    if path.exists():
        return path.read_text().strip()
    return hashlib.sha1(str(Path(run_dir).resolve()).encode()).hexdigest()[:8]


GPU_ACCELERATORS = ("gpu", "cuda")


def _on_gpu(accelerator: str, value: object) -> object:
    """`value` when trainer.accelerator is a GPU, else null (SLURM: ask for GPUs only on GPU jobs)."""
    return value if str(accelerator).lower() in GPU_ACCELERATORS else None


def _on_cpu(accelerator: str, value: object) -> object:
    """`value` when trainer.accelerator is not a GPU, else null (SLURM: CPUs per task on CPU jobs)."""
    return None if str(accelerator).lower() in GPU_ACCELERATORS else value


def register() -> None:
    if not OmegaConf.has_resolver("mtv.stamp"):
        OmegaConf.register_new_resolver("mtv.stamp", _stamp, use_cache=True)
        OmegaConf.register_new_resolver("mtv.num_gpus", _num_gpus)
        OmegaConf.register_new_resolver("mtv.run_id", run_id)
        OmegaConf.register_new_resolver("mtv.on_gpu", _on_gpu)
        OmegaConf.register_new_resolver("mtv.on_cpu", _on_cpu)

