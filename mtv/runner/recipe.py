"""`task=eval` and `task=predict` use the data recipe the checkpoint was trained with.

A model trained on 36-px short sides and evaluated on 256-px ones is a different experiment, and nothing
said so. The recipe keys below are read from the checkpoint's stored config (a run.py checkpoint keeps
the whole resolved config; a converted scenic checkpoint knows its frames and crop) and replace the
composed values, except keys given on the command line (`data.short_side=128`): those win, and each one
that differs from the trained value is printed. Frames and crop size are the model's input shape: an
override that changes them is refused at start-up (the model could not run).
"""

from __future__ import annotations

from typing import Any

from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import DictConfig, OmegaConf

from mtv import ConfigError, checkpoints

RECIPE_KEYS = ("num_frames", "stride", "short_video", "short_side", "crop_size", "normalize", "test_clips",
               "test_crops")
MODEL_INPUT_KEYS = ("num_frames", "crop_size")
TRAINED_RECIPE_TASKS = ("eval", "predict")


def trained_recipe(checkpoint: dict[str, Any]) -> dict[str, Any]:
    """The recipe keys a checkpoint knows: all of them for run.py checkpoints, frames and crop for
    converted ones (mtv.interop.checkpoint)."""
    if "hyper_parameters" in checkpoint:
        data = checkpoint["hyper_parameters"]["cfg"]["data"]
        return {key: data[key] for key in RECIPE_KEYS if key in data}
    height, width = checkpoint["image_size"]
    return {"num_frames": int(checkpoint["num_frames"]), "crop_size": height if height == width else [height, width]}


def command_line_data_keys(overrides: list[str]) -> set[str]:
    """`data.<key>` names set on the command line (`data.x=1`, `+data.x=1`, `++data.x=1`)."""
    parsed = OverridesParser.create().parse_overrides(overrides)
    return {o.key_or_group.split(".", 1)[1] for o in parsed if o.key_or_group.startswith("data.")}


def _plain(value: Any) -> Any:
    return OmegaConf.to_container(value, resolve=True) if OmegaConf.is_config(value) else value


def _checkpoint_paths(cfg: DictConfig) -> list[str]:
    return [cfg.ckpt_path] if cfg.get("ckpt_path") else list(cfg.get("ckpt_paths") or [])


def _common_recipe(paths: list[str], chosen: set[str]) -> dict[str, Any]:
    """The recipe of the first checkpoint; ensemble members must agree on every key not chosen on the
    command line."""
    recipes = [trained_recipe(checkpoints.read_checkpoint(path, "ckpt_path", mmap=True)) for path in paths]
    for key, value in recipes[0].items():
        others = {str(r.get(key)) for r in recipes[1:] if key in r} - {str(value)}
        if others and key not in chosen:
            raise ConfigError(f"the checkpoints were trained with different data.{key} ({paths[0]}: {value}; "
                              f"others: {', '.join(sorted(others))}): choose one with data.{key}=<value>")
    return recipes[0]


def adopt_trained_recipe(cfg: DictConfig, overrides: list[str]) -> list[str]:
    """Set cfg.data's recipe keys to the trained values (command-line keys excepted); return the lines
    to print: the recipe used and every command-line value that differs from the trained one."""
    paths = _checkpoint_paths(cfg)
    chosen = command_line_data_keys(overrides)
    trained = _common_recipe(paths, chosen)
    notes = []
    for key, value in trained.items():
        if key not in cfg.data:
            continue  # a key this version no longer has
        if key not in chosen:
            cfg.data[key] = value
            continue
        now = _plain(cfg.data[key])
        if now != value:
            if key in MODEL_INPUT_KEYS:
                raise ConfigError(f"data.{key}={now} on the command line, but {paths[0]} was trained with "
                                  f"data.{key}={value}, its input shape: drop the override")
            notes.append(f"  data.{key}={now} (command line) differs from the trained data.{key}={value}")
    used = ", ".join(f"{key}={_plain(cfg.data[key])}" for key in trained if key in cfg.data)
    return [f"{cfg.task}: data recipe of {paths[0]}: {used}", *notes]
