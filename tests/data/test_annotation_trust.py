"""Annotation files are untrusted text (issue 12 "Annotation lists are loose", issue 14 item 3): each test
writes the bad file a script or spreadsheet produces and checks the start-up error (file:line and the
expected form) or the fixed behaviour, through the real Hydra config and DataModule."""
from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from datamodules import build_datamodule
from datamodules.datamodule import check_data
from mtv import ConfigError

TINY = ["data.num_frames=4", "data.crop_size=32", "data.short_side=32", "data.num_workers=0"]


def _touch(*paths: Path) -> None:
    for path in paths:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"")


def _video_list(make_cfg, root: Path, train: str, val: str, *overrides: str, num_classes: int = 3,
                lists: Path | None = None):
    """A video_list config; the list files are given by absolute path unless `lists` is the root-relative
    folder they are written to (".")."""
    (root / "train.txt").write_text(train, encoding="utf-8", newline="")
    (root / "val.txt").write_text(val, encoding="utf-8", newline="")
    where = lists if lists is not None else root
    return make_cfg("video_list", f"dataset.root={root}", f"dataset.train_list={where / 'train.txt'}",
                    f"dataset.val_list={where / 'val.txt'}", f"dataset.num_classes={num_classes}", *TINY, *overrides)


def test_bom_and_crlf_lists_keep_their_first_video(tmp_path, make_cfg):
    """A BOM used to become part of the first path, so data.missing=skip dropped that video silently."""
    _touch(tmp_path / "a.mp4", tmp_path / "b.mp4")
    cfg = _video_list(make_cfg, tmp_path, "\ufeffa.mp4 0\r\nb.mp4 1\r\n", "\ufeffb.mp4 1\r\n", "data.missing=skip")
    dm = build_datamodule(cfg)
    dm.setup("fit")
    assert [(Path(r.path).name, r.label) for r in dm.annotations.splits["train"]] == [("a.mp4", 0), ("b.mp4", 1)]
    assert dm.train_size == 2 and dm.val_size == 1


def test_duplicates_are_an_error_unless_kept_or_dropped(tmp_path, make_cfg):
    train = "a.mp4 0\nb.mp4 1\na.mp4 0\n"
    with pytest.raises(ConfigError, match=r"train\.txt:3 repeats .*train\.txt:1.*data\.duplicates=drop"):
        build_datamodule(_video_list(make_cfg, tmp_path, train, "b.mp4 1\n")).load_annotations()
    kept = build_datamodule(_video_list(make_cfg, tmp_path, train, "b.mp4 1\n", "data.duplicates=keep"))
    assert len(kept.load_annotations().splits["train"]) == 3
    dropped = build_datamodule(_video_list(make_cfg, tmp_path, train, "b.mp4 1\n", "data.duplicates=drop"))
    assert [Path(r.path).name for r in dropped.load_annotations().splits["train"]] == ["a.mp4", "b.mp4"]


@pytest.mark.parametrize("bad", ["../../../../etc/passwd", "/etc/passwd", "clips/../../outside.mp4"])
def test_paths_leaving_the_root_are_refused_unless_allowed(tmp_path, make_cfg, bad):
    root = tmp_path / "data"
    root.mkdir()
    cfg = _video_list(make_cfg, root, f"a.mp4 0\n{bad} 1\n", "a.mp4 0\n")
    with pytest.raises(ConfigError, match=r"train\.txt:2: path .* resolves outside .*allow_outside_root=true"):
        build_datamodule(cfg).load_annotations()
    allowed = _video_list(make_cfg, root, f"a.mp4 0\n{bad} 1\n", "a.mp4 0\n", "dataset.allow_outside_root=true")
    assert len(build_datamodule(allowed).load_annotations().splits["train"]) == 2


def test_kinetics_youtube_id_cannot_climb_out_of_the_video_folder(tmp_path, make_cfg):
    root = tmp_path / "k"
    (root / "annotations").mkdir(parents=True)
    header = "label,youtube_id,time_start,time_end,split\n"
    (root / "annotations" / "train.csv").write_text(header + "a,../../../x,0,10,train\n")
    (root / "annotations" / "val.csv").write_text(header + "a,v,0,10,val\n")
    cfg = make_cfg("kinetics400", f"dataset.root={root}", "dataset.num_classes=1", *TINY)
    with pytest.raises(ConfigError, match=r"train\.csv:2: path '\.\./\.\./\.\./x_000000_000010\.mp4' resolves outside"):
        build_datamodule(cfg).load_annotations()


def test_label_out_of_range_names_the_val_list_and_line(tmp_path, make_cfg):
    cfg = _video_list(make_cfg, tmp_path, "a.mp4 0\nb.mp4 2\n", "a.mp4 0\nb.mp4 7\n")
    with pytest.raises(ConfigError, match=r"val\.txt:2: label 7 outside 0\.\.2"):
        build_datamodule(cfg).load_annotations()


def test_malformed_list_line_names_file_line_and_form(tmp_path, make_cfg):
    cfg = _video_list(make_cfg, tmp_path, "a.mp4 0\nb.mp4 one\n", "a.mp4 0\n")
    with pytest.raises(ConfigError, match=r"train\.txt:2: expected 'relative/path label'"):
        build_datamodule(cfg).load_annotations()


def test_list_paths_are_relative_to_the_dataset_root(tmp_path, make_cfg, monkeypatch):
    """`dataset.train_list=train.txt` used to be looked up in the working directory."""
    root = tmp_path / "data"
    root.mkdir()
    elsewhere = tmp_path / "cwd"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    cfg = _video_list(make_cfg, root, "a.mp4 0\n", "a.mp4 0\n", num_classes=1, lists=Path("."))
    assert cfg.dataset.train_list == "train.txt"
    assert Path(build_datamodule(cfg).load_annotations().splits["train"][0].path) == root / "a.mp4"


def test_num_classes_larger_than_the_labels_warns_with_the_numbers(tmp_path, make_cfg, caplog):
    cfg = _video_list(make_cfg, tmp_path, "a.mp4 0\nb.mp4 1\n", "a.mp4 0\n", num_classes=10)
    with caplog.at_level(logging.WARNING):
        build_datamodule(cfg).load_annotations()
    assert "dataset.num_classes=10 but the annotations use only 2 distinct labels" in caplog.text


def test_video_folder_infers_num_classes_and_checks_an_explicit_one(tmp_path, make_cfg):
    root = tmp_path / "vf"
    _touch(*(root / split / cls / f"{split}.mp4" for split in ("train", "val") for cls in ("cat", "dog", "owl")))
    cfg = make_cfg("video_folder", f"dataset.root={root}", *TINY)
    assert cfg.dataset.num_classes is None
    check_data(cfg)
    assert cfg.dataset.num_classes == 3
    wrong = make_cfg("video_folder", f"dataset.root={root}", "dataset.num_classes=5", *TINY)
    with pytest.raises(ConfigError, match="define 3 classes but dataset.num_classes=5"):
        check_data(wrong)


def _kinetics(root: Path, train_rows: str) -> None:
    (root / "annotations").mkdir(parents=True, exist_ok=True)
    header = "label,youtube_id,time_start,time_end,split\r\n"
    (root / "annotations" / "train.csv").write_text("\ufeff" + header + train_rows, newline="")
    (root / "annotations" / "val.csv").write_text(header + "a,v,0,10,val\r\n", newline="")


def test_kinetics_short_row_and_wrong_type_name_file_and_line(tmp_path, make_cfg):
    root = tmp_path / "k"
    _kinetics(root, "a,x1,0,10,train\r\na,x2\r\n")
    cfg = make_cfg("kinetics400", f"dataset.root={root}", "dataset.num_classes=1", *TINY)
    with pytest.raises(ConfigError, match=r"train\.csv:3: column 'time_start' is missing .*label,youtube_id"):
        build_datamodule(cfg).load_annotations()
    _kinetics(root, "a,x1,0,10,train\r\na,x2,zero,10,train\r\n")
    with pytest.raises(ConfigError, match=r"train\.csv:3: time_start 'zero' is not a number"):
        build_datamodule(cfg).load_annotations()
    _kinetics(root, "a,x1,0,10,train\r\n")  # BOM before the header, CRLF rows: read as usual
    assert build_datamodule(cfg).load_annotations().classes == ["a"]


def test_ssv2_json_missing_field_and_syntax_error_name_the_line(tmp_path, make_cfg):
    root = tmp_path / "ssv2"
    (root / "labels").mkdir(parents=True)
    (root / "labels" / "labels.json").write_text(json.dumps({"Holding something": "0"}))
    good = {"id": "1", "template": "Holding [something]"}
    (root / "labels" / "train.json").write_text(json.dumps([good, {"id": "2"}], indent=1))
    (root / "labels" / "validation.json").write_text(json.dumps([good]))
    cfg = make_cfg("ssv2", f"dataset.root={root}", "dataset.num_classes=1", *TINY)
    with pytest.raises(ConfigError, match=r"train\.json:6: no 'template' in .*expected a JSON list"):
        build_datamodule(cfg).load_annotations()
    (root / "labels" / "train.json").write_text('[\n {"id": "1", "template": "Holding [something]"},\n {"id": }\n]')
    with pytest.raises(ConfigError, match=r"train\.json:3: not valid JSON"):
        build_datamodule(cfg).load_annotations()
    (root / "labels" / "train.json").write_text(json.dumps([{"id": ["1"], "template": "Holding [something]"}]))
    with pytest.raises(ConfigError, match=r"train\.json:1: 'id' must be a string or integer"):
        build_datamodule(cfg).load_annotations()


def test_epic_wrong_type_names_file_and_line(tmp_path, make_cfg):
    root = tmp_path / "epic"
    (root / "annotations").mkdir(parents=True)
    header = "participant_id,video_id,start_frame,stop_frame,verb_class,noun_class\n"
    (root / "annotations" / "EPIC_100_train.csv").write_text(header + "P01,P01_01,1,20,0,1\nP01,P01_01,x,40,0,1\n")
    (root / "annotations" / "EPIC_100_validation.csv").write_text(header + "P01,P01_01,1,20,0\n")
    cfg = make_cfg("epic_kitchens100", f"dataset.root={root}", "dataset.heads.noun=3", "dataset.heads.verb=2",
                   "dataset.num_classes=5", *TINY)
    with pytest.raises(ConfigError, match=r"EPIC_100_train\.csv:3: start_frame 'x' is not an integer"):
        build_datamodule(cfg).load_annotations()
    (root / "annotations" / "EPIC_100_train.csv").write_text(header + "P01,P01_01,1,20,0,1\n")
    with pytest.raises(ConfigError, match=r"EPIC_100_validation\.csv:2: column 'noun_class' is missing"):
        build_datamodule(cfg).load_annotations()


def test_mit_short_row_names_file_and_line(tmp_path, make_cfg):
    root = tmp_path / "mit"
    root.mkdir()
    (root / "trainingSet.csv").write_text("a/1.mp4,a,3,0\nb/2.mp4\n")
    (root / "validationSet.csv").write_text("a/3.mp4,a,3,0\n")
    cfg = make_cfg("mit", f"dataset.root={root}", "dataset.num_classes=1", *TINY)
    with pytest.raises(ConfigError, match=r"trainingSet\.csv:2: field 2 is missing .*class/file\.mp4,class"):
        build_datamodule(cfg).load_annotations()
