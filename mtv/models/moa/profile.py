"""Parameters and multiply-adds of a MoA model per component, counted on the meta device (no memory).

Components are the authors' top-level modules: `patch_embed`, `layers.<i>` (a stage: its local blocks, its
MOA tail with the 3x3 post_conv, its patch merging), `norm` and `head`, as in moa_spec.md §3. MACs count
convolutions, every Linear and the two attention matmuls (QK^T and AV) of both attentions, for one clip at
batch 1 (a video clip is T frames through the backbone); norms, softmax, unfold and pooling are free.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from mtv.models.counting import component_counts, component_table, macs_by_module
from mtv.models.moa.model import MoATransformer
from mtv.models.registry import ModelInputs


def _component(name: str) -> str:
    """`layers.1.blocks.0.attn.qkv.weight` -> `layers.1`; `head.weight` -> `head`."""
    parts = name.split(".")
    return ".".join(parts[:2]) if parts[0] == "layers" else parts[0]


def profile_model(model: nn.Module, inputs: ModelInputs) -> dict[str, Any]:
    """JSON-able counts of `model` for one clip of `inputs.num_frames` x `inputs.image_size` frames.

    Parameters are those of `model`; MACs come from a meta-device twin built for `inputs` (so another input
    size gives the cost at that size, with the window clipping and MOA grid it implies)."""
    model = getattr(model, "_orig_mod", model)  # the module inside torch.compile's wrapper
    if not isinstance(model, MoATransformer):
        raise TypeError(f"the moa profile counts MoATransformer models, got {type(model).__name__}")
    size = (int(inputs.image_size[0]), int(inputs.image_size[1]))
    frames = int(inputs.num_frames)
    params: dict[str, int] = {}
    for name, param in model.named_parameters():
        params[_component(name)] = params.get(_component(name), 0) + param.numel()
    num_classes = model.head.out_features if isinstance(model.head, nn.Linear) else 0
    with torch.device("meta"):
        twin = MoATransformer(model.config, num_classes, size).eval()
        clip = torch.empty(1, 3, frames, *size) if frames > 1 else torch.empty(1, 3, *size)
    macs = dict.fromkeys(params, 0)
    for name, count in macs_by_module(twin, clip).items():
        macs[_component(name)] = macs.get(_component(name), 0) + count
    return {
        "model": f"MoA ({model.config.name})",
        "input": [1, 3, frames, *size],
        **component_counts(params, macs),
        "stages": [
            {"resolution": list(s.resolution), "dim": s.dim, "window": s.window, "moa": s.moa,
             "moa_grid": list(s.moa_grid), "moa_key_stride": s.moa_key_stride}
            for s in model.geometry
        ],
    }


def format_profile(profile: dict[str, Any]) -> str:
    """A Markdown table of `profile_model`'s result: one row per component, then the stage geometry."""
    lines = component_table(profile)
    lines += ["", "| stage | map | width | window | MOA query grid | MOA key stride |",
              "| --- | --- | ---: | ---: | --- | ---: |"]
    for i, s in enumerate(profile["stages"]):
        grid = "x".join(map(str, s["moa_grid"])) if s["moa"] else "no MOA"
        stride = s["moa_key_stride"] if s["moa"] else "-"
        size = f"{s['resolution'][0]}x{s['resolution'][1]}"
        lines.append(f"| {i} | {size} | {s['dim']} | {s['window']} | {grid} | {stride} |")
    return "\n".join(lines)
