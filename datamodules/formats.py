"""Annotation parsers, one per dataset layout. Each turns `cfg.dataset` into `Annotations`: a list
of `VideoRecord` per split plus the class names. Files are not opened here (that is decoding's job),
only listed, so that missing files can be reported once at start-up.

Annotation files are untrusted text (`annotation_files.py`): every row error names `file:line` and the
expected form, and a video path from a file must stay inside the folder it is relative to
(`dataset.allow_outside_root=true` lifts that).
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from .annotation_files import (
    AnnotationError,
    as_float,
    as_int,
    column,
    entry,
    inside,
    json_list,
    read_csv,
    read_json,
    read_lines,
)

SPLITS = ("train", "val", "test")
VIDEO_EXTENSIONS = (".mp4", ".webm", ".avi", ".mkv", ".mov", ".m4v", ".mpg", ".mpeg")


@dataclass(frozen=True)
class VideoRecord:
    """One labelled sample: a whole file, or the frames [start_frame, end_frame] of it (inclusive)."""

    path: str
    label: int | tuple[int, ...]
    start_frame: int = 0
    end_frame: int | None = None
    source: str = field(default="", compare=False)  # "file:line" it came from, for error messages


@dataclass
class Annotations:
    splits: dict[str, list[VideoRecord]]
    classes: list[str] | None = None  # index -> name, single-head datasets
    heads: dict[str, int] | None = None  # multi-head datasets: head name -> size, in logit order
    head_classes: dict[str, list[str]] = field(default_factory=dict)


def _outside_allowed(ds) -> bool:
    return bool(ds.get("allow_outside_root", False))


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


KINETICS_ROW = ("the official header label,youtube_id,time_start,time_end,split and rows like "
                "abseiling,abc123,10,20,train")


def _read_kinetics_csv(path: Path) -> list[tuple[str, dict[str, str]]]:
    """(file:line, {label, youtube_id, time_start, time_end}) per row, every field checked."""
    rows = []
    for line, row in read_csv(path, KINETICS_ROW):
        where = f"{path}:{line}"
        values = {name: column(row, name, where, KINETICS_ROW)
                  for name in ("label", "youtube_id", "time_start", "time_end")}
        for name in ("time_start", "time_end"):
            as_float(values[name], where, name, KINETICS_ROW)
        rows.append((where, values))
    return rows


def parse_kinetics(ds) -> Annotations:
    csvs = _split_paths(ds, "annotations")
    dirs = _split_paths(ds, "videos")
    rows = {s: _read_kinetics_csv(_require_file(csvs[s], f"dataset.annotations.{s}")) for s in SPLITS}
    index = _class_index([r["label"] for _, r in rows["train"]], csvs["train"])
    by_class = bool(ds.get("class_subfolders"))  # some downloads keep <split>/<label>/<clip>.mp4

    def record(split: str, where: str, row: dict[str, str]) -> VideoRecord:
        name = kinetics_clip_name(row["youtube_id"], row["time_start"], row["time_end"])
        relative = os.path.join(row["label"], name) if by_class else name
        return VideoRecord(inside(dirs[split], relative, where, _outside_allowed(ds)),
                           _lookup(index, row["label"], where), source=where)

    splits = {s: [record(s, where, r) for where, r in rows[s]] for s in SPLITS}
    return Annotations(splits, classes=sorted(index, key=index.get))


# --- Something-Something v2 ----------------------------------------------------------------------


SSV2_LABELS = 'a JSON object {"template name": "index", ...} (labels.json)'
SSV2_ENTRY = 'a JSON list of {"id": "123", "template": "Putting [something] on [something]", ...}'


def parse_ssv2(ds) -> Annotations:
    labels_path = _require_file(ds.labels_json, "dataset.labels_json")
    labels = read_json(labels_path, SSV2_LABELS)
    if not isinstance(labels, dict):
        raise AnnotationError(f"{labels_path}: holds a JSON {type(labels).__name__}; expected {SSV2_LABELS}")
    index = {name: as_int(i, str(labels_path), f"index of {name!r}", SSV2_LABELS) for name, i in labels.items()}
    files = _split_paths(ds, "annotations")
    splits = {}
    for s in SPLITS:
        path = _require_file(files[s], f"dataset.annotations.{s}")
        records = []
        for line, item in json_list(path, SSV2_ENTRY):
            where = f"{path}:{line}"
            template, video_id = entry(item, "template", where, SSV2_ENTRY), entry(item, "id", where, SSV2_ENTRY)
            if not isinstance(template, str) or not isinstance(video_id, (str, int)) or isinstance(video_id, bool):
                raise AnnotationError(f"{where}: 'id' must be a string or integer and 'template' a string; "
                                      f"expected {SSV2_ENTRY}")
            name = template.replace("[", "").replace("]", "")
            path_in = inside(ds.video_dir, f"{video_id}.{ds.extension}", where, _outside_allowed(ds))
            records.append(VideoRecord(path_in, _lookup(index, name, where), source=where))
        splits[s] = records
    return Annotations(splits, classes=sorted(index, key=index.get))


# --- EPIC-KITCHENS-100 ---------------------------------------------------------------------------


EPIC_CLASSES_ROW = "the header id,key,... and rows like 0,take,..."
EPIC_ROW = ("the EPIC-KITCHENS-100 header with participant_id, video_id, start_frame, stop_frame and "
            "<head>_class columns, integer frames and classes")


def _read_epic_classes(path: str | None, key: str) -> list[str]:
    file = _require_file(path, key)
    rows = [(as_int(column(r, "id", f"{file}:{n}", EPIC_CLASSES_ROW), f"{file}:{n}", "id", EPIC_CLASSES_ROW),
             column(r, "key", f"{file}:{n}", EPIC_CLASSES_ROW)) for n, r in read_csv(file, EPIC_CLASSES_ROW)]
    return [name for _, name in sorted(rows)]


def _epic_record(ds, row: dict[str, str], where: str, head_names: list[str]) -> VideoRecord:
    def integer(name: str) -> int:
        return as_int(column(row, name, where, EPIC_ROW), where, name, EPIC_ROW)

    try:
        relative = ds.video_pattern.format(**row)
    except (KeyError, IndexError) as err:
        raise AnnotationError(f"{where}: dataset.video_pattern={ds.video_pattern!r} needs column {err}; "
                              f"expected {EPIC_ROW}") from None
    return VideoRecord(inside(ds.root, relative, where, _outside_allowed(ds)),
                       tuple(integer(f"{head}_class") for head in head_names),
                       start_frame=integer("start_frame") - 1, end_frame=integer("stop_frame") - 1, source=where)


def parse_epic_kitchens(ds) -> Annotations:
    """Segments [start_frame, stop_frame] (1-based, as in the EPIC CSVs) of the long participant videos.

    Labels are (noun_class, verb_class), in the order of `dataset.heads` (scenic: noun, then verb)."""
    files = _split_paths(ds, "annotations")
    head_names = list(ds.heads)
    splits = {}
    for s in SPLITS:
        path = _require_file(files[s], f"dataset.annotations.{s}")
        splits[s] = [_epic_record(ds, row, f"{path}:{line}", head_names) for line, row in read_csv(path, EPIC_ROW)]
    head_classes = {}
    for head in head_names:
        class_file = ds.get("class_files", {}).get(head)
        if class_file and Path(class_file).is_file():
            head_classes[head] = _read_epic_classes(class_file, f"dataset.class_files.{head}")
    return Annotations(splits, heads={h: int(ds.heads[h]) for h in head_names}, head_classes=head_classes)


# --- Moments in Time -----------------------------------------------------------------------------


MIT_ROW = "rows class/file.mp4,class,agreement,disagreement (no header)"
MIT_CATEGORY = "rows name,index (moments_categories.txt)"


def parse_mit(ds) -> Annotations:
    """`trainingSet.csv` / `validationSet.csv` rows `class/file.mp4,class,agreement,disagreement` (no
    header); class indices from `moments_categories.txt` (`name,index`) when present, else sorted names."""
    files = _split_paths(ds, "annotations")
    dirs = _split_paths(ds, "videos")
    rows = {}
    for s in SPLITS:
        path = _require_file(files[s], f"dataset.annotations.{s}")
        rows[s] = [(f"{path}:{n}", column(r, 0, f"{path}:{n}", MIT_ROW), column(r, 1, f"{path}:{n}", MIT_ROW))
                   for n, r in read_csv(path, MIT_ROW, header=False)]
    categories = ds.get("categories")
    if categories and Path(categories).is_file():
        index = {}
        for n, r in read_csv(Path(categories), MIT_CATEGORY, header=False):
            where = f"{categories}:{n}"
            index[column(r, 0, where, MIT_CATEGORY)] = as_int(column(r, 1, where, MIT_CATEGORY), where,
                                                                  "index", MIT_CATEGORY)
    else:
        index = _class_index([label for _, _, label in rows["train"]], files["train"])
    splits = {s: [VideoRecord(inside(dirs[s], name, where, _outside_allowed(ds)), _lookup(index, label, where),
                              source=where) for where, name, label in rows[s]] for s in SPLITS}
    return Annotations(splits, classes=sorted(index, key=index.get))


# --- Plain lists and folders ---------------------------------------------------------------------


def read_video_list(path: Path, root: str, allow_outside: bool = False) -> list[VideoRecord]:
    """Lines `relative/path label` (mmaction2 / VideoMAE convention); the path may contain spaces."""
    records = []
    for number, line in read_lines(path):
        where = f"{path}:{number}"
        name, _, label = line.rpartition(" ")
        if not name or not label.lstrip("-").isdigit():
            raise AnnotationError(f"{where}: expected 'relative/path label' (an integer label), got {line!r}")
        records.append(VideoRecord(inside(root, name.strip(), where, allow_outside), int(label), source=where))
    return records


def list_path(ds, key: str) -> str | None:
    """`dataset.<key>` (a list file), relative to `dataset.root` unless absolute."""
    value = ds.get(key)
    return os.path.join(ds.root, value) if value and not os.path.isabs(value) else value


def parse_video_list(ds) -> Annotations:
    files = {"train": list_path(ds, "train_list"), "val": list_path(ds, "val_list"),
             "test": list_path(ds, "test_list") or list_path(ds, "val_list")}
    splits = {s: read_video_list(_require_file(files[s], f"dataset.{s}_list"), ds.root, _outside_allowed(ds))
              for s in SPLITS}
    return Annotations(splits, classes=[str(i) for i in range(int(ds.num_classes))])  # labels: annotation_checks


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
