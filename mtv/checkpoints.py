"""The one place that reads checkpoint files: always as data (`torch.load(weights_only=True)`).

A checkpoint is a pickle, and unpickling can run any code the file names, so a downloaded `.ckpt` or a
shared run directory would otherwise be a program. Everything the project loads (Lightning `.ckpt` for
eval, resume and fine-tuning, checkpoints converted by `mtv.interop.convert`, ViT and foreign-model state
dicts) goes through `read_checkpoint`, which lets through only tensors and plain Python values. The
project's own checkpoints need nothing more: the LightningModule stores its config as a plain dict.

A file that needs more (an old checkpoint holding pickled objects) is refused with a message naming the
file. If you trust it, convert it once into a plain one:

    python -m mtv.checkpoints <trusted.ckpt> <plain.ckpt>

Model families call `read_state_dict(path)` for a weights file and `read_checkpoint(path)` for the whole
dict.
"""

from __future__ import annotations

import argparse
import pickle
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from mtv.errors import ConfigError

STATE_DICT_WRAPPERS = ("state_dict", "model", "module", "model_state")  # Lightning, timm/DeiT, DDP, PySlowFast
MODEL_PREFIX = "model."  # the LightningModule's attribute: its checkpoints name weights "model.<name>"


def _label(path: Path, key: str | None) -> str:
    return f"{key}={str(path)!r}" if key else str(path)


def read_checkpoint(path: str | Path, key: str | None = None, mmap: bool = False) -> dict[str, Any]:
    """The dict stored in a `torch.save` file, read as data only (tensors, numbers, strings, containers).

    `key` is the config key that named the file (e.g. `ckpt_path`), used in error messages. `mmap`: map the
    tensors instead of reading them (to look at a large checkpoint's config)."""
    path = Path(path)
    where = _label(path, key)
    if not path.is_file():
        raise ConfigError(f"{where}: no such file")
    try:
        loaded = torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)
    except pickle.UnpicklingError as err:
        raise ConfigError(
            f"{where}: refused, this checkpoint needs arbitrary unpickling, which can run code "
            f"({_first_line(err)}). Only tensors and plain values are read. If you trust the file, convert "
            f"it once: python -m mtv.checkpoints {path} <plain copy>.ckpt"
        ) from None
    except (RuntimeError, EOFError, OSError) as err:
        raise ConfigError(f"{where}: not a readable torch checkpoint ({_first_line(err)})") from None
    if not isinstance(loaded, Mapping):
        raise ConfigError(f"{where}: holds a {type(loaded).__name__}, expected a dict (a state dict or checkpoint)")
    return dict(loaded)


def read_state_dict(path: str | Path, key: str | None = None) -> dict[str, Tensor]:
    """The tensors of a weights file: a plain state dict, or one inside a `state_dict` / `model` /
    `module` entry (Lightning, timm and DeiT training checkpoints). Names are returned unchanged."""
    state: Any = read_checkpoint(path, key)
    while isinstance(state, Mapping) and not _all_tensors(state):
        inner = next((state[w] for w in STATE_DICT_WRAPPERS if isinstance(state.get(w), Mapping)), None)
        if inner is None:
            break
        state = inner
    if not isinstance(state, Mapping) or not state or not _all_tensors(state):
        raise ConfigError(f"{_label(Path(path), key)}: no state dict of tensors in this file (looked at the top "
                          f"level and inside {', '.join(STATE_DICT_WRAPPERS)})")
    return dict(state)


def model_weights(state: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """The model's own weights from a LightningModule state dict ("model." prefix removed)."""
    return {key[len(MODEL_PREFIX):]: value for key, value in state.items() if key.startswith(MODEL_PREFIX)}


def read_model_weights(path: str | Path, key: str | None = None) -> dict[str, Tensor]:
    """A model's weights from any weights file: a plain state dict, a wrapped one (`read_state_dict`), or a
    Lightning checkpoint of this project (its "model." prefix removed)."""
    state = read_state_dict(path, key)
    return model_weights(state) if any(name.startswith(MODEL_PREFIX) for name in state) else state


def _all_tensors(state: Mapping[str, Any]) -> bool:
    return all(isinstance(k, str) and isinstance(v, Tensor) for k, v in state.items())


def _first_line(err: BaseException) -> str:
    """The informative line of torch's long error (the refused GLOBAL), else its first line."""
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    return next((line for line in lines if "GLOBAL" in line), lines[0] if lines else type(err).__name__)


def plain(value: Any, where: str = "checkpoint") -> Any:
    """`value` as tensors and plain Python values only; anything else is an error naming where it is."""
    if value is None or isinstance(value, (bool, int, float, str, bytes, Tensor, torch.Size)):
        return value
    if isinstance(value, Mapping):
        return {k: plain(v, f"{where}/{k}") for k, v in value.items()}
    if isinstance(value, Sequence):  # lists, tuples, OmegaConf ListConfig
        items = [plain(v, f"{where}/{i}") for i, v in enumerate(value)]
        return tuple(items) if isinstance(value, tuple) else items
    if isinstance(value, Path):
        return str(value)
    raise ConfigError(f"{where}: a {type(value).__module__}.{type(value).__qualname__} object, which is not plain "
                      "data; convert it by hand")


def convert_trusted(source: str | Path, target: str | Path) -> None:
    """Unpickle a checkpoint YOU trust (this runs any code it contains) and write its plain-data copy."""
    loaded = torch.load(source, map_location="cpu", weights_only=False)
    torch.save(plain(loaded, str(source)), target)
    read_checkpoint(target)  # what was written is readable as data


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Copy a trusted checkpoint into one that loads as data only. "
                                     "Unpickling the source runs any code in it: only use files you trust.")
    parser.add_argument("source", type=Path)
    parser.add_argument("target", type=Path)
    args = parser.parse_args(argv)
    convert_trusted(args.source, args.target)
    print(f"wrote {args.target}")


if __name__ == "__main__":
    main()
