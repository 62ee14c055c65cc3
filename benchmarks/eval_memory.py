"""Host memory of multi-view evaluation per rank at Kinetics-400/700 and SSv2 validation sizes.

    python benchmarks/eval_memory.py                          # all datasets, 1, 2 and 8 ranks
    python benchmarks/eval_memory.py --datasets k400 --ranks 2 --aggregator datamodules.multiview:MultiViewAggregator

Each rank is a real process in a gloo group. It feeds `MultiViewAggregator.update` the logits of its share
of the videos (one update per `--videos-per-batch` videos with all their views, as the test loop does;
`--layout sampler` gives rank r the videos r, r + ranks, ... as Lightning's DistributedSampler does,
`--layout blocks` contiguous blocks, so that almost every clip lives on a rank that does not own its video),
then calls `compute()`. Reported per rank (the largest over ranks): the bytes of clip logits it stored, and its
peak resident memory above the baseline taken just before the first update (VmHWM - VmRSS, with the
high-water mark reset there), so the imports and the process group are not counted.

`--aggregator module:Class` measures another implementation with the same interface (e.g. an older checkout
on PYTHONPATH) under the same conditions.
"""

from __future__ import annotations

import argparse
import datetime
import importlib
import os
import platform
import socket
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


@dataclass(frozen=True)
class EvalSize:
    videos: int
    views: int
    classes: int
    note: str


SIZES = {  # validation sets, 4 temporal clips x 3 crops (conf/data/default.yaml)
    "k400": EvalSize(20_000, 12, 400, "Kinetics-400 val (~19.9k videos)"),
    "k700": EvalSize(34_000, 12, 700, "Kinetics-700 val (~34k videos)"),
    "ssv2": EvalSize(24_777, 12, 174, "Something-Something v2 val"),
}


def videos_of_rank(size: EvalSize, ranks: int, rank: int, layout: str) -> range:
    if layout == "sampler":
        return range(rank, size.videos, ranks)
    per_rank = -(-size.videos // ranks)
    return range(rank * per_rank, min((rank + 1) * per_rank, size.videos))


def memory_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def rank_worker(rank: int, ranks: int, port: int, size: EvalSize, args: argparse.Namespace, out: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=ranks)
    module, _, name = args.aggregator.partition(":")
    aggregator = getattr(importlib.import_module(module), name)()
    generator = torch.Generator().manual_seed(rank)
    videos = list(videos_of_rank(size, ranks, rank, args.layout))
    dist.barrier()
    Path("/proc/self/clear_refs").write_text("5")  # reset the high-water mark to the current RSS
    baseline = memory_kib("VmRSS")
    stored = 0
    for start in range(0, len(videos), args.videos_per_batch):
        batch = torch.tensor(videos[start:start + args.videos_per_batch]).repeat_interleave(size.views)
        logits = torch.randn(len(batch), size.classes, generator=generator)
        aggregator.update(logits, batch % size.classes, batch, torch.ones(len(batch), dtype=torch.bool),
                          torch.arange(size.views).repeat(len(batch) // size.views))
        stored += logits.numel() * logits.element_size()
    result = aggregator.compute()
    peak = memory_kib("VmHWM") - baseline
    torch.save({"stored": stored, "peak_kib": peak, "videos_returned": len(result["video_index"]),
                "num_videos": result["num_videos"]}, f"{out}/rank{rank}.pt")
    dist.destroy_process_group()


def measure(size: EvalSize, ranks: int, args: argparse.Namespace) -> dict[str, float]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with tempfile.TemporaryDirectory() as out:
        mp.spawn(rank_worker, args=(ranks, port, size, args, out), nprocs=ranks)
        per_rank = [torch.load(f"{out}/rank{r}.pt", weights_only=True) for r in range(ranks)]
    assert all(r["num_videos"] == size.videos for r in per_rank), per_rank
    return {"stored_mb": max(r["stored"] for r in per_rank) / 1e6,
            "peak_mb": max(r["peak_kib"] for r in per_rank) * 1024 / 1e6,
            "videos_per_rank": max(r["videos_returned"] for r in per_rank)}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", nargs="+", choices=tuple(SIZES), default=list(SIZES))
    parser.add_argument("--ranks", nargs="+", type=int, default=[1, 2, 8])
    parser.add_argument("--layout", choices=("sampler", "blocks"), default="sampler")
    parser.add_argument("--videos-per-batch", type=int, default=8, help="videos per update (eval batch size)")
    parser.add_argument("--aggregator", default="mtv.training.multiview:MultiViewAggregator",
                        help="module:Class of the implementation to measure")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    print(f"- date: {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC")
    print(f"- versions: Python {platform.python_version()}, torch {torch.__version__}")
    print(f"- command: `python benchmarks/eval_memory.py {' '.join(sys.argv[1:] if argv is None else argv)}`\n")
    print("| dataset | videos x views x classes | ranks | layout | aggregator | clip logits stored per rank MB "
          "| peak above baseline per rank MB | videos returned per rank |")
    print("| --- | --- | ---: | --- | --- | ---: | ---: | ---: |")
    for name in args.datasets:
        size = SIZES[name]
        for ranks in args.ranks:
            row = measure(size, ranks, args)
            print(f"| {name} | {size.videos} x {size.views} x {size.classes} | {ranks} | {args.layout} "
                  f"| `{args.aggregator}` | {row['stored_mb']:.0f} | {row['peak_mb']:.0f} "
                  f"| {row['videos_per_rank']} |", flush=True)


if __name__ == "__main__":
    main()
