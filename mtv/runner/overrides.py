"""Command-line overrides whose key is declared nowhere: caught before Hydra composes, with the key meant.

Hydra answers `fusion.layers=[5,11]` with "use +fusion.layers", which would add an unused key; the key is
`model.fusion.layers`. Every override of a dotted key is looked up in the run schema and in each model
family's schema; one that starts with no top-level key but ends like a declared path is refused.
"""

from __future__ import annotations

from pathlib import Path

from mtv import ConfigError
from mtv.models import families
from mtv.runner.schema import RunConfig
from mtv.schema import field_paths

CONF = Path(__file__).resolve().parents[2] / "conf"


def _declared_paths() -> list[str]:
    paths = field_paths(RunConfig)
    for family in set(families().values()):
        paths.extend(field_paths(family.config, "model."))
    return paths


def check_override_keys(args: list[str]) -> None:
    """Raise ConfigError for the first `key=value` / `+key=value` whose top-level key is neither a run
    config key nor a config group, naming the declared key it most likely means."""
    top = {path.split(".")[0] for path in field_paths(RunConfig)} | {"hydra"}
    groups = {p.name for p in CONF.iterdir() if p.is_dir()}
    paths = None
    for arg in args:
        if arg.startswith("-") or "=" not in arg:
            continue
        key = arg.split("=", 1)[0].lstrip("+~")
        first = key.split("/")[0].split(".")[0].split("@")[0]
        if first in top or first in groups:
            continue
        paths = paths or _declared_paths()
        meant = sorted({p for p in paths if p.endswith("." + key)}, key=len)
        hint = f"; did you mean {meant[0]}={arg.split('=', 1)[1]}?" if meant else ""
        raise ConfigError(f"unknown key {key} in {arg!r}: no config group or run key {first!r}{hint}")
