"""The attacks of issue 12 through `python run.py`, as a user would meet them: a malicious checkpoint given to
task=eval, a shared run directory with a planted checkpoint and planted overrides given to resume=<dir>,
and a bad annotation list that must stop the run at start-up (issue 14 item 3). Markers live in tmp_path."""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch
import yaml
from helpers import results, run_py


def _tiny_dataset(root: Path, val: str = "a.mp4 0\nb.mp4 1\n") -> tuple[str, ...]:
    """A two-class video_list (lists only: each test stops before any video is opened)."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "train.txt").write_text("a.mp4 0\nb.mp4 1\n")
    (root / "val.txt").write_text(val)
    return ("dataset=video_list", f"dataset.root={root}", "dataset.train_list=train.txt", "dataset.val_list=val.txt",
            "dataset.num_classes=2")


class _Payload:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def _malicious_checkpoint(path: Path, marker: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"state_dict": {}, "hyper_parameters": _Payload(marker), "loops": {}, "global_step": 0}, path)


def test_eval_refuses_a_checkpoint_that_runs_code(env: dict, tmp_path: Path) -> None:
    ckpt, marker = tmp_path / "downloaded.ckpt", tmp_path / "eval.pwned"
    _malicious_checkpoint(ckpt, marker)
    proc = run_py("task=eval", *_tiny_dataset(tmp_path / "data"), "logger=csv", f"ckpt_path={ckpt}",
                  f"hydra.run.dir={tmp_path / 'run'}", env=env)
    assert proc.returncode != 0 and not marker.exists()
    error = results(tmp_path / "run")["error"]
    assert "downloaded.ckpt" in error and "python -m mtv.checkpoints" in error


def test_resume_of_a_planted_run_directory_runs_no_code(env: dict, tmp_path: Path) -> None:
    run_dir = tmp_path / "shared_run"
    ckpt_marker, callback_marker = tmp_path / "ckpt.pwned", tmp_path / "callback.pwned"
    _malicious_checkpoint(run_dir / "checkpoints" / "last.ckpt", ckpt_marker)
    (run_dir / ".hydra").mkdir()
    (run_dir / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump([
        *_tiny_dataset(tmp_path / "data"), "logger=csv", "+callbacks.extra.x._target_=builtins.open",
        f"+callbacks.extra.x.file={callback_marker}", "+callbacks.extra.x.mode=w"]))
    proc = run_py(f"resume={run_dir}", env=env)
    assert proc.returncode != 0
    assert not ckpt_marker.exists() and not callback_marker.exists()
    assert "not replaying '+callbacks.extra.x._target_=builtins.open'" in proc.stderr
    assert "refused" in results(run_dir)["error"]


def test_a_bad_val_label_stops_the_run_at_start_up_naming_the_val_list(env: dict, tmp_path: Path) -> None:
    root = tmp_path / "videos"
    run_dir = tmp_path / "run"
    proc = run_py(*_tiny_dataset(root, val="a.mp4 0\nb.mp4 9\n"), f"hydra.run.dir={run_dir}", env=env)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert f"{root / 'val.txt'}:2: label 9 outside 0..1" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (run_dir / "wandb").exists()  # stopped before any logger started
    assert json.loads((run_dir / "results.json").read_text())["status"] == "failed"


def test_video_folder_needs_no_num_classes(env: dict, tmp_path: Path) -> None:
    root = tmp_path / "folder"
    for split in ("train", "val"):
        for name in ("circle", "square"):
            (root / split / name).mkdir(parents=True)
    proc = run_py("task=profile", "dataset=video_folder", f"dataset.root={root}", "logger=csv",
                  f"hydra.run.dir={tmp_path / 'run'}", env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert results(tmp_path / "run")["num_classes"] == 2
