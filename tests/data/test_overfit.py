"""`debug=overfit`: the same few training videos for train, val and test, every class folder among them,
and no augmentation (a training clip is the same every time it is drawn)."""
from __future__ import annotations

import random
from pathlib import Path

import torch
from hydra import compose, initialize_config_dir

from datamodules import build_datamodule
from videos import SHAPE_CLASSES, write_colour_shapes_folder

REPO = Path(__file__).resolve().parents[2]


def _datamodule(root: Path, tmp_path: Path, *overrides: str):
    with initialize_config_dir(str(REPO / "conf"), version_base="1.3"):
        cfg = compose("config", overrides=["experiment=own_videos", f"dataset.root={root}", "dataset.num_classes=3",
                                           f"paths.output_dir={tmp_path / 'run'}", "data.num_workers=0",
                                           *overrides])
    dm = build_datamodule(cfg)
    dm.setup("fit")
    return cfg, dm


def test_overfit_uses_the_same_training_videos_everywhere_without_augmentation(tmp_path):
    root = write_colour_shapes_folder(tmp_path / "shapes", train_per_class=7, val_per_class=1, seed=3)
    cfg, dm = _datamodule(root, tmp_path, "debug=overfit")
    train = dm.datasets["train"].records
    assert len(train) == 16 and cfg.trainer.max_steps == 300
    assert [r.path for r in dm.datasets["val"].records] == [r.path for r in train]
    assert [r.path for r in dm.datasets["test"].records] == [r.path for r in train]
    assert {r.label for r in train} == set(range(len(SHAPE_CLASSES)))
    frames = (torch.rand(8, 64, 64, 3) * 255).to(torch.uint8)
    random.seed(0)
    transform = dm.datasets["train"].transform  # the clip's start stays random (docs/data.md)
    assert torch.equal(transform(frames), transform(frames))
    _, augmented = _datamodule(root, tmp_path)
    assert len(augmented.datasets["train"].records) == 21
    transform = augmented.datasets["train"].transform
    assert not torch.equal(transform(frames), transform(frames))  # the recipe's jitter and random crops
