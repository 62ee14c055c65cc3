"""Writes real video files for the data tests (PyAV), good and deliberately broken."""
from __future__ import annotations

import os
from fractions import Fraction
from pathlib import Path

import av
import numpy as np


def gradient_frames(num_frames: int, height: int, width: int, seed: int = 0) -> np.ndarray:
    """uint8 (T, H, W, 3): a moving gradient plus a frame-number stripe, so frames differ."""
    rng = np.random.default_rng(seed)
    t = np.arange(num_frames)[:, None, None]
    yy, xx = np.mgrid[0:height, 0:width]
    base = (xx[None] * 3 + yy[None] * 2 + t * 9) % 256
    frames = np.stack([base, (base + 85) % 256, (255 - base)], axis=-1).astype(np.uint8)
    return np.clip(frames.astype(int) + rng.integers(-4, 5, frames.shape), 0, 255).astype(np.uint8)


def write_video(path: str | Path, num_frames: int = 16, height: int = 48, width: int = 64, fps: int = 10,
                codec: str = "libx264", pix_fmt: str = "yuv420p", audio: bool = False,
                rotation: int | None = None, gop: int | None = None, faststart: bool = False,
                frames: np.ndarray | None = None, seed: int = 0) -> Path:
    """A real video file; the container follows the extension (.mp4, .webm, .avi, .mkv)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    frames = gradient_frames(num_frames, height, width, seed) if frames is None else frames
    options = {"movflags": "faststart"} if faststart else {}
    with av.open(str(path), mode="w", options=options) as container:
        stream = container.add_stream(codec, rate=fps)
        stream.width, stream.height, stream.pix_fmt = frames.shape[2], frames.shape[1], pix_fmt
        if gop:
            stream.gop_size = gop
        if rotation is not None:
            stream.metadata["rotate"] = str(rotation)
        audio_stream = container.add_stream("aac", rate=16000) if audio else None
        for array in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(array, format="rgb24")))
        container.mux(stream.encode())
        if audio_stream is not None:
            _write_silence(container, audio_stream, seconds=num_frames / fps)
    return path


def write_variable_frame_rate(path: str | Path, num_frames: int = 16, height: int = 48, width: int = 64) -> Path:
    """H.264 with irregular frame gaps (60 ms and 150 ms), as phone recordings have."""
    frames = gradient_frames(num_frames, height, width)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=10)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.codec_context.time_base = Fraction(1, 1000)
        pts = 0
        for i, array in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(array, format="rgb24")
            frame.pts, frame.time_base = pts, Fraction(1, 1000)
            pts += 60 if i % 3 else 150
            container.mux(stream.encode(frame))
        container.mux(stream.encode())
    return Path(path)


def _write_silence(container, stream, seconds: float) -> None:
    samples = np.zeros((1, 1024), dtype=np.float32)
    for _ in range(int(seconds * stream.rate / 1024) + 1):
        frame = av.AudioFrame.from_ndarray(samples, format="fltp", layout="mono")
        frame.rate = stream.rate
        container.mux(stream.encode(frame))
    container.mux(stream.encode())


def write_audio_only(path: str | Path, seconds: float = 1.0) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), mode="w", format="mp4") as container:
        _write_silence(container, container.add_stream("aac", rate=16000), seconds)
    return path


def write_empty(path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"")
    return path


def write_random_bytes(path: str | Path, size: int = 20000) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(np.random.default_rng(1).integers(0, 256, size, dtype=np.uint8).tobytes())
    return path


def truncate(path: str | Path, fraction: float) -> Path:
    """Cut a file to `fraction` of its size (a broken download)."""
    path = Path(path)
    size = os.path.getsize(path)
    with open(path, "r+b") as f:
        f.truncate(int(size * fraction))
    return path


SHAPE_CLASSES = ("red_square_right", "green_square_down", "blue_circle_circling")


def colour_shapes_frames(label: int, rng: np.random.Generator, num_frames: int = 48, size: int = 64,
                         background: int | None = None) -> np.ndarray:
    """uint8 (T, size, size, 3): a dark, slightly noisy background (grey level `background`, else random
    in [8, 30)) and one shape of class `label` (SHAPE_CLASSES: a red square moving right, a green square
    moving down, a blue circle circling), with a random start, speed and shape size, as a user's own small
    video folder might hold."""
    yy, xx = np.mgrid[0:size, 0:size]
    if background is None:  # dark grey; a per-video colour tint is a confound 15 videos cannot undo
        background = int(rng.integers(8, 30))
    frames = np.empty((num_frames, size, size, 3), dtype=np.uint8)
    half = int(rng.integers(5, 9))
    speed = rng.uniform(0.6, 1.2)
    start = rng.uniform(half, size - half, 2)
    radius, phase, turn = rng.uniform(10, 18), rng.uniform(0, 2 * np.pi), rng.uniform(0.15, 0.3)
    colour = np.array([[200, 40, 40], [40, 190, 60], [50, 70, 220]])[label] + rng.integers(-20, 21, 3)
    for t in range(num_frames):
        frame = np.clip(background + rng.normal(0, 3, (size, size, 3)), 0, 255)
        if label == 2:
            cy = size / 2 + radius * np.sin(phase + turn * t)
            cx = size / 2 + radius * np.cos(phase + turn * t)
            mask = (yy - cy) ** 2 + (xx - cx) ** 2 <= half ** 2
        else:
            travel = (speed * t) % (size - 2 * half)
            cy, cx = (start[0], half + (start[1] - half + travel) % (size - 2 * half)) if label == 0 else \
                (half + (start[0] - half + travel) % (size - 2 * half), start[1])
            mask = (np.abs(yy - cy) <= half) & (np.abs(xx - cx) <= half)
        frame[mask] = colour
        frames[t] = frame.astype(np.uint8)
    return frames


# confound_lighting: background grey level per (split, class): the red squares are filmed in the dark and
# the green ones in brighter light for training, the other way round for validation
CONFOUNDED_BACKGROUNDS = {"train": (10, 28, 19), "val": (28, 10, 19)}


def write_colour_shapes_folder(root: str | Path, train_per_class: int = 5, val_per_class: int = 3,
                               seed: int = 0, fps: int = 12, confound_lighting: bool = False) -> Path:
    """`root/{train,val}/<class>/<n>.mp4`: 3 classes x (train + val) clips of 48 frames, 64x64, 12 fps.
    `confound_lighting`: the background brightness tells the classes apart in training and misleads in
    validation (CONFOUNDED_BACKGROUNDS), so only a model that reads the shapes' colour and motion passes."""
    rng = np.random.default_rng(seed)
    root = Path(root)
    for split, count in (("train", train_per_class), ("val", val_per_class)):
        for label, name in enumerate(SHAPE_CLASSES):
            background = CONFOUNDED_BACKGROUNDS[split][label] if confound_lighting else None
            for n in range(count):
                frames = colour_shapes_frames(label, rng, background=background)
                write_video(root / split / name / f"{n}.mp4", frames=frames, fps=fps)
    return root
