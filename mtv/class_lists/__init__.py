"""Class names of the public datasets that released scenic checkpoints were trained on, so that predictions
of a converted checkpoint read "abseiling" instead of "class_0". Sources and gaps: README.md here.

Index i of a list is the label index the dataset parsers use (sorted names, as datamodules.formats and
scenic's Kinetics / SSv2 readers index them).
"""

from __future__ import annotations

from pathlib import Path

HERE = Path(__file__).parent
# dataset name (conf/dataset/<name>.yaml) -> (file in this folder, classes); None: list not shipped
LISTS: dict[str, tuple[str | None, int]] = {
    "kinetics400": ("kinetics400.txt", 400),
    "kinetics600": ("kinetics600.txt", 600),
    "kinetics700": ("kinetics700.txt", 700),
    "ssv2": ("ssv2.txt", 174),
    "mit": (None, 339),
}


def shipped_class_list(dataset: str) -> list[str] | None:
    """The shipped names of `dataset` (a conf/dataset name), or None when none is shipped."""
    file = LISTS.get(dataset, (None, 0))[0]
    return (HERE / file).read_text(encoding="utf-8").splitlines() if file else None


def placeholder_names(num_classes: int) -> list[str]:
    return [f"class_{i}" for i in range(num_classes)]


def class_names_for(num_classes: int, stored: list[str] | None = None, dataset: str | None = None,
                    guess_from_count: bool = False) -> list[str]:
    """Names for a model's `num_classes` outputs, the first that fits: the names stored with the model,
    the shipped list of `dataset`, (with `guess_from_count`, for converted scenic checkpoints that carry no
    dataset name) the shipped list with exactly that many classes, else "class_<i>"."""
    if stored is not None and len(stored) == num_classes:
        return list(stored)
    candidates = [dataset] if dataset else []
    if guess_from_count:
        candidates += [name for name, (_, size) in LISTS.items() if size == num_classes]
    for name in candidates:
        names = shipped_class_list(name)
        if names is not None and len(names) == num_classes:
            return names
    return placeholder_names(num_classes)
