"""The synthetic dataset: class structure (slow drift + fast spin), cached generation that is safe
when several processes start at once, and the default job's batches through the real DataModule."""
from __future__ import annotations

import logging
import math
import multiprocessing as mp
import time

import numpy as np
import pytest

from datamodules import build_datamodule
from datamodules.synthetic import ensure_synthetic, render_video

SMALL = {"num_classes": 4, "num_train": 8, "num_val": 4, "num_test": 4, "num_frames": 12, "height": 40,
         "width": 40, "fps": 10, "seed": 3, "crf": 12}


def _pair_angles(frames: np.ndarray) -> np.ndarray:
    """Doubled angle of the line through the two dots (the two brightest spots) per frame: doubling
    makes it independent of which dot is found first (the pair looks the same turned by 180 degrees)."""
    angles = []
    for frame in frames.astype(float).sum(-1):
        y1, x1 = np.unravel_index(frame.argmax(), frame.shape)
        yy, xx = np.mgrid[0:frame.shape[0], 0:frame.shape[1]]
        masked = np.where((yy - y1) ** 2 + (xx - x1) ** 2 > 6**2, frame, -np.inf)
        y2, x2 = np.unravel_index(masked.argmax(), frame.shape)
        angles.append(2 * np.arctan2(y2 - y1, x2 - x1))
    return np.array(angles)


def _wrapped_steps(angles: np.ndarray, stride: int) -> np.ndarray:
    return np.angle(np.exp(1j * (angles[stride:] - angles[:-stride])))


@pytest.mark.parametrize("label", range(4))
def test_classes_need_slow_drift_and_frame_rate_spin(label):
    frames = render_video(label, num_frames=16, height=40, width=40, rng=np.random.default_rng(label))
    # fast: the spin sense is the sign of the frame-to-frame rotation of the dot pair ...
    spin = np.sign(np.median(_wrapped_steps(_pair_angles(frames), 1)))
    assert spin == (1 if label % 2 == 0 else -1)
    # ... and is reversed when sampling every 4th frame (the pair turns 100-160 degrees, which looks
    # like 20-80 degrees the other way): a view that skips frames cannot see it
    assert np.sign(np.median(_wrapped_steps(_pair_angles(frames), 4))) == -spin
    # slow: the blob moves about 1 px per frame, up (label 0, 1) or down (2, 3)
    mass = frames.astype(float).mean(-1) - frames.astype(float).mean(-1).min()
    rows = (mass.sum(2) * np.arange(40)).sum(1) / mass.sum((1, 2))
    drift = rows[-1] - rows[0]
    assert (drift < -5) if label < 2 else (drift > 5)
    assert abs(rows[1] - rows[0]) < 3


def _generate(cache_dir: str, queue) -> None:
    queue.put(str(ensure_synthetic(SMALL, cache_dir)))


def test_concurrent_generation_gives_one_complete_dataset(tmp_path):
    ctx = mp.get_context("fork")
    queue = ctx.Queue()
    workers = [ctx.Process(target=_generate, args=(str(tmp_path), queue)) for _ in range(3)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(60)
    folders = {queue.get(timeout=5) for _ in workers}
    assert len(folders) == 1 and all(w.exitcode == 0 for w in workers)
    assert [p.name for p in tmp_path.iterdir()] == [next(iter(folders)).split("/")[-1]]  # no temp leftovers
    folder = tmp_path / next(iter(folders)).split("/")[-1]
    lines = (folder / "train.txt").read_text().split("\n")[:-1]
    assert len(lines) == 8 and all((folder / line.split()[0]).stat().st_size > 0 for line in lines)
    # cached: a second call is immediate and returns the same folder; other parameters, other folder
    start = time.perf_counter()
    assert ensure_synthetic(SMALL, tmp_path) == folder and time.perf_counter() - start < 0.1
    assert ensure_synthetic({**SMALL, "seed": 4, "num_train": 1, "num_val": 1, "num_test": 1}, tmp_path) != folder


def test_default_synthetic_job_batches(make_cfg, tmp_path):
    cfg = make_cfg("synthetic", "dataset.num_train=16", "dataset.num_val=4", "dataset.num_test=4",
                   "data.repeat_aug=2", "data.batch_size=8")
    assert (cfg.data.num_frames, cfg.data.stride, cfg.data.crop_size, cfg.data.flip) == (16, 1, 32, False)
    dm = build_datamodule(cfg)
    dm.prepare_data()
    dm.setup("fit")
    assert (dm.num_classes, dm.heads, dm.train_size, dm.test_size) == (4, None, 16, 4)
    assert str(tmp_path / "cache" / "synthetic") in str(next(iter(dm.annotations.splits["train"])).path)
    batches = list(dm.train_dataloader())
    assert len(batches) == 4
    batch = batches[0]
    assert batch["video"].shape == (8, 3, 16, 32, 32)
    # repeated augmentation: pairs of clips from one decoded video, augmented differently
    assert torch_equal_pairs(batch["video_index"]) and torch_equal_pairs(batch["label"])
    assert not bool((batch["video"][0] == batch["video"][1]).all())
    test = next(iter(dm.test_dataloader()))
    assert test["video"].shape == (4 * 2 * 3, 3, 16, 32, 32) and test["view_index"].tolist()[:6] == list(range(6))
    assert dm.mixup is None


def torch_equal_pairs(values) -> bool:
    return bool((values[0::2] == values[1::2]).all())


def test_wrong_defaults_order_is_caught(make_cfg):
    cfg = make_cfg("synthetic")
    cfg.data.recipe = "default"  # what conf/config.yaml gives when `data` comes after `dataset`
    with pytest.raises(ValueError, match="list `data: default` before"):
        build_datamodule(cfg)


@pytest.mark.parametrize("dataset", ["kinetics400", "kinetics600", "kinetics700", "ssv2", "epic_kitchens100",
                                     "mit", "video_list", "video_folder", "synthetic"])
def test_every_dataset_config_composes(make_cfg, dataset):
    cfg = make_cfg(dataset, *([] if dataset == "synthetic" else ["dataset.root=/data"]))
    assert cfg.dataset.name == dataset and cfg.data.recipe == (cfg.dataset.data_recipe or "default")
    assert cfg.data.test_clips >= 1 and math.isfinite(cfg.data.stride)
    if dataset == "ssv2":
        assert cfg.data.flip is False and cfg.data.num_frames == 48 and cfg.data.mixup.label_smoothing == 0.2
    if dataset.startswith("kinetics"):
        assert (cfg.data.num_frames, cfg.data.stride, cfg.data.crop_size, cfg.data.flip) == (32, 2, 224, True)


def test_generation_reports_its_progress(tmp_path, caplog):
    """Generating the default dataset takes ~16 s: it says how far it is instead of staying silent."""
    params = {**SMALL, "num_train": 20, "num_val": 5, "num_test": 5}
    with caplog.at_level(logging.INFO, logger="datamodules.synthetic"):
        ensure_synthetic(params, tmp_path)
    progress = [r.getMessage() for r in caplog.records if "written" in r.getMessage()]
    assert progress[0] == "synthetic videos: 3 / 30 written" and progress[-1] == "synthetic videos: 30 / 30 written"
    assert len(progress) == 10
