"""The model-family registry: `model.name` -> the family that owns that model's schema, build and counting.

A family is one module that calls `register_family` with a `ModelFamily` on import: a subpackage of
`mtv.models`, or a module of another installed package named by an entry point in the group `mtv.models`
(`[project.entry-points."mtv.models"] toy = "toy_package.family"`), loaded with the built-in ones.
The runner, the LightningModule, `task=profile` and the table builder only ever go through
`get_family(name)`; none of them names a family.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import Any

from torch import nn

from mtv.errors import ConfigError


@dataclass(frozen=True)
class ModelInputs:
    """What the data decide about a model: classes (`dataset.num_classes`), clip length (`data.num_frames`)
    and crop (`data.crop_size`, as (height, width))."""

    num_classes: int
    num_frames: int
    image_size: tuple[int, int]


@dataclass(frozen=True)
class ModelFamily:
    """Everything the rest of the project needs to know about one family of models.

    - `config`: the dataclass that is the schema of the `model` node (registered as a Hydra structured
      config, so types, defaults and unknown keys are checked by OmegaConf); it has a `name` field.
    - `validate(cfg, inputs)`: cross-field rules, raising `mtv.ConfigError` naming the key and the fix,
      before any tensor exists (start-up checks call it).
    - `build(cfg, inputs)`: the initialised `nn.Module` (random init, then `cfg.init` checkpoints).
      Modules map float `(B, 3, T, H, W)` to logits `(B, num_classes)` and provide `no_weight_decay()`
      (parameter names), `layer_id(name)` and `num_layers_for_lr_decay` for layer-wise lr decay.
    - `profile(model, inputs)`: counts per component, a JSON-able dict with at least `params_total`,
      `gmacs_per_view` (one clip, batch 1), `params` and `gmacs` (both by component).
    - `format_profile(profile)`: that dict as Markdown.
    - `docs`: the family's documentation page (repository-relative path).
    - `names`: more `model.name` values served by this family (e.g. presets that differ in defaults).
    - `describe(cfg)`: optional fields for a run's results.json (e.g. MTV's variant, views and fusion).

    A config's `init` field, where the family has one, holds every file the model reads: the runner resets
    it to its defaults when it rebuilds a trained model or counts one.
    """

    name: str
    config: type
    validate: Callable[[Any, ModelInputs], None]
    build: Callable[[Any, ModelInputs], nn.Module]
    profile: Callable[[nn.Module, ModelInputs], dict[str, Any]]
    format_profile: Callable[[dict[str, Any]], str]
    docs: str
    names: tuple[str, ...] = ()
    describe: Callable[[Any], dict[str, Any]] | None = None


_FAMILIES: dict[str, ModelFamily] = {}
_BUILTINS_LOADED = False


def register_family(family: ModelFamily) -> ModelFamily:
    """Make `family` reachable as `model.name=<family.name>` (and each of `family.names`)."""
    for name in (family.name, *family.names):
        known = _FAMILIES.get(name)
        if known is not None and known is not family:
            raise ValueError(f"model family {name!r} is registered twice ({known.config.__module__}, "
                             f"{family.config.__module__})")
        _FAMILIES[name] = family
    return family


def _load_builtins() -> None:
    """Import every subpackage of `mtv.models` and every `mtv.models` entry point: each registers its
    family on import."""
    global _BUILTINS_LOADED
    if _BUILTINS_LOADED:
        return
    _BUILTINS_LOADED = True
    import mtv.models

    for module in pkgutil.iter_modules(mtv.models.__path__):
        if module.ispkg:
            importlib.import_module(f"mtv.models.{module.name}")
    for entry in entry_points(group="mtv.models"):
        entry.load()


def families() -> dict[str, ModelFamily]:
    """All registered `model.name` values and their families."""
    _load_builtins()
    return dict(_FAMILIES)


def get_family(name: str) -> ModelFamily:
    """The family of `model.name=name`, or a ConfigError listing the known names."""
    known = families()
    if name not in known:
        raise ConfigError(f"model.name={name!r} is not a registered model family; known: {', '.join(sorted(known))}")
    return known[name]
