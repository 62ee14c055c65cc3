"""Read Flax checkpoints (msgpack-serialised train states) without JAX or Flax.

Flax writes nested dicts with numpy arrays as msgpack extension type 1 holding a packed
(shape, dtype name, raw C-order bytes) tuple, numpy scalars as type 3 and complex numbers as type 2.
Arrays larger than the msgpack limit (2**30 bytes) are split into a dict marked
`__msgpack_chunked_array__` whose `shape` and `chunks` are tuples stored as {'0': ..., '1': ...}.
`flax.training.checkpoints` names the files `checkpoint_<step>` inside a checkpoint directory.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import msgpack
import numpy as np

from mtv.errors import ConfigError

_NDARRAY, _COMPLEX, _SCALAR = 1, 2, 3
_CHECKPOINT_FILE = re.compile(r"checkpoint_(\d+)")


def _ndarray(data: bytes) -> np.ndarray:
    # Unpacked with raw=True as Flax does, so files written without msgpack's bin type still read.
    shape, dtype, buffer = msgpack.unpackb(data, raw=True)
    name = dtype.decode() if isinstance(dtype, bytes) else dtype
    if name == "bfloat16":  # not a numpy dtype: widen to float32 (bfloat16 is the top half of a float32)
        bits = np.frombuffer(buffer, dtype=np.uint16).astype(np.uint32) << 16
        return bits.view(np.float32).reshape(shape)
    return np.frombuffer(buffer, dtype=np.dtype(name)).reshape(shape)


def _ext_hook(code: int, data: bytes) -> Any:
    if code == _NDARRAY:
        return _ndarray(data)
    if code == _SCALAR:
        return _ndarray(data)[()]
    if code == _COMPLEX:
        real, imag = msgpack.unpackb(data)
        return complex(real, imag)
    return msgpack.ExtType(code, data)


def _as_tuple(value: Any) -> tuple:
    """Flax stores tuples as {'0': x0, '1': x1, ...}."""
    if isinstance(value, Mapping):
        return tuple(value[str(i)] for i in range(len(value)))
    return tuple(value)


def _restore_chunked(tree: Any) -> Any:
    if isinstance(tree, dict):
        if tree.get("__msgpack_chunked_array__"):
            chunks = [np.asarray(c).reshape(-1) for c in _as_tuple(tree["chunks"])]
            return np.concatenate(chunks).reshape(tuple(int(d) for d in _as_tuple(tree["shape"])))
        return {key: _restore_chunked(value) for key, value in tree.items()}
    return tree


def checkpoint_file(path: str | Path) -> Path:
    """The file itself, or in a `flax.training.checkpoints` directory the `checkpoint_<step>` with the
    highest step."""
    path = Path(path)
    if path.is_dir():
        steps = {int(m[1]): p for p in path.iterdir() if (m := _CHECKPOINT_FILE.fullmatch(p.name)) and p.is_file()}
        if not steps:
            raise ConfigError(
                f"{path}: a directory without checkpoint_<step> files; give the msgpack checkpoint file "
                "(Orbax checkpoint directories are not supported)"
            )
        return steps[max(steps)]
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}")
    return path


def read_msgpack(path: str | Path) -> dict[str, Any]:
    """The nested state dict stored in a Flax msgpack checkpoint file (or the latest in its directory)."""
    path = checkpoint_file(path)
    try:
        with open(path, "rb") as f:
            state = msgpack.unpackb(f.read(), ext_hook=_ext_hook, raw=False, strict_map_key=False)
    except (ValueError, msgpack.UnpackException) as err:
        raise ConfigError(f"{path}: not a Flax msgpack checkpoint ({type(err).__name__}: {err})") from err
    if not isinstance(state, dict):
        raise ConfigError(f"{path}: not a Flax checkpoint (top level is {type(state).__name__}, expected a dict)")
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
    `optimizer/target` (2022 layout, flax.optim)."""
    if isinstance(state.get("params"), Mapping):
        params = state["params"]
    elif isinstance(state.get("optimizer"), Mapping) and isinstance(state["optimizer"].get("target"), Mapping):
        params = state["optimizer"]["target"]
    else:
        raise ConfigError(
            f"{source}: no model parameters found: expected a top-level 'params' (current scenic) or "
            f"'optimizer/target' (2022 scenic); top-level keys are {sorted(state)}"
        )
    if set(params) == {"params"}:  # a Flax variables dict saved as is
        params = params["params"]
    return flatten(params)
