"""Multiply-adds of one forward pass, by module, without memory: the shared core of every family's profile.

MACs come from `torch.utils.flop_counter.FlopCounterMode` (2 FLOPs per MAC) on a model built on the `meta`
device. Attention runs on PyTorch's math path there, as plain `bmm`s the counter has formulas for (a fused
SDPA kernel would count as 0). Each op goes to the outermost submodule that ran it, so a family maps module
paths to its components.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode


def macs_by_module(model: nn.Module, *inputs: torch.Tensor) -> dict[str, int]:
    """MACs of `model(*inputs)` keyed by the outermost submodule that ran them (e.g. `blocks.3`).

    Raises RuntimeError if any MAC ran outside a submodule, so that no cost goes unassigned."""
    root = type(model).__name__
    with torch.no_grad(), sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as counter:
        model(*inputs)
    # counts are inclusive and keyed "<Root>.<path>" for every module on the stack; keep the outermost ones
    inclusive = {
        name.partition(".")[2]: sum(ops.values())
        for name, ops in counter.get_flop_counts().items()
        if name.startswith(root + ".")
    }
    outermost = {
        name: flops for name, flops in inclusive.items() if not any(name.startswith(other + ".") for other in inclusive)
    }
    total = counter.get_total_flops()
    if sum(outermost.values()) != total:
        raise RuntimeError(
            f"{total - sum(outermost.values())} FLOPs ran outside any submodule of {root}; give them a module "
            "so that they can be assigned to a component"
        )
    return {name: flops // 2 for name, flops in outermost.items()}


def component_counts(params: dict[str, int], macs: dict[str, int]) -> dict[str, Any]:
    """The count fields of every family's profile (what `component_table` reads): parameters and GMACs per
    component, and their totals."""
    return {
        "params_total": sum(params.values()),
        "params": params,
        "gmacs_per_view": sum(macs.values()) / 1e9,
        "gmacs": {name: count / 1e9 for name, count in macs.items()},
    }


def component_table(profile: dict[str, Any]) -> list[str]:
    """The Markdown lines every family's `format_profile` starts with: a title line with the input and the
    totals, then one row per component (`params`, `gmacs`) and the total."""
    shape = "x".join(str(s) for s in profile["input"])
    lines = [
        f"{profile['model']}, input {shape}: {profile['params_total']:,} parameters, "
        f"{profile['gmacs_per_view']:.3f} GMACs per clip (matmul + conv + attention; 1 MAC = 2 FLOPs)",
        "",
        "| component | params | GMACs |",
        "| --- | ---: | ---: |",
    ]
    for name, count in profile["params"].items():
        lines.append(f"| {name} | {count:,} | {format_gmacs(profile['gmacs'][name])} |")
    lines.append(f"| **total** | **{profile['params_total']:,}** | **{format_gmacs(profile['gmacs_per_view'])}** |")
    return lines


def format_gmacs(value: float) -> str:
    """Four decimals, as scenic's table; small models' tiny parts in three significant digits instead of 0."""
    return f"{value:.4f}" if value >= 0.01 or value == 0 else f"{value:.3g}"
