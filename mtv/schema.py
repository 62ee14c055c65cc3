"""Config schemas are dataclasses: this module turns a config node into its dataclass, or a ConfigError.

OmegaConf checks types and defaults from the dataclass; keys added with Hydra's `+` bypass its struct
check, so unknown keys are checked here against the dataclass fields, recursively, with a did-you-mean.
"""

from __future__ import annotations

import dataclasses
import difflib
import typing
from collections.abc import Mapping
from typing import Any, TypeVar

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from mtv.errors import ConfigError

T = TypeVar("T")


def _nested_schema(cls: type, name: str) -> type | None:
    """The dataclass type of field `name` of `cls` (through Optional), if it is one."""
    hint = typing.get_type_hints(cls)[name]
    candidates = typing.get_args(hint) or (hint,)
    return next((c for c in candidates if dataclasses.is_dataclass(c)), None)


def unknown_keys(node: Any, cls: type, where: str) -> None:
    """Raise ConfigError for the first keys of `node` that `cls` does not declare (nested dataclasses too)."""
    if not isinstance(node, (Mapping, DictConfig)):
        return
    allowed = [f.name for f in dataclasses.fields(cls)]
    extra = sorted(str(k) for k in node if k not in allowed)
    if extra:
        hints = []
        for key in extra:
            close = difflib.get_close_matches(key, allowed, n=1)
            if close:
                hints.append(f"did you mean {where}{close[0]}?")
        hint = f" ({'; '.join(hints)})" if hints else ""
        raise ConfigError(
            f"unknown key(s) {', '.join(where + k for k in extra)}; allowed: {', '.join(sorted(allowed))}{hint}"
        )
    for name in allowed:
        sub = _nested_schema(cls, name)
        if sub is not None and name in node:
            unknown_keys(node[name], sub, f"{where}{name}.")


def to_schema(cls: type[T], node: Any, where: str) -> T:
    """`node` (a mapping or DictConfig, possibly already typed) as an instance of the dataclass `cls`."""
    if isinstance(node, cls):
        return node
    unknown_keys(node, cls, where)
    try:
        merged = OmegaConf.merge(OmegaConf.structured(cls), node if node is not None else {})
        return typing.cast(T, OmegaConf.to_object(merged))
    except OmegaConfBaseException as err:
        key = getattr(err, "full_key", "") or ""
        raise ConfigError(f"{where}{key}: {err.msg if hasattr(err, 'msg') else err}") from err


def field_paths(cls: type, prefix: str = "") -> list[str]:
    """Every dotted key path a dataclass declares, nested dataclasses included (`fusion.layers`, ...)."""
    paths = []
    for f in dataclasses.fields(cls):
        paths.append(prefix + f.name)
        sub = _nested_schema(cls, f.name)
        if sub is not None:
            paths.extend(field_paths(sub, f"{prefix}{f.name}."))
    return paths
