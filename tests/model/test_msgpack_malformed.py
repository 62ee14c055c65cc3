"""Malformed Flax msgpack files (issue 12 "msgpack edge cases"): each structure gives mtv.ConfigError
naming the path inside the file, never an uncaught exception, and nothing is allocated from a declared
shape alone."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import msgpack
import numpy as np
import pytest

from mtv import ConfigError
from mtv.interop.flax_msgpack import read_msgpack


def _array(shape: Any, dtype: str, data: bytes) -> msgpack.ExtType:
    """Flax's extension type 1: (shape, dtype name, C-order bytes)."""
    return msgpack.ExtType(1, msgpack.packb((shape, dtype, data), use_bin_type=True))


def _write(tmp_path: Path, state: Any) -> Path:
    path = tmp_path / "checkpoint_1"
    path.write_bytes(msgpack.packb(state, use_bin_type=True))
    return path


def _chunked(shape: dict, chunks: dict) -> dict:
    return {"__msgpack_chunked_array__": True, "shape": shape, "chunks": chunks}


FOUR = _array([4], "float32", np.arange(4, dtype=np.float32).tobytes())

MALFORMED = {
    "huge chunked shape": (_chunked({"0": 2**40, "1": 2**40}, {"0": FOUR}), r"/params/w: declared shape .* needs"),
    "chunked shape of strings": (_chunked({"0": "4"}, {"0": FOUR}), r"/params/w/shape: array shape"),
    "chunks that are not arrays": (_chunked({"0": 4}, {"0": 7}), r"/params/w: chunks must be arrays"),
    "chunked without chunks": ({"__msgpack_chunked_array__": True, "shape": {"0": 1}}, r"/params/w: a chunked"),
    "tuple with a gap": (_chunked({"0": 4}, {"1": FOUR}), r"/params/w: tuple entry '0' missing"),
    "array bytes short of its shape": (_array([1000, 1000], "float32", b"\0" * 16), r"/params/w: not a valid Flax"),
    "unknown dtype": (_array([2], "no_such_type", b"\0" * 8), r"/params/w: not a valid Flax array"),
    "object dtype": (_array([1], "O", b"\0" * 8), r"/params/w: not a valid Flax array .*Python objects"),
    "negative dimension": (_array([-1], "float32", b"\0" * 4), r"/params/w: array shape"),
    "array ext that is not a tuple": (msgpack.ExtType(1, msgpack.packb(5)), r"/params/w: not a valid Flax array"),
    "unknown extension": (msgpack.ExtType(42, b"x"), r"/params/w: unknown msgpack extension type 42"),
}


@pytest.mark.parametrize("case", MALFORMED)
def test_malformed_structure_is_a_config_error_naming_its_path(tmp_path, case):
    value, message = MALFORMED[case]
    path = _write(tmp_path, {"params": {"w": value}})
    with pytest.raises(ConfigError, match=rf"checkpoint_1: at {message}"):
        read_msgpack(path)


def test_deep_nesting_is_refused_with_its_depth(tmp_path):
    tree: Any = {"leaf": FOUR}
    for _ in range(900):
        tree = {"n": tree}
    with pytest.raises(ConfigError, match=r"checkpoint_1: at /n/n/n.*nested deeper than 64"):
        read_msgpack(_write(tmp_path, tree))


def test_well_formed_chunks_still_read(tmp_path):
    state = {"params": {"w": _chunked({"0": 2, "1": 4}, {"0": FOUR, "1": FOUR})}}
    read = read_msgpack(_write(tmp_path, state))
    np.testing.assert_array_equal(read["params"]["w"], np.tile(np.arange(4, dtype=np.float32), (2, 1)))
