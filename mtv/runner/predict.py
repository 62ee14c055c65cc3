"""`task=predict ckpt_path=<ckpt> inputs=<file | folder | list>`: classify video files.

Each video is decoded with the checkpoint's own data recipe (mtv.runner.recipe) into its test views
(`data.test_clips` x `data.test_crops`); the logits are averaged over the views and the top `top_k`
classes, named and with their softmax probabilities, are printed and written to `predictions.csv` and
`predictions.json` in the run directory. A file that cannot be read is listed with its error and the
rest go on.

`inputs` is a video file, a folder (every video below it, sorted), a `.txt` / `.lst` file with one path
per line (relative to the list's folder; a trailing ` <label>` as in video_list files is ignored), or a
list of any of these: `inputs=[a.mp4,clips/]`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import lightning as L
import torch
from omegaconf import DictConfig, ListConfig, OmegaConf
from torch import Tensor, nn
from torch.utils.data import DataLoader

from datamodules.bad_inputs import BadVideoLog
from datamodules.dataset import EvalVideoDataset, collate_clips
from datamodules.formats import VIDEO_EXTENSIONS, VideoRecord
from mtv import ConfigError
from mtv.checkpoints import read_checkpoint
from mtv.runner.predictions import names_by_head, prediction_rows, write_csv, write_json
from mtv.runner.tasks import load_checkpoint_model

LIST_SUFFIXES = (".txt", ".lst")
SPLIT = "predict"  # the split name in bad_videos.txt


def _input_items(inputs: Any) -> list[str]:
    if isinstance(inputs, (list, tuple, ListConfig)):
        return [str(item) for item in inputs]
    return [str(inputs)]


def check_predict(cfg: DictConfig) -> None:
    """Start-up checks of task=predict: one checkpoint, inputs that exist, top_k >= 1."""
    if not cfg.get("ckpt_path") or cfg.get("ckpt_paths"):
        raise ConfigError("task=predict needs one checkpoint: ckpt_path=<file.ckpt> (ckpt_paths is for task=eval)")
    if not Path(cfg.ckpt_path).is_file():
        raise ConfigError(f"checkpoint not found: {cfg.ckpt_path} (ckpt_path)")
    if cfg.get("inputs") is None:
        raise ConfigError("task=predict needs inputs=<video file | folder | list file> (or inputs=[a.mp4,b.mp4])")
    missing = [item for item in _input_items(cfg.inputs) if not Path(item).exists()]
    if missing:
        raise ConfigError(f"inputs: not found: {', '.join(missing)} (a video file, a folder or a .txt list)")
    if int(cfg.top_k) < 1:
        raise ConfigError(f"top_k={cfg.top_k}: must be at least 1")
    if not collect_videos(cfg.inputs):
        raise ConfigError(f"inputs={', '.join(_input_items(cfg.inputs))}: no videos found "
                          f"(extensions {', '.join(VIDEO_EXTENSIONS)})")


def _list_file(path: Path) -> list[str]:
    videos = []
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if not line:
            continue
        name, _, label = line.rpartition(" ")
        if not (path.parent / line).exists() and name and label.isdigit():
            line = name  # "relative/path label" (video_list convention)
        videos.append(str(path.parent / line))
    return videos


def collect_videos(inputs: Any) -> list[str]:
    """The video paths `inputs` names, in order, each once."""
    videos: list[str] = []
    for item in _input_items(inputs):
        path = Path(item)
        if path.is_dir():
            videos += sorted(str(p) for p in path.rglob("*") if p.is_file() and p.suffix.lower() in VIDEO_EXTENSIONS)
        elif path.suffix.lower() in LIST_SUFFIXES:
            videos += _list_file(path)
        else:
            videos.append(str(path))
    return list(dict.fromkeys(videos))


class ViewAveraged(L.LightningModule):
    """predict_step: per video of the batch, its index, the logits averaged over its `views` clips and
    whether it could be read."""

    def __init__(self, model: nn.Module, views: int) -> None:
        super().__init__()
        self.model, self.views = model, views

    def predict_step(self, batch: dict[str, Tensor], batch_idx: int) -> dict[str, Tensor]:
        logits = self.model(batch["video"]).float()
        return {"video_index": batch["video_index"].view(-1, self.views)[:, 0].cpu(),
                "logits": logits.view(-1, self.views, logits.shape[-1]).mean(1).cpu(),
                "valid": batch["valid"].view(-1, self.views)[:, 0].cpu()}


def _trained_dataset(checkpoint: dict[str, Any]) -> dict[str, Any] | None:
    """The `dataset` node a run.py checkpoint was trained with (None for converted checkpoints)."""
    return checkpoint["hyper_parameters"]["cfg"]["dataset"] if "hyper_parameters" in checkpoint else None


def _class_names(checkpoint: dict[str, Any], num_classes: int) -> dict[str, list[str]]:
    dataset = _trained_dataset(checkpoint)
    if dataset is not None:
        return names_by_head(checkpoint.get("class_names"), dataset.get("heads"), num_classes, dataset.get("name"))
    return names_by_head(None, None, num_classes, guess_from_count=True)  # converted: no dataset name stored


def _print(rows: list[dict[str, Any]], top_k: int) -> None:
    for row in rows:
        if row["status"] != "ok":
            print(f"{row['video']}: UNREADABLE ({row['error']})", flush=True)
            continue
        heads = sorted({key[: -len("top1")] for key in row if key.endswith("top1")})
        for prefix in heads:
            ranked = [f"{row[f'{prefix}top{r}']} ({row[f'{prefix}prob{r}']:.3f})" for r in range(1, top_k + 1)
                      if f"{prefix}top{r}" in row]
            print(f"{row['video']}: {prefix}{', '.join(ranked)}", flush=True)


def _view_averaged_logits(cfg: DictConfig, model: nn.Module, videos: list[str], bad_log: BadVideoLog,
                          run_dir: Path) -> dict[str, Tensor]:
    """video_index, per-video logits and readability of `videos`, decoded into the recipe's test views."""
    data_cfg = OmegaConf.merge(cfg.data, {"on_decode_error": "skip"})  # an unreadable file is reported, not fatal
    dataset = EvalVideoDataset([VideoRecord(v, 0) for v in videos], data_cfg, bad_log, SPLIT,
                               int(data_cfg.test_clips), int(data_cfg.test_crops))
    loader = DataLoader(dataset, batch_size=int(data_cfg.eval_batch_size), num_workers=int(data_cfg.num_workers),
                        collate_fn=collate_clips)
    trainer = L.Trainer(accelerator=cfg.trainer.accelerator, devices=1, precision=cfg.trainer.precision,
                        logger=False, enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, default_root_dir=str(run_dir))
    batches = trainer.predict(ViewAveraged(model, dataset.num_views), dataloaders=loader)
    return {key: torch.cat([b[key] for b in batches]) for key in ("video_index", "logits", "valid")}


def predict(cfg: DictConfig, run_dir: Path) -> dict[str, Any]:
    videos = collect_videos(cfg.inputs)
    checkpoint = read_checkpoint(cfg.ckpt_path, "ckpt_path", mmap=True)
    model, trained = load_checkpoint_model(cfg.ckpt_path)
    names = _class_names(checkpoint, int(trained["num_classes"]))
    trained_on = (_trained_dataset(checkpoint) or {}).get("name")
    bad_log = BadVideoLog(str(run_dir))
    out = _view_averaged_logits(cfg, model, videos, bad_log, run_dir)
    readable = out["valid"].nonzero().view(-1)
    scored = prediction_rows([videos[int(out["video_index"][i])] for i in readable], out["logits"][readable],
                             names, int(cfg.top_k))
    by_video = {row["video"]: {"video": row["video"], "status": "ok", **row} for row in scored}
    errors = bad_log.errors(SPLIT)
    rows = [by_video.get(v) or {"video": v, "status": "unreadable",
                                "error": errors.get(v) or ("file not found" if not os.path.exists(v) else "")}
            for v in videos]
    _print(rows, int(cfg.top_k))
    write_csv(run_dir / "predictions.csv", rows)
    write_json(run_dir / "predictions.json", rows)
    unreadable = [row["video"] for row in rows if row["status"] != "ok"]
    print(f"predictions of {len(rows)} videos ({len(unreadable)} unreadable): {run_dir / 'predictions.csv'} "
          "and predictions.json", flush=True)
    params = sum(p.numel() for p in model.parameters())
    return {"metrics": {}, "num_classes": int(trained["num_classes"]), "params": params, "params_m": params / 1e6,
            "dataset": {"name": trained_on, "num_frames": cfg.data.num_frames, "crop_size": cfg.data.crop_size},
            "class_names": names[""] if list(names) == [""] else names,
            "checkpoints": {"evaluated": [cfg.ckpt_path]}, "predictions": str(run_dir / "predictions.csv"),
            "dataset_sizes": {"predict": len(videos)}, "unreadable": {"predict": len(unreadable)}}
