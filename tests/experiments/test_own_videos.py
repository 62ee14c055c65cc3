"""Issue 14 acceptance: the documented "your own videos on a CPU" command learns a generated
colour-shapes folder (3 classes: red square moving right, green square moving down, blue circle
circling; 64x64 dark background, 48 frames at 12 fps, class-per-folder, 15 train / 9 val clips), also
when each class's lighting in training misleads in validation. MTV_SHAPES_SEED picks another folder of
the same kind."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import results, run_py

VIDEOS = Path(__file__).resolve().parents[1] / "data"  # tests/data/videos.py


def write_folder(root: Path, seed: int, confound_lighting: bool) -> Path:
    """The colour-shapes folder, written by a fresh interpreter that has loaded decord's FFmpeg first (as
    run.py's data loaders have): the H.264 bytes PyAV writes depend on which FFmpeg libraries the process
    has loaded, and the folder must not depend on which tests ran before."""
    code = ("import decord, pathlib; from videos import write_colour_shapes_folder as w; "
            f"w(pathlib.Path({str(root)!r}), seed={seed}, confound_lighting={confound_lighting})")
    subprocess.run([sys.executable, "-c", code], cwd=VIDEOS, check=True, timeout=300)
    return root


@pytest.mark.slow
@pytest.mark.timeout(1800)
@pytest.mark.parametrize("confound_lighting", [False, True], ids=["plain", "misleading-lighting"])
def test_own_videos_command_learns_a_colour_shapes_folder(tmp_path, env, confound_lighting):
    seed = int(os.environ.get("MTV_SHAPES_SEED", "0"))
    root = write_folder(tmp_path / "my_videos", seed, confound_lighting)
    run_dir = tmp_path / "run"
    proc = run_py("experiment=own_videos", f"dataset.root={root}", "logger=csv",  # classes: the folders
                  f"hydra.run.dir={run_dir}", env=env, timeout=1500)
    assert proc.returncode == 0, proc.stderr[-3000:]
    metrics = results(run_dir)["metrics"]
    assert metrics["test/num_videos"] == 9
    assert metrics["test/top1"] >= 0.9, metrics
