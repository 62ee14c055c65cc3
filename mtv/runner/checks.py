"""Start-up checks of the composed config: fail in a second, before any data is read or GPU touched,
with a message that names the key and the allowed values.

Hydra already rejects unknown config-group options and overrides of keys that do not exist; these
checks cover what it cannot see: keys added with `+`, values outside their allowed set, combinations
the model cannot build (mtv.ConfigError from the model config), checkpoints and dataset roots.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from mtv import ConfigError
from mtv.training.optim import OPTIMIZERS
from mtv.runner.launch import check_launch
from mtv.runner.predict import check_predict
from mtv.runner.models import model_configs
from mtv.runner.trackers import WANDB_MODES

TASKS = ("train", "eval", "profile", "predict")
TOP_LEVEL = {
    "task", "experiment_name", "run_name", "seed", "resume", "ckpt_path", "ckpt_paths", "inputs", "top_k",
    "ablation", "train",
    "dataset", "data", "model", "optim", "trainer", "logger", "callbacks", "paths",
}
LOGGERS = {"wandb", "tensorboard"}


def _unknown(node: Any, allowed: set[str], where: str) -> None:
    extra = sorted(set(node or {}) - allowed)
    if extra:
        raise ConfigError(f"unknown key(s) {', '.join(f'{where}{k}' for k in extra)}; "
                          f"allowed under {where or 'the top level'}: {', '.join(sorted(allowed))}")


def _one_of(value: Any, allowed: tuple[str, ...], key: str) -> None:
    if value not in allowed:
        raise ConfigError(f"{key}={value!r} is not one of {', '.join(allowed)}")


def check_config(cfg: DictConfig) -> None:
    """Raise mtv.ConfigError on the first problem."""
    _unknown(cfg, TOP_LEVEL, "")
    _one_of(cfg.task, TASKS, "task")
    _unknown(cfg.logger, LOGGERS, "logger.")
    if "tensorboard" in cfg.logger and not any(importlib.util.find_spec(m) for m in ("tensorboard", "tensorboardX")):
        raise ConfigError("logger=tensorboard needs the tensorboard package: pip install tensorboard "
                          "(or use logger=wandb, csv or none)")
    if "wandb" in cfg.logger:
        _one_of(cfg.logger.wandb.mode, WANDB_MODES, "logger.wandb.mode")
    _one_of(cfg.optim.name, OPTIMIZERS, "optim.name")
    decay = cfg.optim.layer_decay
    if decay is not None and not 0 < float(decay) <= 1:
        raise ConfigError(f"optim.layer_decay={decay}: must be in (0, 1], or null for none")
    if cfg.task == "eval":
        _check_checkpoints(cfg)
    elif cfg.task == "predict":
        check_predict(cfg)
    else:
        if cfg.ckpt_path or cfg.ckpt_paths:
            raise ConfigError(f"ckpt_path / ckpt_paths are for task=eval (task={cfg.task}); "
                              "to continue training use resume=true or resume=<run dir>")
        model_configs(cfg)
        _check_init_files(cfg)
    if cfg.model.name == "vivit_fe" and "+" in str(cfg.model.variant):
        raise ConfigError(f"model=vivit_fe is single-view but model.variant={cfg.model.variant!r}; use e.g. view=B2")
    if cfg.task not in ("profile", "predict"):  # predict reads only its inputs
        _check_dataset_root(cfg)
        check_launch(cfg)


def check_required(cfg: DictConfig) -> None:
    """Mandatory values (`???`) that are still unset, checked before the config is resolved.

    task=profile reads no data, so an unset dataset.root is allowed there (set to null)."""
    if cfg.task == "profile" and OmegaConf.is_missing(cfg.dataset, "root"):
        cfg.dataset.root = None
    missing = [f"{section}.{key}" for section in ("dataset", "data", "model", "optim", "trainer")
               for key in cfg[section] if OmegaConf.is_missing(cfg[section], key)]
    if missing:
        hint = " (the folder of the downloaded dataset, see conf/dataset/)" if "dataset.root" in missing else ""
        raise ConfigError(f"required value(s) not set: {', '.join(missing)}{hint}; "
                          f"pass e.g. {missing[0]}=<value> on the command line")


def _check_checkpoints(cfg: DictConfig) -> None:
    if cfg.ckpt_path and cfg.ckpt_paths:
        raise ConfigError("give either ckpt_path (one model) or ckpt_paths (an ensemble), not both")
    paths = [cfg.ckpt_path] if cfg.ckpt_path else list(cfg.ckpt_paths or [])
    if not paths:
        what = "an ensemble needs its members' checkpoints: ckpt_paths=[a.ckpt,b.ckpt]" \
            if cfg.model.name == "ensemble" else "ckpt_path=<file.ckpt> (or ckpt_paths=[...] for an ensemble)"
        raise ConfigError(f"task=eval needs checkpoints: {what}")
    missing = [p for p in paths if not Path(p).is_file()]
    if missing:
        raise ConfigError(f"checkpoint(s) not found: {', '.join(missing)} (ckpt_path / ckpt_paths)")


def _check_init_files(cfg: DictConfig) -> None:
    """Weights named in model.init must exist before a job starts."""
    init = cfg.model.get("init") or {}
    vit = init.get("vit_checkpoints") or []
    paths = list(vit.values()) if hasattr(vit, "values") else list(vit)
    paths += [init.get("checkpoint")]
    missing = [str(p) for p in paths if p is not None and not Path(str(p)).is_file()]
    if missing:
        raise ConfigError(f"model.init: file(s) not found: {', '.join(missing)} "
                          "(model.init.vit_checkpoints / model.init.checkpoint)")


def _check_dataset_root(cfg: DictConfig) -> None:
    """Datasets read from disk name their folder in dataset.root; it must exist before we start."""
    root = cfg.dataset.get("root")
    if cfg.dataset.get("format") != "synthetic" and root is not None and not Path(str(root)).exists():
        raise ConfigError(
            f"dataset.root={root!s} does not exist (dataset={cfg.dataset.get('name')}): download the data or "
            "point dataset.root (or MTV_DATA_DIR, paths.data_dir) at it"
        )
