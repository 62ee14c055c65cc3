"""Annotation parsers, one per dataset layout. Each turns `cfg.dataset` into `Annotations`: a list
of `VideoRecord` per split plus the class names. Files are not opened here (that is decoding's job),
only listed, so that missing files can be reported once at start-up.
"""
from __future__ import annotations

import csv
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

SPLITS = ("train", "val", "test")
VIDEO_EXTENSIONS = (".mp4", ".webm", ".avi", ".mkv", ".mov", ".m4v", ".mpg", ".mpeg")


@dataclass(frozen=True)
class VideoRecord:
    """One labelled sample: a whole file, or the frames [start_frame, end_frame] of it (inclusive)."""

    path: str
    label: int | tuple[int, ...]
    start_frame: int = 0
    end_frame: int | None = None


@dataclass
class Annotations:
    splits: dict[str, list[VideoRecord]]
    classes: list[str] | None = None  # index -> name, single-head datasets
    heads: dict[str, int] | None = None  # multi-head datasets: head name -> size, in logit order
    head_classes: dict[str, list[str]] = field(default_factory=dict)


class AnnotationError(ValueError):
    """An annotation file is missing or malformed; the message names the file and the config key."""


def _require_file(path: str | None, key: str) -> Path:
    if not path or not Path(path).is_file():
        raise AnnotationError(f"annotation file {path!r} not found: set {key}=/path/to/file "
                              f"(or dataset.root so that the default location exists)")
    return Path(path)


def _split_paths(ds, key: str) -> dict[str, str | None]:
    """`ds[key]` maps split -> path; test falls back to val when null (most test sets have no labels)."""
    paths = {split: ds[key].get(split) for split in SPLITS}
    if paths["test"] in (None, ""):
        paths["test"] = paths["val"]
    return paths


def _class_index(names: list[str], source: str) -> dict[str, int]:
    """Classes indexed by sorted name."""
    if not names:
        raise AnnotationError(f"no labelled rows found in {source}")
    return {name: i for i, name in enumerate(sorted(set(names)))}


def _lookup(index: dict[str, int], name: str, where: str) -> int:
    if name not in index:
        raise AnnotationError(f"{where}: label {name!r} does not occur in the training annotations")
    return index[name]


# --- Kinetics 400/600/700 ------------------------------------------------------------------------


def kinetics_clip_name(youtube_id: str, start: float, end: float) -> str:
    """The common clip naming of the Kinetics download scripts: {youtube_id}_{start:06d}_{end:06d}.mp4."""
    return f"{youtube_id}_{int(float(start)):06d}_{int(float(end)):06d}.mp4"


def _read_kinetics_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as f:
        rows = list(csv.DictReader(f))
    missing = {"label", "youtube_id", "time_start", "time_end"} - set(rows[0] if rows else {})
    if missing:
        raise AnnotationError(f"{path}: columns {sorted(missing)} missing; expected the official header "
                              f"label,youtube_id,time_start,time_end,split")
    return rows


def parse_kinetics(ds) -> Annotations:
    csvs = _split_paths(ds, "annotations")
    dirs = _split_paths(ds, "videos")
    rows = {s: _read_kinetics_csv(_require_file(csvs[s], f"dataset.annotations.{s}")) for s in SPLITS}
    index = _class_index([r["label"] for r in rows["train"]], csvs["train"])
    by_class = bool(ds.get("class_subfolders"))  # some downloads keep <split>/<label>/<clip>.mp4

    def clip_path(split: str, row: dict[str, str]) -> str:
        name = kinetics_clip_name(row["youtube_id"], row["time_start"], row["time_end"])
        return os.path.join(dirs[split], row["label"], name) if by_class else os.path.join(dirs[split], name)

    splits = {s: [VideoRecord(clip_path(s, r), _lookup(index, r["label"], csvs[s])) for r in rows[s]] for s in SPLITS}
    return Annotations(splits, classes=sorted(index, key=index.get))


# --- Something-Something v2 ----------------------------------------------------------------------


def parse_ssv2(ds) -> Annotations:
    labels_path = _require_file(ds.labels_json, "dataset.labels_json")
    index = {name: int(i) for name, i in json.loads(labels_path.read_text()).items()}
    files = _split_paths(ds, "annotations")
    splits = {}
    for s in SPLITS:
        path = _require_file(files[s], f"dataset.annotations.{s}")
        records = []
        for item in json.loads(path.read_text()):
            template = item["template"].replace("[", "").replace("]", "")
            records.append(VideoRecord(os.path.join(ds.video_dir, f"{item['id']}.{ds.extension}"),
                                       _lookup(index, template, str(path))))
        splits[s] = records
    return Annotations(splits, classes=sorted(index, key=index.get))


# --- EPIC-KITCHENS-100 ---------------------------------------------------------------------------


def _read_epic_classes(path: str | None, key: str) -> list[str]:
    with _require_file(path, key).open(newline="") as f:
        rows = sorted(csv.DictReader(f), key=lambda r: int(r["id"]))
    return [r["key"] for r in rows]


def parse_epic_kitchens(ds) -> Annotations:
    """Segments [start_frame, stop_frame] (1-based, as in the EPIC CSVs) of the long participant videos.

    Labels are (noun_class, verb_class), in the order of `dataset.heads` (scenic: noun, then verb)."""
    files = _split_paths(ds, "annotations")
    head_names = list(ds.heads)
    splits = {}
    for s in SPLITS:
        path = _require_file(files[s], f"dataset.annotations.{s}")
        with path.open(newline="") as f:
            rows = list(csv.DictReader(f))
        splits[s] = [
            VideoRecord(os.path.join(ds.root, ds.video_pattern.format(**row)),
                        tuple(int(row[f"{head}_class"]) for head in head_names),
                        start_frame=int(row["start_frame"]) - 1, end_frame=int(row["stop_frame"]) - 1)
            for row in rows
        ]
    head_classes = {}
    for head in head_names:
        class_file = ds.get("class_files", {}).get(head)
        if class_file and Path(class_file).is_file():
            head_classes[head] = _read_epic_classes(class_file, f"dataset.class_files.{head}")
    return Annotations(splits, heads={h: int(ds.heads[h]) for h in head_names}, head_classes=head_classes)


# --- Moments in Time -----------------------------------------------------------------------------


def parse_mit(ds) -> Annotations:
    """`trainingSet.csv` / `validationSet.csv` rows `class/file.mp4,class,agreement,disagreement` (no
    header); class indices from `moments_categories.txt` (`name,index`) when present, else sorted names."""
    files = _split_paths(ds, "annotations")
    dirs = _split_paths(ds, "videos")
    rows = {}
    for s in SPLITS:
        with _require_file(files[s], f"dataset.annotations.{s}").open(newline="") as f:
            rows[s] = [r for r in csv.reader(f) if r]
    categories = ds.get("categories")
    if categories and Path(categories).is_file():
        with open(categories, newline="") as f:
            index = {name: int(i) for name, i in csv.reader(f)}
    else:
        index = _class_index([r[1] for r in rows["train"]], files["train"])
    splits = {s: [VideoRecord(os.path.join(dirs[s], r[0]), _lookup(index, r[1], files[s])) for r in rows[s]]
              for s in SPLITS}
    return Annotations(splits, classes=sorted(index, key=index.get))


# --- Plain lists and folders ---------------------------------------------------------------------


def read_video_list(path: Path, root: str) -> list[VideoRecord]:
    """Lines `relative/path label` (mmaction2 / VideoMAE convention); the path may contain spaces."""
    records = []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        name, _, label = line.strip().rpartition(" ")
        if not name or not label.lstrip("-").isdigit():
            raise AnnotationError(f"{path}:{number}: expected 'relative/path label', got {line!r}")
        records.append(VideoRecord(os.path.join(root, name), int(label)))
    return records


def parse_video_list(ds) -> Annotations:
    files = {"train": ds.train_list, "val": ds.val_list, "test": ds.get("test_list") or ds.val_list}
    splits = {s: read_video_list(_require_file(files[s], f"dataset.{s}_list"), ds.root) for s in SPLITS}
    labels = {r.label for records in splits.values() for r in records}
    if labels and (min(labels) < 0 or max(labels) >= ds.num_classes):
        raise AnnotationError(f"labels in {files['train']} range over {min(labels)}..{max(labels)}, outside "
                              f"0..{ds.num_classes - 1}: set dataset.num_classes")
    return Annotations(splits, classes=[str(i) for i in range(ds.num_classes)])


def parse_video_folder(ds) -> Annotations:
    """`root/<split_dir>/<class name>/<video>`; classes are the sorted sub-folders of the train folder."""
    dirs = {"train": ds.train_dir, "val": ds.val_dir, "test": ds.get("test_dir") or ds.val_dir}
    train_dir = Path(ds.root, dirs["train"])
    if not train_dir.is_dir():
        raise AnnotationError(f"folder {train_dir} not found: set dataset.root (and dataset.train_dir)")
    classes = sorted(p.name for p in train_dir.iterdir() if p.is_dir())
    splits = {}
    for s in SPLITS:
        split_dir = Path(ds.root, dirs[s])
        if not split_dir.is_dir():
            raise AnnotationError(f"folder {split_dir} not found: set dataset.{s}_dir")
        splits[s] = [VideoRecord(str(f), i) for i, name in enumerate(classes) if (split_dir / name).is_dir()
                     for f in sorted((split_dir / name).iterdir()) if f.suffix.lower() in VIDEO_EXTENSIONS]
        unknown = sorted(p.name for p in split_dir.iterdir() if p.is_dir() and p.name not in classes)
        if unknown:
            raise AnnotationError(f"{split_dir}: class folders {unknown[:5]} are not in {train_dir}")
    return Annotations(splits, classes=classes)


PARSERS: dict[str, Callable[..., Annotations]] = {
    "kinetics": parse_kinetics,
    "ssv2": parse_ssv2,
    "epic_kitchens": parse_epic_kitchens,
    "mit": parse_mit,
    "video_list": parse_video_list,
    "video_folder": parse_video_folder,
}
