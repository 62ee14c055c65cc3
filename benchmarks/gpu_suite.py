"""The GPU benchmark suite of issue 16 as one command: every measurement, each part inside its own time budget.

    python benchmarks/gpu_suite.py --out DIR                 # one GPU, about 7 minutes (--budget-s 420)
    python benchmarks/gpu_suite.py --out DIR --tiny          # CPU, tiny models: the CI smoke run (seconds)

Parts, in the order they run (`--parts` picks some):

* `mtv-b`, `b4`: MTV-B (B/2+S/4+Ti/8, CVA (5, 11), 32x224²) and single-view B/4, training step (forward,
  loss, backward, fused SGD) and inference, bf16 autocast, batch 16 and 32, eager;
* `mtv-b-compile`, `b4-compile`: the same under `torch.compile` (the first step, which holds the compilation,
  is reported apart as "first step s");
* `mtv-l`: MTV-L (Ti/16+S/8+B/4+L/2, CVA (11, 23)) training at batch 8 with and without activation
  checkpointing;
* `vivit`, `mvit`: the registered model families `vivit` and `mvit` (`mtv.models.registry`, preset values from
  `conf/model/<name>.yaml`), inference at batch 16; skipped with the reason while a family is not registered;
* `trace`: `torch.profiler` of one MTV-B training step: the 15 kernels that take the most time, and the share
  of attention, matmul, LayerNorm/elementwise kernels and of host gaps (GPU idle within the step);
* `e2e`: MTV-B training fed by the project's DataModule from generated H.264 files (`--e2e-workers` loader
  workers), against the synthetic-input number of `mtv-b`: data- or compute-bound, and the workers a GPU
  needs; skipped when PyAV (needed to write the files) or Hydra (which configures the DataModule) is missing.

Timing, MFU (6 x MACs per training clip, 2 x per inference clip, against the device's dense bf16 peak), peak
memory and the SDPA kernel per head dim come from `benchmarks/throughput.py`; an out-of-memory step is a row
that says so. Each part runs in a forked process of its own session; one that outlives its budget (its share
of `--budget-s`, never more than what is left of it) is killed with everything it started and reported as
`timeout`, keeping the rows it had finished. DIR receives `gpu_suite.json` and `gpu_suite.md` (the Markdown
is also printed). Nothing here imports Hydra, omegaconf, wandb, PyAV or decord unless `e2e` runs.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import json
import math
import multiprocessing
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback
import typing
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
import torch._dynamo  # noqa: F401  (imported once here rather than in every forked part: meta-device init needs it)
from torch.autograd import DeviceType
from torch.profiler import ProfilerActivity, profile

BENCHMARKS = Path(__file__).resolve().parent
ROOT = BENCHMARKS.parent
sys.path.insert(0, str(BENCHMARKS))

import throughput  # noqa: E402  (benchmarks/ goes on the path first; throughput puts the repository root there)

from mtv.errors import ConfigError  # noqa: E402
from mtv.models.registry import ModelInputs, get_family  # noqa: E402


@dataclass(frozen=True)
class Scale:
    """Sizes and step counts of one suite run: the GPU run of issue 16, or a tiny CPU run for CI."""

    device: str
    threads: int | None
    steps: int
    warmup: int
    batches: tuple[int, ...]  # MTV-B and B/4
    mtv_l_batch: int
    family_batch: int
    family_inputs: dict[str, tuple[int, int]]  # family -> (frames, crop)
    family_presets: dict[str, str]  # family -> conf/model/<preset>.yaml
    family_size: str | None  # conf/model/size/<size>_<family>.yaml shrinks the preset (tiny runs)
    models: dict[str, list[str]]  # suite model -> throughput.py arguments that select it
    compile_backend: str
    e2e_videos: int
    e2e_steps: int


FULL = Scale(
    device="cuda", threads=None, steps=20, warmup=5, batches=(16, 32), mtv_l_batch=8, family_batch=16,
    family_inputs={"vivit": (32, 224), "mvit": (16, 224)},  # ViViT-B/16x2 model 1; MViT-B 16x4
    family_presets={"vivit": "vivit", "mvit": "mvit_v1_b"}, family_size=None,
    models={"mtv-b": ["--config", "mtv-b"], "b4": ["--config", "b4"], "mtv-l": ["--config", "mtv-l"]},
    compile_backend="inductor", e2e_videos=256, e2e_steps=60,
)
TINY = Scale(
    device="cpu", threads=1, steps=2, warmup=0, batches=(2,), mtv_l_batch=2, family_batch=2,
    family_inputs={"vivit": (8, 32), "mvit": (8, 32)},
    family_presets={"vivit": "vivit", "mvit": "mvit_v1_b"}, family_size="smoke",
    models={"mtv-b": ["--config", "micro"], "mtv-l": ["--config", "micro"],
            "b4": ["--config", "micro", "--variant", "Ti/4", "--fusion", "none"]},
    compile_backend="eager",  # dynamo tracing without code generation: inductor on 2 CPU cores takes minutes
    e2e_videos=4, e2e_steps=2,
)


class PartSkipped(Exception):
    """A part that cannot run here (a family not registered yet, a package missing); the message says why."""


Yielded = throughput.Result | dict[str, Any]  # a table row, or a part's extra findings (merged into its report)


# ---- the parts ---------------------------------------------------------------------------------------------
def throughput_args(scale: Scale, model: str, *extra: str) -> argparse.Namespace:
    """benchmarks/throughput.py's options for one suite model at this scale."""
    argv = [*scale.models[model], "--device", scale.device, "--steps", str(scale.steps),
            "--warmup", str(scale.warmup), "--fused-optimizer", "--compile-backend", scale.compile_backend, *extra]
    return throughput.parse_args(argv)


def mtv_rows(scale: Scale, model: str, *extra: str) -> Iterator[Yielded]:
    """Training and inference rows of one MTV model at every batch size of the scale, one at a time (so a
    part stopped by its budget keeps every row it finished)."""
    for batch in scale.batches:
        for mode in ("train", "infer"):
            args = throughput_args(scale, model, "--batch-size", str(batch), "--modes", mode, *extra)
            yield from throughput.benchmark_config(args.config[0], args, torch.device(args.device))


def mtv_l_rows(scale: Scale) -> Iterator[Yielded]:
    """MTV-L training with activation checkpointing (the target), then without (may not fit)."""
    for ckpt in (["--grad-checkpointing"], []):
        args = throughput_args(scale, "mtv-l", "--batch-size", str(scale.mtv_l_batch), "--modes", "train", *ckpt)
        yield from throughput.benchmark_config(args.config[0], args, torch.device(args.device))


def family_rows(scale: Scale, name: str) -> Iterator[Yielded]:
    """Inference rows of a registered model family, built only through the registry contract."""
    try:
        family = get_family(name)
    except ConfigError as error:
        raise PartSkipped(f"model family {name!r} is not registered yet") from error
    frames, size = scale.family_inputs[name]
    inputs = ModelInputs(num_classes=400, num_frames=frames, image_size=(size, size))
    cfg = preset_config(family.config(), scale.family_presets.get(name, name))
    if scale.family_size:
        cfg = merge_into(cfg, preset_values(f"{scale.family_size}_{name}", MODEL_PRESETS / "size"))
    family.validate(cfg, inputs)
    with torch.device("meta"):
        counted = family.profile(family.build(cfg, inputs), inputs)
    args = throughput_args(scale, "mtv-b", "--modes", "infer")  # the common options; the model comes below
    workload = throughput.Workload(name, str(counted.get("model", name)), scale.family_batch, frames, size,
                                   float(counted["gmacs_per_view"]))
    yield from throughput.benchmark_model(workload, lambda: family.build(cfg, inputs), args, torch.device(args.device))


MODEL_PRESETS = ROOT / "conf" / "model"


def preset_config(defaults: Any, name: str, folder: Path = MODEL_PRESETS) -> Any:
    """The family's config dataclass with the values of `<folder>/<name>.yaml` and of the presets it builds
    on (its `defaults` list; the `<family>_schema` entries are the dataclass itself), merged as Hydra would,
    without Hydra: the GPU machine has no Hydra. No such file: the dataclass defaults."""
    return merge_into(defaults, preset_values(name, folder))


def preset_values(name: str, folder: Path) -> dict[str, Any]:
    path = folder / f"{name}.yaml"
    if not path.is_file():
        return {}
    import yaml  # PyYAML is on the GPU machine; Hydra is not

    data = yaml.safe_load(path.read_text()) or {}
    values: dict[str, Any] = {}
    for entry in data.pop("defaults", []):
        if isinstance(entry, str) and entry != "_self_" and not entry.endswith("_schema"):
            values = deep_merge(values, preset_values(entry, folder))
    return deep_merge(values, data)


def deep_merge(base: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in update.items():
        both_dicts = isinstance(value, dict) and isinstance(merged.get(key), dict)
        merged[key] = deep_merge(merged[key], value) if both_dicts else value
    return merged


def merge_into(config: Any, values: dict[str, Any]) -> Any:
    """`values` written into the (nested) dataclass `config`; an unknown key is an error naming it."""
    fields = {f.name for f in dataclasses.fields(config)}
    changes = {}
    for key, value in values.items():
        if key not in fields:
            raise ConfigError(f"model.{key} is not a field of {type(config).__name__}: fix the preset YAML")
        current = getattr(config, key)
        if isinstance(value, str) and "${" in value:
            raise ConfigError(f"model.{key}={value!r} is an interpolation, which needs Hydra: give the value")
        if isinstance(value, dict) and dataclasses.is_dataclass(current):
            value = merge_into(current, value)
        elif isinstance(value, dict) and isinstance(current, dict):
            value = deep_merge(current, value)
        elif isinstance(value, list) and value and isinstance(value[0], dict):  # a list of nested dataclasses
            (item,) = typing.get_args(typing.get_type_hints(type(config))[key])
            value = [merge_into(item(), v) for v in value]
        changes[key] = value
    return dataclasses.replace(config, **changes)


def trace_rows(scale: Scale) -> Iterator[Yielded]:
    """A profiler summary of one MTV-B training step (after warm-up) at the scale's first batch size."""
    args = throughput_args(scale, "mtv-b", "--batch-size", str(scale.batches[0]), "--modes", "train")
    device = torch.device(args.device)
    step = throughput.prepare_step(*throughput.mtv_workload(args.config[0], args), "train", args, device)
    for _ in range(max(args.warmup, 1)):
        step()
    yield summarize_trace(step, device)


KERNEL_KINDS = (  # first match wins: flash-attention kernels are CUTLASS kernels too
    ("attention", re.compile(r"flash|fmha|attention|sdpa|scaled_dot_product")),
    ("matmul", re.compile(r"gemm|xmma|cutlass|nvjet|cublas|matmul|triton_tem_|"
                          r"aten::(mm|bmm|addmm|baddbmm|linear)\b|convolution|conv3d|sm\d\d_")),
    ("layernorm/elementwise", re.compile(r"norm|elementwise|vectorized|unrolled|reduce|softmax|gelu|tanh|"
                                         r"aten::(add|mul|sub|div|copy_|fill_|cat|gelu|dropout|index|sum|"
                                         r"mean|where|neg|rsqrt|pow|zero_|clone|to|_to_copy)|triton_")),
)


def kernel_kind(name: str) -> str:
    lowered = name.lower()
    return next((kind for kind, pattern in KERNEL_KINDS if pattern.search(lowered)), "other")


def summarize_trace(step: Callable[[], None], device: torch.device) -> dict[str, Any]:
    """Top 15 kernels and the time shares of one step. On a GPU: CUDA kernels, and host gaps = step wall time
    not covered by any kernel. On a CPU (smoke runs) the "kernels" are aten ops by self time, and there are
    no host gaps to speak of (n/a)."""
    cuda = device.type == "cuda"
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
    with profile(activities=activities) as prof:
        start = time.perf_counter()
        step()
        if cuda:
            torch.cuda.synchronize(device)
        wall_us = (time.perf_counter() - start) * 1e6
    totals: dict[str, list[float]] = {}  # name -> [calls, microseconds]
    if cuda:
        kernels = [e for e in prof.events() if e.device_type == DeviceType.CUDA]
        for e in kernels:
            entry = totals.setdefault(e.name, [0, 0.0])
            entry[0] += 1
            entry[1] += e.time_range.elapsed_us()
        busy_us = covered_us([(e.time_range.start, e.time_range.end) for e in kernels])
        host_gap_share: float | None = max(wall_us - busy_us, 0.0) / wall_us
    else:
        for avg in prof.key_averages():
            if avg.key.startswith("aten::") and avg.self_cpu_time_total > 0:
                totals[avg.key] = [avg.count, avg.self_cpu_time_total]
        host_gap_share = None
    total_us = sum(us for _, us in totals.values()) or 1.0
    shares: dict[str, float] = {}
    for name, (_, us) in totals.items():
        kind = kernel_kind(name)
        shares[kind] = shares.get(kind, 0.0) + us / total_us
    top = sorted(totals.items(), key=lambda item: -item[1][1])[:15]
    return {"trace": {
        "what": "CUDA kernels" if cuda else "aten ops by self CPU time (no GPU)",
        "step_wall_ms": wall_us / 1e3,
        "kernel_ms": total_us / 1e3,
        "top": [{"name": name, "kind": kernel_kind(name), "calls": int(calls), "ms": us / 1e3, "share": us / total_us}
                for name, (calls, us) in top],
        "shares": {kind: shares.get(kind, 0.0) for kind in ("attention", "matmul", "layernorm/elementwise", "other")},
        "host_gap_share": host_gap_share,
    }}


def covered_us(intervals: list[tuple[float, float]]) -> float:
    """Length of the union of [start, end) intervals: time in which at least one kernel ran."""
    covered, reach = 0.0, -math.inf
    for start, end in sorted(intervals):
        if end > reach:
            covered += end - max(start, reach)
            reach = end
    return covered


def e2e_rows(scale: Scale, workers: int) -> Iterator[Yielded]:
    """MTV-B training on clips decoded from generated H.264 files by the project's DataModule."""
    if importlib.util.find_spec("av") is None:
        raise PartSkipped("PyAV/decord missing (PyAV writes the generated videos)")
    if importlib.util.find_spec("hydra") is None or importlib.util.find_spec("omegaconf") is None:
        raise PartSkipped("hydra-core/omegaconf missing (they configure the DataModule)")
    args = throughput_args(scale, "mtv-b", "--batch-size", str(scale.batches[0]), "--modes", "train",
                           "--data", "synthetic-files", "--workers", str(workers), "--videos", str(scale.e2e_videos),
                           "--steps", str(scale.e2e_steps))
    yield from throughput.benchmark_config(args.config[0], args, torch.device(args.device))


@dataclass(frozen=True)
class Part:
    name: str
    weight: float  # share of --budget-s, in seconds of the default 420
    rows: Callable[[Scale, argparse.Namespace], Iterator[Yielded]]


PARTS: tuple[Part, ...] = (
    Part("mtv-b", 55, lambda scale, _: mtv_rows(scale, "mtv-b")),
    Part("b4", 30, lambda scale, _: mtv_rows(scale, "b4")),
    Part("mtv-b-compile", 100, lambda scale, _: mtv_rows(scale, "mtv-b", "--compile")),
    Part("b4-compile", 50, lambda scale, _: mtv_rows(scale, "b4", "--compile")),
    Part("mtv-l", 45, lambda scale, _: mtv_l_rows(scale)),
    Part("vivit", 20, lambda scale, _: family_rows(scale, "vivit")),
    Part("mvit", 20, lambda scale, _: family_rows(scale, "mvit")),
    Part("trace", 25, lambda scale, _: trace_rows(scale)),
    Part("e2e", 75, lambda scale, options: e2e_rows(scale, options.e2e_workers)),
)


# ---- running parts in their own processes ------------------------------------------------------------------
def run_part_in_child(part: Part, scale: Scale, options: argparse.Namespace, report_path: Path) -> None:
    """Body of a part's process: its own session (so the parent can kill it with its workers), the report
    rewritten after every row, so a part stopped by its budget keeps what it finished."""
    os.setsid()
    if scale.threads:
        torch.set_num_threads(scale.threads)
    report: dict[str, Any] = {"status": "running", "rows": []}

    def save() -> None:
        report_path.with_suffix(".tmp").write_text(json.dumps(report))
        report_path.with_suffix(".tmp").replace(report_path)

    try:
        device = torch.device(scale.device)
        environment = throughput.environment(device, throughput_args(scale, "mtv-b"), [])
        report["environment"] = [line for line in environment if not line.startswith("- command:")]
        save()
        for item in part.rows(scale, options):
            if isinstance(item, throughput.Result):
                report["rows"].append(asdict(item))
            else:
                report.update(item)
            save()
        report["status"] = "ok"
    except PartSkipped as skipped:
        report.update(status="skipped", reason=str(skipped))
    except torch.OutOfMemoryError:
        report.update(status="out of memory", reason="out of memory outside a measured step")
    except Exception as error:  # noqa: BLE001  (any failure is this part's result; the suite goes on)
        report.update(status="failed", reason=f"{type(error).__name__}: {error}", traceback=traceback.format_exc())
    save()


def run_part(part: Part, scale: Scale, options: argparse.Namespace, budget_s: float, scratch: Path) -> dict[str, Any]:
    """Run one part in a forked process, killed with its whole session when it outlives `budget_s`."""
    if torch.cuda.is_initialized():
        raise RuntimeError("CUDA was initialised in the suite's own process: its forked parts could not use it")
    report_path = scratch / f"{part.name}.json"
    process = multiprocessing.get_context("fork").Process(target=run_part_in_child,
                                                          args=(part, scale, options, report_path))
    start = time.monotonic()
    process.start()
    process.join(budget_s)
    timed_out = process.is_alive()
    if timed_out:
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:  # it ended between the check and the kill
            pass
        process.join()
    seconds = time.monotonic() - start
    report = json.loads(report_path.read_text()) if report_path.is_file() else {"rows": []}
    if timed_out:
        report.update(status="timeout", reason=f"stopped after its budget of {budget_s:.3g} s")
    elif process.exitcode != 0:
        report.update(status="failed", reason=f"the part's process ended with exit code {process.exitcode}")
    return {"part": part.name, "budget_s": budget_s, "seconds": seconds, **report}


def budgets(parts: list[Part], total_s: float, overrides: dict[str, float]) -> dict[str, float]:
    """Each part's share of the total, by weight, unless `--part-budget` names it."""
    weight = sum(p.weight for p in parts) or 1.0
    return {p.name: overrides.get(p.name, total_s * p.weight / weight) for p in parts}


# ---- the report --------------------------------------------------------------------------------------------
def gpu_driver() -> str:
    """Name, driver and memory from nvidia-smi (the parent never touches CUDA: its parts are forked)."""
    if shutil.which("nvidia-smi") is None:
        return "n/a (no nvidia-smi)"
    done = subprocess.run(["nvidia-smi", "--query-gpu=name,driver_version,memory.total", "--format=csv,noheader"],
                          capture_output=True, text=True, timeout=30)
    return done.stdout.strip() or done.stderr.strip()


def e2e_verdict(parts: list[dict[str, Any]], workers: int) -> str | None:
    """End-to-end clips/s against the synthetic-input training row at the same batch: the bound, and the
    loader workers that would keep up (workers scale about linearly while cores last)."""
    rows = {p["part"]: p["rows"] for p in parts}
    e2e = [r for r in rows.get("e2e", []) if r["clips_per_s"]]
    if not e2e:
        return None
    same = [r for r in rows.get("mtv-b", []) if r["mode"] == "train" and r["batch_size"] == e2e[0]["batch_size"]
            and r["clips_per_s"]]
    if not same:
        return "no synthetic-input row of mtv-b at the same batch to compare with"
    ratio = e2e[0]["clips_per_s"] / same[0]["clips_per_s"]
    if ratio >= 0.9:
        return f"compute-bound: files give {100 * ratio:.0f} % of the synthetic-input clips/s with {workers} workers"
    needed = math.ceil(workers / ratio)
    return (f"data-bound: files give {100 * ratio:.0f} % of the synthetic-input clips/s with {workers} workers; "
            f"about {needed} workers per GPU would keep up")


def targets(parts: list[dict[str, Any]]) -> list[tuple[str, str, str]]:
    """Issue 16's targets: (target, measured, met)."""
    rows = [r for p in parts for r in p["rows"]]

    def best_mfu(config: str, mode: str) -> tuple[str, str]:
        mfus = [r["mfu"] for r in rows if r["config"] == config and r["mode"] == mode and r["mfu"] is not None]
        if not mfus:
            return "not measured (no GPU peak, or the rows did not run)", "n/a"
        return f"{100 * max(mfus):.1f} % (best row)", "yes" if max(mfus) >= (0.4 if mode == "train" else 0.5) else "no"

    ckpt = [r for r in rows if r["config"] == "mtv-l" and "ckpt" in r["options"]]
    if ckpt and ckpt[0]["error"]:
        mtv_l = (ckpt[0]["error"], "no")
    elif ckpt and ckpt[0]["peak_memory_gib"] is not None:
        peak = ckpt[0]["peak_memory_gib"]
        mtv_l = (f"{peak:.1f} GiB", "yes" if peak <= H100_80GB_GIB else "no")
    else:
        mtv_l = ("not measured (no GPU)", "n/a")
    return [("MTV-B training >= 40 % MFU", *best_mfu("mtv-b", "train")),
            ("MTV-B inference >= 50 % MFU", *best_mfu("mtv-b", "infer")),
            (f"MTV-L training, batch 8, checkpointing, peak <= {H100_80GB_GIB} GiB (an 80 GB H100)", *mtv_l)]


H100_80GB_GIB = 79.6  # nvidia-smi's 81,559 MiB


def markdown(parts: list[dict[str, Any]], header: list[str], options: argparse.Namespace) -> str:
    lines = ["# GPU suite", "", *header, "", "## Parts", "",
             "| part | status | seconds | budget s | rows | note |", "| --- | --- | ---: | ---: | ---: | --- |"]
    for p in parts:
        lines.append(f"| {p['part']} | {p['status']} | {p['seconds']:.1f} | {p['budget_s']:.3g} | {len(p['rows'])} "
                     f"| {p.get('reason', '')} |")
    rows = [throughput.Result(**{**r, "sdpa": {int(k): v for k, v in r["sdpa"].items()}})
            for p in parts for r in p["rows"]]
    if rows:
        lines += ["", "## Throughput and memory", "", throughput.markdown_table(rows)]
    trace = next((p["trace"] for p in parts if "trace" in p), None)
    if trace:
        gaps = "n/a" if trace["host_gap_share"] is None else f"{100 * trace['host_gap_share']:.1f} %"
        shares = ", ".join(f"{kind} {100 * share:.1f} %" for kind, share in trace["shares"].items())
        lines += ["", "## Trace: one MTV-B training step", "",
                  f"{trace['what']}: step {trace['step_wall_ms']:.1f} ms wall, {trace['kernel_ms']:.1f} ms in kernels; "
                  f"shares of kernel time: {shares}; host gaps (GPU idle within the step, under the profiler, "
                  f"whose own overhead widens them): {gaps}.", "",
                  "| # | kernel | kind | calls | ms | share |", "| ---: | --- | --- | ---: | ---: | ---: |"]
        for i, k in enumerate(trace["top"], 1):
            name = k["name"].replace("|", "\\|")
            name = name if len(name) <= 100 else name[:97] + "..."
            lines.append(f"| {i} | `{name}` | {k['kind']} | {k['calls']} | {k['ms']:.3f} | {100 * k['share']:.1f} % |")
    verdict = e2e_verdict(parts, options.e2e_workers)
    if verdict:
        lines += ["", "## End to end", "", verdict]
    lines += ["", "## Targets", "", "| target | measured | met |", "| --- | --- | --- |"]
    lines += [f"| {t} | {m} | {met} |" for t, m, met in targets(parts)]
    return "\n".join(lines) + "\n"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True, help="folder for gpu_suite.json and gpu_suite.md")
    parser.add_argument("--budget-s", type=float, default=420.0, help="seconds for all parts together")
    parser.add_argument("--tiny", action="store_true", help="tiny models on the CPU, a few steps (CI smoke)")
    parser.add_argument("--parts", nargs="+", choices=[p.name for p in PARTS], help="default: all, in order")
    parser.add_argument("--part-budget", action="append", default=[], metavar="PART=SECONDS",
                        help="a part's own budget instead of its share (repeatable)")
    parser.add_argument("--e2e-workers", type=int, help="DataLoader workers of e2e (default 14; --tiny 1)")
    args = parser.parse_args(argv)
    args.e2e_workers = args.e2e_workers or (1 if args.tiny else 14)
    args.overrides = {}
    known = {p.name for p in PARTS}
    for item in args.part_budget:
        name, _, seconds = item.partition("=")
        if name not in known or not re.fullmatch(r"\d+(\.\d*)?", seconds):
            parser.error(f"--part-budget {item!r}: write PART=SECONDS with PART one of {', '.join(sorted(known))}")
        args.overrides[name] = float(seconds)
    return args


def main(argv: list[str] | None = None) -> None:
    options = parse_args(argv)
    scale = TINY if options.tiny else FULL
    parts = [p for p in PARTS if options.parts is None or p.name in options.parts]
    budget = budgets(parts, options.budget_s, options.overrides)
    deadline = time.monotonic() + options.budget_s
    options.out.mkdir(parents=True, exist_ok=True)
    reports = []
    with tempfile.TemporaryDirectory(prefix="gpu-suite-") as scratch:
        for part in parts:
            left = deadline - time.monotonic()
            if left <= 0 and part.name not in options.overrides:
                reports.append({"part": part.name, "budget_s": 0.0, "seconds": 0.0, "rows": [],
                                "status": "not run", "reason": "the suite's --budget-s was spent"})
                continue
            part_budget = budget[part.name] if part.name in options.overrides else min(budget[part.name], left)
            reports.append(run_part(part, scale, options, part_budget, Path(scratch)))
            print(f"{part.name}: {reports[-1]['status']} in {reports[-1]['seconds']:.1f} s", file=sys.stderr, flush=True)
    environment = next((r["environment"] for r in reports if "environment" in r), [])
    header = [*environment, f"- GPU (nvidia-smi): {gpu_driver()}",
              f"- suite: `python benchmarks/gpu_suite.py {' '.join(sys.argv[1:] if argv is None else argv)}`"]
    text = markdown(reports, header, options)
    (options.out / "gpu_suite.json").write_text(json.dumps({"environment": header, "parts": reports,
                                                            "targets": targets(reports)}, indent=1))
    (options.out / "gpu_suite.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
