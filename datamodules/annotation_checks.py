"""Checks of parsed annotations against the config, run at start-up (before any logger or model).

Every message names the `file:line` a record came from, so a bad label in the val list is blamed on the
val list. Duplicates (the same video, or segment, twice in a split) are an error unless
`data.duplicates=keep` (train on it twice, as before) or `drop` (keep the first).
"""
from __future__ import annotations

import logging

from .formats import AnnotationError, Annotations, VideoRecord

log = logging.getLogger(__name__)

DUPLICATE_POLICIES = ("error", "keep", "drop")


def check_annotations(annotations: Annotations, dataset_cfg, data_cfg) -> Annotations:
    """`annotations` with duplicates handled; raises AnnotationError on a label or class-count problem."""
    num_classes = dataset_cfg.num_classes
    if annotations.heads:
        _check_heads(annotations, int(num_classes))
    else:
        defined = len(annotations.classes) if annotations.classes is not None else None
        if num_classes is None:
            num_classes = defined
        elif defined is not None and defined != int(num_classes):
            raise AnnotationError(f"the annotations define {defined} classes but dataset.num_classes={num_classes}: "
                                  f"set dataset.num_classes={defined} (or null to take it from the annotations), "
                                  "or check the annotation files")
        _check_labels(annotations, int(num_classes))
    policy = str(data_cfg.get("duplicates", "error"))
    if policy not in DUPLICATE_POLICIES:
        raise AnnotationError(f"data.duplicates={policy!r} must be one of {DUPLICATE_POLICIES}")
    annotations.splits = {s: _deduplicated(records, s, policy) for s, records in annotations.splits.items()}
    return annotations


def _check_heads(annotations: Annotations, num_classes: int) -> None:
    total = sum(annotations.heads.values())
    if total != num_classes:
        raise AnnotationError(f"dataset.num_classes={num_classes} but dataset.heads sum to {total}")
    for records in annotations.splits.values():
        for r in records:
            for (head, size), label in zip(annotations.heads.items(), r.label):
                if not 0 <= label < size:
                    raise AnnotationError(f"{r.source or r.path}: {head} label {label} outside 0..{size - 1}: "
                                          f"fix the row or dataset.heads.{head}")


def _check_labels(annotations: Annotations, num_classes: int) -> None:
    seen: set[int] = set()
    for records in annotations.splits.values():
        for r in records:
            if not 0 <= r.label < num_classes:
                raise AnnotationError(f"{r.source or r.path}: label {r.label} outside 0..{num_classes - 1} "
                                      f"(dataset.num_classes={num_classes}): fix the line or dataset.num_classes")
            seen.add(r.label)
    if seen and len(seen) < num_classes:
        log.warning("dataset.num_classes=%d but the annotations use only %d distinct labels (%d..%d): %d classes "
                    "are never seen; is dataset.num_classes right?", num_classes, len(seen), min(seen), max(seen),
                    num_classes - len(seen))


def _deduplicated(records: list[VideoRecord], split: str, policy: str) -> list[VideoRecord]:
    first: dict[tuple, VideoRecord] = {}
    kept, duplicates = [], []
    for r in records:
        key = (r.path, r.start_frame, r.end_frame)
        if key in first:
            duplicates.append((first[key], r))
            if policy != "drop":
                kept.append(r)
        else:
            first[key] = r
            kept.append(r)
    if not duplicates:
        return records
    original, again = duplicates[0]
    example = (f"{again.source or again.path} repeats {original.source or original.path} ({again.path}"
               f"{'' if again.label == original.label else f', label {again.label} vs {original.label}'})")
    if policy == "error":
        raise AnnotationError(f"{len(duplicates)} duplicate {split} entries, e.g. {example}: remove them, or set "
                              "data.duplicates=drop (keep the first) or data.duplicates=keep")
    log.warning("%d duplicate %s entries, e.g. %s; data.duplicates=%s", len(duplicates), split, example, policy)
    return kept
