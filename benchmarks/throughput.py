"""Training and inference throughput of MTV models: clips/s, peak memory, MFU and the SDPA backend that runs.

    python benchmarks/throughput.py                                   # MTV-B, single-view B/4, MTV-L on the GPU
    python benchmarks/throughput.py --config mtv-b --batch-size 32 --compile --fused-optimizer
    python benchmarks/throughput.py --config tiny --device cpu --threads 1 --steps 3 --warmup 1   # CI smoke

A training step is forward, cross-entropy, backward and optimizer step (SGD momentum 0.9, scenic's recipe, or
AdamW; stochastic depth 0.1 as in scenic's configs); an inference step is a forward pass under
`torch.inference_mode`. The first step is timed on its own ("first step s": under `--compile` it holds the
compilation); step times are medians over `--steps` steps after `--warmup` more, taken with CUDA events on the
GPU. clips/s = batch / median step time.

MFU = achieved model FLOP/s / the device's dense bf16 peak, with 6 x MACs per training clip and 2 x MACs per
inference clip (shared/reference/perf_anchors.md). MACs are the model's own count (`mtv.models.mtv.profile`), so
recomputation by activation checkpointing is not credited. On a CPU, or a GPU without a known peak and no
`--peak-tflops`, MFU is n/a.

Input: `--data synthetic` (default) copies one fixed batch from host memory every step (pinned on CUDA), as
float32 (B, 3, T, H, W) in [-1, 1], or with `--channels-last-input-uint8` as decoder-style uint8
(B, T, H, W, 3) normalised on the device (4x fewer bytes). `--data synthetic-files` decodes generated mp4
files through the project's DataModule (`datamodules.build_datamodule`), so the numbers include decoding
(videos of 2 x frames at short side 256/224 x crop, sampled at stride 2 as scenic's Kinetics recipe).

The printed report (device, versions, command, date, a Markdown table) is what goes into docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import datetime
import gc
import json
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.profiler import ProfilerActivity, profile

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import mtv  # noqa: E402  (the repository root goes on the path first, so the script runs from a checkout)
from mtv.models.mtv.profile import profile_model  # noqa: E402


@dataclass(frozen=True)
class ModelPreset:
    """A model and its default benchmark batch (per device)."""

    variant: str
    fusion: dict[str, Any]
    batch_size: int
    frames: int = 32
    image_size: int = 224
    model_overrides: dict[str, Any] = field(default_factory=dict)  # more keys of the `model` node


MICRO_SIZES = {  # 2-layer Ti views at width 32 and a 1-layer global encoder: a model of ~0.25 M parameters
    "encoder_sizes": {"Ti": {"num_layers": 2, "hidden_size": 32, "num_heads": 2, "mlp_dim": 64}},
    "global_encoder": {"num_layers": 1, "num_heads": 2, "mlp_dim": 128},
}
PRESETS: dict[str, ModelPreset] = {
    "mtv-b": ModelPreset("B/2+S/4+Ti/8", {"type": "cva", "layers": [5, 11]}, batch_size=16),
    "b4": ModelPreset("B/4", {"type": "none"}, batch_size=32),
    "mtv-l": ModelPreset("Ti/16+S/8+B/4+L/2", {"type": "cva", "layers": [11, 23]}, batch_size=8),
    "tiny": ModelPreset("Ti/4+Ti/2", {"type": "cva", "layers": [1]}, batch_size=2, frames=8, image_size=32),
    "micro": ModelPreset("Ti/4+Ti/2", {"type": "cva", "layers": [1]}, batch_size=2, frames=8, image_size=32,
                         model_overrides=MICRO_SIZES),  # CI smoke runs of benchmarks/gpu_suite.py
}
DEFAULT_CONFIGS = ("mtv-b", "b4", "mtv-l")

# Dense bf16 tensor-core peaks in TFLOP/s, matched against torch.cuda.get_device_name() in this order
# (shared/reference/perf_anchors.md §5: NVIDIA datasheets via glennklockwood.com and HPC Tech JP).
PEAK_BF16_TFLOPS: tuple[tuple[str, float | None], ...] = (
    ("NVL", None),  # H100/H200 NVL run at lower clocks; not in the sourced table, so ask for --peak-tflops
    ("H100 PCIe", 756.0),
    ("H100", 989.4),  # SXM5 (device names "NVIDIA H100 80GB HBM3", "NVIDIA H100")
    ("H200", 989.4),  # the H100 die with more, faster memory
    ("A100", 312.0),
)

SDPA_BACKENDS = {  # forward ops `aten::_scaled_dot_product_<name>` -> short name
    "flash_attention": "flash",
    "flash_attention_for_cpu": "flash-cpu",
    "efficient_attention": "efficient",
    "cudnn_attention": "cudnn",
    "attention_math": "math",
    "fused_attention_overrideable": "overrideable",
}


@dataclass
class Result:
    """One row of the table."""

    config: str
    variant: str
    mode: str
    batch_size: int
    frames: int
    image_size: int
    precision: str
    options: str
    gmacs_per_clip: float
    step_ms: float | None = None  # None: the step failed (out of memory)
    clips_per_s: float | None = None
    tflops: float | None = None
    mfu: float | None = None
    peak_memory_gib: float | None = None
    first_step_s: float | None = None  # the first step alone, before warm-up (holds --compile's compilation)
    sdpa: dict[int, str] = field(default_factory=dict)  # head dim -> backend(s)
    error: str = ""


# ---- inputs ------------------------------------------------------------------------------------------------
Batch = tuple[Tensor, Tensor]  # video (B, 3, T, H, W) on the device, labels (B,)


def synthetic_batches(args: argparse.Namespace, device: torch.device, batch: int, frames: int, size: int,
                      num_classes: int) -> Iterator[Batch]:
    """One random batch kept in host memory and copied to the device every step, as a loader would."""
    generator = torch.Generator().manual_seed(0)
    if args.channels_last_input_uint8:
        host = torch.randint(0, 256, (batch, frames, size, size, 3), dtype=torch.uint8, generator=generator)
    else:
        host = torch.rand(batch, 3, frames, size, size, generator=generator) * 2 - 1
    labels = torch.randint(0, num_classes, (batch,), generator=generator)
    if device.type == "cuda":
        host, labels = host.pin_memory(), labels.pin_memory()
    while True:
        video = host.to(device, non_blocking=True)
        if args.channels_last_input_uint8:  # (B, T, H, W, 3) uint8 -> (B, 3, T, H, W) in [-1, 1]
            video = video.permute(0, 4, 1, 2, 3).float().div_(127.5).sub_(1.0)
        yield video, labels.to(device, non_blocking=True)


def file_batches(args: argparse.Namespace, device: torch.device, batch: int, frames: int, size: int,
                 num_classes: int) -> Iterator[Batch]:
    """Batches decoded from generated mp4 files by the training DataLoader of `datamodules`."""
    from hydra import compose, initialize_config_dir

    import mtv.runner  # noqa: F401  (registers the config schemas that conf/ composes from)
    from datamodules import build_datamodule

    short_side = _round_up(size * 256 / 224, 8)  # scenic's 256 for a 224 crop; even sides for H.264
    width = _round_up(short_side * 4 / 3, 8)  # 4:3 frames
    overrides = [
        "dataset=synthetic", "dataset.num_classes=2", f"dataset.num_train={args.videos}",  # labels 0, 1 fit any head
        "dataset.num_val=1", "dataset.num_test=1", f"dataset.num_frames={max(24, 2 * frames)}",
        f"dataset.height={short_side}", f"dataset.width={width}", f"dataset.cache_dir={args.cache_dir}",
        f"data.num_frames={frames}", "data.stride=2", f"data.short_side={short_side}", f"data.crop_size={size}",
        f"data.batch_size={batch}", f"data.num_workers={args.workers}", f"data.pin_memory={device.type == 'cuda'}",
        f"paths.output_dir={tempfile.mkdtemp(prefix='throughput-')}",
    ]
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base=None):
        cfg = compose("config", overrides=overrides)
    datamodule = build_datamodule(cfg)
    datamodule.prepare_data()
    datamodule.setup("fit")
    loader = datamodule.train_dataloader()
    while True:
        for sample in loader:
            yield sample["video"].to(device, non_blocking=True), sample["label"].to(device, non_blocking=True)


def _round_up(value: float, multiple: int) -> int:
    return int(-(-value // multiple) * multiple)


INPUTS: dict[str, Callable[..., Iterator[Batch]]] = {"synthetic": synthetic_batches, "synthetic-files": file_batches}


# ---- measuring ---------------------------------------------------------------------------------------------
def make_step(model: nn.Module, optimizer: torch.optim.Optimizer | None, autocast: Callable[[], Any],
              batches: Iterator[Batch]) -> Callable[[], None]:
    """One training step (optimizer given) or one inference step; the next batch is fetched inside it."""

    def train_step() -> None:
        video, labels = next(batches)
        with autocast():
            loss = F.cross_entropy(model(video).float(), labels)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    def inference_step() -> None:
        video, _ = next(batches)
        with torch.inference_mode(), autocast():
            model(video)

    return train_step if optimizer is not None else inference_step


def median_step_ms(step: Callable[[], None], steps: int, warmup: int, device: torch.device) -> float:
    """Median step time after warm-up: CUDA events back to back on the GPU, wall clock on the CPU."""
    for _ in range(warmup):
        step()
    if device.type != "cuda":
        times = []
        for _ in range(steps):
            start = time.perf_counter()
            step()
            times.append((time.perf_counter() - start) * 1e3)
        return statistics.median(times)
    events = [torch.cuda.Event(enable_timing=True) for _ in range(steps + 1)]
    torch.cuda.synchronize(device)
    events[0].record()
    for i in range(steps):
        step()
        events[i + 1].record()
    torch.cuda.synchronize(device)
    return statistics.median(a.elapsed_time(b) for a, b in zip(events, events[1:]))


def first_step_s(step: Callable[[], None], device: torch.device) -> float:
    """Wall seconds of one step, finished on the device (the first one holds compilation and autotuning)."""
    start = time.perf_counter()
    step()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter() - start


def sdpa_backends(step: Callable[[], None]) -> dict[int, str]:
    """Which fused-attention op ran for each head dim in one step, read from the PyTorch profiler."""
    with profile(activities=[ProfilerActivity.CPU], record_shapes=True) as prof:
        step()
    found: dict[int, set[str]] = {}
    for event in prof.events():
        name = event.name.removeprefix("aten::_scaled_dot_product_")
        if name in SDPA_BACKENDS and event.input_shapes and event.input_shapes[0]:
            found.setdefault(event.input_shapes[0][-1], set()).add(SDPA_BACKENDS[name])
    return {dim: "/".join(sorted(names)) for dim, names in sorted(found.items())}


def known_peak_tflops(device_name: str) -> float | None:
    """Dense bf16 peak of a GPU named like torch.cuda.get_device_name(), None when not in the table."""
    return next((peak for key, peak in PEAK_BF16_TFLOPS if key in device_name), None)


def peak_tflops(args: argparse.Namespace, device: torch.device) -> float | None:
    if args.peak_tflops is not None:
        return args.peak_tflops
    return known_peak_tflops(torch.cuda.get_device_name(device)) if device.type == "cuda" else None


def build_optimizer(model: nn.Module, args: argparse.Namespace) -> torch.optim.Optimizer:
    fused = {"fused": True} if args.fused_optimizer else {}
    if args.optimizer == "sgd":
        return torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9, **fused)
    return torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=0.05, **fused)


def options_label(args: argparse.Namespace, mode: str) -> str:
    flags = [args.optimizer + ("-fused" if args.fused_optimizer else "")] if mode == "train" else []
    compiled = "compile" if args.compile_backend == "inductor" else f"compile({args.compile_backend})"
    flags += [name for name, on in ((compiled, args.compile), ("ckpt", args.grad_checkpointing),
                                    ("uint8-in", args.channels_last_input_uint8)) if on]
    if args.data != "synthetic":
        flags.append(f"{args.data}({args.workers}w)")
    return ",".join(flags) or "-"


@dataclass(frozen=True)
class Workload:
    """What one table row measures, apart from the mode and the options: the model and the input size."""

    config: str
    variant: str
    batch_size: int
    frames: int
    image_size: int
    gmacs_per_clip: float


def mtv_workload(name: str, args: argparse.Namespace) -> tuple[Workload, Callable[[], nn.Module]]:
    """The workload of an MTV preset (or `--variant`) and a function that builds the model."""
    preset = PRESETS.get(name, ModelPreset(name, {"type": "none"}, batch_size=8))
    variant = args.variant or preset.variant
    fusion = {"type": args.fusion, "layers": args.fusion_layers} if args.fusion else preset.fusion
    batch = args.batch_size or preset.batch_size
    frames, size = args.frames or preset.frames, args.image_size or preset.image_size
    model_cfg = {"variant": variant, "fusion": fusion, "stochastic_depth": 0.1,  # scenic's training setting
                 **preset.model_overrides}
    with torch.device("meta"):
        gmacs = profile_model(mtv.build_model(model_cfg, args.classes, frames, size), frames, size)["gmacs_per_view"]
    return Workload(name, variant, batch, frames, size, gmacs), lambda: mtv.build_model(model_cfg, args.classes,
                                                                                        frames, size)


def benchmark_config(name: str, args: argparse.Namespace, device: torch.device) -> list[Result]:
    """All requested modes of one MTV preset (or `--variant`)."""
    return benchmark_model(*mtv_workload(name, args), args, device)


def prepare_step(workload: Workload, build: Callable[[], nn.Module], mode: str, args: argparse.Namespace,
                 device: torch.device) -> Callable[[], None]:
    """One training or inference step of a fresh model from `build()` (made on `device`), with the options
    of `args` applied; the model, optimizer and input live as long as the returned function."""
    with device:  # initialised where it runs: MTV-L's 876 M parameters initialise fast on a GPU
        model = build()
    if args.grad_checkpointing:
        model.grad_checkpointing = True
    model.train(mode == "train")
    optimizer = build_optimizer(model, args) if mode == "train" else None
    runnable = torch.compile(model, backend=args.compile_backend) if args.compile else model
    batches = INPUTS[args.data](args, device, workload.batch_size, workload.frames, workload.image_size,
                                args.classes)
    return make_step(runnable, optimizer, args_autocast(args, device), batches)


def args_autocast(args: argparse.Namespace, device: torch.device) -> Callable[[], Any]:
    """The autocast context of `--precision` (bf16: autocast on; fp32: off)."""
    return lambda: torch.autocast(device.type, dtype=torch.bfloat16, enabled=args.precision == "bf16")


def benchmark_model(workload: Workload, build: Callable[[], nn.Module], args: argparse.Namespace,
                    device: torch.device) -> list[Result]:
    """All requested modes of the model `build()` makes; a mode that runs out of memory gives a row saying so.

    Any model mapping (B, 3, T, H, W) to logits works: `build` is called once per mode, on `device`."""
    w = workload
    peak = peak_tflops(args, device)
    results = []
    for mode in args.modes:
        row = Result(w.config, w.variant, mode, w.batch_size, w.frames, w.image_size, args.precision,
                     options_label(args, mode), w.gmacs_per_clip)
        step = None
        try:
            step = prepare_step(w, build, mode, args, device)
            if device.type == "cuda":
                torch.cuda.reset_peak_memory_stats(device)
            row.first_step_s = first_step_s(step, device)
            row.step_ms = median_step_ms(step, args.steps, args.warmup, device)
            if device.type == "cuda":
                row.peak_memory_gib = torch.cuda.max_memory_allocated(device) / 2**30
            row.sdpa = sdpa_backends(step)
        except torch.OutOfMemoryError:
            row.error = "out of memory"
        if row.step_ms is not None:
            row.clips_per_s = w.batch_size / (row.step_ms / 1e3)
            flops_per_clip = (6 if mode == "train" else 2) * w.gmacs_per_clip * 1e9
            row.tflops = row.clips_per_s * flops_per_clip / 1e12
            row.mfu = row.tflops / peak if peak else None
        results.append(row)
        del step
        gc.collect()
        if args.compile:
            torch._dynamo.reset()  # the next row compiles afresh, so its first step holds its whole compilation
        if device.type == "cuda":
            torch.cuda.empty_cache()
    return results


# ---- report ------------------------------------------------------------------------------------------------
def cpu_name() -> str:
    """The processor model from /proc/cpuinfo (Linux), else what `platform` knows."""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                return line.partition(":")[2].strip()
    return platform.processor() or platform.machine()


def environment(device: torch.device, args: argparse.Namespace, argv: list[str]) -> list[str]:
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
        gpu = f"{name}, CUDA {torch.version.cuda}, cuDNN {torch.backends.cudnn.version()}"
    else:
        gpu = f"CPU ({cpu_name()}), {torch.get_num_threads()} torch thread(s)"
    peak = peak_tflops(args, device)
    return [
        f"- date: {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC",
        f"- device: {gpu}",
        f"- versions: Python {platform.python_version()}, torch {torch.__version__}",
        f"- peak for MFU: {f'{peak:g} TFLOP/s (bf16 dense)' if peak else 'n/a'}",
        f"- command: `python benchmarks/throughput.py {' '.join(argv)}`",
    ]


def markdown_table(results: list[Result]) -> str:
    def number(value: float | None, spec: str) -> str:
        return "n/a" if value is None else format(value, spec)

    lines = [
        "| config | variant | mode | batch | input | precision | options | clips/s | step ms | first step s "
        "| peak mem GiB | GMACs/clip | TFLOP/s | MFU | SDPA (head dim: backend) |",
        "| --- | --- | --- | ---: | --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for r in results:
        sdpa = ", ".join(f"{dim}: {backend}" for dim, backend in r.sdpa.items()) or "-"
        clips = r.error or number(r.clips_per_s, ".2f")
        mfu = "n/a" if r.mfu is None else f"{100 * r.mfu:.1f} %"
        lines.append(
            f"| {r.config} | {r.variant} | {r.mode} | {r.batch_size} | {r.frames}x{r.image_size}² | {r.precision} "
            f"| {r.options} | {clips} | {number(r.step_ms, '.1f')} | {number(r.first_step_s, '.2f')} "
            f"| {number(r.peak_memory_gib, '.2f')} "
            f"| {r.gmacs_per_clip:.2f} | {number(r.tflops, '.3f')} | {mfu} | {sdpa} |"
        )
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", nargs="+",
                        help=f"presets ({', '.join(PRESETS)}; default {' '.join(DEFAULT_CONFIGS)}); "
                             "with --variant, a free name for the row")
    parser.add_argument("--variant", help="model variant, e.g. 'Ti/4+Ti/2' (overrides the preset's)")
    parser.add_argument("--fusion", choices=("cva", "bottleneck", "mlp", "none"), help="overrides the preset's")
    parser.add_argument("--fusion-layers", type=int, nargs="*", default=[5, 11], help="with --fusion")
    parser.add_argument("--modes", nargs="+", choices=("train", "infer"), default=["train", "infer"])
    parser.add_argument("--batch-size", type=int, help="clips per step (default: the preset's)")
    parser.add_argument("--frames", type=int, help="frames per clip (default: the preset's, 32)")
    parser.add_argument("--image-size", type=int, help="crop size (default: the preset's, 224)")
    parser.add_argument("--classes", type=int, default=400)
    parser.add_argument("--precision", choices=("bf16", "fp32"), default="bf16", help="bf16: autocast")
    parser.add_argument("--compile", action="store_true", help="torch.compile the model")
    parser.add_argument("--compile-backend", default="inductor",
                        help="with --compile: torch.compile backend ('eager' traces only: CPU smoke tests)")
    parser.add_argument("--optimizer", choices=("sgd", "adamw"), default="sgd")
    parser.add_argument("--fused-optimizer", action="store_true", help="fused=True optimizer step")
    parser.add_argument("--grad-checkpointing", action="store_true", help="recompute block activations")
    parser.add_argument("--channels-last-input-uint8", action="store_true",
                        help="copy clips as uint8 (B, T, H, W, 3), normalise to [-1, 1] on the device")
    parser.add_argument("--data", choices=tuple(INPUTS), default="synthetic")
    parser.add_argument("--videos", type=int, default=64, help="synthetic-files: training videos to generate")
    parser.add_argument("--workers", type=int, default=4, help="synthetic-files: DataLoader workers")
    parser.add_argument("--cache-dir", default=str(Path(tempfile.gettempdir()) / "mtv-throughput"),
                        help="synthetic-files: where generated videos are kept between runs")
    parser.add_argument("--steps", type=int, default=20, help="timed steps per mode")
    parser.add_argument("--warmup", type=int, default=5, help="untimed steps first (compilation happens here)")
    parser.add_argument("--peak-tflops", type=float, help="device bf16 dense peak, for MFU (default: known GPUs)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--json", type=Path, help="also write the rows and environment here")
    args = parser.parse_args(argv)
    if args.steps < 1 or args.warmup < 0:
        parser.error("--steps must be >= 1 and --warmup >= 0")
    args.config = args.config or (["custom"] if args.variant else list(DEFAULT_CONFIGS))
    unknown = [c for c in args.config if c not in PRESETS]
    if unknown and not args.variant:
        parser.error(f"unknown --config {unknown}: use one of {', '.join(PRESETS)} or give --variant")
    if args.channels_last_input_uint8 and args.data != "synthetic":
        parser.error("--channels-last-input-uint8 applies to --data synthetic (the DataModule yields floats)")
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    results = [row for name in args.config for row in benchmark_config(name, args, device)]
    header = environment(device, args, sys.argv[1:] if argv is None else argv)
    print("\n".join(header) + "\n\n" + markdown_table(results))
    if args.json:
        args.json.write_text(json.dumps({"environment": header, "rows": [asdict(r) for r in results]}, indent=1))


if __name__ == "__main__":
    main()
