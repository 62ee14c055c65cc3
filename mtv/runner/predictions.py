"""Per-video predictions as tables: top-k class names with probabilities, written as CSV and JSON.

Used by `task=predict` (predictions.csv / .json) and by every test stage (`test_predictions.csv`, via the
`TestPredictions` callback). Probabilities are the softmax of the logits averaged over the video's views
(the same per-video logits the multi-view metrics score); multi-head datasets get columns per head.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import lightning as L
from torch import Tensor

from mtv.class_lists import class_names_for, placeholder_names
from mtv.training.metrics import split_heads

NamesByHead = dict[str, list[str]]  # head -> names; the single head of a plain dataset is ""


def names_by_head(stored: list[str] | dict[str, list[str]] | None, heads: dict[str, int] | None,
                  num_classes: int, dataset: str | None = None, guess_from_count: bool = False) -> NamesByHead:
    """Class names for every head of a model (see mtv.class_lists.class_names_for for the fallbacks)."""
    if not heads:
        listed = stored if isinstance(stored, list) else None
        return {"": class_names_for(num_classes, listed, dataset, guess_from_count)}
    stored = stored if isinstance(stored, dict) else {}
    return {head: stored[head] if len(stored.get(head) or []) == size else placeholder_names(size)
            for head, size in heads.items()}


def prediction_rows(videos: list[str], logits: Tensor, names: NamesByHead, top_k: int,
                    labels: Tensor | None = None) -> list[dict[str, Any]]:
    """One dict per video: `video`, the true label(s) when given, then `top<r>` / `prob<r>` for r = 1..k
    (`<head>_top<r>` for multi-head)."""
    heads = {head: len(n) for head, n in names.items()}
    per_head = {"": logits} if list(heads) == [""] else split_heads(logits.float(), heads)
    rows: list[dict[str, Any]] = [{"video": v} for v in videos]
    for k, (head, head_logits) in enumerate(per_head.items()):
        prefix = f"{head}_" if head else ""
        probs, classes = head_logits.float().softmax(-1).topk(min(top_k, heads[head]), dim=-1)
        for i, row in enumerate(rows):
            if labels is not None:
                label = int(labels[i].reshape(-1)[k])
                row[f"{prefix}label"] = label
                row[f"{prefix}label_name"] = names[head][label]
            for r, (p, c) in enumerate(zip(probs[i].tolist(), classes[i].tolist()), 1):
                row[f"{prefix}top{r}"] = names[head][c]
                row[f"{prefix}prob{r}"] = round(p, 6)
    return rows


def write_csv(path: Path, rows: list[dict[str, Any]]) -> None:
    """UTF-8 CSV with the union of the rows' columns (in first-seen order); csv quotes commas and spaces."""
    columns = list(dict.fromkeys(key for row in rows for key in row))
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)


def write_json(path: Path, rows: list[dict[str, Any]]) -> None:
    path.write_text(json.dumps(rows, indent=2, ensure_ascii=False), encoding="utf-8")


class TestPredictions(L.Callback):
    """Writes `<run dir>/test_predictions.csv` at the end of every test stage (rank 0): per readable test
    video its path, label and top-k. Callback hooks run before the LightningModule's, so the module's
    multi-view aggregator still holds the epoch (it is gathered here on every rank, as compute() needs)."""

    def __init__(self, datamodule: Any, run_dir: Path, class_names: list[str] | dict[str, list[str]] | None = None,
                 top_k: int = 5) -> None:
        self.datamodule, self.run_dir, self.class_names, self.top_k = datamodule, Path(run_dir), class_names, top_k

    def on_test_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        videos = pl_module.aggregator.compute()
        if not trainer.is_global_zero or not len(videos["video_index"]):
            return
        dm = self.datamodule
        names = names_by_head(self.class_names or dm.class_names, dm.heads, dm.num_classes)
        records = dm.datasets["test"].records
        paths = [records[int(i)].path for i in videos["video_index"]]
        rows = prediction_rows(paths, videos["logits"], names, self.top_k, labels=videos["labels"])
        write_csv(self.run_dir / "test_predictions.csv", rows)


class StoreClassNames(L.Callback):
    """Puts the annotations' class names into every checkpoint (`checkpoint["class_names"]`)."""

    def __init__(self, datamodule: Any) -> None:
        self.datamodule = datamodule

    def on_save_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict) -> None:
        checkpoint["class_names"] = self.datamodule.class_names

