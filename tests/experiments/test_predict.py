"""Issue 14 items 4-5 end to end on a generated class-per-folder dataset (real mp4 files, real run.py):
class names stored in checkpoints and results.json, eval reusing the trained data recipe, per-video test
predictions, and task=predict on a file, a folder and a list, with unicode / space names and a broken file."""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from helpers import results, run_py

sys.path.insert(0, str(Path(__file__).parents[1] / "data"))
from videos import write_random_bytes, write_video  # noqa: E402

CLASSES = ["blue circle", "grün quadrat", "red square"]  # sorted, as the folder parser indexes them
COLOURS = {"blue circle": (20, 40, 220), "grün quadrat": (30, 200, 40), "red square": (220, 30, 30)}
TRAIN_SHORT_SIDE = 40  # not data/default.yaml's 256: eval must keep it
# smoke-size model on the folder (command-line dataset wins over debug=smoke's synthetic)
FOLDER = ("debug=smoke", "dataset=video_folder", "dataset.num_classes=3", "logger=csv")


def _clip(path: Path, colour: tuple[int, int, int], seed: int) -> Path:
    frames = np.zeros((20, 40, 48, 3), dtype=np.uint8)
    for t in range(20):  # a coloured square moving right
        x = (seed * 7 + t * 2) % 32
        frames[t, 12:28, x : x + 16] = colour
    return write_video(path, frames=frames)


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("folder")
    for split, count in (("train", 2), ("val", 1)):
        for name in CLASSES:
            for i in range(count):
                _clip(root / split / name / f"clip {i} é.mp4", COLOURS[name], seed=i + len(split))
    return root


@pytest.fixture(scope="module")
def trained(folder: Path, env: dict, tmp_path_factory: pytest.TempPathFactory) -> Path:
    run_dir = tmp_path_factory.mktemp("train") / "run"
    proc = run_py(*FOLDER, f"dataset.root={folder}", f"data.short_side={TRAIN_SHORT_SIDE}",
                  f"hydra.run.dir={run_dir}", env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return run_dir


def _csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def test_class_names_are_stored_in_checkpoints_and_results(trained: Path) -> None:
    for name in ("best.ckpt", "last.ckpt"):
        checkpoint = torch.load(trained / "checkpoints" / name, map_location="cpu", weights_only=True)
        assert checkpoint["class_names"] == CLASSES
    assert results(trained)["class_names"] == CLASSES


def test_test_after_training_writes_per_video_predictions(trained: Path, folder: Path) -> None:
    rows = _csv(trained / "test_predictions.csv")
    assert sorted(Path(r["video"]).relative_to(folder / "val").parts[0] for r in rows) == CLASSES
    for row in rows:
        assert row["label_name"] == Path(row["video"]).parent.name == CLASSES[int(row["label"])]
        probs = [float(row[f"prob{r}"]) for r in (1, 2, 3)]
        assert {row["top1"], row["top2"], row["top3"]} == set(CLASSES)
        assert probs == sorted(probs, reverse=True) and sum(probs) == pytest.approx(1.0, abs=1e-4)


def test_eval_uses_the_trained_recipe_and_prints_overrides(trained: Path, folder: Path, env: dict,
                                                           tmp_path: Path) -> None:
    best = trained / "checkpoints/best.ckpt"
    same = run_py("task=eval", *FOLDER, f"dataset.root={folder}", f"ckpt_path={best}",
                  f"hydra.run.dir={tmp_path / 'same'}", env=env)
    assert same.returncode == 0, same.stderr[-3000:]
    used = yaml.safe_load((tmp_path / "same/config.yaml").read_text())["data"]
    assert used["short_side"] == TRAIN_SHORT_SIDE  # not the composed 256
    evaluated = results(tmp_path / "same")
    assert evaluated["metrics"]["test/top1"] == pytest.approx(results(trained)["metrics"]["test/top1"], abs=1e-6)
    assert evaluated["class_names"] == CLASSES
    assert len(_csv(tmp_path / "same/test_predictions.csv")) == len(CLASSES)

    other = run_py("task=eval", *FOLDER, f"dataset.root={folder}", f"ckpt_path={best}", "data.short_side=48",
                   f"hydra.run.dir={tmp_path / 'other'}", env=env)
    assert other.returncode == 0, other.stderr[-3000:]
    assert yaml.safe_load((tmp_path / "other/config.yaml").read_text())["data"]["short_side"] == 48
    assert f"data.short_side=48 (command line) differs from the trained data.short_side={TRAIN_SHORT_SIDE}" \
        in other.stdout

    shape = run_py("task=eval", *FOLDER, f"dataset.root={folder}", f"ckpt_path={best}", "data.num_frames=8",
                   f"hydra.run.dir={tmp_path / 'shape'}", env=env)
    assert shape.returncode == 2 and "data.num_frames" in shape.stderr


def test_predict_a_file_a_folder_and_a_list(trained: Path, folder: Path, env: dict, tmp_path: Path) -> None:
    single = folder / "val/red square/clip 0 é.mp4"
    inputs = tmp_path / "ïnputs"
    _clip(inputs / "more clips/ein grünes Video.mp4", COLOURS["grün quadrat"], seed=3)
    broken = write_random_bytes(inputs / "more clips/kaputt.mp4")
    # paths relative to the list's folder, a video_list label is ignored
    (folder / "list.txt").write_text("val/blue circle/clip 0 é.mp4 0\nval/does not exist.mp4\n", encoding="utf-8")
    run_dir = tmp_path / "predict"
    proc = run_py("task=predict", f"ckpt_path={trained / 'checkpoints/best.ckpt'}", "top_k=2", "logger=csv",
                  f"inputs=['{single}','{inputs}','{folder / 'list.txt'}']", f"hydra.run.dir={run_dir}", env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = _csv(run_dir / "predictions.csv")
    expected = [str(single), str(inputs / "more clips/ein grünes Video.mp4"), str(broken),
                str(folder / "val/blue circle/clip 0 é.mp4"), str(folder / "val/does not exist.mp4")]
    assert [r["video"] for r in rows] == expected  # folder contents sorted
    status = {r["video"]: r["status"] for r in rows}
    assert [status[v] for v in expected] == ["ok", "ok", "unreadable", "ok", "unreadable"]
    for row in rows:
        if row["status"] == "ok":
            assert row["top1"] in CLASSES and row["top2"] in CLASSES and "top3" not in row
            assert 0 < float(row["prob2"]) <= float(row["prob1"]) <= 1
            assert f"{row['video']}: {row['top1']} (" in proc.stdout
        else:
            assert row["error"] and f"{row['video']}: UNREADABLE" in proc.stdout
    assert json.loads((run_dir / "predictions.json").read_text(encoding="utf-8"))[0]["video"] == str(single)
    record = results(run_dir)
    assert record["status"] == "completed" and record["unreadable"] == {"predict": 2}
    assert record["class_names"] == CLASSES and record["dataset"]["name"] == "video_folder"
    assert f"predictions of 5 videos (2 unreadable): {run_dir / 'predictions.csv'}" in proc.stdout
