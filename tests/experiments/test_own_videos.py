"""Issue 14 acceptance: the documented "your own videos on a CPU" command learns a generated
colour-shapes folder (3 classes: red square moving right, green square moving down, blue circle
circling; 64x64 dark background, 48 frames at 12 fps, class-per-folder, 15 train / 9 val clips).
MTV_SHAPES_SEED picks another folder of the same kind."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import results, run_py

VIDEOS = Path(__file__).resolve().parents[1] / "data"  # tests/data/videos.py


def write_folder(root: Path, seed: int) -> Path:
    """The colour-shapes folder, written by a fresh interpreter that has loaded decord's FFmpeg first (as
    run.py's data loaders have): the H.264 bytes PyAV writes depend on which FFmpeg libraries the process
    has loaded, and the folder must not depend on which tests ran before."""
    code = ("import decord, pathlib; from videos import write_colour_shapes_folder as w; "
            f"w(pathlib.Path({str(root)!r}), seed={seed})")
    subprocess.run([sys.executable, "-c", code], cwd=VIDEOS, check=True, timeout=300)
    return root


@pytest.mark.slow
@pytest.mark.timeout(1800)
@pytest.mark.xfail(raises=AssertionError, strict=False,
                   reason="issue 14 open: on some folders (and in a full CI run, not alone) the recipe reaches 8 of 9 "
                   "videos (0.889 < 0.9); only the accuracy assertion may fail, a crash fails the test")
def test_own_videos_command_learns_a_colour_shapes_folder(tmp_path, env):
    root = write_folder(tmp_path / "my_videos", seed=int(os.environ.get("MTV_SHAPES_SEED", "0")))
    run_dir = tmp_path / "run"
    proc = run_py("experiment=own_videos", f"dataset.root={root}", "logger=csv",  # classes: the folders
                  f"hydra.run.dir={run_dir}", env=env, timeout=1500)
    if proc.returncode != 0:  # a crash is a failure even while the accuracy bar is expected to wobble
        pytest.fail(proc.stderr[-3000:], pytrace=False)
    metrics = results(run_dir)["metrics"]
    assert metrics["test/num_videos"] == 9
    assert metrics["test/top1"] >= 0.9, metrics
