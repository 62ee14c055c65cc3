"""ViViT's parameters and multiply-adds per component, in scenic's conventions (vivit_spec.md §3).

Components: `tokenizer` (the tubelet conv), `encoder` (models 1, 3, 4: CLS, position embedding, blocks,
final norm) or `spatial_encoder` + `temporal_encoder` (model 2, each with its CLS, position embedding,
blocks and norm), and `head`. MACs count matmuls, the conv and the two attention matmuls (QK^T, AV) of one
clip at batch 1, on a meta-device twin (`mtv.models.counting.macs_by_module`), so ViViT-L costs no memory.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import torch
from torch import nn

from mtv.models.counting import component_counts, component_table, macs_by_module
from mtv.models.registry import ModelInputs
from mtv.models.vivit.config import FACTORIZED_ENCODER
from mtv.models.vivit.model import ViViT


def components(attention: str) -> tuple[str, ...]:
    encoders = ("spatial_encoder", "temporal_encoder") if attention == FACTORIZED_ENCODER else ("encoder",)
    return ("tokenizer", *encoders, "head")


def display_name(model: ViViT) -> str:
    """e.g. 'ViViT-B/16x2 model 2 (factorized_encoder)'."""
    spec = model.spec
    h, w, t = spec.patch
    size = spec.label.split("/")[0] if "/" in spec.label else f"d{spec.hidden_size}"
    patch = f"{h}x{t}" if h == w else f"{h}x{w}x{t}"
    return f"ViViT-{size}/{patch} model {spec.model_number} ({spec.attention})"


def profile_model(model: nn.Module, inputs: ModelInputs) -> dict[str, Any]:
    """Counts of a ViViT for one clip of `inputs.num_frames` x `inputs.image_size` (JSON-able dict).

    Parameters are the model's own; MACs come from a twin built at the requested input size."""
    model = getattr(model, "_orig_mod", model)  # the module inside torch.compile's wrapper
    if not isinstance(model, ViViT):
        raise TypeError(f"the vivit profile counts ViViT models, got {type(model).__name__}")
    spec = replace(model.spec, num_frames=int(inputs.num_frames), image_size=tuple(inputs.image_size))
    spec.validate()
    names = components(spec.attention)
    params = dict.fromkeys(names, 0)
    for name, param in model.named_parameters():
        params[name.split(".")[0]] += param.numel()
    with torch.device("meta"):
        twin = ViViT(spec).eval()
        video = torch.empty(1, 3, spec.num_frames, *spec.image_size)
    macs = dict.fromkeys(names, 0)
    for name, count in macs_by_module(twin, video).items():
        macs[name.split(".")[0]] += count
    return {
        "model": display_name(model),
        "attention": spec.attention,
        "input": [1, 3, spec.num_frames, *spec.image_size],
        **component_counts(params, macs),
    }


def format_profile(profile: dict[str, Any]) -> str:
    """A `profile_model` result as a Markdown table."""
    return "\n".join(component_table(profile))
