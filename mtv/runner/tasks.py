"""The three tasks. Each takes the resolved config and its run directory and returns the fields it adds
to results.json; mtv.runner.jobs wraps them (status, errors, wall time, summary, W&B finish).

* train: fit (resuming from checkpoints/last.ckpt when asked), then test the best checkpoint with
  multi-view evaluation.
* eval: test one checkpoint, or an ensemble of several (softmax average), with multi-view evaluation.
* profile: count parameters and GMACs per component (the model family's `profile`), without reading data.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import lightning as L
import torch
from omegaconf import DictConfig, OmegaConf
from torch import nn

from datamodules import build_datamodule
from mtv import ConfigError
from mtv.checkpoints import model_weights, read_checkpoint
from mtv.interop.checkpoint import load_model_checkpoint
from mtv.models import get_family
from mtv.models.ensemble import Ensemble
from mtv.runner.checkpointing import cluster_plugins, resume_from_dir
from mtv.runner.data import ResumableData, data_position
from mtv.runner.models import describe_model, format_profile_of, inputs_of, model_of, profile_of
from mtv.runner.predictions import StoreClassNames, TestPredictions
from mtv.runner.results import write_json
from mtv.runner.trackers import build_callbacks, build_loggers, record_summary
from mtv.schema import to_schema
from mtv.training.module import VideoClassifier
from mtv.training.optim import OptimConfig

log = logging.getLogger(__name__)


def _module(cfg: DictConfig, net: nn.Module, mixup: Any = None) -> VideoClassifier:
    """The LightningModule around `net`, with the run's optimiser, loss and metric settings."""
    heads = cfg.dataset.get("heads")
    return VideoClassifier(
        net=net,
        optim=to_schema(OptimConfig, cfg.optim, "optim."),
        num_classes=int(cfg.dataset.num_classes),
        heads=OmegaConf.to_container(heads) if heads else None,
        seed=int(cfg.seed),
        mixup=mixup,
        compile=bool(cfg.train.compile),
        activation_checkpointing=bool(cfg.train.activation_checkpointing),
        run_config=OmegaConf.to_container(cfg, resolve=True),
    )


def _size_fields(profile: dict[str, Any]) -> dict[str, Any]:
    return {
        "params": int(profile["params_total"]),
        "params_m": profile["params_total"] / 1e6,
        "gmacs_per_view": float(profile["gmacs_per_view"]),
        "params_by_component": profile.get("params"),
        "gmacs_by_component": profile.get("gmacs"),
    }


def _trainer(cfg: DictConfig, run_dir: Path, loggers: list, callbacks: list) -> L.Trainer:
    kwargs = OmegaConf.to_container(cfg.trainer, resolve=True)
    return L.Trainer(
        **kwargs,
        logger=loggers,
        callbacks=callbacks,
        default_root_dir=str(run_dir),
        plugins=cluster_plugins(),
    )


def _split_sizes(dm: Any) -> dict[str, int]:
    """Videos per split (after missing files were dropped), for results.json."""
    return {"train": dm.train_size, "val": dm.val_size, "test": dm.test_size}


def _metrics(trainer: L.Trainer) -> dict[str, float]:
    return {k: float(v) for k, v in trainer.callback_metrics.items() if getattr(v, "numel", lambda: 1)() == 1}


def train(cfg: DictConfig, run_dir: Path) -> dict[str, Any]:
    L.seed_everything(int(cfg.seed), workers=True)
    dm = build_datamodule(cfg)
    module = _module(cfg, model_of(cfg), mixup=dm.mixup)
    counts = profile_of(module.model, cfg.model, inputs_of(cfg))
    if _is_rank_zero():  # the model summary (Lightning's own, off in conf/trainer, has no FLOPs)
        print(format_profile_of(counts, cfg.model), flush=True)
    sizes = _size_fields(counts)
    last = run_dir / "checkpoints" / "last.ckpt"
    resume_from = resume_from_dir(last.parent) if cfg.resume else None
    position = data_position(resume_from)
    loggers = build_loggers(cfg, run_dir, _is_rank_zero(), position["step"] if position else None)
    trainer = _trainer(cfg, run_dir, loggers, build_callbacks(cfg) + _prediction_callbacks(cfg, dm, run_dir))
    record_summary(loggers, {k: v for k, v in sizes.items() if not isinstance(v, dict)})
    data = ResumableData(dm, int(cfg.seed), position)
    trainer.fit(module, datamodule=data, ckpt_path=resume_from, weights_only=True)
    metrics = _metrics(trainer)  # train / val (the test stage replaces the trainer's metrics)
    best = trainer.checkpoint_callback.best_model_path if trainer.checkpoint_callback else ""
    if cfg.train.test_after_fit:
        trainer.test(module, datamodule=data, ckpt_path=best or None, weights_only=True)
        metrics.update(_metrics(trainer))
    return {
        **sizes,
        "metrics": metrics,
        "checkpoints": {"best": best or None, "last": str(last) if last.exists() else None},
        "dataset_sizes": _split_sizes(dm),
        "unreadable": {"train_replaced": metrics.get("train/unreadable_replaced"),
                       "test": metrics.get("test/num_unreadable")},
        "resumed_from": resume_from,
        "class_names": dm.class_names,
    }


def _prediction_callbacks(cfg: DictConfig, dm: Any, run_dir: Path, class_names: Any = None) -> list[L.Callback]:
    """Class names into every checkpoint; test_predictions.csv after every test stage."""
    return [StoreClassNames(dm), TestPredictions(dm, run_dir, class_names, int(cfg.top_k))]


def _size(value: Any) -> list[int]:
    return [int(value)] * 2 if isinstance(value, int) else [int(v) for v in value]


def load_checkpoint_model(path: str) -> tuple[nn.Module, dict[str, Any]]:
    """(model, the input it was trained for) from a checkpoint of this framework (Lightning .ckpt) or a
    model checkpoint of mtv.interop (e.g. a released scenic checkpoint converted by mtv.interop.convert)."""
    raw = read_checkpoint(path, key="ckpt_path")
    if "hyper_parameters" not in raw:
        model, meta = load_model_checkpoint(path)
        return model, {"num_classes": meta["num_classes"], "num_frames": meta["num_frames"],
                       "crop_size": _size(meta["image_size"]), "model": meta["model_cfg"]}
    trained = raw["hyper_parameters"]["cfg"]
    model = model_of(trained, with_init=False)  # every weight comes from the checkpoint
    model.load_state_dict(model_weights(raw["state_dict"]))
    return model, {"num_classes": trained["dataset"]["num_classes"], "num_frames": trained["data"]["num_frames"],
                   "crop_size": _size(trained["data"]["crop_size"]), "model": trained["model"]}


def _described(model_cfgs: list[dict[str, Any]]) -> dict[str, Any]:
    """results.json's model fields for the evaluated checkpoint(s), not for the command line's model."""
    if len(model_cfgs) == 1:
        return describe_model(model_cfgs[0])
    members = [describe_model(m) for m in model_cfgs]
    return {"model": "ensemble", "members": members,
            "variant": " | ".join(str(m.get("variant", m["model"])) for m in members)}


def _check_same_input(cfg: DictConfig, trained: dict[str, Any], path: str) -> None:
    now = {"num_classes": int(cfg.dataset.num_classes), "num_frames": int(cfg.data.num_frames),
           "crop_size": _size(cfg.data.crop_size)}
    for key, value in now.items():
        if trained[key] != value:
            section = "dataset" if key == "num_classes" else "data"
            raise ConfigError(f"{path} was trained with {section}.{key}={trained[key]} but {section}.{key}={value}: "
                              f"evaluate it with {section}.{key}={trained[key]} (and a dataset with its classes)")


def evaluate(cfg: DictConfig, run_dir: Path) -> dict[str, Any]:
    paths = [cfg.ckpt_path] if cfg.ckpt_path else list(cfg.ckpt_paths)
    models, model_cfgs = [], []
    for path in paths:
        model, trained = load_checkpoint_model(path)
        _check_same_input(cfg, trained, path)
        models.append(model)
        model_cfgs.append(trained["model"])
    if len(models) == 1:
        model = models[0]
    else:  # ensemble of separately trained checkpoints (members of ensembles are flattened)
        kinds = {get_family(str(m["name"])).name for m in model_cfgs}
        if len(kinds) > 1:
            raise ConfigError(f"ckpt_paths mixes model families ({', '.join(sorted(kinds))}): an evaluated "
                              "ensemble is counted by one family; evaluate the families separately")
        model = Ensemble([m for model in models for m in (model.members if isinstance(model, Ensemble) else [model])])
    module = _module(cfg, model)
    sizes = _size_fields(profile_of(module.model, model_cfgs[0], inputs_of(cfg)))
    dm = build_datamodule(cfg)
    loggers = build_loggers(cfg, run_dir, _is_rank_zero())
    class_names = read_checkpoint(paths[0], "ckpt_path", mmap=True).get("class_names")  # names the model was trained with
    trainer = _trainer(cfg, run_dir, loggers, _prediction_callbacks(cfg, dm, run_dir, class_names))
    record_summary(loggers, {k: v for k, v in sizes.items() if not isinstance(v, dict)})
    trainer.test(module, datamodule=dm)
    metrics = _metrics(trainer)
    return {
        **sizes,
        **_described(model_cfgs),
        "metrics": metrics,
        "checkpoints": {"evaluated": paths},
        "dataset_sizes": _split_sizes(dm),
        "unreadable": {"test": metrics.get("test/num_unreadable")},
        "class_names": class_names or dm.class_names,
    }


def profile(cfg: DictConfig, run_dir: Path) -> dict[str, Any]:
    # shapes are all counting needs: no memory, no random init, no checkpoint files read
    resolved = OmegaConf.to_container(cfg, resolve=True)
    with torch.device("meta"):
        model = model_of(resolved, with_init=False)
    result = profile_of(model, resolved["model"], inputs_of(resolved))
    print(format_profile_of(result, resolved["model"]))
    write_json(run_dir / "profile.json", result)
    return {**_size_fields(result), "metrics": {}}


def _is_rank_zero() -> bool:
    from lightning.fabric.utilities.rank_zero import rank_zero_only

    return rank_zero_only.rank == 0


TASKS = {"train": train, "eval": evaluate, "profile": profile}
