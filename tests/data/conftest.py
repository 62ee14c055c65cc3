"""Fixtures for the data tests: real configs composed by Hydra from conf/, real video files."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig

import mtv.runner  # noqa: F401  (registers the config schemas, data/data_schema among them)

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(Path(__file__).parent))  # tests/data/videos.py

torch.set_num_threads(1)

PRIMARY = """\
defaults:
  - data: default
  - dataset: synthetic
  - _self_
hydra:
  searchpath:
    - file://{conf}
paths:
  output_dir: {out}
  cache_dir: {cache}
"""


@pytest.fixture
def make_cfg(tmp_path):
    """compose(dataset, *overrides) -> the full DictConfig, with data before dataset as in conf/config.yaml."""
    conf_dir = tmp_path / "test_conf"
    conf_dir.mkdir()

    def _make(dataset: str = "synthetic", *overrides: str) -> DictConfig:
        (conf_dir / "config.yaml").write_text(PRIMARY.format(conf=REPO / "conf", out=tmp_path / "run",
                                                             cache=tmp_path / "cache"))
        with initialize_config_dir(str(conf_dir), version_base="1.3"):
            return compose("config", overrides=[f"dataset={dataset}", *overrides])

    return _make
