"""Read Flax checkpoints (msgpack-serialised train states) without JAX or Flax.

Flax writes nested dicts with numpy arrays as msgpack extension type 1 holding a packed
(shape, dtype name, raw C-order bytes) tuple, numpy scalars as type 3 and complex numbers as type 2.
Arrays larger than the msgpack limit (2**30 bytes) are split into a dict marked
`__msgpack_chunked_array__` whose `shape` and `chunks` are tuples stored as {'0': ..., '1': ...}.
`flax.training.checkpoints` names the files `checkpoint_<step>` inside a checkpoint directory.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import msgpack
import numpy as np

from mtv.errors import ConfigError

_NDARRAY, _COMPLEX, _SCALAR = 1, 2, 3
_CHECKPOINT_FILE = re.compile(r"checkpoint_(\d+)")
MAX_DEPTH = 64  # Flax trees are ~10 deep; a deeper file is malformed (and would exhaust Python's stack)


class _Malformed(ValueError):
    """A bad structure somewhere in the file; `read_msgpack` adds the file name."""


def _ndarray(data: bytes, where: str) -> np.ndarray:
    # Unpacked with raw=True as Flax does, so files written without msgpack's bin type still read.
    try:
        shape, dtype, buffer = msgpack.unpackb(data, raw=True)
        name = dtype.decode() if isinstance(dtype, bytes) else dtype
        shape = _shape(shape, where)
        if not isinstance(buffer, bytes):
            raise TypeError(f"data is a {type(buffer).__name__}, not bytes")
        if name == "bfloat16":  # not a numpy dtype: widen to float32 (bfloat16 is the top half of a float32)
            bits = np.frombuffer(buffer, dtype=np.uint16).astype(np.uint32) << 16
            return bits.view(np.float32).reshape(shape)
        kind = np.dtype(name)
        if kind.hasobject:
            raise TypeError(f"dtype {name!r} holds Python objects")
        return np.frombuffer(buffer, dtype=kind).reshape(shape)
    except _Malformed:
        raise
    except (ValueError, TypeError, msgpack.UnpackException) as err:  # wrong tuple, dtype, or size for the shape
        raise _Malformed(f"{where}: not a valid Flax array ({err}); expected (shape, dtype, C-order bytes)") from None


def _shape(value: Any, where: str) -> tuple[int, ...]:
    dims = _as_tuple(value, where) if isinstance(value, (Mapping, list, tuple)) else None
    if dims is None or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in dims):
        raise _Malformed(f"{where}: array shape {str(value)[:80]} is not a list of non-negative integers")
    return dims


def _as_tuple(value: Any, where: str) -> tuple:
    """Flax stores tuples as {'0': x0, '1': x1, ...}."""
    if isinstance(value, Mapping):
        try:
            return tuple(value[str(i)] for i in range(len(value)))
        except KeyError as err:
            raise _Malformed(f"{where}: tuple entry {err} missing (Flax tuples are {{'0': .., '1': ..}})") from None
    return tuple(value)


def _decode(tree: Any, where: str, depth: int = 0) -> Any:
    """The tree with Flax's extension types and chunked arrays turned into numpy; `where` is the path."""
    if depth > MAX_DEPTH:
        raise _Malformed(f"{where}: nested deeper than {MAX_DEPTH} levels; not a Flax checkpoint")
    if isinstance(tree, msgpack.ExtType):
        if tree.code == _NDARRAY:
            return _ndarray(tree.data, where)
        if tree.code == _SCALAR:
            array = _ndarray(tree.data, where)
            if array.size != 1:
                raise _Malformed(f"{where}: a scalar with {array.size} values")
            return array.reshape(())[()]
        if tree.code == _COMPLEX:
            parts = msgpack.unpackb(tree.data)
            if not (isinstance(parts, list) and len(parts) == 2 and all(isinstance(p, (int, float)) for p in parts)):
                raise _Malformed(f"{where}: a complex number is not (real, imag)")
            return complex(*parts)
        raise _Malformed(f"{where}: unknown msgpack extension type {tree.code}")
    if isinstance(tree, dict):
        if tree.get("__msgpack_chunked_array__"):
            return _chunked(tree, where, depth)
        return {key: _decode(value, f"{where}/{key}", depth + 1) for key, value in tree.items()}
    if isinstance(tree, list):
        return [_decode(value, f"{where}/{i}", depth + 1) for i, value in enumerate(tree)]
    return tree


def _chunked(tree: dict, where: str, depth: int) -> np.ndarray:
    """A chunked array: the declared shape must hold exactly the chunks' values (bounded by the file)."""
    if "chunks" not in tree or "shape" not in tree:
        raise _Malformed(f"{where}: a chunked array needs 'chunks' and 'shape'")
    shape = _shape(tree["shape"], f"{where}/shape")
    chunks = [_decode(c, f"{where}/chunks/{i}", depth + 1) for i, c in enumerate(_as_tuple(tree["chunks"], where))]
    if not all(isinstance(c, np.ndarray) for c in chunks) or not chunks:
        raise _Malformed(f"{where}: chunks must be arrays")
    total = sum(c.size for c in chunks)
    if math.prod(shape) != total:
        raise _Malformed(f"{where}: declared shape {shape} needs {math.prod(shape)} values, the chunks hold {total}")
    return np.concatenate([c.reshape(-1) for c in chunks]).reshape(shape)


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
            state = msgpack.unpackb(f.read(), raw=False, strict_map_key=False)
    except (ValueError, msgpack.UnpackException) as err:
        raise ConfigError(f"{path}: not a Flax msgpack checkpoint ({type(err).__name__}: {err})") from err
    if not isinstance(state, dict):
        raise ConfigError(f"{path}: not a Flax checkpoint (top level is {type(state).__name__}, expected a dict)")
    try:
        return _decode(state, "")
    except _Malformed as err:
        raise ConfigError(f"{path}: at {err}") from None


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
            f"'optimizer/target' (2022 scenic); top-level keys are {sorted(map(str, state))}"
        )
    if set(params) == {"params"}:  # a Flax variables dict saved as is
        params = params["params"]
    return flatten(params)
