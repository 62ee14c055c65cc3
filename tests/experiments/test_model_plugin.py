"""A model family added from outside the project: one module (registered through an `mtv.models` entry
point) plus one YAML file (found through `hydra.searchpath`), trained and counted by run.py unchanged."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

from helpers import run_py

FAMILY = '''
"""Toy family: per-clip mean of the pixels through one linear layer."""
from dataclasses import dataclass

import torch
from torch import nn

from mtv.errors import ConfigError
from mtv.models.counting import macs_by_module
from mtv.models.registry import ModelFamily, register_family


@dataclass
class ToyConfig:
    name: str = "toy"
    width: int = 8


class Toy(nn.Module):
    num_layers_for_lr_decay = 1

    def __init__(self, width: int, classes: int) -> None:
        super().__init__()
        self.embed = nn.Linear(3, width)
        self.head = nn.Linear(width, classes)

    def forward(self, video):
        return self.head(self.embed(video.mean(dim=(2, 3, 4))))

    def no_weight_decay(self):
        return set()

    def layer_id(self, name):
        return 0


def validate(cfg, inputs):
    if cfg.width < 1:
        raise ConfigError(f"model.width={cfg.width}: must be >= 1")


def build(cfg, inputs):
    validate(cfg, inputs)
    return Toy(cfg.width, inputs.num_classes)


def profile(model, inputs):
    with torch.device("meta"):
        twin = Toy(model.embed.out_features, model.head.out_features)
        macs = macs_by_module(twin, torch.empty(1, 3, inputs.num_frames, *inputs.image_size))
    params = {"embed": sum(p.numel() for p in model.embed.parameters()),
              "head": sum(p.numel() for p in model.head.parameters())}
    gmacs = {k: macs.get(k, 0) / 1e9 for k in params}
    return {"model": "Toy", "input": [1, 3, inputs.num_frames, *inputs.image_size],
            "params_total": sum(params.values()), "gmacs_per_view": sum(gmacs.values()),
            "params": params, "gmacs": gmacs}


register_family(ModelFamily(name="toy", config=ToyConfig, validate=validate, build=build, profile=profile,
                            format_profile=lambda p: f"toy: {p['params_total']} parameters",
                            docs="README.md"))
'''


def _install_plugin(root: Path) -> Path:
    """A package `toy_family` with an `mtv.models` entry point, importable from `root`, and its YAML."""
    root.mkdir()
    (root / "toy_family.py").write_text(FAMILY)
    dist = root / "toy_family-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: toy-family\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[mtv.models]\ntoy = toy_family\n")
    conf = root / "conf" / "model"
    conf.mkdir(parents=True)
    (conf / "toy.yaml").write_text(textwrap.dedent("""\
        defaults:
          - toy_schema
          - _self_
        name: toy
        width: 6
        """))
    return root / "conf"


def test_a_family_from_another_package_trains_and_counts(tmp_path: Path, env: dict) -> None:
    conf = _install_plugin(tmp_path / "plugin")
    env = {**env, "PYTHONPATH": f"{tmp_path / 'plugin'}:{env.get('PYTHONPATH', '')}"}
    run_dir = tmp_path / "run"
    proc = run_py("model=toy", "debug=smoke", "logger=csv", f"hydra.searchpath=[file://{conf}]",
                  f"hydra.run.dir={run_dir}", env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    record = json.loads((run_dir / "results.json").read_text())
    assert record["status"] == "completed" and record["model"] == "toy"
    assert record["params"] == (3 * 6 + 6) + (6 * 4 + 4)  # synthetic data: 4 classes
    assert record["metrics"]["test/num_videos"] > 0
    bad = run_py("model=toy", "model.width=0", "debug=smoke", f"hydra.searchpath=[file://{conf}]",
                 f"hydra.run.dir={tmp_path / 'bad'}", env=env)
    assert bad.returncode != 0 and "model.width=0: must be >= 1" in bad.stdout + bad.stderr
