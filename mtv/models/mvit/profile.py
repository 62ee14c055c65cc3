"""Parameters and multiply-adds of an MViT per component, counted on a meta-device twin (no memory).

Components: the patch embedding (with the CLS token and absolute position embeddings), one entry per stage
(a stage starts at each block that pools the queries, so v1's width-doubling last block stays in the
stage it ends) and the head (final norm and classifier). MACs are `FlopCounterMode`'s: convolutions, every
linear layer, q·kᵀ and attn·v, and v2's relative-position products; norms, softmax, GELU, max-pooling and
additions are not counted. This is the convention of torchvision's published `_ops` (mvit_spec.md §4).
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from mtv.models.counting import component_counts, macs_by_module
from mtv.models.mvit.config import MViTConfig, block_geometry
from mtv.models.mvit.model import MViT
from mtv.models.registry import ModelInputs


def stage_of_blocks(cfg: MViTConfig) -> list[int]:
    """1-based stage number of each block: a new stage starts where the queries are pooled."""
    stages, stage = [], 1
    for i, block in enumerate(cfg.blocks):
        if i > 0 and math.prod(block.stride_q) > 1:
            stage += 1
        stages.append(stage)
    return stages


def _component(name: str, stages: list[int]) -> str:
    parts = name.split(".")
    if parts[0] == "blocks":
        return f"stage{stages[int(parts[1])]}"
    if parts[0] in ("norm", "head"):
        return "head"
    return "patch_embed"


def profile(model: nn.Module, inputs: ModelInputs) -> dict[str, Any]:
    """Counts for one clip of `inputs` at batch 1; parameters are those of `model` itself."""
    model = getattr(model, "_orig_mod", model)
    if not isinstance(model, MViT):
        raise TypeError(f"the mvit family profiles MViT models, got {type(model).__name__}")
    cfg = model.config
    stages = stage_of_blocks(cfg)
    components = ["patch_embed", *[f"stage{s}" for s in sorted(set(stages))], "head"]
    params = dict.fromkeys(components, 0)
    for name, param in model.named_parameters():
        params[_component(name, stages)] += param.numel()
    macs = dict.fromkeys(components, 0)
    with torch.device("meta"):
        twin = MViT(cfg, block_geometry(cfg, inputs), inputs.num_classes).eval()
        video = torch.empty(1, 3, inputs.num_frames, *inputs.image_size)
    for name, count in macs_by_module(twin, video).items():
        macs[_component(name, stages)] += count
    return {
        "model": cfg.display_name,
        "input": [1, 3, inputs.num_frames, *inputs.image_size],
        **component_counts(params, macs),
        "blocks_per_stage": {f"stage{s}": stages.count(s) for s in sorted(set(stages))},
    }


def format_profile(result: dict[str, Any]) -> str:
    """The profile as a Markdown table, one row per component."""
    shape = "x".join(str(s) for s in result["input"])
    lines = [
        (f"{result['model']}, input {shape}: {result['params_total']:,} parameters, "
         f"{result['gmacs_per_view']:.3f} GMACs per clip (conv + linear + attention matmuls; 1 MAC = 2 FLOPs)"),
        "",
        "| component | blocks | params | GMACs |",
        "| --- | ---: | ---: | ---: |",
    ]
    for name, count in result["params"].items():
        blocks = result["blocks_per_stage"].get(name, "")
        lines.append(f"| {name} | {blocks} | {count:,} | {result['gmacs'][name]:.4f} |")
    lines.append(f"| **total** | | **{result['params_total']:,}** | **{result['gmacs_per_view']:.4f}** |")
    return "\n".join(lines)
