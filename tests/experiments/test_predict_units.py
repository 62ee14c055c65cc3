"""Units of issue 14 items 4-5: recipe adoption, class-name fallbacks, prediction tables, predict inputs."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig

from mtv import ConfigError
from mtv.class_lists import class_names_for, shipped_class_list
from mtv.runner.predict import collect_videos
from mtv.runner.predictions import names_by_head, prediction_rows, write_csv
from mtv.runner.recipe import adopt_trained_recipe, command_line_data_keys

CONF = Path(__file__).resolve().parents[2] / "conf"
TRAINED = {"num_frames": 16, "stride": 1, "short_video": "loop", "short_side": 36, "crop_size": 32,
           "test_clips": 2, "test_crops": 3}


def _compose(overrides: list[str]) -> DictConfig:
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose("config", overrides=overrides)


def _lightning_checkpoint(path: Path, data: dict) -> Path:
    """The part of a run.py checkpoint the recipe is read from: the stored resolved config."""
    torch.save({"hyper_parameters": {"cfg": {"data": data, "dataset": {"name": "video_folder"}}}}, path)
    return path


def test_command_line_data_keys() -> None:
    keys = command_line_data_keys(["data.short_side=48", "+data.stride=1", "++data.crop_size=32", "dataset=ssv2",
                                   "data=default", "trainer.devices=2"])
    assert keys == {"short_side", "stride", "crop_size"}


def test_eval_adopts_the_trained_recipe_and_overrides_win(tmp_path: Path) -> None:
    ckpt = _lightning_checkpoint(tmp_path / "a.ckpt", {**TRAINED, "flip": False})
    overrides = ["task=eval", f"ckpt_path={ckpt}", "dataset=kinetics400", "scale=paper", "data.test_crops=1"]
    cfg = _compose(overrides)
    assert cfg.data.short_side == 256 and cfg.data.stride == 2  # the composed Kinetics recipe
    lines = adopt_trained_recipe(cfg, overrides)
    assert {k: cfg.data[k] for k in TRAINED} == {**TRAINED, "test_crops": 1}
    assert cfg.data.flip is True  # training augmentation is not part of the eval recipe
    assert lines[0].startswith(f"eval: data recipe of {ckpt}: ")
    assert lines[1:] == ["  data.test_crops=1 (command line) differs from the trained data.test_crops=3"]


def test_an_override_of_the_model_input_shape_is_refused(tmp_path: Path) -> None:
    ckpt = _lightning_checkpoint(tmp_path / "a.ckpt", TRAINED)
    overrides = ["task=predict", f"ckpt_path={ckpt}", "data.crop_size=64"]
    with pytest.raises(ConfigError, match=r"data\.crop_size=64 .* trained with data\.crop_size=32"):
        adopt_trained_recipe(_compose(overrides), overrides)


def test_ensemble_members_must_share_a_recipe_unless_chosen(tmp_path: Path) -> None:
    a = _lightning_checkpoint(tmp_path / "a.ckpt", TRAINED)
    b = _lightning_checkpoint(tmp_path / "b.ckpt", {**TRAINED, "short_side": 40})
    overrides = ["task=eval", f"ckpt_paths=[{a},{b}]"]
    with pytest.raises(ConfigError, match=r"different data\.short_side .*data\.short_side=<value>"):
        adopt_trained_recipe(_compose(overrides), overrides)
    chosen = [*overrides, "data.short_side=40"]
    cfg = _compose(chosen)
    adopt_trained_recipe(cfg, chosen)
    assert cfg.data.short_side == 40 and cfg.data.stride == 1


def test_a_converted_checkpoint_gives_frames_and_crop(tmp_path: Path) -> None:
    ckpt = tmp_path / "converted.ckpt"
    torch.save({"state_dict": {}, "model_cfg": {}, "num_classes": 400, "num_frames": 32, "image_size": [224, 224],
                "source": "scenic"}, ckpt)
    overrides = ["task=eval", f"ckpt_path={ckpt}"]
    cfg = _compose(overrides)
    adopt_trained_recipe(cfg, overrides)
    assert (cfg.data.num_frames, cfg.data.crop_size) == (32, 224)


def test_shipped_class_lists_and_fallbacks() -> None:
    k400 = shipped_class_list("kinetics400")
    assert len(set(k400)) == 400 and k400 == sorted(k400) and k400[0] == "abseiling"
    assert "passing American football (not in game)" in k400 and "massaging person's head" in k400
    k600, k700 = shipped_class_list("kinetics600"), shipped_class_list("kinetics700")
    assert len(set(k600)) == 600 and k600 == sorted(k600) and len(set(k700)) == 700
    # Kinetics-700 kept all of Kinetics-600 but three (bull fighting, chopping vegetables, picking fruit)
    assert sorted(set(k600) - set(k700)) == ["bull fighting", "chopping vegetables", "picking fruit"]
    assert shipped_class_list("ssv2")[0] == "Approaching something with your camera"
    assert shipped_class_list("mit") is None  # not obtainable here
    assert class_names_for(339, dataset="mit")[:2] == ["class_0", "class_1"]
    assert class_names_for(600, guess_from_count=True) == k600
    assert class_names_for(174, guess_from_count=True) == shipped_class_list("ssv2")
    assert class_names_for(174) == [f"class_{i}" for i in range(174)]  # no guessing for run.py checkpoints
    assert class_names_for(2, stored=["a b", "ü"], dataset="kinetics400") == ["a b", "ü"]
    assert class_names_for(400, stored=["a b"], dataset="kinetics400") == k400  # stored names of another size


def test_prediction_rows_single_and_multi_head(tmp_path: Path) -> None:
    logits = torch.tensor([[0.0, 2.0, 1.0], [3.0, 0.0, 0.0]])
    names = names_by_head(["kätzchen", "dog, big", "bird"], None, 3)
    rows = prediction_rows(["a b.mp4", "ü.mp4"], logits, names, top_k=2, labels=torch.tensor([1, 2]))
    probs = logits.softmax(-1)
    assert rows[0]["top1"] == "dog, big" and rows[0]["top2"] == "bird" and "top3" not in rows[0]
    assert rows[0]["prob1"] == pytest.approx(float(probs[0, 1]), abs=1e-6)
    assert rows[1]["label_name"] == "bird" and rows[1]["top1"] == "kätzchen"
    write_csv(tmp_path / "p.csv", rows)
    with (tmp_path / "p.csv").open(newline="", encoding="utf-8") as handle:
        back = list(csv.DictReader(handle))
    assert back[0]["video"] == "a b.mp4" and back[0]["top1"] == "dog, big" and back[1]["video"] == "ü.mp4"

    heads = {"noun": 3, "verb": 2}
    names = names_by_head({"noun": ["n0", "n1", "n2"]}, heads, 5)
    assert names["verb"] == ["class_0", "class_1"]
    rows = prediction_rows(["v.mp4"], torch.tensor([[0.0, 0.0, 5.0, 4.0, 0.0]]), names, top_k=1,
                           labels=torch.tensor([[2, 0]]))
    assert rows[0]["noun_top1"] == "n2" and rows[0]["verb_top1"] == "class_0" and rows[0]["verb_label"] == 0


def test_collect_videos_from_a_file_a_folder_and_a_list(tmp_path: Path) -> None:
    for name in ("b/z.mp4", "b/deep/ä 1.webm", "b/notes.md", "a.mkv"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"")
    (tmp_path / "list.txt").write_text("a.mkv 3\nb/z.mp4\n\n", encoding="utf-8")
    assert collect_videos(str(tmp_path / "a.mkv")) == [str(tmp_path / "a.mkv")]
    assert collect_videos(str(tmp_path / "b")) == [str(tmp_path / "b/deep/ä 1.webm"), str(tmp_path / "b/z.mp4")]
    assert collect_videos(str(tmp_path / "list.txt")) == [str(tmp_path / "a.mkv"), str(tmp_path / "b/z.mp4")]
    assert collect_videos([str(tmp_path / "list.txt"), str(tmp_path / "b")]) == [
        str(tmp_path / "a.mkv"), str(tmp_path / "b/z.mp4"), str(tmp_path / "b/deep/ä 1.webm")]


def test_predict_start_up_checks_name_the_key(tmp_path: Path) -> None:
    from mtv.runner.predict import check_predict

    ckpt = _lightning_checkpoint(tmp_path / "a.ckpt", TRAINED)
    with pytest.raises(ConfigError, match="needs inputs="):
        check_predict(_compose(["task=predict", f"ckpt_path={ckpt}"]))
    with pytest.raises(ConfigError, match=r"inputs: not found: .*nope\.mp4"):
        check_predict(_compose(["task=predict", f"ckpt_path={ckpt}", f"inputs={tmp_path / 'nope.mp4'}"]))
    with pytest.raises(ConfigError, match="needs one checkpoint: ckpt_path"):
        check_predict(_compose(["task=predict", f"inputs={tmp_path}"]))
    with pytest.raises(ConfigError, match="no videos found"):  # a folder without videos
        check_predict(_compose(["task=predict", f"ckpt_path={ckpt}", f"inputs={tmp_path}"]))


def test_views_are_averaged_per_video_and_converted_checkpoints_get_kinetics_names() -> None:
    from torch import nn

    from mtv.class_lists import shipped_class_list
    from mtv.runner.predict import ViewAveraged, _class_names

    views, classes = 3, 400
    model = nn.Sequential(nn.Flatten(), nn.Linear(2, classes))
    video = torch.randn(2 * views, 2)
    out = ViewAveraged(model, views).predict_step(
        {"video": video, "video_index": torch.tensor([4] * views + [7] * views), "valid": torch.tensor(
            [True] * views + [False] * views)}, 0)
    with torch.no_grad():
        expected = model(video).view(2, views, classes).mean(1)
    assert torch.allclose(out["logits"], expected) and out["video_index"].tolist() == [4, 7]
    assert out["valid"].tolist() == [True, False]
    converted = {"num_classes": classes, "num_frames": 32, "image_size": [224, 224], "source": "scenic"}
    assert _class_names(converted, classes) == {"": shipped_class_list("kinetics400")}
