"""A synthetic video dataset, generated on first use as real H.264 mp4 files (PyAV), so the default
job exercises the same decode path as a real dataset.

Each class is a (slow, fast) pair and recognising it needs both:
  * slow, long-range: a large soft blob drifts across the frame in one of 2-4 directions over the
    whole video (about 1 px per frame: invisible between neighbouring frames, obvious over 16);
  * fast, fine: a pair of ~6 px dots at the two ends of a diameter (radius 9-11 px) turns about the
    frame centre clockwise or counter-clockwise at 25-40 degrees per frame (each dot moves 4-7 px
    between neighbouring frames). Its sense is visible only at a fine frame rate: at a temporal stride
    of 4 the pair turns 100-160 degrees, which, the pair being symmetric under a half turn, looks like
    20-80 degrees the other way (it aliases to the opposite sense).
The videos are square (40x40) and the pair turns about the centre, so every training and test crop
(32 px of the 36 px resize) holds it, near the meeting point of the 2x2 patches of a 32 px crop.
Measured (docs/data.md): the default job learns the drift in the first epoch and the spin in the
2nd or 3rd of 5, reaching 0.99-1.0 test top-1; with the previous design (one 4 px dot on a random small orbit
at 50-80 degrees per frame) it stayed at drift-only accuracy (~0.5).
Horizontal flip reverses the spin and left/right drift, so the synthetic recipe turns flip off.

Files live in `<cache_dir>/synthetic-<hash of the parameters>/` with `train.txt`, `val.txt`,
`test.txt` in the `video_list` format. Generation writes to a temporary folder and renames it into
place, so concurrent processes (DDP ranks, sweep jobs) never see a half-written dataset.
"""
from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

SLOW_DIRECTIONS = {"up": (-1.0, 0.0), "down": (1.0, 0.0), "left": (0.0, -1.0), "right": (0.0, 1.0)}
FAST_SENSES = ("clockwise", "counterclockwise")
GENERATOR_VERSION = 3  # bump when rendering changes, so caches of older versions are not reused
PARAMETER_KEYS = ("num_classes", "num_train", "num_val", "num_test", "num_frames", "height", "width", "fps",
                  "seed", "crf")


def class_names(num_classes: int) -> list[str]:
    """Class c = (slow direction c // 2, spin c % 2)."""
    directions = list(SLOW_DIRECTIONS)
    if num_classes not in (2, 4, 6, 8):
        raise ValueError(f"dataset.num_classes={num_classes} for synthetic must be 2, 4, 6 or 8 "
                         f"(2 spins x 1-4 drift directions)")
    return [f"drift_{directions[c // 2]}_{FAST_SENSES[c % 2]}" for c in range(num_classes)]


def render_video(label: int, num_frames: int, height: int, width: int, rng: np.random.Generator) -> np.ndarray:
    """uint8 (T, H, W, 3) frames of one video of class `label`."""
    dy, dx = SLOW_DIRECTIONS[list(SLOW_DIRECTIONS)[label // 2]]
    spin = 1.0 if label % 2 == 0 else -1.0  # image y points down: +angle is clockwise on screen
    t = np.arange(num_frames, dtype=np.float32)[:, None, None]
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)

    # Slow blob: travels 60% of the frame over the video, from a random point on the entry side.
    travel = 0.6 * min(height, width)
    y0 = height / 2 - dy * travel / 2 + (rng.uniform(-0.2, 0.2) * height if dy == 0 else 0)
    x0 = width / 2 - dx * travel / 2 + (rng.uniform(-0.2, 0.2) * width if dx == 0 else 0)
    speed = travel / max(num_frames - 1, 1)
    by, bx = y0 + dy * speed * t, x0 + dx * speed * t
    sigma = min(height, width) / 5
    blob = np.exp(-((yy - by) ** 2 + (xx - bx) ** 2) / (2 * sigma**2))

    # Fast pair: two dots on opposite ends of a diameter (radius 9-11 px) turning about the frame
    # centre (+-2 px) at 25-40 degrees per frame, so each dot moves ~4-7 px between neighbouring
    # frames; the pair turns about the meeting point of the 2x2 patches of every 32 px crop.
    radius = rng.uniform(9, 11)
    cy, cx = height / 2 + rng.uniform(-2, 2), width / 2 + rng.uniform(-2, 2)
    angle = rng.uniform(0, 2 * math.pi) + spin * math.radians(rng.uniform(25, 40)) * t
    dot = np.zeros_like(blob)
    for end in (0.0, math.pi):
        dot_y, dot_x = cy + radius * np.sin(angle + end), cx + radius * np.cos(angle + end)
        dot += np.exp(-((yy - dot_y) ** 2 + (xx - dot_x) ** 2) / (2 * 2.5**2))

    background = rng.uniform(20, 70, size=3)
    blob_colour = rng.uniform(60, 140, size=3)
    frames = (background + blob[..., None] * blob_colour + dot[..., None] * 220.0
              + rng.normal(0, 6, size=(num_frames, height, width, 3)))
    return np.clip(frames, 0, 255).astype(np.uint8)


def write_mp4(path: str | Path, frames: np.ndarray, fps: int = 10, crf: int = 12) -> None:
    """H.264 yuv420p mp4 via PyAV (sizes must be even)."""
    import av

    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height = frames.shape[2], frames.shape[1]
        stream.pix_fmt = "yuv420p"
        stream.options = {"crf": str(crf), "preset": "ultrafast", "tune": "zerolatency"}
        for array in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(array, format="rgb24")))
        container.mux(stream.encode())


def dataset_dir(params: dict, cache_dir: str | Path) -> Path:
    keyed = {**params, "generator_version": GENERATOR_VERSION}
    digest = hashlib.sha1(json.dumps(keyed, sort_keys=True).encode()).hexdigest()[:12]
    return Path(cache_dir).expanduser() / f"synthetic-{digest}"


def ensure_synthetic(params: dict, cache_dir: str | Path) -> Path:
    """Return the dataset folder for `params`, generating it first if no process has yet."""
    target = dataset_dir(params, cache_dir)
    if (target / "test.txt").is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    try:
        _generate(params, tmp)
        try:
            os.rename(tmp, target)  # atomic; fails if another process got there first
        except OSError:
            if not (target / "test.txt").is_file():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def _generate(params: dict, folder: Path) -> None:
    names = class_names(int(params["num_classes"]))
    rng = np.random.default_rng(int(params["seed"]))
    log.info("generating synthetic videos %s in %s", params, folder)
    total = sum(int(params[f"num_{split}"]) for split in ("train", "val", "test"))
    done = 0
    for split in ("train", "val", "test"):
        count = int(params[f"num_{split}"])
        (folder / split).mkdir()
        lines = []
        for i in range(count):
            done += 1
            if done % max(total // 10, 1) == 0 or done == total:  # ~10 progress lines, not silence
                log.info("synthetic videos: %d / %d written", done, total)
            label = i % len(names)  # balanced classes
            frames = render_video(label, int(params["num_frames"]), int(params["height"]), int(params["width"]), rng)
            name = f"{split}/{i:05d}.mp4"
            write_mp4(folder / name, frames, fps=int(params["fps"]), crf=int(params["crf"]))
            lines.append(f"{name} {label}")
        (folder / f"{split}.txt").write_text("\n".join(lines) + "\n")
    (folder / "classes.txt").write_text("\n".join(names) + "\n")
    (folder / "params.json").write_text(json.dumps(params, indent=1, sort_keys=True))
