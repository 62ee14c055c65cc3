"""Convert a released scenic MTV or ViViT checkpoint and its config into a checkpoint run.py evaluates and fine-tunes.

    python -m mtv.interop.convert --config k400_mtv_b2_cva.json --checkpoint checkpoint_57000 --out mtv_b.ckpt

CONFIG is scenic's config as a plain dict in JSON or YAML (`dataset_configs`, `model`; a file that wraps
it as {"config": {...}}, like the scenic fixture, works too). CHECKPOINT is a Flax msgpack train state
(or its checkpoint directory) or an `.npz` of '/'-joined Flax paths. The output format is described in
mtv.interop.checkpoint; its `model_cfg` is our Hydra `model` node. Views of the standard sizes are written
as a variant (`Ti/8+S/4+B/2`); other sizes reuse the variant grammar with `encoder_sizes` overriding the
size names. Before writing, the node is rebuilt through the Hydra path and must give exactly the
architecture scenic's config describes (including the view order). A ViViT config (one with
`model.attention_config`) becomes a `name: vivit` node the same way (mtv.interop.scenic_vivit).
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import yaml

from mtv.errors import ConfigError
from mtv.interop.checkpoint import save_model_checkpoint
from mtv.interop.scenic import load_params, model_from_scenic, scenic_model_config
from mtv.interop.scenic_vivit import checked_model_cfg as vivit_model_cfg
from mtv.interop.scenic_vivit import is_vivit_config, scenic_vivit_spec, vivit_from_scenic
from mtv.models.mtv.config import MTVConfig
from mtv.models.variants import ENCODER_SIZES, ViewSpec


class _ConfigLoader(yaml.SafeLoader):
    """Safe YAML plus `!!python/tuple`, which `yaml.dump(config.to_dict())` writes for scenic's tuples."""


_ConfigLoader.add_constructor("tag:yaml.org,2002:python/tuple", lambda loader, node: loader.construct_sequence(node))


def read_scenic_config(path: str | Path) -> dict[str, Any]:
    """scenic's config dict from a JSON or YAML file."""
    path = Path(path)
    text = path.read_text()
    try:
        config = json.loads(text) if path.suffix == ".json" else yaml.load(text, Loader=_ConfigLoader)
    except (json.JSONDecodeError, yaml.YAMLError) as err:
        raise ConfigError(f"{path}: cannot parse the scenic config ({err})") from err
    if isinstance(config, Mapping) and "model" not in config and isinstance(config.get("config"), Mapping):
        config = config["config"]
    if not isinstance(config, Mapping) or "model" not in config:
        raise ConfigError(f"{path}: expected scenic's config as a dict with 'dataset_configs' and 'model'")
    return dict(config)


def _numbers(hidden_size: int, num_heads: int, mlp_dim: int, num_layers: int) -> dict[str, int]:
    return {"hidden_size": hidden_size, "num_heads": num_heads, "mlp_dim": mlp_dim, "num_layers": num_layers}


def hydra_model_cfg(config: MTVConfig) -> dict[str, Any]:
    """Our Hydra `model` node (plain dict) for a model built from a scenic config."""
    standard = {
        (s.hidden_size, s.num_heads, s.mlp_dim, s.num_layers): name for name, s in ENCODER_SIZES.items()
    }
    sizes = [(v.hidden_size, v.num_heads, v.mlp_dim, v.num_layers) for v in config.views]
    names = {size: standard[size] for size in sizes if size in standard}
    free = [name for name in ENCODER_SIZES if name not in names.values()]
    overrides: dict[str, dict[str, int]] = {}
    for size in sizes:
        if size in names:
            continue
        if not free:
            raise ConfigError(
                f"scenic config has more distinct non-standard view sizes than size names "
                f"({', '.join(ENCODER_SIZES)}) to carry them in model.encoder_sizes"
            )
        names[size] = free.pop(0)
        overrides[names[size]] = _numbers(*size)
    f, g = config.fusion, config.global_encoder
    return {
        "name": "mtv",
        "variant": "+".join(ViewSpec(names[size], v.patch).name for size, v in zip(sizes, config.views)),
        "encoder_sizes": overrides or None,
        "frame_strides": None,
        "fusion": {"type": f.type, "layers": list(f.layers), "bottleneck_tokens": f.bottleneck_tokens,
                   "descending": f.descending, "use_query_config": f.use_query_config},
        "global_encoder": {"num_layers": g.num_layers, "num_heads": g.num_heads, "mlp_dim": g.mlp_dim,
                           "hidden_size": g.hidden_size, "merge": g.merge},
        "classifier": config.classifier,
        "dropout": config.dropout,
        "attention_dropout": config.attention_dropout,
        "stochastic_depth": config.stochastic_depth,
    }


def _architecture(config: MTVConfig) -> MTVConfig:
    """The config without display names and written order: what decides the computation."""
    return replace(config, views=tuple(replace(v, name="", size="") for v in config.views), written_order=())


def checked_model_cfg(config: MTVConfig) -> dict[str, Any]:
    """`hydra_model_cfg`, verified to rebuild exactly `config` through `MTVConfig.from_cfg`."""
    model_cfg = hydra_model_cfg(config)
    rebuilt = MTVConfig.from_cfg(model_cfg, config.num_classes, config.num_frames, config.image_size)
    if [(v.patch, v.hidden_size) for v in rebuilt.views] != [(v.patch, v.hidden_size) for v in config.views]:
        raise ConfigError(
            f"scenic's view order {model_cfg['variant']} is not fewest-tokens-first, but the Hydra model config "
            "sorts views by token count, so it cannot express this checkpoint (CVA pairs and bottleneck order "
            "follow the view order); use mtv.interop.scenic.model_from_scenic directly"
        )
    if _architecture(rebuilt) != _architecture(config):
        raise ConfigError(f"internal: model_cfg {model_cfg} rebuilds {rebuilt}, expected {config}")
    return model_cfg


def _convert_vivit(config: Mapping[str, Any], params: Mapping[str, Any], out: str | Path) -> dict[str, Any]:
    spec = scenic_vivit_spec(config, params)
    model_cfg = vivit_model_cfg(spec)
    model = vivit_from_scenic(config, params)
    save_model_checkpoint(out, model, model_cfg, spec.num_classes, spec.num_frames, spec.image_size, source="scenic")
    return {"model_cfg": model_cfg, "num_classes": spec.num_classes, "num_frames": spec.num_frames,
            "image_size": list(spec.image_size), "source": "scenic"}


def convert(config: Mapping[str, Any], checkpoint: str | Path, out: str | Path) -> dict[str, Any]:
    """Write the model checkpoint; returns its metadata (everything but the state dict)."""
    params = load_params(checkpoint)
    if is_vivit_config(config):
        return _convert_vivit(config, params, out)
    mtv_config = scenic_model_config(config, params)
    model_cfg = checked_model_cfg(mtv_config)
    model = model_from_scenic(config, params)
    save_model_checkpoint(out, model, model_cfg, mtv_config.num_classes, mtv_config.num_frames,
                          mtv_config.image_size, source="scenic")
    return {"model_cfg": model_cfg, "num_classes": mtv_config.num_classes, "num_frames": mtv_config.num_frames,
            "image_size": list(mtv_config.image_size), "source": "scenic"}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mtv.interop.convert", description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", required=True, help="scenic config as JSON or YAML")
    parser.add_argument("--checkpoint", required=True, help="Flax msgpack checkpoint (file or directory) or .npz")
    parser.add_argument("--out", required=True, help="output .ckpt")
    args = parser.parse_args(argv)
    try:
        meta = convert(read_scenic_config(args.config), args.checkpoint, args.out)
    except (ConfigError, FileNotFoundError) as err:
        parser.exit(2, f"error: {err}\n")
    cfg = meta["model_cfg"]
    model = (f"fusion {cfg['fusion']['type']} {cfg['fusion']['layers']}" if cfg["name"] == "mtv"
             else f"attention {cfg['attention']}, classifier {cfg['classifier']}")
    print(f"wrote {args.out}: {cfg['name']} variant {cfg['variant']}, {model}, "
          f"{meta['num_classes']} classes, {meta['num_frames']} frames, image {meta['image_size']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
