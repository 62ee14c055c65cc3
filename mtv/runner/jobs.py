"""One job of run.py, from the composed Hydra config to results.json.

`hydra_job` runs in the process Hydra calls (any launcher). It resolves the config, writes it to
`<run dir>/config.yaml`, checks it, and then either runs the task in this process or, for DDP on several
devices of this machine, starts one worker process per device from that file (mtv.runner.launch).
`run_task` is the part every rank runs: task, status, errors, wall time, summary and W&B `finish`.

A failing job writes `status: failed` and its traceback to results.json and then raises, so Hydra
runs the remaining jobs of the sweep and exits non-zero at the end (its partial-failure semantics). A job
stopped by SIGTERM / SIGUSR1 / SIGUSR2 saves last.ckpt, writes `status: preempted` and does the same (a
single run exits with code 3; a SLURM job exits without a result, so submitit waits for its requeued run).
"""

from __future__ import annotations

import logging
import os
import socket
import sys
import time
import traceback
from datetime import datetime
from pathlib import Path
from typing import Any

from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from lightning.fabric.utilities.rank_zero import rank_zero_only
from omegaconf import DictConfig, OmegaConf

from datamodules.datamodule import check_data
from mtv import ConfigError
from mtv.runner.checkpointing import Preempted, check_every_n_train_steps
from mtv.runner.checks import check_config, check_required
from mtv.runner.gpu_slots import maybe_gpu_slot
from mtv.runner.launch import needs_own_processes, run_process_group, started_externally
from mtv.runner.liveness import alive_in, check_nothing_alive, die_with_parent
from mtv.runner.models import describe_model
from mtv.runner.predict import predict
from mtv.runner.recipe import TRAINED_RECIPE_TASKS, adopt_trained_recipe
from mtv.runner.results import print_config_tree, read_results, summary, write_results
from mtv.runner.tasks import TASKS
from mtv.runner.trackers import finish_wandb

log = logging.getLogger(__name__)

CONFIG_FILE = "config.yaml"  # the job's resolved config, which DDP workers run from
ALL_TASKS = {**TASKS, "predict": predict}
PREEMPTED_EXIT_CODE = 3  # stopped by a signal after saving last.ckpt (results.json: status preempted)


class JobFailed(RuntimeError):
    """The job failed; its error is in results.json (raised so Hydra marks the job failed)."""


def _run_name(overrides: list[str]) -> str:
    """W&B name from the job's overrides; a Table 1 row `+row/<table>=<row>` reads as `<row>`."""
    skip = ("hydra", "resume", "experiment=", "debug=", "logger", "trainer", "paths", "ckpt")
    parts = []
    for item in overrides:
        key, _, value = item.lstrip("+~").partition("=")
        if key.startswith("row/"):
            parts.append(value)
        elif not item.lstrip("+~").startswith(skip):
            parts.append(f"{key}={value}")
    return ",".join(parts) or "default"


def _fill_from_hydra(cfg: DictConfig) -> None:
    """Values only Hydra knows (run name, sweep group), stored in the config so workers see them."""
    hc = HydraConfig.get()
    if cfg.run_name is None:
        cfg.run_name = _run_name(list(hc.overrides.task))
    if "wandb" in cfg.logger and hc.mode == RunMode.MULTIRUN:
        # one group per sweep: the experiment plus the sweep directory's name
        cfg.logger.wandb.group = f"{cfg.logger.wandb.group}/{Path(hc.sweep.dir).name}"


def _base_record(cfg: DictConfig, run_dir: Path) -> dict[str, Any]:
    return {
        "status": "running",
        "task": cfg.task,
        "experiment": cfg.experiment_name,
        "ablation": OmegaConf.to_container(cfg.ablation) if cfg.ablation else None,
        "run_name": cfg.run_name,
        "output_dir": str(run_dir),
        **describe_model(OmegaConf.to_container(cfg.model, resolve=True)),
        "num_classes": int(cfg.dataset.num_classes),
        "dataset": {"name": cfg.dataset.get("name"), "num_frames": cfg.data.num_frames,
                    "crop_size": cfg.data.crop_size},
        "devices": {k: cfg.trainer[k] for k in ("accelerator", "devices", "num_nodes", "strategy", "precision")},
        "host": socket.gethostname(),
        "started": datetime.now().isoformat(timespec="seconds"),
    }


def run_task(cfg: DictConfig) -> dict[str, Any]:
    """Run cfg.task in this process (every DDP rank calls this); rank 0 writes results.json."""
    run_dir = Path(cfg.paths.output_dir)
    rank0 = rank_zero_only.rank == 0
    record = _base_record(cfg, run_dir)
    if rank0:
        write_results(run_dir, record)
    start = time.time()
    stop: Preempted | None = None
    try:
        with alive_in(run_dir):
            record.update(ALL_TASKS[cfg.task](cfg, run_dir))
        record["status"] = "completed"
    except Preempted as err:
        stop = err
        record.update(status="preempted", error=str(err))
        log.warning("job preempted: %s", err)
    except Exception:
        record["status"] = "failed"
        record["error"] = traceback.format_exc()
        log.error("job failed:\n%s", record["error"])
    finally:
        record["wall_time_s"] = time.time() - start
        record["finished"] = datetime.now().isoformat(timespec="seconds")
        if rank0:
            write_results(run_dir, record)
            finish_wandb(failed=record["status"] != "completed")
            print(summary(record), flush=True)
    if stop is not None:
        hand_over(stop)
    return record


def _already_done(cfg: DictConfig, run_dir: Path) -> dict[str, Any] | None:
    """results.json of a completed run that this resume would repeat exactly (same resolved config);
    None if there is something to do, e.g. `resume=<run> trainer.max_epochs=<more>` (overrides win)."""
    previous = read_results(run_dir)
    if not (cfg.resume and previous and previous.get("status") == "completed"):
        return None
    saved = run_dir / CONFIG_FILE
    if saved.exists():
        before, now = OmegaConf.to_container(OmegaConf.load(saved)), OmegaConf.to_container(cfg)
        before.pop("resume", None)
        now.pop("resume", None)
        if before != now:
            return None
    return previous


def hydra_job(cfg: DictConfig) -> float | None:
    """The task function of run.py. Returns test top-1 (for Hydra sweepers that optimise a metric)."""
    run_dir = Path(HydraConfig.get().runtime.output_dir)
    try:
        check_required(cfg)
        _fill_from_hydra(cfg)
        if submitit_slurm_job():
            cfg.resume = True  # a requeued SLURM job continues its own directory (docs/experiments.md)
        OmegaConf.resolve(cfg)
        done = _already_done(cfg, run_dir)
        if done:
            print(f"resume: {run_dir} already completed; nothing to do", flush=True)
            return done.get("metrics", {}).get("test/top1")
        if cfg.dataset.num_classes is None:
            check_data(cfg)  # fills dataset.num_classes from the annotations (video_folder's class folders)
        check_config(cfg)
        if cfg.task in TRAINED_RECIPE_TASKS:
            print("\n".join(adopt_trained_recipe(cfg, list(HydraConfig.get().overrides.task))), flush=True)
        if cfg.task != "profile":
            check_data(cfg)  # every annotation file and label, before any logger or model
        check_every_n_train_steps(OmegaConf.select(cfg, "callbacks.checkpoint.every_n_train_steps"))
        if cfg.resume and not started_externally():
            check_nothing_alive(run_dir)
    except ConfigError as err:
        ablation = OmegaConf.to_container(cfg.ablation) if cfg.get("ablation") else None  # its table row
        write_results(run_dir, {"status": "failed", "output_dir": str(run_dir), "ablation": ablation,
                                "error": f"ConfigError: {err}"})
        if _is_single_run():
            print(f"error: {err}", file=sys.stderr, flush=True)
            sys.exit(2)
        raise
    with maybe_gpu_slot(cfg, run_dir):
        OmegaConf.save(cfg, run_dir / CONFIG_FILE)
        print_config_tree(cfg, run_dir / CONFIG_FILE)
        own_processes = cfg.task not in ("profile", "predict") and needs_own_processes(cfg)  # single-process tasks
        record = run_process_group(cfg, run_dir / CONFIG_FILE) if own_processes else run_task(cfg)
    if record["status"] == "preempted" and (_is_single_run() or submitit_slurm_job()):
        # under SLURM: no result for submitit, whose requeued job (same directory) reports later
        sys.exit(PREEMPTED_EXIT_CODE)
    if record["status"] != "completed":
        if _is_single_run():
            sys.exit(1)
        last_line = (str(record.get("error") or "").strip().splitlines() or ["see results.json"])[-1]
        raise JobFailed(f"{run_dir}: {last_line}")
    return record.get("metrics", {}).get("test/top1")


def _is_single_run() -> bool:
    return HydraConfig.get().mode == RunMode.RUN


def worker_main(config_path: str) -> None:
    """Entry of a DDP worker process started by mtv.runner.launch (no Hydra: the config is resolved)."""
    die_with_parent()
    cfg = OmegaConf.load(config_path)
    record = run_task(cfg)
    codes = {"completed": 0, "preempted": PREEMPTED_EXIT_CODE}
    sys.exit(codes.get(record["status"], 1))


def submitit_slurm_job() -> bool:
    """True inside a job that hydra/launcher=slurm (submitit) submitted."""
    return os.environ.get("SUBMITIT_EXECUTOR") == "slurm"


def hand_over(stop: Preempted) -> None:
    """Pass the stop signal to whoever handled it before training: under submitit, its SIGUSR2 handler
    requeues the SLURM job (and exits); its SIGTERM handler only logs (SLURM requeues by itself)."""
    handler = stop.previous_handler
    if submitit_slurm_job() and callable(handler):
        handler(stop.signum, None)

