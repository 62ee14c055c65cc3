"""Bad input, nothing lost: missing files at start-up, undecodable files at run time (real broken
files, real DataLoader workers), and odd but valid files that must decode to the configured shape."""
from __future__ import annotations

from pathlib import Path

import pytest

from datamodules import build_datamodule
from mtv.training.multiview import MultiViewAggregator
from videos import (truncate, write_audio_only, write_empty, write_random_bytes, write_variable_frame_rate,
                    write_video)

TINY = ["data.num_frames=4", "data.stride=2", "data.short_side=32", "data.crop_size=32",
        "data.test_clips=2", "data.test_crops=1"]


def _video_list_cfg(make_cfg, root: Path, names_labels: list[tuple[str, int]], *overrides: str):
    listing = root / "list.txt"
    listing.write_text("".join(f"{name} {label}\n" for name, label in names_labels))
    return make_cfg("video_list", f"dataset.root={root}", f"dataset.train_list={listing}",
                    f"dataset.val_list={listing}", "dataset.num_classes=2", *TINY, *overrides)


def _write_broken(root: Path) -> list[str]:
    names = []
    names.append(write_empty(root / "empty.mp4").name)
    names.append(write_random_bytes(root / "random.mp4").name)
    names.append(write_audio_only(root / "audio_only.mp4").name)
    (root / "notes.mp4").write_text("this is not a video\n")
    names.append("notes.mp4")
    names.append(truncate(write_video(root / "truncated.mp4", num_frames=24), 0.5).name)  # moov lost
    # moov at the front, data cut: opens fine, fails part-way through decoding
    names.append(truncate(write_video(root / "cut.mp4", num_frames=48, gop=4, faststart=True), 0.3).name)
    return names


def test_undecodable_videos_are_replaced_logged_and_counted(tmp_path, make_cfg):
    root = tmp_path / "videos"
    good = [write_video(root / f"good{i}.mp4", num_frames=12).name for i in range(6)]
    bad = _write_broken(root)
    entries = [(n, i % 2) for i, n in enumerate(good + bad)]
    cfg = _video_list_cfg(make_cfg, root, entries, "data.batch_size=4", "data.eval_batch_size=3",
                          "data.num_workers=2")
    dm = build_datamodule(cfg)
    dm.setup("fit")
    # Training: every batch full, every bad video replaced and counted, nothing raised.
    total_bad, batches = 0, 0
    for batch in dm.train_dataloader():
        assert batch["video"].shape == (4, 3, 4, 32, 32)
        total_bad += int(batch["num_bad"].sum())
        batches += 1
    assert batches == len(entries) // 4
    assert total_bad >= len(bad) - 3  # drop_last may leave up to 3 bad indices unvisited
    bad_log = Path(cfg.paths.output_dir, "bad_videos.txt")
    logged = {line.split("\t")[1] for line in bad_log.read_text().splitlines()}
    assert logged <= {str(root / n) for n in bad} and len(logged) >= len(bad) - 3
    assert all(len(line.split("\t")) == 3 for line in bad_log.read_text().splitlines())  # path + error
    # Evaluation: no substitutes; every unreadable video counted once.
    aggregator = MultiViewAggregator()
    for batch in dm.test_dataloader():
        logits = batch["video"].mean(dim=(1, 2, 3, 4))[:, None].repeat(1, 2)
        aggregator.update(logits, batch["label"], batch["video_index"], batch["valid"], batch["view_index"])
    result = aggregator.compute()
    assert result["num_videos"] == len(entries)
    assert result["num_unreadable"] == len(bad)
    assert len(result["logits"]) == len(good)
    assert sorted(dm.unreadable_videos("test")) == sorted(str(root / n) for n in bad)


def test_decode_error_policy_error_names_the_file(tmp_path, make_cfg):
    root = tmp_path / "videos"
    write_empty(root / "empty.mp4")
    dm = build_datamodule(_video_list_cfg(make_cfg, root, [("empty.mp4", 0)], "data.on_decode_error=error",
                                          "data.num_workers=0"))
    dm.setup("fit")
    with pytest.raises(RuntimeError, match="empty.mp4.*on_decode_error"):
        dm.datasets["train"][0]
    with pytest.raises(RuntimeError, match="empty.mp4"):
        dm.datasets["test"][0]


def test_all_videos_unreadable_stops_training_with_a_clear_error(tmp_path, make_cfg):
    root = tmp_path / "videos"
    write_empty(root / "empty.mp4")
    dm = build_datamodule(_video_list_cfg(make_cfg, root, [("empty.mp4", 0)], "data.num_workers=0"))
    dm.setup("fit")
    with pytest.raises(RuntimeError, match="unreadable videos in a row"):
        dm.datasets["train"][0]


@pytest.mark.parametrize("policy", ["error", "skip"])
def test_missing_files_reported_at_startup(tmp_path, make_cfg, policy):
    root = tmp_path / "videos"
    write_video(root / "here.mp4", num_frames=8)
    entries = [("here.mp4", 0)] + [(f"gone{i}.mp4", 1) for i in range(7)]
    cfg = _video_list_cfg(make_cfg, root, entries, f"data.missing={policy}", "data.num_workers=0")
    dm = build_datamodule(cfg)
    listing = Path(cfg.paths.output_dir, "missing_videos_train.txt")
    if policy == "error":
        with pytest.raises(FileNotFoundError, match=r"7 of 8 train videos are missing.*gone0.mp4.*data.missing=skip"):
            dm.setup("fit")
    else:
        dm.setup("fit")
        assert dm.train_size == 1  # dropped from training
        assert dm.test_size == 8  # kept for evaluation, where they count as unreadable
        batch = next(iter(dm.test_dataloader()))
        assert batch["valid"].tolist() == [True, True]
        assert not dm.datasets["test"][1]["valid"].any()
    assert len(listing.read_text().split()) == 7


ODD_FILES = {
    "vp9.webm": dict(codec="libvpx-vp9"),
    "10bit.mp4": dict(pix_fmt="yuv420p10le"),
    "yuv444_odd_size.mp4": dict(pix_fmt="yuv444p", height=35, width=47),
    "gray.mp4": dict(pix_fmt="gray"),
    "rotated.mp4": dict(rotation=90),
    "mjpeg.avi": dict(codec="mjpeg", pix_fmt="yuvj420p"),
    "with_audio.mp4": dict(audio=True),
    "width48_decord_bug.mp4": dict(height=40, width=48),  # decord 0.6.0 fails: PyAV fallback
    "portrait.mkv": dict(height=64, width=36),
    "short.mp4": dict(num_frames=3),  # shorter than a clip: looped
}


def test_odd_but_valid_files_give_clips_of_the_configured_shape(tmp_path, make_cfg):
    root = tmp_path / "videos"
    for name, options in ODD_FILES.items():
        write_video(root / name, **options)
    write_variable_frame_rate(root / "vfr.mp4")
    names = [*ODD_FILES, "vfr.mp4"]
    cfg = _video_list_cfg(make_cfg, root, [(n, 0) for n in names], "data.batch_size=11", "data.num_workers=2",
                          "data.eval_batch_size=11", "data.test_crops=3")
    dm = build_datamodule(cfg)
    dm.setup("fit")
    train = next(iter(dm.train_dataloader()))
    assert train["video"].shape == (11, 3, 4, 32, 32) and int(train["num_bad"].sum()) == 0
    assert train["video"].min() >= -1 and train["video"].max() <= 1
    test = next(iter(dm.test_dataloader()))
    assert test["video"].shape == (11 * 6, 3, 4, 32, 32) and bool(test["valid"].all())
    assert not Path(cfg.paths.output_dir, "bad_videos.txt").exists()
