"""Config schemas are dataclasses: this module turns a config node into its dataclass, or a ConfigError.

Hydra checks types and defaults against the dataclasses registered in its ConfigStore when it composes;
keys added with `+` bypass its struct check, so unknown keys are checked here against the dataclass
fields, recursively, with a did-you-mean. Plain Python only (no omegaconf): the model zoo builds from
plain dicts where Hydra is not installed.
"""

from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from collections.abc import Mapping
from typing import Any, TypeVar

from mtv.errors import ConfigError

T = TypeVar("T")


def _nested_schema(cls: type, name: str) -> type | None:
    """The dataclass type of field `name` of `cls` (through Optional), if it is one."""
    hint = typing.get_type_hints(cls)[name]
    candidates = typing.get_args(hint) or (hint,)
    return next((c for c in candidates if dataclasses.is_dataclass(c)), None)


def unknown_keys(node: Any, cls: type, where: str) -> None:
    """Raise ConfigError for the first keys of `node` that `cls` does not declare (nested dataclasses too)."""
    if not isinstance(node, Mapping):  # an OmegaConf DictConfig is a Mapping too
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
    """`node` (a mapping, an OmegaConf node, or already an instance) as an instance of the dataclass `cls`;
    keys it leaves out take the dataclass defaults."""
    if isinstance(node, cls):
        return node
    if type(node).__module__.startswith("omegaconf"):
        from omegaconf import OmegaConf

        node = OmegaConf.to_container(node, resolve=True)
    unknown_keys(node, cls, where)
    return _build(cls, node or {}, where)


def _item_schema(cls: type, name: str) -> type | None:
    """The dataclass type of the items of list field `name` of `cls` (through Optional), if it is one."""
    hint = typing.get_type_hints(cls)[name]
    optional = typing.get_origin(hint) in (typing.Union, types.UnionType)
    for candidate in typing.get_args(hint) if optional else (hint,):
        if typing.get_origin(candidate) in (list, tuple):
            item = next(iter(typing.get_args(candidate)), None)
            if dataclasses.is_dataclass(item):
                return item
    return None


def _build(cls: type[T], node: Mapping[str, Any], where: str) -> T:
    kwargs = {}
    for f in dataclasses.fields(cls):
        if f.name not in node:
            continue
        value, sub, item = node[f.name], _nested_schema(cls, f.name), _item_schema(cls, f.name)
        if sub and isinstance(value, Mapping):
            value = _build(sub, value, f"{where}{f.name}.")
        elif item and isinstance(value, (list, tuple)):
            value = [_build(item, v, f"{where}{f.name}.{i}.") if isinstance(v, Mapping) else v
                     for i, v in enumerate(value)]
        kwargs[f.name] = value
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as err:
        raise ConfigError(f"{where.rstrip('.')}: {err}") from err


def field_paths(cls: type, prefix: str = "") -> list[str]:
    """Every dotted key path a dataclass declares, nested dataclasses included (`fusion.layers`, ...)."""
    paths = []
    for f in dataclasses.fields(cls):
        paths.append(prefix + f.name)
        sub = _nested_schema(cls, f.name)
        if sub is not None:
            paths.extend(field_paths(sub, f"{prefix}{f.name}."))
    return paths
