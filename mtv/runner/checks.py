"""Start-up checks of the composed config: fail in a second, before any data is read or GPU touched,
with a message that names the key and the allowed values.

Hydra already rejects unknown config-group options and overrides of keys that do not exist; these
checks cover what it cannot see: keys added with `+`, values outside their allowed set, combinations
the model cannot build (mtv.ConfigError from the model config), checkpoints and dataset roots.
"""

from __future__ import annotations

import difflib
import inspect
from pathlib import Path
from typing import Any

import lightning as L
from hydra.utils import get_object
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.loggers import Logger
from omegaconf import DictConfig, OmegaConf

from datamodules.dataset_config import DATASET_SCHEMAS
from mtv import ConfigError
from mtv.runner.launch import check_launch
from mtv.runner.models import validate_model_of
from mtv.runner.predict import check_predict
from mtv.runner.schema import TASKS, RunConfig
from mtv.schema import to_schema, unknown_keys
from mtv.training.optim import OptimConfig


def _one_of(value: Any, allowed: tuple[str, ...], key: str) -> None:
    if value not in allowed:
        raise ConfigError(f"{key}={value!r} is not one of {', '.join(allowed)}")


def _check_trainer(trainer: Any) -> None:
    """`trainer` holds keyword arguments of lightning.Trainer: every key must be one."""
    allowed = [p for p in inspect.signature(L.Trainer).parameters if p != "self"]
    for key in trainer or {}:
        if key not in allowed:
            close = difflib.get_close_matches(str(key), allowed, n=1)
            hint = f" (did you mean trainer.{close[0]}?)" if close else ""
            raise ConfigError(f"unknown key trainer.{key}: not an argument of lightning.Trainer{hint}")


# values a class accepts that it would only reject once a run is under way
_ALLOWED_VALUES = {("lightning.pytorch.loggers.WandbLogger", "mode"): ("offline", "online", "disabled")}


def _check_targets(nodes: Any, section: str, base: type) -> None:
    """Each entry of `logger` / `callbacks` is a `_target_` node naming an importable subclass of `base`."""
    for name, node in (nodes or {}).items():
        target = node.get("_target_") if isinstance(node, (dict, DictConfig)) else None
        if not target:
            raise ConfigError(f"{section}.{name} needs a _target_ (a {base.__name__} class), e.g. "
                              f"conf/{section}/*.yaml")
        try:
            cls = get_object(str(target))
        except Exception as err:  # an uninstalled package or a typo
            package = str(target).split(".")[0]
            raise ConfigError(f"{section}.{name}._target_={target}: cannot be imported ({err}); "
                              f"is the package installed (pip install {package})?") from err
        if not (isinstance(cls, type) and issubclass(cls, base)):
            raise ConfigError(f"{section}.{name}._target_={target} is not a lightning {base.__name__}; "
                              f"{section} only builds {base.__module__}.{base.__name__} subclasses")
        for (known, key), allowed in _ALLOWED_VALUES.items():
            if target == known and key in node:
                _one_of(node[key], allowed, f"{section}.{name}.{key}")


def check_config(cfg: DictConfig) -> None:
    """Raise mtv.ConfigError on the first problem."""
    unknown_keys(cfg, RunConfig, "")
    _one_of(cfg.task, TASKS, "task")
    _one_of(cfg.dataset.format, tuple(DATASET_SCHEMAS), "dataset.format")
    unknown_keys(cfg.dataset, DATASET_SCHEMAS[cfg.dataset.format], "dataset.")
    to_schema(OptimConfig, cfg.optim, "optim.").validate()
    _check_trainer(cfg.trainer)
    _check_targets(cfg.logger, "logger", Logger)
    _check_targets(cfg.callbacks, "callbacks", Callback)
    if cfg.task == "eval":
        _check_checkpoints(cfg)
    elif cfg.task == "predict":
        check_predict(cfg)
    else:
        if cfg.ckpt_path or cfg.ckpt_paths:
            raise ConfigError(f"ckpt_path / ckpt_paths are for task=eval (task={cfg.task}); "
                              "to continue training use resume=true or resume=<run dir>")
        validate_model_of(cfg)
        _check_init_files(cfg)
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
