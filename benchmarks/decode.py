"""Decode throughput: decord vs PyAV per worker, and the full training pipeline (DataLoader with
augmentation) with 1 and 2 workers, on generated Kinetics-like videos.

    python benchmarks/decode.py [--clips 48] [--videos 2] [--workdir ~/.cache/mtv/bench_decode]

Videos: 10 s, 340x256, 30 fps, H.264 (CRF 23, preset medium), keyframe interval 250 and 30, a
detailed texture that pans, a moving object and sensor noise (~0.4 / 0.75 Mbit/s). Clips: 32 frames at
stride 2 from a random start, reader opened per clip (as the dataset does), one thread. Augmentation:
conf/data/default.yaml (short side 256, jitter, 224 crop, flip, colour). Decoder columns and
"decord + augmentation" run in this process, interleaved clip by clip on the same requests; the
DataLoader columns run TrainVideoDataset in 1 or 2 workers (batch 8, best of 2 runs).
Prints a Markdown table for docs/benchmarks.md.
"""
from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path

import numpy as np
import torch
from omegaconf import OmegaConf

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from datamodules.bad_inputs import BadVideoLog  # noqa: E402
from datamodules.dataset import TrainVideoDataset, collate_clips  # noqa: E402
from datamodules.formats import VideoRecord  # noqa: E402
from datamodules.readers import DecordReader, PyAVReader  # noqa: E402
from datamodules.sampling import random_clip  # noqa: E402
from datamodules.transforms import TrainTransform  # noqa: E402

SECONDS, FPS, HEIGHT, WIDTH = 10, 30, 256, 340


def kinetics_like_frames(seed: int) -> np.ndarray:
    """A detailed random texture panning across the frame (camera motion), a moving bright object and
    per-frame sensor noise: about 0.5-1 Mbit/s at CRF 23, like Kinetics clips at this size."""
    rng = np.random.default_rng(seed)
    n = SECONDS * FPS
    texture = rng.uniform(0, 255, size=(HEIGHT + 2, WIDTH + n + 2, 3))
    texture = (texture[:-2, :-2] + texture[2:, 2:] + texture[1:-1, 1:-1] * 2) / 4  # mild blur: fine detail
    frames = np.empty((n, HEIGHT, WIDTH, 3), dtype=np.uint8)
    for t in range(n):
        frame = texture[:, t:t + WIDTH].copy()
        y, x = int(100 + 60 * np.sin(t / 20)), int(150 + 120 * np.cos(t / 25))
        frame[y:y + 40, x:x + 40] = 240
        frames[t] = np.clip(frame + rng.normal(0, 3, frame.shape), 0, 255)
    return frames


def write_h264(path: Path, frames: np.ndarray, gop: int) -> None:
    import av

    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("libx264", rate=FPS)
        stream.width, stream.height, stream.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        stream.options = {"crf": "23", "preset": "medium", "g": str(gop), "keyint_min": str(gop),
                          "sc_threshold": "0"}
        for array in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(array, format="rgb24")))
        container.mux(stream.encode())


def ensure_videos(workdir: Path, gop: int, count: int) -> list[str]:
    paths = []
    for i in range(count):
        path = workdir / f"kinetics_like_gop{gop}_{i}.mp4"
        if not path.is_file():
            workdir.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(".tmp.mp4")
            write_h264(tmp, kinetics_like_frames(seed=i), gop)
            tmp.rename(path)
        paths.append(str(path))
    return paths


def clip_requests(paths: list[str], clips: int, frames: int, stride: int) -> list[tuple[str, np.ndarray]]:
    """The same (video, frame indices) requests for every decoder: 32 frames at stride 2, random start."""
    rng = random.Random(0)
    lengths = {p: DecordReader(p).num_frames for p in paths}
    chosen = [paths[k % len(paths)] for k in range(clips)]
    return [(p, random_clip(lengths[p], frames, stride, rng=rng)) for p in chosen]


def seconds_per_clip(requests, reader_cls, transform=None) -> tuple[list[float], list[float]]:
    """Open a reader per clip (as the dataset does), decode, optionally augment.

    Returns (wall seconds, CPU seconds of this process) per clip: CPU time is the "per core" cost and
    is what a busy shared machine distorts least."""
    wall, cpu = [], []
    for path, indices in requests:
        start, start_cpu = time.perf_counter(), time.process_time()
        reader = reader_cls(path, num_threads=1)
        clip = reader.get_frames(indices)
        reader.close()
        if transform is not None:
            transform(clip)
        wall.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    return wall, cpu


def augmentation_ms(transform, clip: torch.Tensor, repeats: int = 20) -> float:
    """Median time of the training augmentation alone on one decoded clip (input already in cache)."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        transform(clip)
        times.append(time.perf_counter() - start)
    return float(np.median(times)) * 1000


def loader_clips_per_second(data_cfg, paths: list[str], clips: int, workers: int, batch: int = 8) -> float:
    """End to end: TrainVideoDataset (decord, augmentation) through a DataLoader with `workers` workers."""
    records = [VideoRecord(paths[k % len(paths)], 0) for k in range(clips + batch * workers)]
    dataset = TrainVideoDataset(records, data_cfg, BadVideoLog(None))
    loader = torch.utils.data.DataLoader(dataset, batch_size=batch, num_workers=workers, collate_fn=collate_clips,
                                         worker_init_fn=_one_thread)
    iterator = iter(loader)
    for _ in range(workers):  # warm-up: one batch per worker (process start, imports)
        next(iterator)
    start, seen = time.perf_counter(), 0
    for batch_dict in iterator:
        seen += len(batch_dict["video"])
    return seen / (time.perf_counter() - start)


def _one_thread(_: int) -> None:
    torch.set_num_threads(1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clips", type=int, default=48, help="clips per measurement")
    parser.add_argument("--videos", type=int, default=2, help="videos per keyframe interval")
    parser.add_argument("--workdir", type=Path, default=Path("~/.cache/mtv/bench_decode").expanduser())
    args = parser.parse_args()
    torch.set_num_threads(1)
    data_cfg = OmegaConf.load(REPO / "conf" / "data" / "default.yaml")  # 32 x 2, 256 -> 224, colour aug
    frames, stride = int(data_cfg.num_frames), int(data_cfg.stride)
    transform = TrainTransform(data_cfg)

    print("| keyframe interval | decord clips/s | PyAV clips/s | decord + augmentation clips/s | "
          "decord CPU ms/clip | decord + augmentation CPU ms/clip | pipeline / decord (CPU time) | "
          "augmentation alone ms/clip | DataLoader 1 worker clips/s | DataLoader 2 workers clips/s |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for gop in (250, 30):
        paths = ensure_videos(args.workdir, gop, args.videos)
        requests = clip_requests(paths, args.clips, frames, stride)
        seconds_per_clip(requests[:2], DecordReader, transform)  # warm-up
        # decord alone and decord + augmentation interleaved, so machine load hits both alike
        raw, raw_cpu, full, full_cpu = [], [], [], []
        for request in requests:
            wall, cpu = seconds_per_clip([request], DecordReader)
            raw, raw_cpu = raw + wall, raw_cpu + cpu
            wall, cpu = seconds_per_clip([request], DecordReader, transform)
            full, full_cpu = full + wall, full_cpu + cpu
        pyav, _ = seconds_per_clip(requests, PyAVReader)
        augment_ms = augmentation_ms(transform, DecordReader(paths[0]).get_frames(requests[0][1]))
        # best of 2: a short run on a shared machine is easily hit by someone else's burst
        one = max(loader_clips_per_second(data_cfg, paths, args.clips, workers=1) for _ in range(2))
        two = max(loader_clips_per_second(data_cfg, paths, args.clips, workers=2) for _ in range(2))
        n = len(requests)
        print(f"| {gop} | {n / sum(raw):.2f} | {n / sum(pyav):.2f} | {n / sum(full):.2f} | "
              f"{sum(raw_cpu) / n * 1000:.1f} | {sum(full_cpu) / n * 1000:.1f} | {sum(full_cpu) / sum(raw_cpu):.2f}x | "
              f"{augment_ms:.1f} | {one:.2f} | {two:.2f} |", flush=True)


if __name__ == "__main__":
    main()
