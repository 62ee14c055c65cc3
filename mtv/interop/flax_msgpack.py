"""Read Flax checkpoints (msgpack-serialised train states) without JAX or Flax.

Flax writes nested dicts with numpy arrays as msgpack extension type 1 holding a packed
(shape, dtype name, raw C-order bytes) tuple, numpy scalars as type 3 and complex numbers as type 2.
Arrays larger than the msgpack limit are split into a dict marked `__msgpack_chunked_array__`.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import msgpack
import numpy as np

_NDARRAY, _COMPLEX, _SCALAR = 1, 2, 3


def _ext_hook(code: int, data: bytes) -> Any:
    if code == _NDARRAY:
        shape, dtype, buffer = msgpack.unpackb(data, raw=False)
        return np.frombuffer(buffer, dtype=np.dtype(dtype)).reshape(shape)
    if code == _SCALAR:
        shape, dtype, buffer = msgpack.unpackb(data, raw=False)
        return np.frombuffer(buffer, dtype=np.dtype(dtype)).reshape(shape)[()]
    if code == _COMPLEX:
        real, imag = msgpack.unpackb(data, raw=False)
        return complex(real, imag)
    return msgpack.ExtType(code, data)


def _restore_chunked(tree: Any) -> Any:
    if isinstance(tree, dict):
        if tree.get("__msgpack_chunked_array__"):
            chunks = [tree["chunks"][str(i)] for i in range(len(tree["chunks"]))]
            return np.concatenate([c.reshape(-1) for c in chunks]).reshape(tree["shape"])
        return {key: _restore_chunked(value) for key, value in tree.items()}
    return tree


def read_msgpack(path: str | Path) -> dict[str, Any]:
    """The nested state dict stored in a Flax msgpack checkpoint file."""
    with open(path, "rb") as f:
        state = msgpack.unpackb(f.read(), ext_hook=_ext_hook, raw=False, strict_map_key=False)
    if not isinstance(state, dict):
        raise ValueError(f"{path}: not a Flax checkpoint (top level is {type(state).__name__}, expected a dict)")
    return _restore_chunked(state)


def flatten(tree: Mapping[str, Any], prefix: str = "") -> dict[str, np.ndarray]:
    """Nested dict -> {'a/b/c': array}."""
    flat: dict[str, np.ndarray] = {}
    for key, value in tree.items():
        path = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(flatten(value, path + "/"))
        else:
            flat[path] = np.asarray(value)
    return flat


def params_from_train_state(state: Mapping[str, Any], source: str = "checkpoint") -> dict[str, np.ndarray]:
    """The model parameters of a scenic train state, flattened: `params` (current layout) or
    `optimizer/target` (2022 layout)."""
    if "params" in state and isinstance(state["params"], Mapping):
        params = state["params"]
        if set(params) == {"params"}:  # a Flax variables dict saved as is
            params = params["params"]
    elif isinstance(state.get("optimizer"), Mapping) and "target" in state["optimizer"]:
        params = state["optimizer"]["target"]
        if isinstance(params, Mapping) and set(params) == {"params"}:
            params = params["params"]
    else:
        raise ValueError(
            f"{source}: no model parameters found: expected a top-level 'params' (current scenic) or "
            f"'optimizer/target' (2022 scenic); top-level keys are {sorted(state)}"
        )
    return flatten(params)
