"""Every dataset format on a tiny tree written in that dataset's real layout, through the real
DataModule and DataLoader."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from datamodules import build_datamodule
from videos import write_video

TINY = ["data.num_frames=4", "data.stride=2", "data.short_side=32", "data.crop_size=32", "data.batch_size=2",
        "data.eval_batch_size=2", "data.test_clips=2", "data.test_crops=3", "data.num_workers=0"]


def _first_batch(dm, split: str) -> dict[str, torch.Tensor]:
    loader = {"train": dm.train_dataloader, "val": dm.val_dataloader, "test": dm.test_dataloader}[split]()
    return next(iter(loader))


def test_kinetics_csv_and_clip_names(tmp_path, make_cfg):
    root = tmp_path / "k400"
    rows = {"train": [("zumba", "abc", 10, 20), ("abseiling", "x_y-z", 0, 10), ("riding a bike", "q1", 5, 15)],
            "val": [("abseiling", "v1", 30, 40), ("zumba", "v2", 1, 11)]}
    (root / "annotations").mkdir(parents=True)
    for split, items in rows.items():
        lines = ["label,youtube_id,time_start,time_end,split"]
        for label, ytid, start, end in items:
            lines.append(f'"{label}",{ytid},{start},{end},{split}')
            write_video(root / split / f"{ytid}_{start:06d}_{end:06d}.mp4", num_frames=8)
        (root / "annotations" / f"{split}.csv").write_text("\n".join(lines) + "\n")
    dm = build_datamodule(make_cfg("kinetics400", f"dataset.root={root}", "dataset.num_classes=3", *TINY))
    dm.setup("fit")
    assert dm.annotations.classes == ["abseiling", "riding a bike", "zumba"]  # sorted label names
    assert [r.label for r in dm.annotations.splits["train"]] == [2, 0, 1]
    assert dm.annotations.splits["train"][1].path.endswith("train/x_y-z_000000_000010.mp4")
    by_class = build_datamodule(make_cfg("kinetics400", f"dataset.root={root}", "dataset.num_classes=3",
                                         "dataset.class_subfolders=true", "data.missing=skip", *TINY))
    by_class.setup("fit")
    assert by_class.annotations.splits["val"][1].path.endswith("val/zumba/v2_000001_000011.mp4")
    assert (dm.train_size, dm.val_size, dm.test_size) == (3, 2, 2)  # test defaults to val
    batch = _first_batch(dm, "test")
    assert batch["video"].shape == (2 * 6, 3, 4, 32, 32)
    assert batch["label"].tolist() == [0] * 6 + [2] * 6


def test_kinetics_wrong_class_count_names_the_key(tmp_path, make_cfg):
    root = tmp_path / "k"
    (root / "annotations").mkdir(parents=True)
    for split in ("train", "val"):
        (root / "annotations" / f"{split}.csv").write_text("label,youtube_id,time_start,time_end,split\na,b,0,10,x\n")
    dm = build_datamodule(make_cfg("kinetics400", f"dataset.root={root}", *TINY))
    with pytest.raises(ValueError, match="dataset.num_classes=1"):
        dm.setup("fit")


def test_ssv2_json_webm_and_flip_off(tmp_path, make_cfg):
    root = tmp_path / "ssv2"
    labels = {"Holding something": "0", "Pushing something from left to right": "1"}
    items = {"train": [("11", "Pushing [something] from left to right"), ("12", "Holding [something]")],
             "validation": [("21", "Holding [something]")]}
    (root / "labels").mkdir(parents=True)
    (root / "labels" / "labels.json").write_text(json.dumps(labels))
    for split, entries in items.items():
        (root / "labels" / f"{split}.json").write_text(json.dumps(
            [{"id": vid, "label": t.replace("[something]", "a cup"), "template": t, "placeholders": ["a cup"]}
             for vid, t in entries]))
        for vid, _ in entries:
            write_video(root / "20bn-something-something-v2" / f"{vid}.webm", codec="libvpx-vp9", num_frames=8)
    cfg = make_cfg("ssv2", f"dataset.root={root}", "dataset.num_classes=2", *TINY)
    assert cfg.data.flip is False and cfg.data.num_frames == 4  # dataset recipe, then command line
    dm = build_datamodule(cfg)
    dm.setup("fit")
    assert [r.label for r in dm.annotations.splits["train"]] == [1, 0]
    assert dm.annotations.splits["test"] == dm.annotations.splits["val"]
    batch = _first_batch(dm, "train")
    assert batch["video"].shape == (2, 3, 4, 32, 32) and batch["num_bad"].sum() == 0


def test_epic_kitchens_segments_and_two_heads(tmp_path, make_cfg):
    root = tmp_path / "epic"
    # One long video whose frame i has brightness 4 * i, so a decoded clip tells where it was cut.
    levels = (np.arange(60) * 4).astype(np.uint8)
    frames = np.broadcast_to(levels[:, None, None, None], (60, 48, 64, 3)).copy()
    write_video(root / "P01" / "videos" / "P01_01.MP4", frames=frames)
    header = ("narration_id,participant_id,video_id,narration_timestamp,start_timestamp,stop_timestamp,"
              "start_frame,stop_frame,narration,verb,verb_class,noun,noun_class,all_nouns,all_noun_classes")
    rows = {"train": ["P01_01_0,P01,P01_01,00:00:00.00,00:00:00.0,00:00:01.0,21,40,open tap,open,1,tap,2,['tap'],[2]"],
            "validation": ["P01_01_1,P01,P01_01,00:00:00.00,00:00:03.0,00:00:04.0,41,60,wash cup,wash,0,cup,1,"
                           "['cup'],[1]"]}
    (root / "annotations").mkdir(parents=True)
    for split, lines in rows.items():
        (root / "annotations" / f"EPIC_100_{split}.csv").write_text("\n".join([header, *lines]) + "\n")
    cfg = make_cfg("epic_kitchens100", f"dataset.root={root}", "dataset.heads.noun=3", "dataset.heads.verb=2",
                   "dataset.num_classes=5", *TINY, "data.num_frames=8", "data.stride=3", "data.test_crops=1")
    dm = build_datamodule(cfg)
    dm.setup("fit")
    assert dm.heads == {"noun": 3, "verb": 2}
    item = dm.datasets["train"][0]
    assert item["label"].tolist() == [[2, 1]]  # (noun, verb), scenic's head order
    brightness = (item["video"] + 1) * 127.5  # colour augmentation is on: allow its brightness shift
    assert 80 - 40 <= brightness.mean() <= 156 + 40
    test = dm.datasets["test"][0]  # segment 41..60 (frames 40..59): 8 frames x stride 3 = 22 > 20, loops
    clip_means = ((test["video"] + 1) * 127.5).mean(dim=(1, 3, 4))
    assert clip_means.min() >= 160 - 6 and clip_means.max() <= 236 + 6
    assert test["label"].shape == (2, 2)


def test_moments_in_time_csv(tmp_path, make_cfg):
    root = tmp_path / "mit"
    root.mkdir()
    (root / "moments_categories.txt").write_text("barking,1\napplauding,0\n")
    for split, folder, entries in [("trainingSet", "training", [("applauding", "a"), ("barking", "b")]),
                                   ("validationSet", "validation", [("barking", "c")])]:
        lines = []
        for label, name in entries:
            write_video(root / folder / label / f"{name}.mp4", num_frames=8)
            lines.append(f"{label}/{name}.mp4,{label},3,0")
        (root / f"{split}.csv").write_text("\n".join(lines) + "\n")
    dm = build_datamodule(make_cfg("mit", f"dataset.root={root}", "dataset.num_classes=2", *TINY))
    dm.setup("test")
    assert [r.label for r in dm.annotations.splits["train"]] == [0, 1]  # from moments_categories.txt
    assert _first_batch(dm, "val")["label"].tolist() == [1]


def test_video_list_relative_paths_with_spaces(tmp_path, make_cfg):
    root = tmp_path / "vl"
    write_video(root / "clips" / "a video.mp4", num_frames=8)
    write_video(root / "clips" / "b.mkv", num_frames=8)
    (tmp_path / "train.txt").write_text("clips/a video.mp4 0\nclips/b.mkv 2\n")
    (tmp_path / "val.txt").write_text("clips/b.mkv 2\n")
    dm = build_datamodule(make_cfg("video_list", f"dataset.root={root}", f"dataset.train_list={tmp_path}/train.txt",
                                   f"dataset.val_list={tmp_path}/val.txt", "dataset.num_classes=3", *TINY))
    dm.setup("fit")
    assert dm.test_size == 1
    assert sorted(_first_batch(dm, "train")["label"].tolist()) == [0, 2]


def test_video_list_label_out_of_range(tmp_path, make_cfg):
    (tmp_path / "l.txt").write_text("a.mp4 5\n")
    dm = build_datamodule(make_cfg("video_list", f"dataset.root={tmp_path}", f"dataset.train_list={tmp_path}/l.txt",
                                   f"dataset.val_list={tmp_path}/l.txt", "dataset.num_classes=3", *TINY))
    with pytest.raises(ValueError, match="dataset.num_classes"):
        dm.setup("fit")


def test_video_folder(tmp_path, make_cfg):
    for split in ("train", "val"):
        for cls in ("dog", "cat"):
            write_video(tmp_path / "vf" / split / cls / f"{split}_{cls}.mp4", num_frames=8)
    (tmp_path / "vf" / "train" / "notes.txt").write_text("not a class")
    dm = build_datamodule(make_cfg("video_folder", f"dataset.root={tmp_path / 'vf'}", "dataset.num_classes=2", *TINY))
    dm.setup("fit")
    assert dm.annotations.classes == ["cat", "dog"]
    assert [(r.path.split("/")[-1], r.label) for r in dm.annotations.splits["val"]] == [("val_cat.mp4", 0),
                                                                                      ("val_dog.mp4", 1)]
    assert _first_batch(dm, "test")["video"].shape == (2 * 6, 3, 4, 32, 32)


def test_missing_annotation_file_names_the_key(tmp_path, make_cfg):
    dm = build_datamodule(make_cfg("kinetics400", f"dataset.root={tmp_path}/nowhere", *TINY))
    with pytest.raises(ValueError, match="dataset.annotations.train"):
        dm.setup("fit")
