"""Start a MoA model from a state dict in the authors' layout (theirs, or one this project trained).

Used for fine-tuning (`model.init.checkpoint`), for evaluating their weights and for a video model, whose
per-frame backbone has exactly the image model's parameters. What may differ from the model:
- the head, when the class count differs: the new model's head is kept;
- relative position bias tables, when a window or MOA grid differs (another input size clips the last
  window or changes the number of query patches): resized bilinearly over the grid of offsets;
- `relative_position_index` buffers: derived from the geometry, so ignored.
Anything else that does not match is a ConfigError naming the first offending key and its shapes.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path

from torch import Tensor

from mtv.checkpoints import read_model_weights
from mtv.errors import ConfigError
from mtv.models.moa.model import MoATransformer
from mtv.models.resize import resize_bilinear

HEAD_KEYS = ("head.weight", "head.bias")
INDEX_SUFFIX = "relative_position_index"


def _resize_table(table: Tensor, grid: tuple[int, int]) -> Tensor:
    """((2s-1)^2, heads) over a square source grid -> ((2h-1)(2w-1), heads) for the target grid."""
    side = math.isqrt(table.shape[0])
    rows, cols = 2 * grid[0] - 1, 2 * grid[1] - 1
    image = table.T.reshape(1, table.shape[1], side, side)
    return resize_bilinear(image, (rows, cols)).reshape(table.shape[1], rows * cols).T


def _fitted(model: MoATransformer, state: Mapping[str, Tensor], label: str) -> dict[str, Tensor]:
    """The tensors to load into `model`: every key checked, tables resized, the head dropped if it differs."""
    target = model.state_dict()
    tables = model.relative_tables()
    state = {k: v for k, v in state.items() if not k.endswith(INDEX_SUFFIX)}
    head_fits = all(k in state and k in target and state[k].shape == target[k].shape for k in HEAD_KEYS)
    skip = set() if head_fits else set(HEAD_KEYS)
    missing = [k for k in target if k not in state and k not in skip]
    unexpected = [k for k in state if k not in target and k not in skip]
    if missing or unexpected:
        first = f"missing {missing[0]} {tuple(target[missing[0]].shape)}" if missing else \
            f"unexpected {unexpected[0]} {tuple(state[unexpected[0]].shape)}"
        raise ConfigError(
            f"{label} does not fit this MoA model ({len(missing)} missing, {len(unexpected)} unexpected keys; first: "
            f"{first}); check model.depths, model.window_size and the input size (a stage gets an MOA "
            "module only when its map holds a window)"
        )
    fitted = {}
    for key, value in target.items():
        if key in skip:
            continue
        src = state[key]
        if src.shape != value.shape:
            square = src.ndim == 2 and math.isqrt(src.shape[0]) ** 2 == src.shape[0]
            if key not in tables or not square or src.shape[1] != value.shape[1]:
                raise ConfigError(
                    f"{label}: {key} has shape {tuple(src.shape)}, the model needs {tuple(value.shape)}; only the "
                    "head (other class count) and relative position tables (other window grid) may differ; check "
                    "model.embed_dim, model.num_heads, model.window_size, model.mlp_ratio"
                )
            src = _resize_table(src, tables[key])
        fitted[key] = src.to(value.dtype)
    return fitted


def init_from_checkpoint(model: MoATransformer, source: str | Path | Mapping[str, Tensor]) -> None:
    """Load a state dict in the authors' layout into `model`, validating every key before changing anything."""
    label = f"model.init.checkpoint={str(source)!r}" if isinstance(source, (str, Path)) else "MoA state dict"
    state = read_model_weights(source, "model.init.checkpoint") if isinstance(source, (str, Path)) else source
    model.load_state_dict(_fitted(model, state, label), strict=False)
