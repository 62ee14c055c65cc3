"""experiment=k400_mvit_b composes with the real conf/ tree into PySlowFast's MViT-B recipe and a valid model."""

from __future__ import annotations

from conftest import ROOT
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

import mtv.runner  # noqa: F401  (registers the families' schemas in Hydra's ConfigStore)
from mtv.models.registry import ModelInputs, get_family


def test_k400_mvit_b_recipe():
    with initialize_config_dir(str(ROOT / "conf"), version_base=None):
        cfg = compose("config", overrides=["experiment=k400_mvit_b", "dataset.root=/data/k400"])
    assert (cfg.data.num_frames, cfg.data.stride, cfg.data.test_clips, cfg.data.test_crops) == (16, 4, 5, 1)
    assert (cfg.optim.name, cfg.optim.weight_decay, cfg.optim.warmup_epochs, cfg.trainer.max_epochs) == \
        ("adamw", 0.05, 30.0, 200)
    assert (cfg.data.mixup.mixup_alpha, cfg.data.mixup.cutmix_alpha, cfg.data.mixup.label_smoothing) == (0.8, 1.0, 0.1)
    assert cfg.data.randaugment.enabled and cfg.data.random_resized_crop.enabled
    model = OmegaConf.to_object(cfg.model)
    assert model.display_name == "MViT-B 16x4" and len(model.blocks) == 16
    get_family(model.name).validate(model, ModelInputs(cfg.dataset.num_classes, cfg.data.num_frames,
                                                       (cfg.data.crop_size, cfg.data.crop_size)))
